"""Tiny VLM reward model on CPU: scoring throughput and peak memory at two visual token budgets.

    .venv/bin/python benchmarks/bench_vlm.py [--videos 16] [--batch-size 8] [--repeats 1] [--threads 2]

Measured in this one run: a tiny random Qwen2-VL (`reward.vlm.build_tiny_qwen2_vl`, loaded through
`VLMRewardModel.from_backbone` and scored through `reward.load_scorer`, as a trained model would
be) scores the same synthetic videos at a small and a large budget — (frames, size) chosen so the
large one costs 16× the visual tokens (`reward.budget.video_tokens`). For each: videos/s (best of
`--repeats`) and how far scoring raises the peak resident memory above what the process held
with the model loaded (each budget runs in its own process, so allocator caches do not carry
over; Linux VmHWM / VmRSS), then the ratios large / small. The tiny model's absolute numbers say nothing about a 2B model on a GPU; its
prompts are ~40 text tokens, so the ratio shows how cost grows as visual tokens take over.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from reward.budget import video_tokens, vision_geometry
from reward.scoring import load_scorer
from reward.synthetic import CAPTIONS, render_video
from reward.vlm import VLMRewardModel, build_tiny_qwen2_vl, load_vlm_processor

# (frames, square size): 2 × 2 × 2 = 8 tokens vs 8 × 4 × 4 = 128 tokens per video at 16 px per token.
BUDGETS = {"small": (4, 32), "large": (16, 64)}


def score_pass(scorer, videos: torch.Tensor, prompts: list[str]) -> None:
    scorer.score(videos, prompts, "visual_quality")


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(folder: str, args: argparse.Namespace) -> dict:
    """In this process: load the scorer at `folder`, warm up, time `--repeats` passes, and the peak rise."""
    rng = np.random.default_rng(0)
    prompts = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.videos)]
    videos = torch.stack([render_video(p, rng) for p in prompts]).float() / 255  # [B, 16, 3, 64, 64]
    scorer = load_scorer(folder, device="cpu", batch_size=args.batch_size)
    score_pass(scorer, videos[:1], prompts[:1])  # warm-up: first-call allocations are not the budget's
    before = _status_kib("VmRSS")
    seconds = best_time(lambda: score_pass(scorer, videos, prompts), args.repeats)
    return {"rate": args.videos / seconds, "memory": (_status_kib("VmHWM") - before) * 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16, help="videos scored per pass")
    parser.add_argument("--batch-size", type=int, default=8, help="videos per model call")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per budget; the best is kept")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one budget's process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        backbone = build_tiny_qwen2_vl(Path(tmp, "backbone"), seed=0)
        processor = load_vlm_processor(backbone)
        geometry = vision_geometry(processor)
        for name, (frames, size) in BUDGETS.items():
            folder = Path(tmp, name)
            model = VLMRewardModel.from_backbone(str(backbone), num_frames=frames, frame_size=[size, size])
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            command = [sys.executable, __file__, "--measure", str(folder), *sys.argv[1:]]
            result = subprocess.run(command, check=True, capture_output=True, text=True)
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            rows[name] = (
                frames,
                size,
                video_tokens(frames, size, size, geometry),
                measured["rate"],
                measured["memory"],
            )

    print(
        f"tiny Qwen2-VL reward model, CPU, {args.threads} threads, {args.videos} videos, batch {args.batch_size}"
    )
    print(f"{'budget':<8}{'frames':>7}{'size':>6}{'tokens':>8}{'videos/s':>10}{'peak RSS rise MiB':>19}")
    for name, (frames, size, tokens, rate, memory) in rows.items():
        print(f"{name:<8}{frames:>7}{size:>6}{tokens:>8}{rate:>10.2f}{memory / 2**20:>19.1f}")
    small, large = rows["small"], rows["large"]
    print(
        f"large / small: tokens x{large[2] / small[2]:.1f}, throughput x{large[3] / small[3]:.2f}, "
        f"peak RSS rise x{large[4] / max(small[4], 1):.2f}"
    )


if __name__ == "__main__":
    main()
