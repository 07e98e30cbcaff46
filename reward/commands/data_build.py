"""Build VideoCross pairs from public video-scoring datasets.

    clevereward data build --source videofeedback=vf/test.parquet --source t2vqa=t2vqa/info.txt \\
        --video-root videos --out corpus [--min-gap 0.05] [--cross-prompt-ratio 0.5] ...

Built-in sources: videofeedback, t2vqa, genai_bench, videogen_rewardbench (alias videoalign),
fetv (PATH is the FETV root folder), videophy. Any other NAME is read as a generic CSV /
JSON-lines table with a column mapping: `--mapping NAME=map.yaml`, or the `--video-column`,
`--prompt-column`, `--score-column COL[=DIM]` and `--score-scale LO HI` flags.
Writes OUT/pairs (train / validation / test), OUT/corpus.json and OUT/report.json.
"""

from __future__ import annotations

import argparse
import json

from transformers import HfArgumentParser

from reward.build import BuildConfig, run_build
from reward.commands import OneLineErrors
from reward.sources import ColumnMapping, read_source, with_video_folder

__all__ = ["main"]


class _Parser(OneLineErrors, HfArgumentParser):
    """`BuildConfig`'s fields as options, with one-line usage errors."""


def _named(values: list[str] | None, flag: str) -> dict[str, str]:
    """`NAME=VALUE` flags as a dict; a malformed or repeated NAME is a usage error."""
    named = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{flag} expects NAME=VALUE, got {value!r}")
        if name in named:
            raise ValueError(f"{flag} {name} given twice")
        named[name] = rest
    return named


def _flag_mapping(args: argparse.Namespace) -> ColumnMapping | None:
    if not args.score_column:
        return None
    if not args.video_column or not args.prompt_column:
        raise ValueError("--score-column needs --video-column and --prompt-column")
    scores = dict(c.partition("=")[::2] for c in args.score_column)
    scores = {column: dim or column for column, dim in scores.items()}
    scale = tuple(args.score_scale) if args.score_scale else None
    return ColumnMapping(args.video_column, args.prompt_column, scores, scale, args.add_suffix)


def _parser() -> HfArgumentParser:
    parser = _Parser(BuildConfig, prog="clevereward data build", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source", action="append", required=True, metavar="NAME=PATH", help="A source to read."
    )
    parser.add_argument(
        "--video-root", required=True, help="Folder the sources' video paths are relative to."
    )
    parser.add_argument("--out", required=True, help="Corpus folder to write.")
    parser.add_argument(
        "--video-folder",
        action="append",
        metavar="NAME=DIR",
        help="Sub-folder of --video-root holding source NAME's videos (default: the root itself).",
    )
    parser.add_argument(
        "--mapping", action="append", metavar="NAME=YAML", help="Column mapping of a generic source."
    )
    parser.add_argument("--video-column", help="Generic sources: the column naming the video file.")
    parser.add_argument("--prompt-column", help="Generic sources: the column holding the prompt.")
    parser.add_argument(
        "--score-column",
        action="append",
        metavar="COL[=DIM]",
        help="Generic sources: a score column and its dimension (canonical or the source's own name).",
    )
    parser.add_argument(
        "--score-scale", nargs=2, type=float, metavar=("LO", "HI"), help="Generic sources: the score range."
    )
    parser.add_argument("--add-suffix", action="store_true", help="Generic sources: add .mp4 to bare names.")
    return parser


def main(argv: list[str] | None = None) -> int:
    config, args = _parser().parse_args_into_dataclasses(argv)
    sources = _named(args.source, "--source")
    folders = _named(args.video_folder, "--video-folder")
    mappings = {
        name: ColumnMapping.from_yaml(path) for name, path in _named(args.mapping, "--mapping").items()
    }
    flag_mapping = _flag_mapping(args)
    data = []
    for name, path in sources.items():
        source = read_source(name, path, mappings.get(name, flag_mapping))
        data.append(with_video_folder(source, folders[name]) if name in folders else source)
    report = run_build(data, args.video_root, args.out, config)
    summary = {key: report[key] for key in ("pairs", "ties", "cross_prompt", "skipped_total")}
    summary["skipped"] = {name: source["skipped"] for name, source in report["sources"].items()}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out} (details in {args.out}/report.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
