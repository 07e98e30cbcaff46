"""Two CPU processes (torchrun, gloo) train exactly like one: same losses, same LoRA on every rank, resumable.

Global batch 4 either way: one process with train_batch_size 4, or two with 2 each. Batches, noise
and timesteps depend only on (seed, step, position in the global batch), and DDP averages the
gradients, so the two runs follow the same trajectory up to float summation order.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_align_train import samples  # noqa: F401  (the shared samples fixture)
from trl import TrlParser

from align.config import AlignConfig
from align.train import build_pipeline, train

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("align_ddp_worker.py")
STEPS = 4
CHECKPOINT_STEP = 2
# Float summation order differs between one process and an all-reduce over two.
RTOL = 1e-4


def _args(data: Path, out: Path, per_device_batch: int, steps: int, **extra) -> list[str]:
    options = {
        "algorithm": "rwr",  # its step-0 loss depends on the data (DPO's is log 2 whatever happens)
        "data": str(data),
        "output_dir": str(out),
        "steps": steps,
        "train_batch_size": per_device_batch,
        "learning_rate": 1e-2,
        "lora_rank": 4,
        "lora_alpha": 4.0,
        "checkpointing_steps": CHECKPOINT_STEP,
        "seed": 0,
        "mixed_precision": "no",
        **extra,
    }
    return [f"--{k}={v}" for k, v in options.items()]


def _torchrun(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        *args,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())}


def test_two_processes_match_one_and_resume(samples, tmp_path):  # noqa: F811
    # one process, in-process, global batch 4
    one = tmp_path / "one"
    (config,) = TrlParser((AlignConfig,)).parse_args_and_config(_args(samples, one, 4, STEPS))
    pipe = build_pipeline(config, "cpu")
    train(config, pipe)
    one_lora = {n: p.detach() for n, p in pipe.transformer.named_parameters() if "lora_" in n}

    # two processes, uninterrupted
    two = tmp_path / "two"
    _torchrun(_args(samples, two, 2, STEPS))
    one_losses, two_losses = _losses(one), _losses(two)
    assert sorted(two_losses) == list(range(1, STEPS + 1))
    assert two_losses[1] == pytest.approx(one_losses[1], rel=RTOL)  # step-0 loss (before any update)
    for step in range(2, STEPS + 1):
        assert two_losses[step] == pytest.approx(one_losses[step], rel=RTOL), step
    rank0, rank1 = (
        load_file(str(two / "lora_rank0.safetensors")),
        load_file(str(two / "lora_rank1.safetensors")),
    )
    assert rank0.keys() == rank1.keys() == one_lora.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
        torch.testing.assert_close(rank0[name], one_lora[name], rtol=RTOL, atol=1e-6)

    # checkpoints: written once each, complete, no temporary folders left behind
    names = sorted(p.name for p in two.iterdir())
    assert [n for n in names if "checkpoint" in n] == ["checkpoint-2", "checkpoint-4"], names
    for step in (2, 4):
        files = sorted(p.name for p in (two / f"checkpoint-{step}").iterdir())
        assert files.count("model.safetensors") == 1, files
        assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(files), files

    # interrupted after the checkpoint at step 2, then resumed to the end: same next losses
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(two / "checkpoint-2", resumed / "checkpoint-2")
    (resumed / "log.jsonl").write_text(
        "".join(
            line + "\n"
            for line in (two / "log.jsonl").read_text().splitlines()
            if json.loads(line)["step"] <= 3
        )
    )  # a log that ran past the checkpoint (step 3) before the kill: the resumed run rewrites it
    _torchrun(_args(samples, resumed, 2, STEPS, resume=True))
    again = _losses(resumed)
    assert sorted(again) == list(range(1, STEPS + 1))
    for step in range(CHECKPOINT_STEP + 1, STEPS + 1):
        assert again[step] == pytest.approx(two_losses[step], rel=1e-6), step
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["resumed_from"] == CHECKPOINT_STEP


def test_fsdp_over_two_processes_matches_one(samples, tmp_path):  # noqa: F811
    """torch's fully_shard (FSDP2) over gloo: each rank holds shards; the losses, and the adapter the
    main process gathers from them and saves, equal one unsharded process with the same global batch."""
    one, sharded = tmp_path / "one", tmp_path / "fsdp"
    (config,) = TrlParser((AlignConfig,)).parse_args_and_config(
        _args(samples, one, 4, STEPS, checkpointing_steps=0)
    )
    train(config, build_pipeline(config, "cpu"))
    _torchrun(_args(samples, sharded, 2, STEPS, checkpointing_steps=0, fsdp=True))
    assert json.loads((sharded / "summary.json").read_text())["sharded"] is True
    one_losses, fsdp_losses = _losses(one), _losses(sharded)
    assert sorted(fsdp_losses) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert fsdp_losses[step] == pytest.approx(one_losses[step], rel=RTOL), step
    whole = load_file(str(sharded / "lora" / "pytorch_lora_weights.safetensors"))
    reference = load_file(str(one / "lora" / "pytorch_lora_weights.safetensors"))
    assert whole and whole.keys() == reference.keys()
    for name in whole:
        torch.testing.assert_close(whole[name], reference[name], rtol=RTOL, atol=1e-6)


def test_grpo_two_processes_match_one(tmp_path):
    """GRPO's samples of a group are gathered before advantages are computed: 2 processes x 2 samples
    train the same adapter as 1 process x 4 (one group of 2 per prompt, 2 prompts, 2 iterations)."""
    from align.train import run

    def args(out, per_device):
        options = dict(output_dir=str(out), steps=2, online_prompts_per_step=2, grpo_group_size=2, online_sampling_steps=4,
                       train_batch_size=per_device, learning_rate=1e-2, checkpointing_steps=0, grpo_kl_coef=0.1)  # fmt: skip
        return ["--config", "configs/align/tiny-grpo.yaml", *[f"--{k}={v}" for k, v in options.items()]]

    one = tmp_path / "one"
    (config,) = TrlParser((AlignConfig,)).parse_args_and_config(args(one, 4))
    pipe = build_pipeline(config, "cpu")
    run(config, pipe)
    two = tmp_path / "two"
    _torchrun(args(two, 2))
    logs = [[json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (one, two)]
    for a, b in zip(*logs):
        assert a["reward_mean"] == pytest.approx(b["reward_mean"], rel=1e-5)
        assert a["approx_kl"] == pytest.approx(b["approx_kl"], rel=1e-3, abs=1e-9)
    lora_one = load_file(str(one / "lora" / "pytorch_lora_weights.safetensors"))
    rank0, rank1 = (load_file(str(two / f"lora_rank{r}.safetensors")) for r in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between ranks"
    saved = load_file(str(two / "lora" / "pytorch_lora_weights.safetensors"))
    for name in lora_one:
        # summation order; Adam turns near-zero gradient differences into up to ~1e-4 of a 1e-2 step
        torch.testing.assert_close(saved[name], lora_one[name], rtol=RTOL, atol=1e-4)
