"""Best-of-N reranking: generate N candidates per prompt, score them, keep the top k.

Design decisions:
- Candidate seeds come from (run seed, prompt index, candidate index) through numpy's
  `SeedSequence`, so any candidate can be regenerated alone and batching never changes samples.
- CogVideoX ignores `num_videos_per_prompt`: a prompt's N candidates are the prompt repeated
  with one seeded generator each (`align.cogvideox.generate`), `batch_size` rows per pipeline call.
- All N candidates of a prompt are scored in one call per reward, so per-prompt normalisation
  (`align.rewards.normalize_per_prompt`) sees the whole group.
- Order of writes per prompt: candidate files (mp4, latents), then the manifest entry, atomically.
  A crash leaves a readable manifest that never points at missing files; a rerun with the same
  settings skips the prompts the manifest already holds.
- Reranking existing videos (`rerank_videos`) reads them with `reward.video.read_video`; a video
  that cannot be read is skipped, counted and listed in the manifest, never a crash.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from diffusers import CogVideoXPipeline
from safetensors.torch import save as safetensors_bytes
from tqdm.auto import tqdm

from align.cogvideox import KNOWN_GENERATORS, generate
from align.evaluation import SAMPLE_MIN_SIDE
from align.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    load_manifest,
    new_manifest,
    rank_candidates,
    save_manifest,
)
from align.rewards import RewardFunction
from reward.files import atomic_write
from reward.video import VideoReadError, read_video, write_video

__all__ = [
    "VIDEO_FPS",
    "LISTING_NAMES",
    "candidate_seed",
    "sampling_settings",
    "resume_manifest",
    "SYNTHETIC_PREFIX",
    "read_prompts",
    "prompts_from",
    "check_writable",
    "rerank",
    "read_listing",
    "rerank_videos",
]

# Frame rate of the candidate mp4s when the generator has no model card (tiny, local folders):
# CogVideoX 1.0's 8 fps, also the synthetic world's.
VIDEO_FPS = 8
# File names `rerank_videos` looks for in a folder, in this order.
LISTING_NAMES: tuple[str, ...] = (MANIFEST_NAME, "videos.json", "videos.csv")
# Candidate files are named by prompt and candidate index, zero-padded so they sort in order.
_CANDIDATE_STEM = "p{prompt:04d}_c{candidate:02d}"
_UINT8_MAX = 255


def candidate_seed(seed: int, prompt_index: int, candidate: int) -> int:
    """The generator seed of one candidate: a 32-bit hash of (seed, prompt index, candidate index)."""
    return int(np.random.SeedSequence([seed, prompt_index, candidate]).generate_state(1)[0])


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a text file, one per non-empty line; a missing or empty file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} does not exist")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise ValueError(f"prompt file {path} holds no prompts (one per line expected)")
    return prompts


SYNTHETIC_PREFIX = "synthetic:"  # prompts_from("synthetic:test"): a split of the synthetic world's captions


def prompts_from(spec: str) -> list[str]:
    """A prompt file's lines (`read_prompts`), or the synthetic world's captions of one split (`synthetic:test`)."""
    if not spec.startswith(SYNTHETIC_PREFIX):
        return read_prompts(spec)
    from reward.pairs import SPLITS
    from reward.synthetic import CAPTIONS, caption_split

    split = spec.removeprefix(SYNTHETIC_PREFIX)
    if split not in SPLITS:
        raise ValueError(f"--prompts {spec}: the synthetic world's splits are {list(SPLITS)}")
    return [c for c in CAPTIONS if caption_split(c) == split]


def check_writable(out_dir: str | os.PathLike) -> Path:
    """Create `out_dir` if needed and prove a file can be written there; else an error naming it."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(out_dir / ".write-test") as f:
            f.write("ok")
        (out_dir / ".write-test").unlink()
    except OSError as err:
        raise PermissionError(f"cannot write to output folder {out_dir}: {err.strerror or err}") from err
    return out_dir


def sampling_settings(
    generator_name: str,
    n: int,
    seed: int,
    num_inference_steps: int,
    guidance_scale: float,
    generate_kwargs: dict | None = None,
) -> dict:
    """What makes a run's samples: stored in the manifest, and a resumed run must match it."""
    return {
        "generator": generator_name,
        "n": n,
        "seed": seed,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        **(generate_kwargs or {}),
    }


def resume_manifest(
    out_dir: str | os.PathLike, settings: dict, rewards: list[RewardFunction], top_k: int, prompts: list[str]
) -> dict:
    """The manifest to continue: the one in `out_dir` if its settings match, else a new one.

    Raises ValueError when `out_dir` holds a run with other settings or rewards, or whose prompts
    differ from `prompts` at the same positions (the rerun would mix two runs in one folder).
    Cheap: commands call it to fail before loading a generator.
    """
    out_dir = Path(out_dir)
    rewards = [{"name": r.name, "dimension": r.dimension} for r in rewards]
    if not (out_dir / MANIFEST_NAME).is_file():
        return new_manifest(settings, rewards, top_k)
    manifest = load_manifest(out_dir)
    path = out_dir / MANIFEST_NAME
    for key, ours in (("settings", settings), ("rewards", rewards)):
        if manifest[key] != ours:
            raise ValueError(
                f"{path} holds a run with other {key} ({manifest[key]} != {ours}); use another --out"
            )
    for entry in manifest["prompts"]:
        if entry["index"] >= len(prompts) or prompts[entry["index"]] != entry["prompt"]:
            raise ValueError(
                f"{path}: prompt {entry['index']} was {entry['prompt']!r}, the prompt list now differs; "
                "use another --out"
            )
    manifest["top_k"] = top_k
    for entry in manifest["prompts"]:
        rank_candidates(entry["candidates"], rewards[0]["name"], top_k)
    return manifest


def _score_all(rewards: list[RewardFunction], videos: torch.Tensor, prompts: list[str]) -> list[dict]:
    """Every reward on every video: one dict {reward name: float | None (not finite)} per video."""
    scores = [{} for _ in prompts]
    for reward in rewards:
        values = reward(videos, prompts)  # float32 [B]
        for row, value in zip(scores, values.tolist(), strict=True):
            row[reward.name] = value if math.isfinite(value) else None
    return scores


def _to_uint8(video: torch.Tensor) -> torch.Tensor:
    """float [F, C, H, W] in [0, 1] -> uint8 [F, C, H, W], rounded."""
    return (video.clamp(0.0, 1.0) * _UINT8_MAX).round().to(torch.uint8)


def _insert_entry(manifest: dict, entry: dict) -> None:
    manifest["prompts"].append(entry)
    manifest["prompts"].sort(key=lambda e: e["index"])


def rerank(
    pipe: CogVideoXPipeline,
    prompts: list[str],
    rewards: list[RewardFunction],
    out_dir: str | os.PathLike,
    *,
    n: int = 8,
    top_k: int = 1,
    seed: int = 0,
    batch_size: int = 8,
    num_inference_steps: int = 50,
    guidance_scale: float = 6.0,
    generator_name: str = "",
    generate_kwargs: dict | None = None,
) -> dict:
    """Generate `n` candidates per prompt with `pipe`, score them with every reward, keep the top `top_k`.

    The first reward ranks. Writes `out_dir/videos/*.mp4`, `out_dir/latents/*.safetensors` and
    `out_dir/manifest.json` (align.manifest), the manifest after every prompt; resumes a run in
    `out_dir` with the same settings, skipping its finished prompts. Returns the manifest.
    `generate_kwargs` go to `align.cogvideox.generate` (height, width, num_frames). The mp4s play
    at the model card's frame rate of `generator_name`, else `VIDEO_FPS`.
    """
    if not rewards:
        raise ValueError("rerank needs at least one reward (the first one ranks)")
    if n < 1 or not 1 <= top_k <= n or batch_size < 1:
        raise ValueError(
            f"need n >= 1, 1 <= top_k <= n and batch_size >= 1; got n={n}, top_k={top_k}, batch_size={batch_size}"
        )
    out_dir = check_writable(out_dir)
    generate_kwargs = dict(generate_kwargs or {})
    settings = sampling_settings(
        generator_name, n, seed, num_inference_steps, guidance_scale, generate_kwargs
    )
    manifest = resume_manifest(out_dir, settings, rewards, top_k, prompts)
    spec = KNOWN_GENERATORS.get(generator_name)
    fps = spec.fps if spec is not None else VIDEO_FPS
    done = {entry["index"] for entry in manifest["prompts"]}
    (out_dir / "videos").mkdir(exist_ok=True)
    (out_dir / "latents").mkdir(exist_ok=True)
    todo = [i for i in range(len(prompts)) if i not in done]
    for index in tqdm(todo, desc="rerank prompts", unit="prompt"):
        prompt = prompts[index]
        seeds = [candidate_seed(seed, index, c) for c in range(n)]
        batch = generate(
            pipe,
            [prompt] * n,
            seeds,
            num_inference_steps,
            guidance_scale,
            batch_size=batch_size,
            **generate_kwargs,
        )
        videos = batch.videos.float().cpu()  # [N, F, C, H, W] in [0, 1]
        latents = batch.latents.cpu()  # [N, F_lat, C_lat, h, w]
        candidates = []
        for c, candidate_seed_ in enumerate(seeds):
            stem = _CANDIDATE_STEM.format(prompt=index, candidate=c)
            video_rel, latents_rel = f"videos/{stem}.mp4", f"latents/{stem}.safetensors"
            write_video(_to_uint8(videos[c]), out_dir / video_rel, fps=fps, min_side=SAMPLE_MIN_SIDE)
            with atomic_write(out_dir / latents_rel, mode="wb") as f:
                f.write(safetensors_bytes({"latents": latents[c].contiguous()}))
            candidates.append(
                {"candidate": c, "video": video_rel, "latents": latents_rel, "seed": candidate_seed_}
            )
        for cand, scores in zip(candidates, _score_all(rewards, videos, [prompt] * n), strict=True):
            cand["scores"] = scores
        rank_candidates(candidates, rewards[0].name, top_k)
        _insert_entry(manifest, {"index": index, "prompt": prompt, "candidates": candidates, "skipped": []})
        save_manifest(out_dir, manifest)
    save_manifest(out_dir, manifest)
    return manifest


def read_listing(source: str | os.PathLike) -> tuple[list[str], dict[str, list[dict]], Path]:
    """Existing videos to rerank, grouped by prompt: (prompts in first-seen order, rows per prompt, root).

    `source` is a folder holding (first found) `manifest.json` (a samples manifest: its candidates
    are reranked, latents and seeds kept), `videos.json` (a list of {"video": path, "prompt": str})
    or `videos.csv` (columns video, prompt); or one such file. Video paths are relative to the
    listing's folder (`root`). Rows are {"video", "latents", "seed"}.
    """
    source = Path(source)
    if source.is_dir():
        found = [source / name for name in LISTING_NAMES if (source / name).is_file()]
        if not found:
            raise FileNotFoundError(f"{source} holds none of {', '.join(LISTING_NAMES)} to list its videos")
        source = found[0]
    if not source.is_file():
        raise FileNotFoundError(f"video listing {source} does not exist")
    root = source.parent
    if source.suffix == ".csv":
        with source.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: not valid JSON ({err})") from err
        if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT:
            rows = [
                {**cand, "prompt": entry["prompt"]}
                for entry in load_manifest(source)["prompts"]
                for cand in entry["candidates"]
            ]
        elif isinstance(data, list):
            rows = data
        else:
            raise ValueError(
                f"{source}: expected a list of {{'video', 'prompt'}} objects or a samples manifest"
            )
    groups: dict[str, list[dict]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("video") or not row.get("prompt"):
            raise ValueError(f"{source}: row {i} needs non-empty 'video' and 'prompt', got {row!r}")
        groups.setdefault(row["prompt"], []).append(
            {"video": row["video"], "latents": row.get("latents") or None, "seed": row.get("seed")}
        )
    if not groups:
        raise ValueError(f"{source} lists no videos")
    return list(groups), groups, root


def rerank_videos(
    source: str | os.PathLike,
    rewards: list[RewardFunction],
    out_dir: str | os.PathLike,
    *,
    top_k: int = 1,
    num_frames: int = 16,
    size: int | None = None,
) -> dict:
    """Score and rank existing videos (see `read_listing`), writing a samples manifest in `out_dir`.

    Videos are read as `num_frames` frames, resized to `size` (default: the size of the prompt's
    first readable video, so its videos stack into one batch). An unreadable video is skipped and
    listed under the prompt's `skipped`. Resumes like `rerank`. Manifest paths are relative to
    `out_dir`.
    """
    if not rewards:
        raise ValueError("rerank needs at least one reward (the first one ranks)")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    prompts, groups, root = read_listing(source)
    out_dir = check_writable(out_dir)
    settings = {"videos": str(Path(source).resolve()), "num_frames": num_frames, "size": size}
    manifest = resume_manifest(out_dir, settings, rewards, top_k, prompts)
    done = {entry["index"] for entry in manifest["prompts"]}

    def relative(path: str | None) -> str | None:
        return None if path is None else os.path.relpath(root / path, out_dir)

    for index in tqdm(
        [i for i in range(len(prompts)) if i not in done], desc="rerank prompts", unit="prompt"
    ):
        prompt = prompts[index]
        frames, candidates, skipped = [], [], []
        group_size = size
        for c, row in enumerate(groups[prompt]):
            try:
                frames.append(read_video(root / row["video"], num_frames, size=group_size))
            except VideoReadError as err:
                skipped.append({"video": relative(row["video"]), "reason": err.reason})
                continue
            # The first readable video sets the size of its prompt's group, so the group stacks.
            group_size = group_size or tuple(frames[0].shape[-2:])
            candidates.append(
                {
                    "candidate": c,
                    "video": relative(row["video"]),
                    "latents": relative(row["latents"]),
                    "seed": row["seed"],
                }
            )
        if candidates:
            videos = torch.stack(frames).float() / _UINT8_MAX  # [N, F, C, H, W] in [0, 1]
            for cand, scores in zip(
                candidates, _score_all(rewards, videos, [prompt] * len(candidates)), strict=True
            ):
                cand["scores"] = scores
            rank_candidates(candidates, rewards[0].name, top_k)
        _insert_entry(
            manifest, {"index": index, "prompt": prompt, "candidates": candidates, "skipped": skipped}
        )
        save_manifest(out_dir, manifest)
    save_manifest(out_dir, manifest)
    return manifest
