"""Pairwise accuracy (with and without ties) and correlations of a reward model on a pair corpus.

    clevereward eval --model runs/reward --data data/synthetic --split test --out runs/reward/eval-test

Prints a per-dimension table; writes report.json, pair_rewards.csv, reward_histograms.png and
accuracy.png under --out (default: MODEL/eval-SPLIT). The tie threshold is chosen on the
validation split unless --tie-threshold gives it. Options that only one model class understands
are added in `build_parser` and passed on in `main`.
"""

from __future__ import annotations

from pathlib import Path

from reward.commands import CommandParser
from reward.evaluate import evaluate_corpus, format_table
from reward.pairs import SPLITS, load_corpus
from reward.scoring import DEFAULT_BATCH_SIZE, load_scorer

__all__ = ["build_parser", "main"]


def build_parser() -> CommandParser:
    parser = CommandParser("clevereward eval", __doc__)
    parser.add_argument("--model", required=True, help="reward model folder (save_pretrained)")
    parser.add_argument("--data", required=True, help="pair corpus folder (clevereward data synth/build)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to evaluate (default: test)")
    parser.add_argument("--out", default=None, help="output folder (default: MODEL/eval-SPLIT)")
    parser.add_argument(
        "--tie-threshold",
        type=float,
        default=None,
        help="tau for accuracy with ties (default: chosen on validation)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="videos per model call")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: as saved)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--sweep-budget",
        type=int,
        default=None,
        help="VLM models: instead of one evaluation, sweep frames x resolution under this many visual "
        "tokens per video on --split (reward.budget) and report the best; writes budget_sweep.json",
    )
    parser.add_argument(
        "--sweep-frames", default=None, help="frame counts to try, e.g. 2,4,8,16 (default: up to 32)"
    )
    parser.add_argument("--sweep-sizes", default=None, help="square frame sizes to try, e.g. 112,224,448")
    return parser


def _sweep(args, scorer, corpus, out: Path) -> int:
    from reward.budget import format_sweep, sweep_scorer
    from reward.files import write_json

    def ints(text: str | None) -> list[int] | None:
        return [int(v) for v in text.split(",")] if text else None

    sweep = sweep_scorer(
        scorer, corpus, args.split, args.sweep_budget, ints(args.sweep_frames), ints(args.sweep_sizes),
        progress=not args.no_progress,
    )  # fmt: skip
    write_json(out / "budget_sweep.json", sweep.to_dict())
    print(format_sweep(sweep))
    print(
        f"best: {sweep.best.num_frames} frames at {sweep.best.size}x{sweep.best.size} ({out / 'budget_sweep.json'})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out) if args.out else Path(args.model) / f"eval-{args.split}"
    scorer = load_scorer(args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    corpus = load_corpus(args.data)
    if args.sweep_budget is not None:
        return _sweep(args, scorer, corpus, out)
    report = evaluate_corpus(
        scorer,
        corpus,
        args.split,
        tie_threshold=args.tie_threshold,
        out_dir=out,
        progress=not args.no_progress,
    )
    print(format_table(report))
    print(f"tie threshold {report['tie_threshold']:.4g} ({report['tie_threshold_source']})")
    if report["skipped_videos"]:
        print(
            f"skipped {len(report['skipped_videos'])} unreadable videos and {report['pairs_dropped']} pairs "
            f"that need them (listed in {out / 'report.json'})"
        )
    print(f"report and plots in {out}")
    return 0
