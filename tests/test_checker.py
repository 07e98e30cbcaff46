"""The independent check of generated videos (align/checker.py) on renderings of the world's spec."""

import json

import numpy as np
import pytest

from align.checker import (
    ATTRIBUTES,
    QUALITY_MEASURES,
    check_samples,
    check_video,
    compare_checks,
    format_check,
)
from align.cli import main as cli
from reward.synthetic import CAPTIONS, render_video
from reward.video import read_video, write_video

CAPTION = "a red circle moving left"
PNG_MAGIC = b"\x89PNG"


def _through_h264(frames, tmp_path, name="v.mp4"):
    write_video(frames, tmp_path / name)
    return read_video(tmp_path / name, 16)


def test_clean_renderings_read_back_as_their_captions(tmp_path):
    for i, caption in enumerate(CAPTIONS):
        result = check_video(
            _through_h264(render_video(caption, np.random.default_rng(i)), tmp_path), caption
        )
        assert all(result[a] == 1.0 for a in ATTRIBUTES), (caption, result)
        assert (
            result["frozen"] == 0.0 and result["noise"] < 5 and result["flicker"] < 1 and result["jump"] < 2
        )


def test_a_wrong_caption_fails_on_the_attribute_that_differs(tmp_path):
    frames = _through_h264(render_video(CAPTION, np.random.default_rng(0)), tmp_path)
    for caption, failed in [("a blue circle moving left", "color_ok"), ("a red square moving left", "shape_ok"),
                            ("a red circle moving up", "direction_ok")]:  # fmt: skip
        result = check_video(frames, caption)
        assert result[failed] == 0.0 and result["prompt_ok"] == 0.0
        assert sum(result[a] for a in ATTRIBUTES[:3]) == 2.0


@pytest.mark.parametrize(
    "defect, measure",
    [
        ("noise", "noise"),
        ("blur", "blur"),
        ("flicker", "flicker"),
        ("teleport", "jump"),
        ("freeze", "frozen"),
    ],
)
def test_each_defect_raises_its_quality_measure(defect, measure, tmp_path):
    clean = check_video(
        _through_h264(render_video(CAPTION, np.random.default_rng(0)), tmp_path, "a.mp4"), CAPTION
    )
    bad = check_video(
        _through_h264(render_video(CAPTION, np.random.default_rng(0), defect), tmp_path, "b.mp4"), CAPTION
    )
    margins = {
        "noise": 10,
        "blur": 0.2,
        "flicker": 5,
        "jump": 5,
        "frozen": 0.5,
    }  # far beyond the clean values
    assert bad[measure] > clean[measure] + margins[measure], (defect, clean, bad)


def _samples(folder, defect_for=lambda prompt, seed: None, broken=()):
    """A samples.jsonl of 2 prompts x 3 seeds of renderings; (prompt, seed) in `broken` get an empty file."""
    lines = []
    for p, prompt in enumerate(["a red circle moving left", "a blue square moving up"]):
        for seed in range(3):
            name = f"p{p}_s{seed}.mp4"
            if (prompt, seed) in broken:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).touch()
            else:
                write_video(
                    render_video(prompt, np.random.default_rng(seed), defect_for(prompt, seed)), folder / name
                )
            lines.append(json.dumps({"video": name, "prompt": prompt, "seed": seed}))
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "samples.jsonl"


def test_check_samples_means_spreads_and_skips(tmp_path):
    # seed 0 of the first prompt frozen: prompt accuracy 5/6; per-seed means 0.5, 1, 1 -> spread = stdev
    path = _samples(tmp_path / "base", lambda prompt, seed: "freeze" if (prompt, seed) == (CAPTION, 0) else None,
                    broken=[("a blue square moving up", 2)])  # fmt: skip
    report = check_samples(path)
    assert report["samples"] == 5 and report["skipped"] == [
        {"video": "p1_s2.mp4", "reason": "empty file (0 bytes)"}
    ]
    assert report["mean"]["prompt_ok"] == pytest.approx(4 / 5)
    assert report["mean"]["frozen"] == pytest.approx(1 / 5)
    # per-seed prompt accuracy: seed 0 -> 1/2, seed 1 -> 2/2, seed 2 -> 1/1 (the broken one is left out)
    assert report["seed_std"]["prompt_ok"] == pytest.approx(float(np.std([0.5, 1.0, 1.0], ddof=1)))
    assert set(report["mean"]) == {*ATTRIBUTES, *QUALITY_MEASURES}


def test_compare_and_the_command(tmp_path, capsys):
    base = _samples(tmp_path / "base", lambda prompt, seed: "freeze")
    tuned = _samples(tmp_path / "tuned")
    change = compare_checks(check_samples(base), check_samples(tuned))
    assert change["prompt_ok"]["gain"] == pytest.approx(1.0) and change["prompt_ok"]["significant"]
    assert change["frozen"]["gain"] == pytest.approx(-1.0)
    assert cli(["check", str(base), "--compare", str(tuned), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "prompt_ok" in printed and "better" in printed
    report = json.loads((tmp_path / "out" / "check.json").read_text())
    assert report["change"]["prompt_ok"]["tuned"] == 1.0 and len(report["tuned"]["rows"]) == 6
    assert (tmp_path / "out" / "strips.png").read_bytes().startswith(PNG_MAGIC)


def test_a_bad_listing_names_its_line(tmp_path):
    (tmp_path / "samples.jsonl").write_text('{"video": "a.mp4", "prompt": "a red circle moving left"}\n')
    with pytest.raises(ValueError, match=r"samples.jsonl:line 1: missing \['seed'\]"):
        check_samples(tmp_path)


def test_sample_then_check_a_generator(tmp_path, capsys):
    """`clevereward sample` writes the grid the checker reads; the random tiny generator draws no caption."""
    out = tmp_path / "samples"
    assert cli(["sample", "--generator", "tiny", "--prompts", "synthetic:validation", "--seeds", "0", "1",
                "--steps", "2", "--guidance", "1", "--out", str(out)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [(r["prompt"], r["seed"]) for r in rows][:2] == [
        ("a yellow circle moving left", 0),
        ("a yellow circle moving left", 1),
    ]
    assert len(rows) == 4 * 2 and all((out / r["video"]).is_file() for r in rows)
    report = check_samples(out)
    assert report["samples"] == 8 and report["mean"]["prompt_ok"] == 0.0  # noise is no colored shape


def test_small_samples_are_written_so_the_check_reads_clean_ones_right(tmp_path):
    """32-px clips (the world generator's size) go through `write_samples`: H.264 at 32 px misreads
    clean squares and triangles; written with repeated pixels up to 64 px, every one reads right."""
    import torch

    from align.evaluation import write_samples
    from reward.video import resample_videos

    captions = [c for c in CAPTIONS if c.split()[2] != "circle"][:16]
    clips = torch.stack([render_video(c, np.random.default_rng(i)) for i, c in enumerate(captions)])
    videos = resample_videos(clips.float() / 255, 9, (32, 32))  # [N, 9, C, 32, 32] in [0, 1]
    write_samples(
        tmp_path, {"videos": videos, "prompts": captions, "seeds": [0] * len(captions), "scores": {}}
    )
    assert read_video(tmp_path / "0000.mp4", 9).shape == (9, 3, 64, 64)
    report = check_samples(tmp_path)
    assert report["mean"]["prompt_ok"] == 1.0, [(r["prompt"], r["shape_ok"]) for r in report["rows"]]


def test_best_of_seeds_separates_the_generator_from_the_reward(tmp_path):
    # prompt 0's seed 0 is frozen (fails) and is the one a bad reward scores highest
    path = _samples(tmp_path, lambda prompt, seed: "freeze" if (prompt, seed) == (CAPTION, 0) else None)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["bad_reward"] = float((row["prompt"], row["seed"]) == (CAPTION, 0))
        row["good_reward"] = -row["bad_reward"]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = check_samples(path)
    assert report["best_of_seeds"] == {"any": 1.0, "bad_reward": 0.5, "good_reward": 1.0}
    assert "prompt accuracy 1.0000 at best; top bad_reward 0.5000, top good_reward 1.0000" in format_check(
        report
    )
