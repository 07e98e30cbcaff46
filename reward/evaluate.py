"""Evaluate a reward model on a pair corpus: pairwise accuracy (with and without ties) and
rank correlations with human scores, per dimension and per source, with plots.

Design decisions
- Every unique (video, question) is scored once: a video is decoded once and asked all of its
  questions in one `score_questions` call (the question depends on the pair's dimension and
  prompt; a cross-prompt rejected video is asked about the pair's prompt, not its own).
- Accuracy *without ties* counts only non-tie pairs, and a pair is right when r_chosen > r_rejected
  (equal rewards are wrong). Accuracy *with ties* is three-way, as in VideoGen-RewardBench's
  "w/ ties" (tie calibration of Deutsch et al., 2023): |r_c - r_r| <= tau predicts a tie, and it
  is averaged over all pairs, ties included. tau is chosen on the validation split, never on the
  split being reported (unless that split *is* validation; the report says so).
- Correlations (SRCC, KRCC, PLCC) compare each unique (video, prompt)'s reward with its
  normalised human score; videos without one (NaN) are left out. Per dimension the sources are
  pooled (their scores are already normalised to a common scale).
- "overall" is the mean over dimensions of each metric, so a dimension with many pairs does not
  drown the others.
- One unreadable video is skipped and reported; the pairs that need it are left out and counted.
- With an output folder, rewards are journaled as they are scored (`RewardCache`), so a killed
  evaluation resumes where it stopped, and a rerun (another tau, new plots) scores nothing.

The pure functions (`pairwise_accuracy`, `choose_tie_threshold`, `correlations`, `summarize`,
`format_table`) take plain arrays / data frames so the trainer and the demo reuse them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from reward.files import atomic_write, read_jsonl, write_json
from reward.pairs import Corpus
from reward.video import VideoReadError

__all__ = [
    "TIE_THRESHOLD_SPLIT",
    "VideoQuestionScorer",
    "ScoredPairs",
    "RewardCache",
    "pairwise_accuracy",
    "choose_tie_threshold",
    "correlations",
    "pair_metrics",
    "summarize",
    "score_pairs",
    "evaluate_corpus",
    "format_table",
    "plot_reward_histograms",
    "plot_accuracy",
]

# The split the tie threshold is chosen on.
TIE_THRESHOLD_SPLIT = "validation"
# Fewer points than this make a correlation undefined.
MIN_CORRELATION_POINTS = 2
HISTOGRAM_BINS = 30
BAR_WIDTH = 0.4  # two bars (w/o, w/ ties) side by side per dimension
CHANCE = 0.5  # two-way pairwise accuracy of a coin flip, drawn as a reference line
REPORT_FILE = "report.json"
REWARDS_FILE = "pair_rewards.csv"
CACHE_FILE = "rewards.jsonl"
HISTOGRAM_FILE = "reward_histograms.png"
ACCURACY_FILE = "accuracy.png"
METRICS = ("accuracy", "accuracy_with_ties", "srcc", "krcc", "plcc")


class VideoQuestionScorer(Protocol):
    """What evaluation needs from a scorer (`reward.scoring.Scorer` provides it)."""

    batch_size: int
    fingerprint: str | None  # identifies the model and its preprocessing; None: do not cache

    def question(self, dimension: str, prompt: str) -> str: ...

    def read_video(self, path: str | os.PathLike) -> torch.Tensor: ...

    def score_questions(self, videos: torch.Tensor, questions: list[list[str]]) -> torch.Tensor: ...


# --------------------------------------------------------------------------- pure metrics


def pairwise_accuracy(
    chosen: np.ndarray | Iterable[float],
    rejected: np.ndarray | Iterable[float],
    tie: np.ndarray | Iterable[bool],
    threshold: float | None = None,
) -> float:
    """Pairwise accuracy of rewards against preference labels.

    `threshold=None` — *without ties*: the fraction of non-tie pairs with chosen > rejected
    (strictly; equal rewards are wrong). Tie pairs are ignored.
    `threshold=tau` — *with ties* (three-way): a pair is predicted a tie when
    |chosen - rejected| <= tau, else the higher reward is predicted preferred. The fraction of
    *all* pairs predicted right: tie pairs need a predicted tie, non-tie pairs chosen - rejected > tau.
    NaN when no pair counts.
    """
    chosen, rejected = np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)
    tie = np.asarray(tie, dtype=bool)
    diff = chosen - rejected
    if threshold is None:
        return float(np.mean(diff[~tie] > 0)) if (~tie).any() else math.nan
    if len(diff) == 0:
        return math.nan
    correct = np.where(tie, np.abs(diff) <= threshold, diff > threshold)
    return float(np.mean(correct))


def choose_tie_threshold(
    chosen: np.ndarray | Iterable[float],
    rejected: np.ndarray | Iterable[float],
    tie: np.ndarray | Iterable[bool],
) -> float:
    """The tie threshold tau that maximises `pairwise_accuracy(..., threshold=tau)` (smallest on a tie).

    Candidates are 0 and every |chosen - rejected|: accuracy only changes at those values.
    With no tie pairs the answer is 0 (predicting a tie can only lose). O(n log n).
    """
    chosen, rejected = np.asarray(chosen, dtype=np.float64), np.asarray(rejected, dtype=np.float64)
    tie = np.asarray(tie, dtype=bool)
    diff = chosen - rejected
    candidates = np.unique(np.concatenate([[0.0], np.abs(diff)]))  # sorted ascending
    tie_gaps = np.sort(np.abs(diff[tie]))
    non_tie_diffs = np.sort(diff[~tie])
    # correct(tau) = #{tie: |d| <= tau} + #{non-tie: d > tau}
    ties_right = np.searchsorted(tie_gaps, candidates, side="right")
    non_ties_right = len(non_tie_diffs) - np.searchsorted(non_tie_diffs, candidates, side="right")
    return float(candidates[np.argmax(ties_right + non_ties_right)])  # argmax: first, i.e. smallest


def correlations(
    rewards: np.ndarray | Iterable[float], human: np.ndarray | Iterable[float]
) -> dict[str, float | int]:
    """Spearman (srcc), Kendall tau-b (krcc) and Pearson (plcc) correlations, and n, the points used.

    Points where either value is NaN are dropped. A coefficient is NaN when fewer than two points
    remain or either side is constant (a correlation is undefined there).
    """
    rewards, human = np.asarray(rewards, dtype=np.float64), np.asarray(human, dtype=np.float64)
    keep = ~(np.isnan(rewards) | np.isnan(human))
    rewards, human = rewards[keep], human[keep]
    result: dict[str, float | int] = {
        "srcc": math.nan,
        "krcc": math.nan,
        "plcc": math.nan,
        "n": int(keep.sum()),
    }
    if len(rewards) < MIN_CORRELATION_POINTS or np.ptp(rewards) == 0 or np.ptp(human) == 0:
        return result
    result["srcc"] = float(stats.spearmanr(rewards, human).statistic)
    result["krcc"] = float(stats.kendalltau(rewards, human).statistic)
    result["plcc"] = float(stats.pearsonr(rewards, human).statistic)
    return result


def _unique_videos(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (video, prompt) of a scored-pairs frame: its reward and human score."""
    sides = [
        frame[[f"{side}_video", "prompt", f"{side}_reward", f"{side}_score"]].set_axis(
            ["video", "prompt", "reward", "score"], axis=1
        )
        for side in ("chosen", "rejected")
    ]
    return pd.concat(sides, ignore_index=True).drop_duplicates(["video", "prompt"])


def pair_metrics(frame: pd.DataFrame, tie_threshold: float) -> dict[str, float | int]:
    """Accuracy without / with ties and correlations for the pairs of a scored-pairs frame.

    `frame` has the pair columns plus `chosen_reward` / `rejected_reward`.
    """
    chosen, rejected = frame["chosen_reward"].to_numpy(), frame["rejected_reward"].to_numpy()
    tie = frame["tie"].to_numpy(dtype=bool)
    videos = _unique_videos(frame)
    corr = correlations(videos["reward"].to_numpy(), videos["score"].to_numpy())
    return {
        "pairs": len(frame),
        "ties": int(tie.sum()),
        "accuracy": pairwise_accuracy(chosen, rejected, tie),
        "accuracy_with_ties": pairwise_accuracy(chosen, rejected, tie, tie_threshold),
        "srcc": corr["srcc"],
        "krcc": corr["krcc"],
        "plcc": corr["plcc"],
        "scored_videos": corr["n"],
    }


def _mean_over(per_dimension: dict[str, dict]) -> dict[str, float | int]:
    """Unweighted mean of each metric over dimensions (NaNs skipped); pair counts are summed."""
    overall: dict[str, float | int] = {
        "pairs": sum(m["pairs"] for m in per_dimension.values()),
        "ties": sum(m["ties"] for m in per_dimension.values()),
    }
    for name in METRICS:
        values = [m[name] for m in per_dimension.values() if not math.isnan(m[name])]
        overall[name] = float(np.mean(values)) if values else math.nan
    return overall


def summarize(frame: pd.DataFrame, tie_threshold: float) -> dict:
    """Metrics per dimension (sources pooled), per source and dimension, and overall.

    Returns {"overall": {...}, "dimensions": {dim: {...}}, "sources": {source: {dim: {...}}}}
    where each {...} is `pair_metrics`; "overall" is the mean over dimensions (`_mean_over`).
    """
    dimensions = {
        dim: pair_metrics(group, tie_threshold) for dim, group in frame.groupby("dimension", sort=True)
    }
    sources = {
        source: {
            dim: pair_metrics(group, tie_threshold)
            for dim, group in by_source.groupby("dimension", sort=True)
        }
        for source, by_source in frame.groupby("source", sort=True)
    }
    return {"overall": _mean_over(dimensions), "dimensions": dimensions, "sources": sources}


# --------------------------------------------------------------------------- scoring a corpus


@dataclass
class ScoredPairs:
    """The pairs of one split with `chosen_reward` / `rejected_reward`, and what could not be scored.

    `frame` holds only pairs whose two videos were read; `skipped_videos` maps a video path
    (relative to the corpus's video root) to why it was skipped; `dropped_pairs` counts the pairs
    left out because of them.
    """

    frame: pd.DataFrame
    skipped_videos: dict[str, str] = field(default_factory=dict)
    dropped_pairs: int = 0


class RewardCache:
    """A journal of scored (video, question) rewards, so an interrupted evaluation resumes.

    JSON lines: a header {"key": ...} (the model's fingerprint and the video root), then one
    {"video", "question", "reward"} per line, appended and fsynced after every batch. Opening a
    journal with another key starts it over; a line torn by a crash is dropped on opening (the
    valid lines are rewritten atomically first, so appends never follow a torn line).
    """

    def __init__(self, path: str | os.PathLike, key: dict):
        self.path = Path(path)
        self.rewards: dict[tuple[str, str], float] = {}
        records = read_jsonl(self.path)  # torn or invalid lines are left out
        if records and records[0] == {"key": key}:
            for entry in records[1:]:
                self.rewards[entry["video"], entry["question"]] = entry["reward"]
        with atomic_write(self.path) as f:
            f.write(json.dumps({"key": key}) + "\n")
            f.writelines(self._line(video, question, r) for (video, question), r in self.rewards.items())
        self._file = open(self.path, "a", encoding="utf-8")  # kept open for appends; close() closes it

    @staticmethod
    def _line(video: str, question: str, reward: float) -> str:
        return json.dumps({"video": video, "question": question, "reward": reward}) + "\n"

    def add(self, rewards: dict[tuple[str, str], float]) -> None:
        self._file.writelines(self._line(video, question, r) for (video, question), r in rewards.items())
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rewards.update(rewards)

    def close(self) -> None:
        self._file.close()


def score_pairs(
    scorer: VideoQuestionScorer,
    corpus: Corpus,
    split: str,
    progress: bool = True,
    cache: RewardCache | None = None,
) -> ScoredPairs:
    """Score every unique (video, question) of a split once and attach the rewards to its pairs.

    Videos are batched `scorer.batch_size` at a time among videos with the same number of
    questions, so each batch is one `score_questions` call with a [B, K] answer. Rewards already
    in `cache` are not scored again; new ones are added to it batch by batch.
    """
    if split not in corpus.pairs:
        raise KeyError(f"corpus at {corpus.video_root} has no split {split!r}; it has {sorted(corpus.pairs)}")
    frame = corpus.pairs[split].to_pandas()
    questions = [scorer.question(d, p) for d, p in zip(frame["dimension"], frame["prompt"])]
    wanted: dict[str, dict[str, None]] = {}  # video -> its questions, in first-seen order
    for question, chosen, rejected in zip(questions, frame["chosen_video"], frame["rejected_video"]):
        wanted.setdefault(chosen, {})[question] = None
        wanted.setdefault(rejected, {})[question] = None

    rewards: dict[tuple[str, str], float] = dict(cache.rewards) if cache else {}
    skipped: dict[str, str] = {}
    by_count: dict[int, list[str]] = {}
    for video, asked in wanted.items():
        missing = [q for q in asked if (video, q) not in rewards]
        wanted[video] = dict.fromkeys(missing)
        if missing:
            by_count.setdefault(len(missing), []).append(video)
    todo = sum(map(len, by_count.values()))
    bar = tqdm(total=todo, desc=f"scoring {split} videos", unit="video", disable=not progress)
    for videos in by_count.values():
        for start in range(0, len(videos), scorer.batch_size):
            chunk, batch, frames = videos[start : start + scorer.batch_size], [], []
            for video in chunk:
                try:
                    frames.append(scorer.read_video(corpus.video_path(video)))
                    batch.append(video)
                except VideoReadError as error:
                    skipped[video] = error.reason
            bar.update(len(chunk))
            if not batch:
                continue
            asked = [list(wanted[video]) for video in batch]
            scores = scorer.score_questions(torch.stack(frames), asked).float().cpu()  # [B, K]
            new = {
                (v, q): r
                for v, video_questions, row in zip(batch, asked, scores.tolist())
                for q, r in zip(video_questions, row)
            }
            rewards.update(new)
            if cache is not None:
                cache.add(new)
    bar.close()

    keep = ~(frame["chosen_video"].isin(skipped) | frame["rejected_video"].isin(skipped))
    frame = frame.assign(
        chosen_reward=[rewards.get((v, q), math.nan) for v, q in zip(frame["chosen_video"], questions)],
        rejected_reward=[rewards.get((v, q), math.nan) for v, q in zip(frame["rejected_video"], questions)],
    )
    return ScoredPairs(
        frame=frame[keep].reset_index(drop=True), skipped_videos=skipped, dropped_pairs=int((~keep).sum())
    )


def evaluate_corpus(
    scorer: VideoQuestionScorer,
    corpus: Corpus,
    split: str = "test",
    tie_threshold: float | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Score a split, choose the tie threshold, and report (and, with `out_dir`, write) the metrics.

    `tie_threshold=None` chooses tau on the validation split (`choose_tie_threshold`); a
    validation split without tie pairs gives tau = 0 without scoring it; no validation split
    at all gives tau = 0. With `out_dir`, writes report.json, pair_rewards.csv and the PNG plots
    (each atomically). Returns the report: `summarize`'s dict plus split, pair and skip counts,
    the threshold and where it came from (NaN metrics become None so the report is strict JSON).
    With `out_dir` and a scorer with a fingerprint, rewards are journaled in `out_dir/rewards.jsonl`
    (`RewardCache`) and a rerun resumes from it, scoring only what is missing.
    """
    cache = None
    if out_dir is not None and scorer.fingerprint is not None:
        key = {"model": scorer.fingerprint, "video_root": str(Path(corpus.video_root).resolve())}
        cache = RewardCache(Path(out_dir) / CACHE_FILE, key)
    try:
        scored = score_pairs(scorer, corpus, split, progress=progress, cache=cache)
        threshold, source, val_skipped = _tie_threshold(
            scorer, corpus, split, scored, tie_threshold, progress, cache
        )
    finally:
        if cache is not None:
            cache.close()
    report = {
        "split": split,
        "tie_threshold": threshold,
        "tie_threshold_source": source,
        "pairs_scored": len(scored.frame),
        "pairs_dropped": scored.dropped_pairs,
        "skipped_videos": {**scored.skipped_videos, **val_skipped},
        **summarize(scored.frame, threshold),
    }
    report = _strict_json(report)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / REPORT_FILE, report)
        with atomic_write(out_dir / REWARDS_FILE) as f:
            scored.frame.to_csv(f, index=False)
        plot_reward_histograms(scored.frame, out_dir / HISTOGRAM_FILE)
        plot_accuracy(report, out_dir / ACCURACY_FILE)
    return report


def _tie_threshold(
    scorer: VideoQuestionScorer,
    corpus: Corpus,
    split: str,
    scored: ScoredPairs,
    given: float | None,
    progress: bool,
    cache: RewardCache | None,
) -> tuple[float, str, dict[str, str]]:
    """(tau, where it came from, videos skipped while scoring validation) for `evaluate_corpus`."""
    validation = corpus.pairs.get(TIE_THRESHOLD_SPLIT)
    if given is not None:
        return float(given), "given", {}
    if validation is None or len(validation) == 0:
        return 0.0, f"none: the corpus has no {TIE_THRESHOLD_SPLIT} pairs", {}
    if not any(validation["tie"]):
        return 0.0, f"{TIE_THRESHOLD_SPLIT} (it has no tie pairs)", {}
    if split != TIE_THRESHOLD_SPLIT:
        scored = score_pairs(scorer, corpus, TIE_THRESHOLD_SPLIT, progress=progress, cache=cache)
    val = scored.frame
    return (
        choose_tie_threshold(val["chosen_reward"], val["rejected_reward"], val["tie"]),
        TIE_THRESHOLD_SPLIT,
        scored.skipped_videos,
    )


def _strict_json(value):
    """NaN -> None, recursively, so the report is valid JSON; numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


# --------------------------------------------------------------------------- presentation


def format_table(report: dict) -> str:
    """A fixed-width per-dimension table of a report (`evaluate_corpus` / `summarize`), plus overall."""
    header = ("dimension", "pairs", "acc", "acc w/ ties", "SRCC", "KRCC", "PLCC")

    def cell(value, percent: bool) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{100 * value:.1f}%" if percent else f"{value:.3f}"

    rows = [
        (
            name,
            str(m["pairs"]),
            cell(m["accuracy"], True),
            cell(m["accuracy_with_ties"], True),
            cell(m["srcc"], False),
            cell(m["krcc"], False),
            cell(m["plcc"], False),
        )
        for name, m in [*report["dimensions"].items(), ("overall", report["overall"])]
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(row, widths)))
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _save_figure(figure, path: str | os.PathLike) -> None:
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100, bbox_inches="tight")


def plot_reward_histograms(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """PNG: per dimension, histograms of chosen vs rejected rewards (shared bins)."""
    from matplotlib.figure import Figure  # Figure renders with Agg; no pyplot, no display

    dimensions = sorted(frame["dimension"].unique()) or ["(no pairs)"]
    figure = Figure(figsize=(4 * len(dimensions), 3.2))
    for ax, dim in zip(np.atleast_1d(figure.subplots(1, len(dimensions))), dimensions):
        group = frame[frame["dimension"] == dim]
        values = np.concatenate([group["chosen_reward"], group["rejected_reward"]])
        bins = np.histogram_bin_edges(values, bins=HISTOGRAM_BINS) if len(values) else HISTOGRAM_BINS
        ax.hist(group["chosen_reward"], bins=bins, alpha=0.6, label="chosen")
        ax.hist(group["rejected_reward"], bins=bins, alpha=0.6, label="rejected")
        ax.set_title(dim)
        ax.set_xlabel("reward")
        ax.legend()
    _save_figure(figure, path)


def plot_accuracy(report: dict, path: str | os.PathLike) -> None:
    """PNG: bar chart of accuracy without / with ties per dimension and overall."""
    from matplotlib.figure import Figure

    names = [*report["dimensions"], "overall"]
    metrics = [*report["dimensions"].values(), report["overall"]]
    x = np.arange(len(names))
    figure = Figure(figsize=(1.2 * len(names) + 2, 3.5))
    ax = figure.subplots()
    for offset, key, label in (
        (-BAR_WIDTH / 2, "accuracy", "w/o ties"),
        (BAR_WIDTH / 2, "accuracy_with_ties", "w/ ties"),
    ):
        heights = [m[key] if m[key] is not None else math.nan for m in metrics]
        ax.bar(x + offset, heights, width=BAR_WIDTH, label=label)
    ax.axhline(CHANCE, color="gray", linestyle="--", linewidth=1)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy")
    ax.legend()
    _save_figure(figure, path)
