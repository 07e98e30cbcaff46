"""`report_to: wandb` really logs: offline runs of reward training and alignment write a wandb run
folder whose history holds the logged metrics (and, for alignment, the evaluation videos)."""

import dataclasses
import json

import pytest

from align.config import config_parser
from align.preference import save_sample_pairs
from align.rerank import rerank
from align.rewards import color_match
from align.train import build_pipeline, train
from reward import train as reward_train

PROMPTS = ["a red circle moving left", "a blue square moving up"]


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield tmp_path
    import wandb

    wandb.teardown()  # wandb keeps its settings (the run folder) per process: start the next test afresh


def _run_folder(root):
    import wandb

    # The run file is written by wandb's service process; a finished run may still be flushing, so shut the
    # service down (which waits for its writers) before reading. Without this the file was seen holding only
    # its 8-byte header on CI.
    wandb.teardown()
    runs = sorted((root / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    history = next(runs[0].glob("run-*.wandb")).read_bytes()  # protobuf records: keys are stored as text
    return runs[0], history


def test_reward_training_logs_its_metrics_to_an_offline_run(offline_wandb):
    argv = ["--config", "configs/reward/synthetic.yaml", "--data_dir", str(offline_wandb / "data"),
            "--synthetic_pairs_per_dimension", "3", "--synthetic_alignment_factor", "1",
            "--output_dir", str(offline_wandb / "model"), "--max_steps", "2", "--logging_steps", "1",
            "--report_to", "wandb", "--save_strategy", "no", "--dataloader_num_workers", "0",
            "--dataloader_persistent_workers", "false"]  # fmt: skip
    assert reward_train.main(argv) == 0
    _, history = _run_folder(offline_wandb)
    for key in (b"train/loss", b"train/accuracy", b"train/accuracy_text_alignment", b"eval/accuracy"):
        assert key in history, key


def test_alignment_logs_metrics_and_evaluation_videos(offline_wandb):
    (config,) = config_parser().parse_args_and_config(["--config", "configs/align/tiny-dpo.yaml"])
    config = dataclasses.replace(
        config, data=str(offline_wandb / "samples"), output_dir=str(offline_wandb / "train"), steps=2,
        train_batch_size=2, checkpointing_steps=0, report_to="wandb", eval_steps=2, eval_seeds=[0, 1],
        eval_prompts=PROMPTS[:1], eval_num_inference_steps=2,
    )  # fmt: skip
    pipe = build_pipeline(config)
    rerank(pipe, PROMPTS, [color_match], offline_wandb / "samples", n=2, top_k=1, seed=0, num_inference_steps=2,
           guidance_scale=1.0, generator_name="tiny")  # fmt: skip
    save_sample_pairs(offline_wandb / "samples", strategy="all")
    train(config, pipe)
    run, history = _run_folder(offline_wandb)
    for key in (b"loss", b"implicit_acc", b"eval/color_match", b"eval/samples"):
        assert key in history, key
    assert len(list(run.glob("files/media/videos/**/*.mp4"))) == 2  # one per eval seed
    # the same samples stay beside the run, with what re-measuring them needs
    samples = [
        json.loads(line)
        for line in (offline_wandb / "train" / "eval-2" / "samples.jsonl").read_text().splitlines()
    ]
    assert [(s["prompt"], s["seed"]) for s in samples] == [(PROMPTS[0], 0), (PROMPTS[0], 1)]
    assert all(
        (offline_wandb / "train" / "eval-2" / s["video"]).is_file() and "color_match" in s for s in samples
    )
