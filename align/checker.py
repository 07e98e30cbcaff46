"""An independent check of generated videos of the synthetic world: pixels only, no reward model.

Per sample, from its pixels and its caption (`check_video`):
- **prompt accuracy**: is the object's measured color, shape and direction of motion the
  caption's (`color_ok`, `shape_ok`, `direction_ok`, and `prompt_ok` when all three are);
- **quality measures** of the dimensions a reward model judges, each 0 on a clean rendering and
  larger for the defect it names:
  `noise` (visual quality): the median difference between horizontally adjacent pixels, in pixel
  levels (a flat background and a sharp object leave it near 0; pixel noise of σ raises it to ~σ);
  `blur` (visual quality): the share of the object's pixels that are a soft edge, neither
  background nor object;
  `flicker` (temporal consistency): the spread of the background's brightness over frames, in levels;
  `jump` (temporal consistency): the largest step of the object's centroid beyond its median
  step, in px;
  `frozen` (dynamic degree): 1 when the object moves slower than the world's `MIN_SPEED`.

Design decisions:
- The measurements are the world's own (`reward.synthetic`: palette, background, shape fills,
  centroids), never a model's, so the check cannot be gamed by what a reward model learned.
- `check_samples` reads a `samples.jsonl` (one `{"video", "prompt", "seed"}` per line, paths
  relative to it) with `read_video`, so any generator's samples, ours or a user's, are checked
  the same way; an unreadable video is skipped and counted.
- The spread is seed-to-seed: the standard deviation over seeds of the per-seed mean over prompts,
  the unit in which a gain must exceed the noise of sampling.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path

import numpy as np
import torch

from reward.synthetic import (
    MIN_SPEED,
    dominant_color,
    dominant_shape,
    foreground_mask,
    motion_direction,
    object_centroids,
    object_displacement,
    parse_caption,
    pixel_levels,
)
from reward.video import VideoReadError, read_video

__all__ = [
    "ATTRIBUTES",
    "QUALITY_MEASURES",
    "check_video",
    "read_samples",
    "check_samples",
    "compare_checks",
    "format_check",
    "plot_strips",
]

ATTRIBUTES: tuple[str, ...] = ("color_ok", "shape_ok", "direction_ok", "prompt_ok")
QUALITY_MEASURES: tuple[str, ...] = ("noise", "blur", "flicker", "jump", "frozen")
# A pixel is a soft edge when its difference from the background lies between these fractions of
# the object's full contrast (anti-aliasing alone puts a thin ring there; blur widens it).
_EDGE_BAND = (0.15, 0.85)
_LISTING_KEYS = ("video", "prompt", "seed")  # a samples.jsonl's fields; any other number is a score
_FRAMES_READ = 16  # the world's clip length: read_video resamples to it
_STRIP_FRAMES = 4  # frames shown per sample in the PNG grid
_STRIP_ROWS = 8  # (prompt, seed) rows at most


def _quality(frames) -> dict[str, float]:
    pixels, mask = pixel_levels(frames), foreground_mask(frames)
    background = np.median(pixels, axis=(1, 2))  # [F, C]
    # noise: the typical step between neighbouring pixels (edges are too few to move the median)
    noise = float(np.median(np.abs(np.diff(pixels, axis=2)).max(axis=-1)))  # [F, H, W - 1] -> scalar
    away = np.abs(pixels - background[:, None, None, :]).max(axis=-1)  # [F, H, W]
    # blur: of the pixels that differ from the background at all, the share in the soft band
    contrast = np.array([away[f][mask[f]].max() if mask[f].any() else 0.0 for f in range(len(mask))])
    low, high = _EDGE_BAND
    shares = []
    for f in range(len(mask)):
        if contrast[f] > 0:
            visible = away[f] > low * contrast[f]
            soft = visible & (away[f] < high * contrast[f])
            shares.append(soft.sum() / max(visible.sum(), 1))
    blur = float(np.median(shares)) if shares else math.nan
    flicker = float(background.mean(axis=1).std())  # [F]: the background's brightness per frame
    steps = np.diff(object_centroids(frames), axis=0)  # [F - 1, 2]
    steps = steps[~np.isnan(steps).any(axis=1)]
    jump = float(np.linalg.norm(steps - np.median(steps, axis=0), axis=1).max()) if len(steps) else math.nan
    speed = float(np.hypot(*object_displacement(frames)))
    return {
        "noise": noise,
        "blur": blur,
        "flicker": flicker,
        "jump": jump,
        "frozen": float(not speed >= MIN_SPEED),
    }


def check_video(frames: torch.Tensor | np.ndarray, caption: str) -> dict[str, float]:
    """The check of one video `[F, 3, H, W]` (uint8, or float in [0, 1]) against its caption.

    Returns the four attribute flags (1.0 / 0.0, so they average into accuracies) and the five
    quality measures; ValueError when the caption is not one of the world's.
    """
    color, shape, direction = parse_caption(caption)
    flags = {
        "color_ok": dominant_color(frames) == color,
        "shape_ok": dominant_shape(frames) == shape,
        "direction_ok": motion_direction(frames) == direction,
    }
    flags["prompt_ok"] = all(flags.values())
    return {**{k: float(v) for k, v in flags.items()}, **_quality(frames)}


def read_samples(path: str | os.PathLike) -> tuple[Path, list[dict]]:
    """(folder, rows) of a `samples.jsonl` (or the folder holding one); errors name the file and line."""
    path = Path(path)
    path = path / "samples.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no samples.jsonl (one {{'video', 'prompt', 'seed'}} per line)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:line {number}: not JSON ({error.msg})") from error
        missing = [key for key in _LISTING_KEYS if key not in row]
        if missing:
            raise ValueError(f"{path}:line {number}: missing {missing}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: holds no samples")
    return path.parent, rows


def _spread(rows: list[dict], key: str) -> float:
    """Standard deviation over seeds of the per-seed mean over prompts (0 with one seed)."""
    by_seed: dict[int, list[float]] = {}
    for row in rows:
        if not math.isnan(row[key]):
            by_seed.setdefault(row["seed"], []).append(row[key])
    means = [statistics.fmean(v) for v in by_seed.values()]
    return statistics.stdev(means) if len(means) > 1 else 0.0


def _best_of_seeds(rows: list[dict], scores: list[str]) -> dict[str, float]:
    """Prompt accuracy when one sample per prompt is kept out of its seeds: `any` (the share of
    prompts with at least one sample that reads back, what a perfect judge would reach) and, per
    score the listing carries, the share whose top-scored sample reads back.

    The gap between the two says whether a selection-driven method (best-of-N, DPO pairs) is held
    back by the reward (it picks wrong) or by the generator (no seed draws the prompt)."""
    by_prompt: dict[str, list[dict]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row)
    groups = list(by_prompt.values())
    table = {"any": statistics.fmean(max(r["prompt_ok"] for r in g) for g in groups)}
    for score in scores:
        table[score] = statistics.fmean(max(g, key=lambda r: r[score])["prompt_ok"] for g in groups)
    return table


def check_samples(path: str | os.PathLike) -> dict:
    """Check every sample of a `samples.jsonl`: per-sample rows, means, seed spreads, skipped videos.

    Returns {"samples", "prompts", "seeds", "mean": {measure: value}, "seed_std": {measure: value},
    "best_of_seeds": {"any" | score: value} (see `_best_of_seeds`), "rows": [...],
    "skipped": [{"video", "reason"}]}; `prompt_ok`'s mean is the prompt accuracy.
    """
    folder, listing = read_samples(path)
    rows, skipped = [], []
    for row in listing:
        try:
            frames = read_video(folder / row["video"], _FRAMES_READ)
        except VideoReadError as error:
            skipped.append({"video": row["video"], "reason": error.reason})
            continue
        rows.append({**row, **check_video(frames, row["prompt"])})
    if not rows:
        raise ValueError(f"{path}: no readable sample ({len(skipped)} skipped: {skipped[:3]})")
    measures = (*ATTRIBUTES, *QUALITY_MEASURES)
    scores = [k for k, v in listing[0].items() if k not in _LISTING_KEYS and isinstance(v, (int, float))]
    return {
        "samples": len(rows),
        "prompts": len({r["prompt"] for r in rows}),
        "seeds": len({r["seed"] for r in rows}),
        "mean": {m: statistics.fmean(r[m] for r in rows if not math.isnan(r[m])) for m in measures},
        "seed_std": {m: _spread(rows, m) for m in measures},
        "best_of_seeds": _best_of_seeds(rows, scores),
        "rows": rows,
        "skipped": skipped,
    }


def compare_checks(base: dict, tuned: dict) -> dict[str, dict[str, float | bool]]:
    """Per measure: base and tuned means, the gain, the larger seed spread, and whether the change
    exceeds it (`significant`). For quality measures a rise is worse."""
    table = {}
    for measure in (*ATTRIBUTES, *QUALITY_MEASURES):
        gain = tuned["mean"][measure] - base["mean"][measure]
        spread = max(base["seed_std"][measure], tuned["seed_std"][measure])
        table[measure] = {
            "base": base["mean"][measure],
            "tuned": tuned["mean"][measure],
            "gain": gain,
            "spread": spread,
            "significant": abs(gain) > spread,
        }
    return table


def format_check(report: dict, tuned: dict | None = None) -> str:
    """A plain-text table: each measure's mean ± seed spread (and, given `tuned`, the change)."""
    lines = [f"{report['samples']} samples ({report['prompts']} prompts x {report['seeds']} seeds)"]
    header = f"{'measure':<14} {'base':>16}" + (f" {'tuned':>16} {'change':>9}  note" if tuned else "")
    lines += [header, "-" * len(header)]
    table = compare_checks(report, tuned) if tuned else None
    for measure in (*ATTRIBUTES, *QUALITY_MEASURES):
        cell = f"{report['mean'][measure]:>8.4f}±{report['seed_std'][measure]:<7.4f}"
        line = f"{measure:<14} {cell}"
        if table:
            entry = table[measure]
            tuned_cell = f"{entry['tuned']:>8.4f}±{tuned['seed_std'][measure]:<7.4f}"
            worse = entry["gain"] < 0 if measure in ATTRIBUTES else entry["gain"] > 0
            note = ("worse" if worse else "better") if entry["significant"] else "within seed spread"
            line += f" {tuned_cell} {entry['gain']:>+9.4f}  {note}"
        lines.append(line)
    picks = ", ".join(
        f"top {name} {value:.4f}" for name, value in report["best_of_seeds"].items() if name != "any"
    )
    lines.append(f"one sample kept per prompt, out of its {report['seeds']} seeds: prompt accuracy "
                 f"{report['best_of_seeds']['any']:.4f} at best" + (f"; {picks}" if picks else ""))  # fmt: skip
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} unreadable videos")
    return "\n".join(lines)


def plot_strips(
    path: str | os.PathLike, samples: dict[str, str | os.PathLike], max_rows: int = _STRIP_ROWS
) -> Path:
    """A PNG grid of frame strips: one row per (prompt, seed), one column per named set of samples
    (e.g. {"base": ..., "tuned": ...}), the same prompt and seed side by side; written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    from reward.files import atomic_write

    listings = {name: read_samples(source) for name, source in samples.items()}
    first_folder, first_rows = next(iter(listings.values()))
    keys = [(r["prompt"], r["seed"]) for r in first_rows][:max_rows]
    fig, axes = plt.subplots(
        len(keys), len(listings), figsize=(3.2 * len(listings), 1.1 * len(keys)), squeeze=False
    )
    for column, (name, (folder, rows)) in enumerate(listings.items()):
        by_key = {(r["prompt"], r["seed"]): r for r in rows}
        for row, key in enumerate(keys):
            ax = axes[row][column]
            ax.axis("off")
            if key not in by_key:
                continue
            frames = read_video(folder / by_key[key]["video"], _STRIP_FRAMES)  # uint8 [4, C, H, W]
            ax.imshow(
                torch.cat(list(frames), dim=2).permute(1, 2, 0).numpy()
            )  # frames side by side: [H, 4W, C]
            if row == 0:
                ax.set_title(name, fontsize=9)
            if column == 0:
                ax.text(
                    -4, frames.shape[-2] / 2, f"{key[0]} · seed {key[1]}", ha="right", va="center", fontsize=7
                )
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, mode="wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
