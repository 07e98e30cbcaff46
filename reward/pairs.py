"""The VideoCross pair format: columns, the on-disk corpus layout, and atomic save/load.

A corpus folder holds
    pairs/        a `datasets.DatasetDict` (splits train / validation / test) saved with `save_to_disk`
    corpus.json   {"format": "videocross-v1", "video_root": ..., ...}: where the video paths point
    report.json   what the build kept, skipped and why (written by the builder)

Pair columns (docs/design.md), plus two score columns used by evaluation (SRCC/KRCC/PLCC):
    prompt, dimension, chosen_video, rejected_video, margin, tie, source, kind,
    chosen_score, rejected_score   normalised scores of the two videos, NaN where the source
                                   has none (pairwise votes, synthetic defects)
Video paths are relative to the corpus's video root. Extra columns are allowed and kept (pairs
built from generated samples add `chosen_latents` / `rejected_latents`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from reward.files import atomic_dir, write_json

__all__ = [
    "PAIR_COLUMNS",
    "PAIR_FEATURES",
    "SPLITS",
    "CORPUS_FORMAT",
    "Corpus",
    "save_corpus",
    "load_corpus",
]

PAIR_FEATURES = datasets.Features(
    {
        "prompt": datasets.Value("string"),
        "dimension": datasets.Value("string"),
        "chosen_video": datasets.Value("string"),
        "rejected_video": datasets.Value("string"),
        "margin": datasets.Value("float32"),
        "tie": datasets.Value("bool"),
        "source": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "chosen_score": datasets.Value("float32"),
        "rejected_score": datasets.Value("float32"),
    }
)
PAIR_COLUMNS: tuple[str, ...] = tuple(PAIR_FEATURES)
SPLITS: tuple[str, ...] = ("train", "validation", "test")
CORPUS_FORMAT = "videocross-v1"


@dataclass
class Corpus:
    """Pairs with the folder their video paths are relative to."""

    pairs: datasets.DatasetDict
    video_root: Path
    meta: dict = field(default_factory=dict)

    def video_path(self, relative: str) -> Path:
        return self.video_root / relative


def save_corpus(
    out_dir: str | os.PathLike,
    pairs: datasets.DatasetDict,
    video_root: str | os.PathLike,
    meta: dict | None = None,
) -> Path:
    """Write `pairs` (cast to PAIR_FEATURES) and corpus.json under `out_dir`, each atomically.

    `video_root` is stored relative to `out_dir` when it lies inside it, so the folder can move.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = {split: sorted(set(PAIR_COLUMNS) - set(ds.column_names)) for split, ds in pairs.items()}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        raise ValueError(f"pairs lack columns {missing}; a corpus needs {list(PAIR_COLUMNS)}")
    # Known columns get their canonical types; extra columns (e.g. latents paths) are kept as they are.
    pairs = datasets.DatasetDict(
        {split: ds.cast(datasets.Features({**ds.features, **PAIR_FEATURES})) for split, ds in pairs.items()}
    )
    with atomic_dir(out_dir / "pairs") as tmp:
        # datasets writes an empty split as zero shards, which load_from_disk cannot read back:
        # one (empty) shard keeps e.g. a validation split of fraction 0 loadable.
        pairs.save_to_disk(
            str(tmp), num_shards={split: 1 if len(ds) == 0 else None for split, ds in pairs.items()}
        )
    root = Path(video_root).resolve()
    try:
        stored_root = str(root.relative_to(out_dir.resolve()))
    except ValueError:
        stored_root = str(root)
    write_json(out_dir / "corpus.json", {"format": CORPUS_FORMAT, "video_root": stored_root, **(meta or {})})
    return out_dir


def load_corpus(path: str | os.PathLike) -> Corpus:
    """Load a corpus folder written by `save_corpus` (or `clevereward data synth/build`)."""
    path = Path(path)
    meta_path = path / "corpus.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a CleveReward corpus: {meta_path} is missing "
            "(make one with `clevereward data synth` or `clevereward data build`)"
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != CORPUS_FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {CORPUS_FORMAT!r}")
    pairs = datasets.load_from_disk(str(path / "pairs"))
    root = Path(meta["video_root"])
    return Corpus(pairs=pairs, video_root=root if root.is_absolute() else path / root, meta=meta)
