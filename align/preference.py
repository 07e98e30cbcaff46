"""Preference pairs from scored samples: a samples manifest becomes a Diffusion-DPO pair corpus.

Two strategies, both within one prompt's candidates (kind "same_prompt"):
- `best_vs_worst`: one pair per prompt, the highest-scored candidate against the lowest;
- `all`: every ordered pair whose reward gap exceeds `min_gap` (N candidates give up to N(N-1)/2).
A pair is made only when the chosen candidate's reward exceeds the rejected one's by more than
`min_gap` (so equal scores never make a pair, and there are no ties). `margin` is the raw reward
gap, `chosen_score` / `rejected_score` the raw rewards of the ranking reward (or the one named).

Besides the VideoCross columns (reward.pairs) the pairs carry `chosen_latents` /
`rejected_latents` (safetensors paths relative to the video root, the samples folder; None for
samples without latents) and `chosen_seed` / `rejected_seed`, so Diffusion-DPO trains on the
generator's own latents and never re-encodes videos through the VAE.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path

import datasets

from align.manifest import load_manifest
from reward.pairs import PAIR_FEATURES, save_corpus

__all__ = ["PAIR_STRATEGIES", "SAMPLE_PAIR_FEATURES", "pairs_from_manifest", "save_sample_pairs"]

PAIR_STRATEGIES: tuple[str, ...] = ("best_vs_worst", "all")
SAMPLE_PAIR_FEATURES = datasets.Features(
    {
        **PAIR_FEATURES,
        "chosen_latents": datasets.Value("string"),
        "rejected_latents": datasets.Value("string"),
        "chosen_seed": datasets.Value("int64"),
        "rejected_seed": datasets.Value("int64"),
    }
)
SOURCE = "generated"
# The pair dimension of a reward that names none (a learned model asked its mean question, a weighted sum).
DEFAULT_DIMENSION = "overall"


def _pair(prompt: str, dimension: str, reward: str, chosen: dict, rejected: dict) -> dict:
    high, low = chosen["scores"][reward], rejected["scores"][reward]
    return {
        "prompt": prompt,
        "dimension": dimension,
        "chosen_video": chosen["video"],
        "rejected_video": rejected["video"],
        "margin": high - low,
        "tie": False,
        "source": SOURCE,
        "kind": "same_prompt",
        "chosen_score": high,
        "rejected_score": low,
        "chosen_latents": chosen["latents"],
        "rejected_latents": rejected["latents"],
        "chosen_seed": chosen["seed"],
        "rejected_seed": rejected["seed"],
    }


def pairs_from_manifest(
    manifest: dict | str | os.PathLike,
    reward: str | None = None,
    strategy: str = "best_vs_worst",
    min_gap: float = 0.0,
    test_prompts: Iterable[str] | None = None,
) -> datasets.DatasetDict:
    """DPO pairs from a samples manifest (a dict, or its file or folder), split "train" / "test".

    `reward`: the score that decides (default: the manifest's ranking reward). Pairs of prompts in
    `test_prompts` go to "test" (present only when `test_prompts` is given); all others to "train".
    Candidates without a finite score take part in no pair.
    """
    if strategy not in PAIR_STRATEGIES:
        raise ValueError(f"unknown pair strategy {strategy!r}; expected one of {PAIR_STRATEGIES}")
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    if not isinstance(manifest, dict):
        manifest = load_manifest(manifest)
    by_name = {r["name"]: r for r in manifest["rewards"]}
    reward = reward or manifest["rewards"][0]["name"]
    if reward not in by_name:
        raise ValueError(f"the manifest has no scores of reward {reward!r}; it has {sorted(by_name)}")
    dimension = by_name[reward]["dimension"] or DEFAULT_DIMENSION
    held_out = set(test_prompts or ())
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    for entry in manifest["prompts"]:
        scored = [c for c in entry["candidates"] if c["scores"][reward] is not None]
        scored.sort(key=lambda c: -c["scores"][reward])  # best first
        if strategy == "best_vs_worst":
            ordered = [(scored[0], scored[-1])] if scored else []
        else:
            ordered = itertools.combinations(scored, 2)  # (higher, lower): scored is best first
        split = "test" if entry["prompt"] in held_out else "train"
        rows[split] += [
            _pair(entry["prompt"], dimension, reward, high, low)
            for high, low in ordered
            if high["scores"][reward] - low["scores"][reward] > min_gap
        ]
    splits = ("train", "test") if test_prompts is not None else ("train",)
    return datasets.DatasetDict(
        {split: datasets.Dataset.from_list(rows[split], features=SAMPLE_PAIR_FEATURES) for split in splits}
    )


def save_sample_pairs(
    manifest_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    reward: str | None = None,
    strategy: str = "best_vs_worst",
    min_gap: float = 0.0,
    test_prompts: Iterable[str] | None = None,
) -> Path:
    """Build pairs from the samples folder `manifest_dir` and save them as a corpus (`reward.pairs.save_corpus`).

    `out_dir` defaults to the samples folder itself, which then is both a samples folder and a
    pair corpus (`reward.pairs.load_corpus(manifest_dir)`); the video root is always the samples
    folder. Returns the corpus folder.
    """
    manifest_dir = Path(manifest_dir)
    manifest = load_manifest(manifest_dir)
    reward = reward or manifest["rewards"][0]["name"]
    pairs = pairs_from_manifest(manifest, reward, strategy, min_gap, test_prompts)
    meta = {"pairs_from": "samples", "strategy": strategy, "min_gap": min_gap, "reward": reward}
    return save_corpus(out_dir or manifest_dir, pairs, video_root=manifest_dir, meta=meta)
