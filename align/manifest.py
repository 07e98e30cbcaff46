"""The samples manifest: what best-of-N reranking keeps of every candidate, and its reports.

A samples folder holds
    manifest.json   this module's format (below), rewritten atomically after every prompt
    videos/         one mp4 per generated candidate          (written before its manifest entry)
    latents/        one safetensors per candidate, key "latents", the generator's final latents
    gallery.html    every prompt's candidates side by side, best first, with their scores
    gain.png        best-of-N gain per prompt: the chosen samples' mean reward vs all candidates'

manifest.json:
    {"format": "clevereward-samples-v1",
     "settings": {...},                       what made the samples; a resumed run must match
     "rewards": [{"name": str, "dimension": str | null}, ...],   the first one ranks
     "top_k": int,
     "prompts": [                             finished prompts only, in prompt-file order
        {"index": int, "prompt": str,
         "candidates": [                      in generation order
            {"candidate": int, "video": str, "latents": str | null, "seed": int | null,
             "scores": {reward name: float | null}, "rank": int, "chosen": bool}],
         "skipped": [{"video": str, "reason": str}]}]}
Paths are relative to the manifest's folder. A score is null where the reward gave no finite
value; such a candidate ranks last and is never chosen. Rank 0 is the best candidate.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
from pathlib import Path
from urllib.parse import quote

from reward.files import atomic_write, write_json

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "GALLERY_NAME",
    "GAIN_PLOT_NAME",
    "new_manifest",
    "load_manifest",
    "save_manifest",
    "rank_candidates",
    "prompt_gain",
    "summary_table",
    "write_gallery",
    "plot_gain",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "clevereward-samples-v1"
GALLERY_NAME = "gallery.html"
GAIN_PLOT_NAME = "gain.png"
# Columns of the printed summary: prompts longer than this are cut.
_PROMPT_WIDTH = 48


def new_manifest(settings: dict, rewards: list[dict], top_k: int) -> dict:
    """An empty manifest for a run with these settings and rewards (the first reward ranks)."""
    return {
        "format": MANIFEST_FORMAT,
        "settings": settings,
        "rewards": rewards,
        "top_k": top_k,
        "prompts": [],
    }


def load_manifest(path: str | os.PathLike) -> dict:
    """Read a manifest (a manifest.json file or the folder holding one); errors name the file."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no samples manifest (make one with `clevereward rerank`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{path}: format {found!r}, expected {MANIFEST_FORMAT!r}")
    return manifest


def save_manifest(out_dir: str | os.PathLike, manifest: dict) -> Path:
    """Write `out_dir/manifest.json` atomically: a crash leaves the previous complete version."""
    path = Path(out_dir) / MANIFEST_NAME
    write_json(path, manifest)
    return path


def rank_candidates(candidates: list[dict], reward: str, top_k: int) -> None:
    """Set `rank` (0 = best by `reward`) and `chosen` (the top `top_k` scored ones) in place.

    Candidates without a finite score rank last and are never chosen; ties keep generation order.
    """
    order = sorted(
        range(len(candidates)),
        key=lambda i: (candidates[i]["scores"][reward] is None, -(candidates[i]["scores"][reward] or 0.0), i),
    )
    for rank, i in enumerate(order):
        candidates[i]["rank"] = rank
        candidates[i]["chosen"] = rank < top_k and candidates[i]["scores"][reward] is not None


def prompt_gain(entry: dict, reward: str) -> dict:
    """For one prompt entry: candidates' mean, best and chosen-mean `reward`, and gain = chosen - mean.

    Candidates without a finite score are left out; all values are NaN when none has one.
    """
    scores = [c["scores"][reward] for c in entry["candidates"] if c["scores"][reward] is not None]
    chosen = [c["scores"][reward] for c in entry["candidates"] if c["chosen"]]
    if not scores:
        return {"mean": math.nan, "best": math.nan, "chosen": math.nan, "gain": math.nan, "scored": 0}
    mean = sum(scores) / len(scores)
    chosen_mean = sum(chosen) / len(chosen)
    return {
        "mean": mean,
        "best": max(scores),
        "chosen": chosen_mean,
        "gain": chosen_mean - mean,
        "scored": len(scores),
    }


def summary_table(manifest: dict) -> str:
    """A plain-text table, one row per prompt: candidates, mean reward, best reward, gain (chosen - mean)."""
    reward = manifest["rewards"][0]["name"]
    header = f"{'prompt':<{_PROMPT_WIDTH}}  {'n':>3}  {'mean':>9}  {'best':>9}  {'gain':>9}"
    lines = [f"ranking reward: {reward}, top-{manifest['top_k']}", header, "-" * len(header)]
    gains = []
    for entry in manifest["prompts"]:
        g = prompt_gain(entry, reward)
        gains.append(g["gain"])
        prompt = (
            entry["prompt"]
            if len(entry["prompt"]) <= _PROMPT_WIDTH
            else entry["prompt"][: _PROMPT_WIDTH - 3] + "..."
        )
        lines.append(
            f"{prompt:<{_PROMPT_WIDTH}}  {g['scored']:>3}  {g['mean']:>9.4f}  {g['best']:>9.4f}  {g['gain']:>9.4f}"
        )
    finite = [g for g in gains if not math.isnan(g)]
    if finite:
        lines.append(f"mean gain over {len(finite)} prompts: {sum(finite) / len(finite):.4f}")
    skipped = sum(len(entry["skipped"]) for entry in manifest["prompts"])
    if skipped:
        lines.append(f"skipped {skipped} unreadable videos (listed under 'skipped' in the manifest)")
    return "\n".join(lines)


def _format_score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def write_gallery(out_dir: str | os.PathLike, manifest: dict) -> Path:
    """Write `out_dir/gallery.html` atomically: per prompt, its candidates best first with every score.

    Videos are embedded by their manifest paths (relative to `out_dir`), so the folder can move.
    """
    names = [r["name"] for r in manifest["rewards"]]
    title = f"CleveReward best-of-N, ranked by {names[0]}"
    parts = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}.row{display:flex;flex-wrap:wrap;gap:8px}"
        "figure{margin:0;padding:4px;border:2px solid #ddd}figure.chosen{border-color:#2a2}"
        "video{width:160px;image-rendering:pixelated}figcaption{font-size:12px}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for entry in manifest["prompts"]:
        parts.append(f'<section><h2>{entry["index"]}. {html.escape(entry["prompt"])}</h2><div class="row">')
        for cand in sorted(entry["candidates"], key=lambda c: c["rank"]):
            scores = "<br>".join(f"{html.escape(n)}: {_format_score(cand['scores'][n])}" for n in names)
            parts.append(
                f'<figure class="{"chosen" if cand["chosen"] else "candidate"}">'
                f'<video src="{html.escape(quote(cand["video"]))}" autoplay loop muted playsinline controls></video>'
                f"<figcaption>#{cand['rank'] + 1}{' (chosen)' if cand['chosen'] else ''} seed {cand['seed']}"
                f"<br>{scores}</figcaption></figure>"
            )
        parts.append("</div></section>")
    parts.append("</body></html>")
    path = Path(out_dir) / GALLERY_NAME
    with atomic_write(path) as f:
        f.write("\n".join(parts) + "\n")
    return path


def plot_gain(out_dir: str | os.PathLike, manifest: dict) -> Path:
    """Write `out_dir/gain.png` atomically: per prompt, every candidate's reward, their mean and the chosen mean.

    The gap between the mean (black bar) and the chosen samples (red star) is the best-of-N gain;
    the axis spans the scores, not zero, so small gains stay visible.
    """
    # A bare Figure renders with Agg and leaves pyplot's global backend and figure list alone.
    from matplotlib.figure import Figure

    reward = manifest["rewards"][0]["name"]
    entries = manifest["prompts"]
    gains = [prompt_gain(entry, reward) for entry in entries]
    fig = Figure(figsize=(max(4.0, 0.5 * len(entries) + 2.0), 3.5))
    ax = fig.subplots()
    for x, entry in enumerate(entries):
        scores = [c["scores"][reward] for c in entry["candidates"] if c["scores"][reward] is not None]
        ax.scatter([x] * len(scores), scores, s=12, color="0.6", label="candidates" if x == 0 else None)
    x = list(range(len(entries)))
    ax.scatter(x, [g["mean"] for g in gains], marker="_", s=300, color="black", label="mean over candidates")
    ax.scatter(
        x,
        [g["chosen"] for g in gains],
        marker="*",
        s=80,
        color="tab:red",
        label=f"chosen (top-{manifest['top_k']})",
    )
    ax.set_xticks(x, [str(entry["index"]) for entry in entries])
    ax.set_xlabel("prompt")
    ax.set_ylabel(reward)
    finite = [g["gain"] for g in gains if not math.isnan(g["gain"])]
    mean_gain = sum(finite) / len(finite) if finite else math.nan
    ax.set_title(f"best-of-N gain per prompt, mean {mean_gain:.3g}", fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    path = Path(out_dir) / GAIN_PLOT_NAME
    with atomic_write(path, mode="wb") as f:
        f.write(buffer.getvalue())
    return path
