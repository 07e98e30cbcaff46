#!/usr/bin/env bash
# Creates .venv with the CPU build of torch and CleveReward (editable, with dev extras).
# Idempotent: a second run installs nothing new. Set TORCH_SPEC to pick another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Plain `torch` would pull a multi-GB CUDA build; this pin takes the CPU wheel.
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
