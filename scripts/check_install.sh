#!/usr/bin/env bash
# A plain (non-editable) `pip install .` into a fresh virtual environment runs the main job's first
# stage: render the synthetic world, then train CleveReward with the packaged recipe, from a
# folder with no checkout in it (so the recipes must come from the installed package), and loads
# the world generator whose weights the package carries.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"  # the CPU wheel, as scripts/setup.sh
"$py" -m pip install -q "$repo"
cd "$work"
"$work/venv/bin/clevereward" demo --help > /dev/null
"$work/venv/bin/clevereward" data synth --out world --pairs-per-dimension 3 --workers 1
"$work/venv/bin/clevereward" train --config configs/reward/synthetic.yaml --data_dir world \
    --output_dir model --max_steps 2 --dataloader_num_workers 0 --dataloader_persistent_workers false
test -f model/config.json
"$py" -c "from align.cogvideox import load_pipeline; load_pipeline('world')"  # the committed generator ships too
echo "check_install: a non-editable install rendered the world and trained with the packaged recipe"
