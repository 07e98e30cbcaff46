"""VideoCross: score and pair records from many sources → one prompt-disjoint pair corpus.

Steps (`build_corpus`), each a small function over records:
1. drop duplicate rows (the same video, prompt and dimension twice in one source);
2. check every referenced video once: it exists under the video root and one frame decodes;
   records of a missing or unreadable video are skipped with the reason;
3. hash the videos (`reward.files.content_hash`): within one prompt and dimension a video whose
   bytes equal an earlier one's is a duplicate; a pair of two identical videos is dropped;
4. normalise scores to [0, 1] by each source's scale per dimension, so margins compare across
   sources: `(score - low) / (high - low)`;
5. split prompts (case- and whitespace-insensitive) into train / validation / test, seeded;
6. pair videos of one source, prompt and dimension: the higher score is chosen, the margin is the
   normalised gap, a gap under `min_gap` is a tie (margin 0); at most `max_pairs_per_prompt`
   pairs per prompt and dimension, sampled with the seed;
7. optionally add CLIP-style cross-prompt negatives for text_alignment, inside each split and
   source: chosen = a video made for the prompt, rejected = a video made for another prompt.

Nothing is dropped silently: every skipped row is listed in the report with file, row and reason.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import datasets
from tqdm.auto import tqdm

from reward.files import content_hash, write_json
from reward.pairs import PAIR_FEATURES, SPLITS, save_corpus
from reward.sources import PairRecord, ScoreRecord, Skip, SourceData
from reward.video import VideoReadError, read_video

__all__ = [
    "BuildConfig",
    "CROSS_PROMPT_MARGIN",
    "CHECK_CACHE_NAME",
    "check_video",
    "drop_duplicate_rows",
    "check_videos",
    "drop_duplicate_videos",
    "normalise",
    "prompt_key",
    "assign_splits",
    "same_prompt_pairs",
    "cross_prompt_pairs",
    "build_corpus",
    "run_build",
]

# A cross-prompt negative is aligned (1) versus unrelated (0) on a binary scale.
CROSS_PROMPT_MARGIN = 1.0
# How many samples per wanted cross-prompt pair before giving up (few prompts, few videos).
CROSS_PROMPT_TRIES = 20
# Save the video-check cache this often, so an interrupted build loses little work.
CHECK_CACHE_EVERY = 256
CHECK_CACHE_NAME = "video_checks.json"


@dataclass
class BuildConfig:
    """Options of `clevereward data build` (pairing, ties, splits); sources and paths are arguments."""

    min_gap: float = field(
        default=0.05,
        metadata={"help": "Normalised score gap (scores in [0, 1]) under which a pair is a tie (margin 0)."},
    )
    drop_ties: bool = field(
        default=False, metadata={"help": "Drop ties instead of keeping them with tie=True."}
    )
    max_pairs_per_prompt: int | None = field(
        default=None,
        metadata={"help": "Cap on pairs per source, prompt and dimension (seeded sample); None keeps all."},
    )
    cross_prompt_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Cross-prompt text_alignment negatives per same-prompt pair of the source and split "
            "(0 turns them off)."
        },
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Fraction of prompts in validation."})
    test_fraction: float = field(default=0.1, metadata={"help": "Fraction of prompts in test."})
    seed: int = field(
        default=0, metadata={"help": "Seed of the split, the pair cap and cross-prompt sampling."}
    )
    check_videos: bool = field(
        default=True,
        metadata={
            "help": "Decode one frame of every video and skip unreadable ones (else only check they exist)."
        },
    )

    def __post_init__(self):
        if not 0 <= self.min_gap <= 1:
            raise ValueError(f"min_gap must be in [0, 1], got {self.min_gap}")
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise ValueError(f"max_pairs_per_prompt must be >= 1 or None, got {self.max_pairs_per_prompt}")
        if self.cross_prompt_ratio < 0:
            raise ValueError(f"cross_prompt_ratio must be >= 0, got {self.cross_prompt_ratio}")
        fractions = (self.validation_fraction, self.test_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            raise ValueError(f"validation and test fractions must be >= 0 and sum below 1, got {fractions}")


def check_video(path: str | os.PathLike) -> str | None:
    """None when the video opens and its middle frame decodes, else the reason it cannot be read."""
    try:
        read_video(path, num_frames=1)
    except VideoReadError as error:
        return error.reason
    return None


def drop_duplicate_rows(records: list, skipped: list[Skip]) -> list:
    """Keep the first of records with the same source, prompt, dimension and video(s).

    Score records match on the video; pair records on the unordered pair of videos.
    """
    seen: dict[tuple, str] = {}
    kept = []
    for record in records:
        if isinstance(record, ScoreRecord):
            key = (record.source, record.prompt, record.dimension, record.video)
        else:
            key = (
                record.source,
                record.prompt,
                record.dimension,
                frozenset((record.chosen_video, record.rejected_video)),
            )
        if key in seen:
            skipped.append(Skip(record.source, record.where, "duplicate row", f"same as {seen[key]}"))
            continue
        seen[key] = record.where
        kept.append(record)
    return kept


def _videos_of(record: ScoreRecord | PairRecord) -> tuple[str, ...]:
    return (
        (record.video,) if isinstance(record, ScoreRecord) else (record.chosen_video, record.rejected_video)
    )


def check_videos(
    records: list,
    video_root: Path,
    skipped: list[Skip],
    decode: bool = True,
    cache_path: Path | None = None,
) -> tuple[list, dict[str, str], dict[str, str]]:
    """Check and hash each referenced video once; drop the records of missing or unreadable ones.

    With `cache_path`, results are kept there (JSON, by absolute path, with size and mtime) every
    `CHECK_CACHE_EVERY` videos and at the end, so an interrupted or repeated build re-checks only
    new or changed files. Returns (kept records, {video: content hash}, {bad video: reason}).
    """
    cache = json.loads(cache_path.read_text()) if cache_path is not None and cache_path.is_file() else {}
    videos = sorted({video for record in records for video in _videos_of(record)})
    hashes: dict[str, str] = {}
    bad: dict[str, str] = {}
    fresh = 0
    for video in tqdm(videos, desc="checking videos", unit="video"):
        path = video_root / video
        if not path.is_file():
            bad[video] = "missing video"
            continue
        key, stat = str(path.absolute()), path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = cache.get(key)
        if entry is None or entry["stamp"] != stamp or (decode and not entry["decoded"]):
            reason = check_video(path) if decode else None
            entry = {
                "stamp": stamp,
                "decoded": decode,
                "reason": reason,
                "hash": None if reason else content_hash(path),
            }
            cache[key] = entry
            fresh += 1
            if cache_path is not None and fresh % CHECK_CACHE_EVERY == 0:
                write_json(cache_path, cache)
        if entry["reason"] is not None:
            bad[video] = f"unreadable video: {entry['reason']}"
        else:
            hashes[video] = entry["hash"]
    if cache_path is not None and fresh:
        write_json(cache_path, cache)
    kept = []
    for record in records:
        broken = [v for v in _videos_of(record) if v in bad]
        if broken:
            reason = bad[broken[0]]
            category = "missing video" if reason == "missing video" else "unreadable video"
            skipped.append(Skip(record.source, record.where, category, f"{broken[0]}: {reason}"))
            continue
        kept.append(record)
    return kept, hashes, bad


def drop_duplicate_videos(records: list, hashes: dict[str, str], skipped: list[Skip]) -> list:
    """Drop exact-duplicate videos (same bytes) where they would be compared with themselves.

    A score record whose video equals an earlier one's for the same source, prompt and dimension
    is dropped; so is a pair whose two videos are equal, or a pair repeating an earlier pair.
    """
    seen: dict[tuple, str] = {}
    kept = []
    for record in records:
        if isinstance(record, ScoreRecord):
            key = (record.source, record.prompt, record.dimension, hashes[record.video])
        else:
            chosen, rejected = hashes[record.chosen_video], hashes[record.rejected_video]
            if chosen == rejected:
                detail = f"{record.chosen_video} and {record.rejected_video} have the same content"
                skipped.append(Skip(record.source, record.where, "duplicate video", detail))
                continue
            key = (record.source, record.prompt, record.dimension, frozenset((chosen, rejected)))
        if key in seen:
            skipped.append(
                Skip(record.source, record.where, "duplicate video", f"same content as {seen[key]}")
            )
            continue
        seen[key] = record.where
        kept.append(record)
    return kept


def normalise(score: float, scale: tuple[float, float]) -> float:
    """`(score - low) / (high - low)` in [0, 1]; a degenerate scale (low == high) maps to 0."""
    low, high = scale
    return (score - low) / (high - low) if high > low else 0.0


def prompt_key(prompt: str) -> str:
    """Prompts equal up to case and whitespace are one prompt for the split."""
    return " ".join(prompt.casefold().split())


def assign_splits(
    prompts: Iterable[str], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """Map each prompt key to a split: a seeded shuffle, then `round(fraction × n)` prompts each.

    Depends only on the set of prompts and the seed, not on their order.
    """
    keys = sorted({prompt_key(p) for p in prompts})
    random.Random(seed).shuffle(keys)
    n_test = round(test_fraction * len(keys))
    n_validation = round(validation_fraction * len(keys))
    splits = {}
    for i, key in enumerate(keys):
        splits[key] = "test" if i < n_test else "validation" if i < n_test + n_validation else "train"
    return splits


def _pair_row(**row) -> dict:
    return {column: row.get(column, math.nan) for column in PAIR_FEATURES}


def same_prompt_pairs(
    records: list[ScoreRecord],
    scales: dict[tuple[str, str], tuple[float, float]],
    min_gap: float,
    max_pairs_per_prompt: int | None,
    rng: random.Random,
) -> list[dict]:
    """Pair rows from score records of the same source, prompt and dimension.

    Every two videos of a group make a pair: the higher normalised score is chosen, the margin is
    the gap; a gap below `min_gap` (or zero) is a tie with margin 0, its videos in path order.
    `scales[(source, dimension)]` gives the normalisation.
    """
    groups: dict[tuple, list[ScoreRecord]] = defaultdict(list)
    for record in records:
        groups[(record.source, record.prompt, record.dimension)].append(record)
    rows = []
    for (source, prompt, dimension), group in sorted(groups.items()):
        scored = sorted((normalise(r.score, scales[(source, dimension)]), r.video) for r in group)
        pairs = []
        for (low, low_video), (high, high_video) in combinations(scored, 2):
            gap = high - low
            tie = gap == 0 or gap < min_gap
            chosen, rejected = (high_video, low_video) if not tie else sorted((high_video, low_video))
            chosen_score, rejected_score = (high, low) if chosen == high_video else (low, high)
            pairs.append(
                _pair_row(
                    prompt=prompt,
                    dimension=dimension,
                    chosen_video=chosen,
                    rejected_video=rejected,
                    margin=0.0 if tie else gap,
                    tie=tie,
                    source=source,
                    kind="same_prompt",
                    chosen_score=chosen_score,
                    rejected_score=rejected_score,
                )
            )
        if max_pairs_per_prompt is not None and len(pairs) > max_pairs_per_prompt:
            pairs = [pairs[i] for i in sorted(rng.sample(range(len(pairs)), max_pairs_per_prompt))]
        rows.extend(pairs)
    return rows


def cross_prompt_pairs(
    videos_by_prompt: dict[str, list[str]], count: int, source: str, rng: random.Random
) -> list[dict]:
    """`count` distinct CLIP-style text_alignment pairs among the prompts of one source and split.

    Each pair: a prompt p, chosen = a video made for p, rejected = a video made for another
    prompt and not for p; margin `CROSS_PROMPT_MARGIN`, kind `cross_prompt`. Fewer pairs come back when the
    prompts do not offer `count` distinct ones (fewer than two prompts offer none).
    """
    prompts = sorted(p for p, videos in videos_by_prompt.items() if videos)
    if len(prompts) < 2 or count <= 0:
        return []
    seen, rows = set(), []
    for _ in range(count * CROSS_PROMPT_TRIES):
        if len(rows) == count:
            break
        prompt, other = rng.sample(prompts, 2)
        chosen, rejected = rng.choice(videos_by_prompt[prompt]), rng.choice(videos_by_prompt[other])
        # A video can be listed under several prompts; it is no negative for any of them.
        if (prompt, chosen, rejected) in seen or rejected in videos_by_prompt[prompt]:
            continue
        seen.add((prompt, chosen, rejected))
        rows.append(
            _pair_row(
                prompt=prompt,
                dimension="text_alignment",
                chosen_video=chosen,
                rejected_video=rejected,
                margin=CROSS_PROMPT_MARGIN,
                tie=False,
                source=source,
                kind="cross_prompt",
            )
        )
    return rows


def _source_pair_row(record: PairRecord) -> dict:
    return _pair_row(
        prompt=record.prompt,
        dimension=record.dimension,
        chosen_video=record.chosen_video,
        rejected_video=record.rejected_video,
        margin=0.0 if record.tie else record.margin,
        tie=record.tie,
        source=record.source,
        kind="same_prompt",
        chosen_score=record.chosen_score,
        rejected_score=record.rejected_score,
    )


def build_corpus(
    sources: list[SourceData],
    video_root: str | os.PathLike,
    config: BuildConfig,
    check_cache: Path | None = None,
) -> tuple[datasets.DatasetDict, dict]:
    """Pairs (a DatasetDict with train / validation / test) and the build report, from read sources.

    Video paths in the records are relative to `video_root`; `check_cache` keeps video checks
    between runs (see `check_videos`).
    """
    video_root = Path(video_root)
    skipped: list[Skip] = [s for source in sources for s in source.skipped]
    records: list = [r for source in sources for r in (*source.scores, *source.pairs)]
    records = drop_duplicate_rows(records, skipped)
    records, hashes, bad_videos = check_videos(records, video_root, skipped, config.check_videos, check_cache)
    records = drop_duplicate_videos(records, hashes, skipped)

    scales = {(s.name, dim): scale for s in sources for dim, scale in s.scales.items()}
    split_of = assign_splits(
        (r.prompt for r in records), config.validation_fraction, config.test_fraction, config.seed
    )
    by_split: dict[str, list] = defaultdict(list)
    for record in records:
        by_split[split_of[prompt_key(record.prompt)]].append(record)

    rng = random.Random(config.seed)
    rows_by_split = {}
    for split in SPLITS:
        split_records = by_split[split]
        scores = [r for r in split_records if isinstance(r, ScoreRecord)]
        rows = same_prompt_pairs(scores, scales, config.min_gap, config.max_pairs_per_prompt, rng)
        rows += [_source_pair_row(r) for r in split_records if isinstance(r, PairRecord)]
        if config.drop_ties:
            rows = [row for row in rows if not row["tie"]]
        if config.cross_prompt_ratio > 0:
            rows += _cross_prompt_rows(split_records, rows, config.cross_prompt_ratio, rng)
        rows_by_split[split] = rows

    pairs = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {c: [row[c] for row in rows] for c in PAIR_FEATURES}, features=PAIR_FEATURES
            )
            for split, rows in rows_by_split.items()
        }
    )
    report = _report(sources, records, skipped, bad_videos, hashes, rows_by_split, config)
    return pairs, report


def _cross_prompt_rows(records: list, rows: list[dict], ratio: float, rng: random.Random) -> list[dict]:
    """Cross-prompt pairs per source: `round(ratio × that source's same-prompt pairs)` of them."""
    same_prompt = Counter(row["source"] for row in rows)
    # Prompts equal up to case and whitespace are one prompt: the first spelling names it.
    videos: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    spelling: dict[str, str] = {}
    for record in records:
        key = spelling.setdefault(prompt_key(record.prompt), record.prompt)
        videos[record.source][key].update(_videos_of(record))
    extra = []
    for source in sorted(videos):
        by_prompt = {prompt: sorted(v) for prompt, v in videos[source].items()}
        extra += cross_prompt_pairs(by_prompt, round(ratio * same_prompt[source]), source, rng)
    return extra


def _report(
    sources: list[SourceData],
    records: list,
    skipped: list[Skip],
    bad_videos: dict[str, str],
    hashes: dict[str, str],
    rows_by_split: dict[str, list[dict]],
    config: BuildConfig,
) -> dict:
    """What was read, kept, skipped (per source and reason, and each row) and paired."""
    kept = Counter(r.source for r in records)
    per_source = {}
    for source in sources:
        reasons = Counter(s.reason for s in skipped if s.source == source.name)
        pairs = {
            split: sum(row["source"] == source.name for row in rows) for split, rows in rows_by_split.items()
        }
        per_source[source.name] = {
            "path": source.path,
            "rows": source.rows,
            "score_records": len(source.scores),
            "pair_records": len(source.pairs),
            "kept_records": kept[source.name],
            "skipped": dict(sorted(reasons.items())),
            "pairs": pairs,
            "scales": {dim: list(scale) for dim, scale in sorted(source.scales.items())},
        }
    all_rows = [row for rows in rows_by_split.values() for row in rows]
    return {
        "config": asdict(config),
        "sources": per_source,
        "videos": {"readable": len(hashes), "unique_contents": len(set(hashes.values())), "bad": bad_videos},
        "pairs": {split: len(rows) for split, rows in rows_by_split.items()},
        "ties": sum(row["tie"] for row in all_rows),
        "cross_prompt": sum(row["kind"] == "cross_prompt" for row in all_rows),
        "skipped_total": len(skipped),
        "skipped": [asdict(s) for s in skipped],
    }


def run_build(
    sources: list[SourceData], video_root: str | os.PathLike, out_dir: str | os.PathLike, config: BuildConfig
) -> dict:
    """Build the corpus into `out_dir` (pairs/, corpus.json, report.json, each atomic); return the report.

    Video checks are cached in `out_dir/video_checks.json`: a re-run (after a crash, or with
    other options) re-checks only new or changed videos.
    """
    pairs, report = build_corpus(sources, video_root, config, Path(out_dir) / CHECK_CACHE_NAME)
    save_corpus(out_dir, pairs, video_root, meta={"sources": sorted(s.name for s in sources)})
    write_json(Path(out_dir) / "report.json", report)
    return report
