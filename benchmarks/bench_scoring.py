"""Scoring K dimensions in one call (`Scorer.score_dimensions`) vs K separate `Scorer.score` calls.

    .venv/bin/python benchmarks/bench_scoring.py [--videos 16] [--repeats 5] [--threads 2] [--device cpu]

Both ways score the same synthetic mp4s from their paths, so decoding counts as in real use: one
call decodes and encodes each video once for all K questions, K calls do it K times. The goal is a
speed-up of at least 0.8 x K. A tiny CleveRewardConfig (built-in towers, the synthetic world's 16
frames at 64 x 64) is saved with `save_pretrained` and loaded with `load_scorer`. Every timing is
the best of `--repeats` runs, the two ways interleaved, all in this one run; the table prints the
ratios. K = 1 does the same work both ways: its ratio shows how noisy the machine is.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reward.dimensions import CANONICAL_DIMENSIONS
from reward.modeling import CleveRewardConfig, CleveRewardModel
from reward.scoring import load_scorer
from reward.synthetic import CAPTIONS, FPS, FRAME_SIZE, NUM_FRAMES, render_video
from reward.text import build_word_tokenizer
from reward.video import write_video

GOAL = 0.8  # speed-up per dimension to reach: together is at least 0.8 x K times faster


def write_videos(folder: Path, count: int, seed: int) -> tuple[list[str], list[str]]:
    """`count` faithful synthetic videos as mp4 under `folder`, with their captions."""
    rng = np.random.default_rng(seed)
    paths, prompts = [], []
    for i in range(count):
        caption = CAPTIONS[i % len(CAPTIONS)]
        path = folder / f"{i:04d}.mp4"
        write_video(render_video(caption, rng), path, fps=FPS)
        paths.append(str(path))
        prompts.append(caption)
    return paths, prompts


def save_tiny_model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(CAPTIONS)
    config = CleveRewardConfig(
        vocab_size=len(tokenizer),
        conv_channels=[16, 32],
        num_frames=NUM_FRAMES,
        frame_size=[FRAME_SIZE, FRAME_SIZE],
        dimensions=list(CANONICAL_DIMENSIONS),
    )
    CleveRewardModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def best_times(fns, repeats: int) -> list[float]:
    """The best of `repeats` wall-clock times of each function, run interleaved so that both ways
    meet the same machine load (other processes on a shared CPU)."""
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16, help="videos scored per call")
    parser.add_argument("--repeats", type=int, default=5, help="timings per setting; the best is kept")
    parser.add_argument("--batch-size", type=int, default=8, help="Scorer batch size")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="where the model runs (decoding is on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths, prompts = write_videos(tmp / "videos", args.videos, args.seed)
        scorer = load_scorer(
            save_tiny_model(tmp / "model", args.seed), device=args.device, batch_size=args.batch_size
        )
        scorer.score(paths[: args.batch_size], prompts[: args.batch_size], CANONICAL_DIMENSIONS[0])  # warm-up
        rows = []
        for k in (1, 2, 4, len(CANONICAL_DIMENSIONS)):
            dims = list(CANONICAL_DIMENSIONS[:k])
            together, separate = best_times(
                [
                    lambda dims=dims: scorer.score_dimensions(paths, prompts, dims),
                    lambda dims=dims: [scorer.score(paths, prompts, d) for d in dims],
                ],
                args.repeats,
            )
            rows.append((k, together, separate, separate / together))
    print(f"{args.videos} videos ({NUM_FRAMES} frames, {FRAME_SIZE}x{FRAME_SIZE}), best of {args.repeats}")
    print(f"{'K':>2} | {'one call (s)':>12} | {'K calls (s)':>11} | {'speed-up':>8} | {'speed-up / K':>12}")
    for k, together, separate, ratio in rows:
        verdict = "ok" if ratio / k >= GOAL else f"below {GOAL}"
        print(
            f"{k:>2} | {together:>12.3f} | {separate:>11.3f} | {ratio:>8.2f} | {ratio / k:>12.2f}  {verdict}"
        )


if __name__ == "__main__":
    main()
