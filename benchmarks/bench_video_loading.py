"""How close `read_video` comes to the decoder's own speed on the training hot path.

    python benchmarks/bench_video_loading.py [--clips 100] [--cache-dir DIR] [--repeats 3]

Writes (once, cached in --cache-dir) `--clips` five-second 480p clips (854x480, 24 fps, moving
gradients and shapes) with `write_video`, then times on the same files and the same 16 frame
indices:
    decord get_batch      bare `decord.VideoReader(path).get_batch(indices)`: decode only, no
                          resize, no copy out of decord (the decoder's limit)
    read_video            `read_video(path, 16, size=224)`: decode, antialiased resize, uint8 [F, C, H, W]
    decord resize         `VideoReader(path, width=224, height=224).get_batch`: decord's own scaler
                          (the alternative to our resize)
For each clip the three run back to back, in an order rotated from clip to clip, so changes in
machine load hit all alike; the table gives clips/s over all repeats, the ratio to the bare
decoder, and the median of the per-clip ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import decord
import numpy as np
import torch
from tqdm import tqdm

from reward.video import read_video, sample_indices, write_video

__all__ = ["make_clips", "main"]

CLIP_SECONDS = 5
CLIP_FPS = 24
CLIP_HEIGHT, CLIP_WIDTH = 480, 854
NUM_FRAMES = 16
SIZE = 224
GOAL_RATIO = 0.8


def make_clips(folder: Path, count: int) -> list[Path]:
    """`count` 480p clips under `folder` (kept if already there): a drifting colour gradient with a moving box."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:CLIP_HEIGHT, 0:CLIP_WIDTH].astype(np.float32)
    paths = []
    for clip in tqdm(range(count), desc="writing 480p clips", unit="clip"):
        path = folder / f"clip_{clip:03d}.mp4"
        paths.append(path)
        if path.is_file():
            continue
        frames = np.empty((CLIP_SECONDS * CLIP_FPS, 3, CLIP_HEIGHT, CLIP_WIDTH), dtype=np.uint8)
        for t in range(len(frames)):
            phase = t * 4 + clip * 17
            frames[t, 0] = (x * 0.3 + phase) % 256
            frames[t, 1] = (y * 0.5 + 2 * phase) % 256
            frames[t, 2] = ((x + y) * 0.2 + clip * 31) % 256
            left = (t * 6 + clip * 13) % (CLIP_WIDTH - 120)
            frames[t, :, 180:300, left : left + 120] = np.array([230, 60, 40], dtype=np.uint8)[:, None, None]
        write_video(torch.from_numpy(frames), path, fps=CLIP_FPS)
    return paths


def _bare_decord(path: Path, indices: np.ndarray) -> None:
    decord.VideoReader(str(path)).get_batch(indices)


def _read_video(path: Path, indices: np.ndarray) -> None:
    read_video(path, NUM_FRAMES, size=SIZE)


def _decord_resize(path: Path, indices: np.ndarray) -> None:
    decord.VideoReader(str(path), width=SIZE, height=SIZE).get_batch(indices)


METHODS = {"decord get_batch": _bare_decord, "read_video": _read_video, "decord resize": _decord_resize}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="read_video throughput vs decord's bare decoder")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "clevereward_bench_480p"
    )
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    paths = make_clips(args.cache_dir, args.clips)
    indices = {path: sample_indices(len(decord.VideoReader(str(path))), NUM_FRAMES) for path in paths}
    frames = read_video(paths[0], NUM_FRAMES, size=SIZE)
    assert frames.shape == (NUM_FRAMES, 3, SIZE, SIZE) and frames.dtype == torch.uint8
    # Per clip, every method runs back to back (order rotated from clip to clip), so changes in
    # machine load hit all methods alike; per-clip ratios give a robust median.
    seconds = {name: np.zeros((args.repeats, len(paths))) for name in METHODS}
    names = list(METHODS)
    for repeat in range(args.repeats):
        for clip, path in enumerate(tqdm(paths, desc=f"timing, repeat {repeat + 1}", unit="clip")):
            shift = (clip + repeat) % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                METHODS[name](path, indices[path])
                seconds[name][repeat, clip] = time.perf_counter() - start
    base = seconds["decord get_batch"]
    print(
        f"{len(paths)} clips of {CLIP_WIDTH}x{CLIP_HEIGHT}, {CLIP_SECONDS} s at {CLIP_FPS} fps; {NUM_FRAMES} frames each"
    )
    print(
        f"{'method':<18} {'clips/s':>9} {'ratio':>7} {'median per-clip ratio':>22}   ({args.repeats} repeats)"
    )
    for name in METHODS:
        rate = seconds[name].size / seconds[name].sum()
        print(
            f"{name:<18} {rate:>9.2f} {base.sum() / seconds[name].sum():>7.2f} {np.median(base / seconds[name]):>22.2f}"
        )
    ratio = base.sum() / seconds["read_video"].sum()
    print(f"read_video / decoder = {ratio:.2f} (goal >= {GOAL_RATIO})")


if __name__ == "__main__":
    main()
