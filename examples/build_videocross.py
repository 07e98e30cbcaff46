"""Build a VideoCross pair corpus from the public video-scoring datasets you downloaded.

    # the real datasets (each flag optional; videos under one root, a sub-folder per source)
    python examples/build_videocross.py --video-root downloads/videos --out data/videocross \
        --videofeedback downloads/VideoFeedback/annotated/test.parquet \
        --t2vqa downloads/T2VQA-DB/info.txt \
        --genai-bench downloads/GenAI-Bench/video_generation/test-00000-of-00001.parquet \
        --rewardbench downloads/videogen-rewardbench.csv \
        --fetv downloads/FETV
    # a tiny stand-in: synthetic-world videos written in T2VQA-DB's and VideoGen-RewardBench's formats
    python examples/build_videocross.py --tiny --out runs/example-videocross   # stand-in files under OUT/sources

Each source is read by its adapter (`reward.sources`), in its published format; scores are
normalised per source, same-prompt pairs are made with ties, and cross-prompt negatives are
added. The corpus loads with `reward.load_corpus(out)`; `report.json` lists every skipped row.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from reward.build import BuildConfig, run_build
from reward.sources import read_source, with_video_folder

# flag -> the adapter's source name; each source's videos live in --video-root/<source name>/
SOURCES = {
    "videofeedback": "videofeedback",
    "t2vqa": "t2vqa",
    "genai_bench": "genai_bench",
    "rewardbench": "videogen_rewardbench",
    "fetv": "fetv",
}
TINY_CAPTIONS = 8
# synthetic defects and the MOS a T2VQA-style rater would give them (higher is better)
TINY_MOS = {None: 80.0, "blur": 55.0, "noise": 35.0, "freeze": 20.0}


def write_tiny_sources(root: Path) -> dict[str, Path]:
    """Synthetic-world videos with known defects, labelled in two public formats; returns source -> file."""
    from reward.synthetic import CAPTIONS, render_video
    from reward.video import write_video

    lines, rows = [], []
    for i, caption in enumerate(CAPTIONS[:TINY_CAPTIONS]):
        for defect, mos in TINY_MOS.items():
            name = f"{i:02d}_{defect or 'clean'}.mp4"
            frames = render_video(caption, np.random.default_rng(i), defect)
            write_video(frames, root / "videos" / "t2vqa" / name)
            write_video(frames, root / "videos" / "videogen_rewardbench" / name)
            lines.append(f"{name.removesuffix('.mp4')}|{caption}|{mos}")
        # RewardBench: clean vs blurred, A better on visual quality, the same on alignment
        rows.append({"path_A": f"{i:02d}_clean.mp4", "path_B": f"{i:02d}_blur.mp4", "prompt": caption,
                     "VQ": "A", "MQ": "same", "TA": "same"})  # fmt: skip
    (root / "info.txt").write_text("\n".join(lines) + "\n")
    with open(root / "rewardbench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"t2vqa": root / "info.txt", "videogen_rewardbench": root / "rewardbench.csv"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True, help="corpus folder to write")
    parser.add_argument("--video-root", help="folder with one sub-folder of videos per source")
    parser.add_argument("--tiny", action="store_true", help="build from a tiny synthetic stand-in instead")
    for flag in SOURCES:
        parser.add_argument(f"--{flag.replace('_', '-')}", help=f"the {SOURCES[flag]} file (or FETV folder)")
    parser.add_argument(
        "--cross-prompt-ratio", type=float, default=0.25, help="cross-prompt negatives per pair"
    )
    args = parser.parse_args(argv)

    if args.tiny:
        root = Path(args.out) / "sources"
        paths, video_root = write_tiny_sources(root), root / "videos"
    else:
        paths = {SOURCES[flag]: getattr(args, flag) for flag in SOURCES if getattr(args, flag)}
        if not paths or not args.video_root:
            parser.error("give --video-root and at least one source file, or --tiny")
        video_root = Path(args.video_root)
    sources = [with_video_folder(read_source(name, path), name) for name, path in paths.items()]
    config = BuildConfig(
        cross_prompt_ratio=args.cross_prompt_ratio, validation_fraction=0.25, test_fraction=0.25
    )
    report = run_build(sources, video_root, args.out, config)
    print(f"pairs per split {report['pairs']}, {report['skipped_total']} rows skipped")
    print(f"corpus in {args.out} (reward.load_corpus reads it; report.json says what was skipped and why)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
