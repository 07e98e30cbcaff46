"""Scale of `clevereward data build`: rows per second and peak memory at 1k, 10k and 100k rows.

    .venv/bin/python benchmarks/bench_build.py [--sizes 1000 10000 100000] [--pool 128]

Each size is two graded-world sources in their public formats, half the rows each: a T2VQA-DB
`info.txt` (one MOS per video, paired by the builder within a prompt) and a VideoGen-RewardBench
CSV (labelled A / B pairs on VQ / MQ / TA). Rows reuse a pool of `--pool` rendered videos, so
the disk stays small, while every (prompt, video) row stays distinct, so nothing is dropped as a
duplicate. Each size runs in a fresh process: the time is reading both files through the real
adapters plus `run_build` (video checks decode each pooled video once; pairing; the atomic
corpus write), the memory that process's peak resident set. Goal: time per row flat within
1.5x from the smallest to the largest size, memory sub-linear.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

VIDEOS_PER_PROMPT = 4  # T2VQA rows per prompt: 6 same-prompt pairs each
PAIRS_PER_PROMPT = 6  # RewardBench rows per prompt


def write_pool(root: Path, size: int) -> list[str]:
    """`size` distinct graded videos under root/pool/; their names relative to root."""
    from reward.graded import MODELS, draw_defects, render_graded
    from reward.synthetic import CAPTIONS, FPS
    from reward.video import write_video

    names, models = [], list(MODELS.values())
    for i in range(size):
        rng = np.random.default_rng(i)
        frames = render_graded(CAPTIONS[i % len(CAPTIONS)], draw_defects(models[i % len(models)], rng), rng)
        write_video(frames, root / "pool" / f"{i}.mp4", fps=FPS)
        names.append(f"pool/{i}.mp4")
    return names


def write_sources(root: Path, rows: int, pool: list[str]) -> dict[str, Path]:
    """A T2VQA `info.txt` and a RewardBench CSV of `rows // 2` rows each, on the pooled videos."""
    from reward.formats import write_rewardbench, write_t2vqa

    rng = np.random.default_rng(rows)
    half = rows // 2
    t2vqa = []
    for i in range(half):
        prompt, k = i // VIDEOS_PER_PROMPT, i % VIDEOS_PER_PROMPT
        video = pool[(prompt * VIDEOS_PER_PROMPT + k) % len(pool)]  # distinct within a prompt
        t2vqa.append((video, f"prompt {prompt}", round(float(rng.uniform(0, 100)), 2)))
    write_t2vqa(root / "info.txt", t2vqa)
    bench = []
    for i in range(half):
        prompt, k = i // PAIRS_PER_PROMPT, i % PAIRS_PER_PROMPT
        a = (prompt * PAIRS_PER_PROMPT + k) % len(pool)
        labels = dict(zip(("VQ", "MQ", "TA"), rng.choice(["A", "B", "same"], size=3), strict=True))
        bench.append(
            {
                "path_A": pool[a],
                "path_B": pool[(a + 1) % len(pool)],
                "prompt": f"pair prompt {prompt}",
                **labels,
            }
        )
    write_rewardbench(root / "pairs.csv", bench)
    return {"t2vqa": root / "info.txt", "videogen_rewardbench": root / "pairs.csv"}


def build_once(root: str, rows: int, pool: list[str], queue) -> None:
    """In a fresh process: write the sources (untimed), then time reading + building them."""
    from reward.build import BuildConfig, run_build
    from reward.sources import read_source

    root = Path(root)
    work = root / f"rows-{rows}"
    work.mkdir()
    sources = write_sources(work, rows, pool)
    start = time.perf_counter()
    data = [read_source(name, path) for name, path in sources.items()]
    report = run_build(data, root, work / "corpus", BuildConfig(seed=0))
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    queue.put({"rows": rows, "seconds": seconds, "peak_mib": peak_mib, "pairs": sum(report["pairs"].values()),
               "skipped": report["skipped_total"]})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="rows per build")
    parser.add_argument("--pool", type=int, default=128, help="distinct videos the rows share")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")  # a fresh process per size: its own peak memory
    with tempfile.TemporaryDirectory() as tmp:
        pool = write_pool(Path(tmp), args.pool)
        results = []
        for rows in args.sizes:
            queue = context.Queue()
            process = context.Process(target=build_once, args=(tmp, rows, pool, queue))
            process.start()
            results.append(queue.get())
            process.join()
    base = results[0]
    per_row = base["seconds"] / base["rows"]
    print(f"{'rows':>8} {'pairs':>8} {'skipped':>8} {'seconds':>8} {'rows/s':>9} {'time/row vs first':>18} "
          f"{'peak MiB':>9} {'memory vs first':>16}")  # fmt: skip
    for r in results:
        print(f"{r['rows']:>8} {r['pairs']:>8} {r['skipped']:>8} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>9.0f} "
              f"{r['seconds'] / r['rows'] / per_row:>17.2f}x {r['peak_mib']:>9.0f} "
              f"{r['peak_mib'] / base['peak_mib']:>15.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
