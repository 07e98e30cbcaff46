"""the independent check of generated synthetic-world videos: prompt accuracy and quality measures

    clevereward check runs/eval/base/samples.jsonl
    clevereward check runs/eval/base --compare runs/eval/tuned --out runs/eval/check

Reads each `samples.jsonl` (one {"video", "prompt", "seed"} per line; paths relative to it),
measures every video from its pixels (`align.checker.check_video`), and prints each measure's mean
and seed-to-seed spread; with --compare, the change of each beside it. With --out: check.json
(every figure and every sample's row) and, with --compare, strips.png (frames of the same prompt
and seed side by side).
"""

from __future__ import annotations

from pathlib import Path

from align.checker import check_samples, compare_checks, format_check, plot_strips
from reward.commands import CommandParser
from reward.files import write_json

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("clevereward check", __doc__)
    parser.add_argument("samples", help="a samples.jsonl, or the folder holding one")
    parser.add_argument("--compare", help="another samples.jsonl (e.g. the aligned model's) to compare with")
    parser.add_argument("--out", help="folder for check.json (and strips.png with --compare)")
    args = parser.parse_args(argv)
    base = check_samples(args.samples)
    tuned = check_samples(args.compare) if args.compare else None
    print(format_check(base, tuned))
    if args.out:
        out = Path(args.out)
        report = (
            {"base": base}
            if tuned is None
            else {"base": base, "tuned": tuned, "change": compare_checks(base, tuned)}
        )
        write_json(out / "check.json", report)
        if tuned is not None:
            plot_strips(out / "strips.png", {"base": args.samples, "tuned": args.compare})
        print(f"wrote {out / 'check.json'}" + (" and strips.png" if tuned is not None else ""))
    return 0
