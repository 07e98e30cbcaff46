"""A 2-process DDP run over gloo (torchrun): it trains, gathers metrics across processes, and writes once."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reward.synthetic import build_synthetic_corpus

SCRIPT = Path(__file__).with_name("ddp_reward_train.py")
TIMEOUT_S = 600


def test_two_process_ddp_training_gathers_metrics_and_writes_once(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    corpus = build_synthetic_corpus(tmp_path / "corpus", 8, seed=0, num_workers=1)  # 16 train pairs
    out = tmp_path / "run"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    # Own session, so a hung run is killed with its workers (torchrun's children) on timeout.
    proc = subprocess.Popen(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node",
            "2",
            str(SCRIPT),
            str(corpus),
            str(out),
            str(metrics_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the DDP run did not finish in {TIMEOUT_S} s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, stderr[-4000:]
    metrics = {
        int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in metrics_dir.glob("metrics-*.json")
    }
    assert sorted(metrics) == [0, 1] and metrics[0]["world_size"] == 2
    # Each rank evaluated 8 pairs; gathered metrics cover all 16, identically on both ranks.
    assert metrics[0]["eval_pairs"] == metrics[1]["eval_pairs"] == 16
    for key in ("eval_accuracy", "eval_accuracy_text_alignment", "eval_margin_visual_quality"):
        assert metrics[0][key] == pytest.approx(metrics[1][key]), key
    # 12 test pairs in batches of 4 over 2 ranks: accelerate repeats 4 pairs; each is counted once.
    assert metrics[0]["test"]["eval_pairs"] == metrics[1]["test"]["eval_pairs"] == 12
    # Only the main process wrote the model and the reports: one of each, complete.
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads((out / "skipped_videos.json").read_text()) == {}
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*.tmp"))
    printed = stdout.count("train: pairwise accuracy")
    assert printed == 1, f"the accuracy table was printed {printed} times"
