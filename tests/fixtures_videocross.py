"""Fixture writers: small files in the exact published formats of the VideoCross sources.

Videos are rendered by the synthetic world and written as mp4; the bad-video writers make the
broken files a real crawl meets (empty, not a video, truncated).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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

VIDEOFEEDBACK_URL = "https://huggingface.co/datasets/TIGER-Lab/VideoFeedback/resolve/main/videos/{}"
GENAI_BENCH_URL = "https://github.com/TIGER-AI-Lab/GenAI-Arena/videos/{}"
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


def write_videofeedback(path: Path, rows: list[dict]) -> None:
    """Parquet with VideoFeedback's columns; a row is {id, prompt, scores: {dimension: int}}."""
    table = [
        {
            "id": row["id"],
            "text prompt": row["prompt"],
            "video link": VIDEOFEEDBACK_URL.format(f"{row['id']}.mp4"),
            **row["scores"],
        }
        for row in rows
    ]
    pd.DataFrame(table).to_parquet(path)


def write_t2vqa(path: Path, rows: list[tuple[str, str, object]]) -> None:
    """`filename|prompt|mos` lines, no header; a row that is a str is written verbatim."""
    lines = [row if isinstance(row, str) else f"{row[0]}|{row[1]}|{row[2]}" for row in rows]
    path.write_text("\n".join(lines) + "\n")


def write_genai_bench(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """Parquet of the `video_generation` config; a row is (prompt, left, right, vote_type)."""
    table = [
        {
            "prompt": prompt,
            "left_model": "AnimateDiff",
            "left_video": GENAI_BENCH_URL.format(left),
            "right_model": "LaVie",
            "right_video": GENAI_BENCH_URL.format(right),
            "vote_type": vote,
        }
        for prompt, left, right, vote in rows
    ]
    pd.DataFrame(table).to_parquet(path)


def write_rewardbench(path: Path, rows: list[dict]) -> None:
    """VideoGen-RewardBench CSV; a row is {path_A, path_B, prompt, VQ, MQ, TA[, Overall][, MOS_*]}."""
    table = [
        {
            "A_model": "kling",
            "B_model": "gen3",
            "fps_A": FPS,
            "num_frames_A": 16,
            "fps_B": FPS,
            "num_frames_B": 16,
            **row,
        }
        for row in rows
    ]
    pd.DataFrame(table).to_csv(path, index=False)


def write_fetv(root: Path, prompts: list[str], ratings: dict[int, dict[str, list[str | dict]]]) -> None:
    """A FETV folder: `fetv_data.json` and, per rater and model, JSON-lines rating files.

    ratings[rater][model] is a list of lines: a dict {index: {static_quality, ...}} or a raw str.
    """
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "fetv_data.json", "w") as f:
        for i, prompt in enumerate(prompts):
            entry = {
                "video_id": 1000 + i,
                "prompt": prompt,
                "major content": {"spatial": ["animals"], "temporal": ["kinetic motions"]},
                "attribute control": {"spatial": ["color"], "temporal": ["direction"]},
                "prompt complexity": ["simple"],
                "source": "ours",
                "video_url": None,
            }
            f.write(json.dumps(entry) + "\n")
    for rater, models in ratings.items():
        folder = root / "manual_eval_results" / f"human{rater}"
        folder.mkdir(parents=True, exist_ok=True)
        for model, lines in models.items():
            text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
            (folder / f"manual_eval_results_{model}.json").write_text("\n".join(text) + "\n")


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
