"""Writers of the public video-scoring datasets' file formats, as `reward.sources` reads them back.

Each writer lays out rows exactly as the dataset publishes them (column names, scales, file
layout), so anything written here goes through the real adapters of `clevereward data build`.
The graded world (`reward.graded`) simulates its five sources with them; the tests write their
small fixtures with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = [
    "VIDEOFEEDBACK_URL",
    "GENAI_BENCH_URL",
    "FORMAT_FPS",
    "write_videofeedback",
    "write_t2vqa",
    "write_genai_bench",
    "write_rewardbench",
    "write_fetv",
]

VIDEOFEEDBACK_URL = "https://huggingface.co/datasets/TIGER-Lab/VideoFeedback/resolve/main/videos/{}"
GENAI_BENCH_URL = "https://github.com/TIGER-AI-Lab/GenAI-Arena/videos/{}"
FORMAT_FPS = 8  # the fps / frame-count columns VideoGen-RewardBench carries


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
            "fps_A": FORMAT_FPS,
            "num_frames_A": 16,
            "fps_B": FORMAT_FPS,
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
