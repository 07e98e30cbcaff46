"""Score videos with a reward model, as JSON lines.

    clevereward score --model runs/reward --videos a.mp4 b.mp4 --prompts "a red circle moving left"

One line per video, in order: {"video": ..., "prompt": ..., "scores": {dimension: reward}}. Without
--dimension the model's own dimensions are scored, plus "mean" (what `score(..., dimension=None)`
returns). One prompt is used for every video; otherwise give one prompt per video. A video that
cannot be read gets {"video": ..., "prompt": ..., "error": reason}, the others are still scored,
and the exit status is 1.
"""

from __future__ import annotations

import json
import sys

import torch

from reward.commands import CommandParser
from reward.scoring import DEFAULT_BATCH_SIZE, load_scorer
from reward.video import VideoReadError

__all__ = ["build_parser", "main"]


def build_parser() -> CommandParser:
    parser = CommandParser("clevereward score", __doc__)
    parser.add_argument("--model", required=True, help="reward model folder (save_pretrained)")
    parser.add_argument("--videos", required=True, nargs="+", help="video files")
    parser.add_argument(
        "--prompts", required=True, nargs="+", help="one prompt for all videos, or one per video"
    )
    parser.add_argument(
        "--dimension", nargs="+", default=None, help="canonical dimensions to score (default: the model's)"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="videos per model call")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: as saved)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prompts = args.prompts * len(args.videos) if len(args.prompts) == 1 else args.prompts
    if len(prompts) != len(args.videos):
        parser.error(
            f"{len(args.videos)} videos but {len(args.prompts)} prompts: give one prompt, or one per video"
        )
    scorer = load_scorer(args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    dimensions = args.dimension or scorer.dimensions
    if not dimensions:
        parser.error(f"{args.model} lists no dimensions (config.dimensions): name them with --dimension")
    failed = 0
    for start in range(0, len(args.videos), scorer.batch_size):
        chunk = list(
            zip(args.videos[start : start + scorer.batch_size], prompts[start : start + scorer.batch_size])
        )
        frames, lines = {}, {}
        for index, (video, prompt) in enumerate(chunk):
            try:
                frames[index] = scorer.read_video(video)
            except VideoReadError as error:
                lines[index] = {"video": video, "prompt": prompt, "error": error.reason}
                failed += 1
        if frames:
            readable = list(frames)
            scores = scorer.score_dimensions(
                torch.stack(list(frames.values())), [chunk[i][1] for i in readable], dimensions
            )
            for row, index in enumerate(readable):
                by_dimension = {d: float(s[row]) for d, s in scores.items()}
                if not args.dimension:
                    by_dimension["mean"] = sum(by_dimension.values()) / len(by_dimension)
                lines[index] = {"video": chunk[index][0], "prompt": chunk[index][1], "scores": by_dimension}
        for index in range(len(chunk)):
            print(json.dumps(lines[index]), flush=True)
    if failed:
        print(f"clevereward score: {failed} of {len(args.videos)} videos could not be read", file=sys.stderr)
    return 1 if failed else 0
