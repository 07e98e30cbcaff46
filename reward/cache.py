"""On-disk cache of frozen-tower features: each unique video or question is encoded once.

A frozen tower is a fixed function of its input, so its outputs can be stored and reused by later
epochs and later runs; only the projections (and any unfrozen tower) still train.

Design decisions:
- Keys: a video's content hash (`reward.files.content_hash`, so a renamed or copied file still
  hits and a changed file misses) and a question's text hash.
- Namespace: features live under `root/<fingerprint>/`, where the fingerprint hashes the tower's
  class, its config, its weights and the preprocessing. Any change to these starts a fresh
  namespace; stale features are never read.
- Storage: safetensors shards (`shard-<uuid>.safetensors`, one tensor per key), each written
  atomically (`reward.files.atomic_write`) and never modified, so concurrent processes (DDP ranks)
  can add shards side by side and a crash loses at most the unflushed features.
- Everything read is kept in memory: features are small (one vector per video or question).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import nn

from reward.files import atomic_write, content_hash

__all__ = ["EmbeddingCache", "tower_fingerprint", "video_key", "question_key"]

SHARD_PATTERN = "shard-*.safetensors"
DEFAULT_SHARD_SIZE = 4096  # features per shard: few files, each small enough to rewrite cheaply
_FINGERPRINT_CHARS = 16
_video_hashes: dict[tuple[str, int, int], str] = {}


def video_key(path: str | os.PathLike) -> str:
    """Cache key of a video file: its content hash, memoised per (path, size, mtime) in this process."""
    stat = os.stat(path)
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _video_hashes:
        _video_hashes[memo] = f"video-{content_hash(path)}"
    return _video_hashes[memo]


def question_key(question: str) -> str:
    """Cache key of a question: the sha256 of its text."""
    return f"text-{hashlib.sha256(question.encode('utf-8')).hexdigest()}"


def tower_fingerprint(tower: nn.Module, preprocessing: dict) -> str:
    """Hash of what decides a tower's outputs: class, config, every weight and the preprocessing."""
    digest = hashlib.sha256()
    digest.update(type(tower).__qualname__.encode())
    config = getattr(getattr(tower, "backbone", tower), "config", None)
    described = config.to_json_string(use_diff=False) if config is not None else repr(tower)
    digest.update(described.encode())
    digest.update(json.dumps(preprocessing, sort_keys=True, default=str).encode())
    for name, tensor in sorted(tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:_FINGERPRINT_CHARS]


class EmbeddingCache:
    """Features of one frozen tower, keyed by content, stored under `root/<fingerprint>/`.

    `put` adds features (flushed to a new shard every `shard_size` entries and by `flush`);
    `get` returns stacked features; `in` tells whether a key is cached. `misses` counts features
    encoded and added, `hits` (kept by the user, e.g. the trainer) features served from the cache.
    """

    def __init__(self, root: str | os.PathLike, fingerprint: str, shard_size: int = DEFAULT_SHARD_SIZE):
        self.dir = Path(root) / fingerprint
        self.shard_size = shard_size
        self.features: dict[str, torch.Tensor] = {}
        self.pending: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0
        self.reload()

    def reload(self) -> None:
        """Read every shard on disk (those other processes wrote too)."""
        for shard in sorted(self.dir.glob(SHARD_PATTERN)):
            self.features.update(load_file(shard))

    def __contains__(self, key: str) -> bool:
        return key in self.features

    def __len__(self) -> int:
        return len(self.features)

    def get(self, keys: Iterable[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """Stacked features `[N, D]` of `keys` (all must be cached), on `device`."""
        keys = list(keys)
        absent = [k for k in keys if k not in self.features]
        if absent:
            raise KeyError(f"{len(absent)} keys are not in the embedding cache {self.dir}, e.g. {absent[0]}")
        return torch.stack([self.features[k] for k in keys]).to(device)

    def put(self, keys: Iterable[str], features: torch.Tensor) -> None:
        """Add `features [N, D]` under `keys`; write a shard once `shard_size` are pending."""
        keys = list(keys)
        if len(keys) != features.shape[0]:
            raise ValueError(f"{len(keys)} keys for {features.shape[0]} feature rows")
        rows = features.detach().to("cpu", torch.float32)
        for key, row in zip(keys, rows):
            self.features[key] = row.clone()
            self.pending[key] = self.features[key]
        self.misses += len(keys)
        if len(self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write pending features as one new shard, atomically."""
        if not self.pending:
            return
        with atomic_write(self.dir / f"shard-{uuid.uuid4().hex}.safetensors", "wb") as f:
            f.write(save(self.pending))
        self.pending = {}
