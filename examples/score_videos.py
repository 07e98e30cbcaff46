"""Score a folder of videos with a trained reward model, from Python.

    # every .mp4 under a folder, against one prompt, on the dimensions the model was trained on
    python examples/score_videos.py --model runs/reward-synthetic --videos my_videos --prompt "a red circle moving left"
    # tiny: a few synthetic-world videos, scored by an untrained tiny dual encoder saved on the spot
    python examples/score_videos.py --tiny --out runs/example-scores

Prints one JSON line per video (its rewards per dimension and their mean) and the best video.
A video that cannot be read is reported and skipped; the others are still scored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import reward
from reward.video import VideoReadError, read_video


def write_tiny_inputs(out: Path, prompt: str) -> tuple[Path, Path]:
    """A tiny untrained dual encoder (saved like a trained one) and a folder of synthetic videos."""
    import torch

    from reward.synthetic import CAPTIONS, SYNTHETIC_DIMENSIONS, render_video
    from reward.text import build_word_tokenizer

    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(CAPTIONS)
    config = reward.CleveRewardConfig(
        vocab_size=len(tokenizer), conv_channels=[8, 8], word_embedding_dim=16, text_hidden_size=16,
        projection_dim=16, num_frames=8, frame_size=[32, 32], dimensions=list(SYNTHETIC_DIMENSIONS),
    )  # fmt: skip
    model_dir = out / "tiny-reward-model"
    reward.CleveRewardModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    for defect in (None, "blur", "freeze"):
        frames = render_video(prompt, np.random.default_rng(0), defect)
        reward.write_video(frames, out / "videos" / f"{defect or 'clean'}.mp4")
    return model_dir, out / "videos"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", help="a reward model folder (clevereward train / save_pretrained)")
    parser.add_argument("--videos", help="a folder of .mp4 files (searched recursively)")
    parser.add_argument("--prompt", default="a red circle moving left", help="what the videos should show")
    parser.add_argument("--dimension", action="append", help="dimensions to score (default: the model's)")
    parser.add_argument(
        "--tiny", action="store_true", help="score synthetic videos with a tiny untrained model"
    )
    parser.add_argument("--out", default="runs/example-scores", help="with --tiny: where the stand-ins go")
    args = parser.parse_args(argv)
    if args.tiny:
        args.model, args.videos = write_tiny_inputs(Path(args.out), args.prompt)
    if not args.model or not args.videos:
        parser.error("give --model and --videos, or --tiny")

    scorer = reward.load_scorer(args.model)
    dimensions = args.dimension or list(scorer.model.config.dimensions)
    frames, size = scorer.model.config.num_frames, tuple(scorer.model.config.frame_size)
    results = []
    for path in sorted(Path(args.videos).rglob("*.mp4")):
        try:
            video = read_video(path, frames, size=size).float().div(255)  # uint8 [F, C, H, W] -> [0, 1]
        except VideoReadError as error:
            print(json.dumps({"video": str(path), "error": error.reason}))
            continue
        scores = scorer.score_dimensions(video[None], [args.prompt], dimensions)  # {dim: [1]}
        row = {"video": str(path), **{d: round(float(s[0]), 4) for d, s in scores.items()}}
        row["mean"] = round(sum(row[d] for d in dimensions) / len(dimensions), 4)
        results.append(row)
        print(json.dumps(row))
    if results:
        print("best:", max(results, key=lambda r: r["mean"])["video"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
