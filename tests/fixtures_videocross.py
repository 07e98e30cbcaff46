"""Fixture writers: small files in the exact published formats of the VideoCross sources.

Videos are rendered by the synthetic world and written as mp4; the bad-video writers make the
broken files a real crawl meets (empty, not a video, truncated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reward.formats import (  # noqa: F401  (re-exported: the tests import every writer from here)
    write_fetv,
    write_genai_bench,
    write_rewardbench,
    write_t2vqa,
    write_videofeedback,
)
from reward.synthetic import CAPTIONS, render_video
from reward.video import write_video

__all__ = [
    "write_synthetic_videos",
    "write_zero_byte",
    "write_text_as_mp4",
    "write_truncated",
    "write_one_frame",
    "write_videofeedback",
    "write_t2vqa",
    "write_genai_bench",
    "write_rewardbench",
    "write_fetv",
    "write_videophy",
    "write_generic_csv",
]

VIDEOPHY_URL = "https://storage.googleapis.com/videophy/videos/{}"
FPS = 8
ONE_FRAME_SEED = 999


def write_synthetic_videos(root: Path, names: list[str]) -> dict[str, str]:
    """Render one distinct synthetic video per name (caption and seed vary) under `root`.

    Returns {name: caption}.
    """
    captions = {}
    for i, name in enumerate(names):
        caption = CAPTIONS[i % len(CAPTIONS)]
        write_video(render_video(caption, np.random.default_rng(i)), root / name, fps=FPS)
        captions[name] = caption
    return captions


def write_zero_byte(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def write_text_as_mp4(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not a video\n")


def write_truncated(path: Path, source: Path) -> None:
    """The first half of a valid mp4 (an interrupted download)."""
    data = source.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])


def write_one_frame(path: Path) -> None:
    write_video(render_video(CAPTIONS[0], np.random.default_rng(ONE_FRAME_SEED))[:1], path, fps=FPS)


def write_videophy(path: Path, rows: list[tuple[str, str, object, object]], split: str = "train") -> None:
    """VideoPhy CSV; a row is (video file, caption, sa, physics) — test split uses majority_* columns."""
    sa, pc = ("sa", "physics") if split == "train" else ("majority_sa", "majority_pc")
    table = [
        {"video_url": VIDEOPHY_URL.format(video), "caption": caption, "source": "lavie", sa: s, pc: p}
        for video, caption, s, p in rows
    ]
    pd.DataFrame(table).to_csv(path, index=False)


def write_generic_csv(path: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows).to_csv(path, index=False)
