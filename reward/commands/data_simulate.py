"""Simulate the graded world's five scoring datasets and its two benchmarks (synthetic-v2).

    clevereward data simulate --out data/graded --seed 0

Writes each source in its public file format (VideoFeedback, T2VQA-DB, GenAI-Bench,
VideoGen-RewardBench, FETV) with its videos, the validation and test benchmarks
(VideoGen-RewardBench CSVs with ties, labelled from the true qualities) and truth.jsonl; then
reads every one back through `clevereward data build`'s adapters and prints how often its
labels agree with the true qualities.
"""

from __future__ import annotations

import dataclasses

from reward.commands import CommandParser
from reward.graded import ALL_TRAIN, SOURCES, label_agreement, read_truth, simulate_sources, simulated_pairs

__all__ = ["main"]


def _parser() -> CommandParser:
    parser = CommandParser("clevereward data simulate", __doc__)
    parser.add_argument("--out", required=True, help="folder to write (one sub-folder per source)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (>= 0)")
    parser.add_argument(
        "--prompts",
        type=int,
        default=None,
        help="train captions per source (default: each source's own, 18-24)",
    )
    parser.add_argument(
        "--videos-per-prompt", type=int, default=None, help="videos per prompt (default: each source's own)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seed < 0:
        _parser().error(f"--seed must be >= 0, got {args.seed}")
    for flag in ("prompts", "videos_per_prompt"):
        if getattr(args, flag) is not None and getattr(args, flag) < 2:
            _parser().error(f"--{flag.replace('_', '-')} must be >= 2, got {getattr(args, flag)}")
    changes = {k: getattr(args, k) for k in ("prompts", "videos_per_prompt") if getattr(args, k) is not None}
    sources = tuple(dataclasses.replace(spec, **changes) for spec in SOURCES)
    manifest = simulate_sources(args.out, seed=args.seed, sources=sources)
    truth = read_truth(args.out)
    unchecked = dataclasses.replace(ALL_TRAIN, check_videos=False)  # just written: no need to decode
    print(f"{'source':<22} {'pairs':>6} {'ties':>6} {'agree with truth':>17}")
    for name in [*manifest["sources"], *manifest["benchmarks"]]:
        stats = label_agreement(simulated_pairs(args.out, name, unchecked), truth)
        print(f"{name:<22} {stats['pairs']:>6} {stats['ties']:>6} {stats['agreement']:>17.3f}")
    print(f"{manifest['videos']} videos -> {args.out}")
    return 0
