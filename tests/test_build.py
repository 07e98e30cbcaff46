"""VideoCross pair construction: the pure steps on hand-made records, then `data build` / `data inspect`
end to end on fixture files of every source with synthetic videos and a corpus of broken inputs."""

import json
import math
import os
import random
import shutil

import pytest
from fixtures_videocross import (
    write_fetv,
    write_genai_bench,
    write_generic_csv,
    write_one_frame,
    write_rewardbench,
    write_synthetic_videos,
    write_t2vqa,
    write_text_as_mp4,
    write_truncated,
    write_videofeedback,
    write_videophy,
    write_zero_byte,
)

from align.cli import main as cli_main
from reward.build import (
    CROSS_PROMPT_MARGIN,
    BuildConfig,
    assign_splits,
    check_video,
    check_videos,
    cross_prompt_pairs,
    drop_duplicate_rows,
    drop_duplicate_videos,
    normalise,
    prompt_key,
    same_prompt_pairs,
)
from reward.commands import data_build, data_inspect
from reward.pairs import PAIR_COLUMNS, SPLITS, load_corpus
from reward.sources import PairRecord, ScoreRecord

VF = "videofeedback"


def score(video, value, prompt="p", dimension="visual_quality", source=VF):
    return ScoreRecord(source, video, prompt, dimension, value, where=f"{video}:{value}")


# ---------------------------------------------------------------- pure steps


def test_normalise():
    assert normalise(1, (1, 4)) == 0.0
    assert normalise(4, (1, 4)) == 1.0
    assert normalise(3.5, (1, 5)) == pytest.approx(0.625)
    assert normalise(7, (7, 7)) == 0.0  # degenerate scale: every pair is a tie


def test_same_prompt_pairs_margins_and_ties():
    # VideoFeedback scale 1–4: scores 1, 2, 4 normalise to 0, 1/3, 1.
    records = [score("a.mp4", 1), score("b.mp4", 2), score("c.mp4", 4)]
    scales = {(VF, "visual_quality"): (1.0, 4.0)}
    rows = same_prompt_pairs(records, scales, min_gap=0.05, max_pairs_per_prompt=None, rng=random.Random(0))
    got = {(r["chosen_video"], r["rejected_video"]): (round(r["margin"], 6), r["tie"]) for r in rows}
    assert got == {
        ("b.mp4", "a.mp4"): (0.333333, False),
        ("c.mp4", "a.mp4"): (1.0, False),
        ("c.mp4", "b.mp4"): (0.666667, False),
    }
    assert all(set(r) == set(PAIR_COLUMNS) and r["kind"] == "same_prompt" for r in rows)
    c_over_b = next(r for r in rows if r["chosen_video"] == "c.mp4" and r["rejected_video"] == "b.mp4")
    assert (c_over_b["chosen_score"], c_over_b["rejected_score"]) == (1.0, pytest.approx(1 / 3))

    # min_gap 0.5: the 1/3 gap becomes a tie with margin 0, its videos in path order.
    rows = same_prompt_pairs(records, scales, min_gap=0.5, max_pairs_per_prompt=None, rng=random.Random(0))
    ties = [r for r in rows if r["tie"]]
    assert [(r["chosen_video"], r["rejected_video"], r["margin"]) for r in ties] == [("a.mp4", "b.mp4", 0.0)]
    assert (ties[0]["chosen_score"], ties[0]["rejected_score"]) == (0.0, pytest.approx(1 / 3))

    # Equal scores are a tie even with min_gap 0.
    rows = same_prompt_pairs([score("a.mp4", 2), score("b.mp4", 2)], scales, 0.0, None, random.Random(0))
    assert [r["tie"] for r in rows] == [True]


def test_same_prompt_pairs_groups_by_prompt_dimension_and_source():
    records = [
        score("a.mp4", 1),
        score("b.mp4", 4, prompt="q"),
        score("c.mp4", 4, dimension="dynamic_degree"),
        score("d.mp4", 4, source="other"),
    ]
    scales = {(s, d): (1.0, 4.0) for s in (VF, "other") for d in ("visual_quality", "dynamic_degree")}
    assert same_prompt_pairs(records, scales, 0.05, None, random.Random(0)) == []


def test_pair_cap_is_a_seeded_subset():
    records = [score(f"{i}.mp4", 1 + i * 0.5) for i in range(5)]  # 10 pairs
    scales = {(VF, "visual_quality"): (1.0, 4.0)}
    full = same_prompt_pairs(records, scales, 0.05, None, random.Random(0))
    capped = same_prompt_pairs(records, scales, 0.05, 3, random.Random(7))
    again = same_prompt_pairs(records, scales, 0.05, 3, random.Random(7))
    assert len(full) == 10 and len(capped) == 3
    assert capped == again
    assert all(row in full for row in capped)


def test_assign_splits_prompt_disjoint_seeded_and_order_free():
    prompts = [f"prompt {i}" for i in range(100)]
    splits = assign_splits(prompts, validation_fraction=0.1, test_fraction=0.2, seed=3)
    counts = {s: sum(v == s for v in splits.values()) for s in SPLITS}
    assert counts == {"train": 70, "validation": 10, "test": 20}
    assert assign_splits(reversed(prompts), 0.1, 0.2, seed=3) == splits
    assert assign_splits(prompts, 0.1, 0.2, seed=4) != splits
    # Case and whitespace variants are one prompt, so they cannot straddle splits.
    assert list(assign_splits(["A Red  Circle", "a red circle"], 0.0, 0.5, seed=0)) == [
        prompt_key("a red circle")
    ]


def test_cross_prompt_pairs():
    videos = {"p1": ["p1a.mp4", "p1b.mp4"], "p2": ["p2a.mp4"], "p3": ["p3a.mp4"]}
    rows = cross_prompt_pairs(videos, count=5, source=VF, rng=random.Random(0))
    assert len(rows) == 5
    assert len({(r["prompt"], r["chosen_video"], r["rejected_video"]) for r in rows}) == 5
    for row in rows:
        assert row["chosen_video"] in videos[row["prompt"]]
        assert row["rejected_video"] not in videos[row["prompt"]]
        assert (row["kind"], row["dimension"], row["margin"], row["tie"]) == (
            "cross_prompt",
            "text_alignment",
            CROSS_PROMPT_MARGIN,
            False,
        )
        assert math.isnan(row["chosen_score"])
    assert cross_prompt_pairs({"p1": ["a.mp4", "b.mp4"]}, 3, VF, random.Random(0)) == []
    # Only 2 distinct pairs exist between two one-video prompts: asking for more gives those.
    assert len(cross_prompt_pairs({"p1": ["a.mp4"], "p2": ["b.mp4"]}, 10, VF, random.Random(0))) == 2
    # A video made for both prompts is never a negative.
    shared = cross_prompt_pairs(
        {"p1": ["a.mp4", "s.mp4"], "p2": ["s.mp4", "b.mp4"]}, 50, VF, random.Random(0)
    )
    assert len(shared) == 4 and all(r["rejected_video"] != "s.mp4" for r in shared)


def test_duplicate_rows_and_videos():
    pair = PairRecord("genai_bench", "p", "overall", "x.mp4", "y.mp4", False, 1.0, where="g:1")
    swapped = PairRecord("genai_bench", "p", "overall", "y.mp4", "x.mp4", False, 1.0, where="g:2")
    records = [score("a.mp4", 1), score("a.mp4", 2), score("b.mp4", 3), pair, swapped]
    skipped = []
    kept = drop_duplicate_rows(records, skipped)
    assert kept == [records[0], records[2], pair]
    assert [(s.where, s.reason, s.detail) for s in skipped] == [
        ("a.mp4:2", "duplicate row", "same as a.mp4:1"),
        ("g:2", "duplicate row", "same as g:1"),
    ]
    same = PairRecord("genai_bench", "p", "overall", "x.mp4", "z.mp4", False, 1.0, where="g:3")
    hashes = {"a.mp4": "h1", "b.mp4": "h1", "x.mp4": "h2", "y.mp4": "h3", "z.mp4": "h2"}
    skipped = []
    kept = drop_duplicate_videos([records[0], records[2], pair, same], hashes, skipped)
    assert kept == [records[0], pair]
    assert [(s.where, s.reason) for s in skipped] == [
        ("b.mp4:3", "duplicate video"),
        ("g:3", "duplicate video"),
    ]


def test_check_video_on_broken_files(tmp_path):
    write_synthetic_videos(tmp_path, ["good.mp4"])
    write_zero_byte(tmp_path / "zero.mp4")
    write_text_as_mp4(tmp_path / "text.mp4")
    write_truncated(tmp_path / "truncated.mp4", tmp_path / "good.mp4")
    write_one_frame(tmp_path / "one.mp4")
    assert check_video(tmp_path / "good.mp4") is None
    assert check_video(tmp_path / "one.mp4") is None  # read_video accepts one-frame clips
    assert check_video(tmp_path / "zero.mp4") == "empty file (0 bytes)"
    assert check_video(tmp_path / "missing.mp4") == "no such file"
    for name in ("text.mp4", "truncated.mp4"):
        assert check_video(tmp_path / name).startswith("not a readable video")
    records = [score(n, 1) for n in ("good.mp4", "zero.mp4", "missing.mp4")]
    skipped = []
    kept, hashes, bad = check_videos(records, tmp_path, skipped)
    assert kept == records[:1] and list(hashes) == ["good.mp4"]
    assert bad == {"missing.mp4": "missing video", "zero.mp4": "unreadable video: empty file (0 bytes)"}
    assert sorted(s.reason for s in skipped) == ["missing video", "unreadable video"]


def test_check_videos_cache_skips_unchanged_files(tmp_path):
    write_synthetic_videos(tmp_path, ["a.mp4", "b.mp4"])
    records, cache = [score("a.mp4", 1), score("b.mp4", 2)], tmp_path / "checks.json"
    _, hashes, _ = check_videos(records, tmp_path, [], cache_path=cache)
    assert set(json.loads(cache.read_text())) == {str((tmp_path / n).absolute()) for n in ("a.mp4", "b.mp4")}
    # Overwrite a.mp4 with garbage of the same size and restore its mtime: the cache answers.
    path = tmp_path / "a.mp4"
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    kept, cached, bad = check_videos(records, tmp_path, [], cache_path=cache)
    assert cached == hashes and not bad and kept == records
    # A changed mtime is a changed file: it is checked again and now fails.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    skipped = []
    kept, _, bad = check_videos(records, tmp_path, skipped, cache_path=cache)
    assert kept == records[1:] and list(bad) == ["a.mp4"] and skipped[0].reason == "unreadable video"


def test_build_config_rejects_bad_options():
    with pytest.raises(ValueError, match="sum below 1"):
        BuildConfig(validation_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="min_gap"):
        BuildConfig(min_gap=2)


# ---------------------------------------------------------------- end to end


@pytest.fixture
def broken_t2vqa(tmp_path):
    """T2VQA lines over good and broken videos; 9 valid records make 9 pairs, 9 rows are bad."""
    videos = tmp_path / "videos"
    write_synthetic_videos(videos, [f"g{i}.mp4" for i in range(8)])
    write_zero_byte(videos / "zero.mp4")
    write_text_as_mp4(videos / "text.mp4")
    write_truncated(videos / "trunc.mp4", videos / "g1.mp4")
    write_one_frame(videos / "one.mp4")
    shutil.copy(videos / "g0.mp4", videos / "dup.mp4")
    a, b, c, d = (
        "a red circle moving left",
        "a blue square moving up",
        "a green triangle moving down",
        "a yellow circle moving right",
    )
    write_t2vqa(
        tmp_path / "info.txt",
        [
            ("g0", a, 10), ("g1", a, 20), ("g2", a, 30),
            ("zero", a, 40), ("text", a, 50), ("trunc", a, 60),
            ("one", a, 70), ("missing", a, 80), ("dup", a, 90),
            ("g3", b, "nan"), ("g3", b, 15), ("g4", b, 25), ("g4", b, 25),
            ("g5", "", 35), ("g5", c, 45), ("g6", c, 55),
            ("g7", d, 65), ("g0", d, 5),
            "g9 a broken line without separators",
        ],
    )  # fmt: skip
    return tmp_path


def test_data_build_skips_and_reports_broken_inputs_and_keeps_every_valid_row(broken_t2vqa, capsys):
    root, out = broken_t2vqa, broken_t2vqa / "corpus"
    argv = ["--source", f"t2vqa={root / 'info.txt'}", "--video-root", str(root / "videos"), "--out", str(out)]
    argv += ["--min-gap", "0.15", "--validation-fraction", "0.25", "--test-fraction", "0.25", "--seed", "1"]
    assert data_build.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    corpus = load_corpus(out)
    assert corpus.video_root == (root / "videos").resolve()

    # Kept: prompt a has g0 g1 g2 one (6 pairs), b g3 g4, c g5 g6, d g7 g0 (1 each).
    assert sum(report["pairs"].values()) == sum(len(corpus.pairs[s]) for s in SPLITS) == 9
    assert report["sources"]["t2vqa"]["skipped"] == {
        "duplicate row": 1,
        "duplicate video": 1,
        "empty prompt": 1,
        "missing video": 1,
        "nan score": 1,
        "unparseable line": 1,
        "unreadable video": 3,
    }
    assert report["skipped_total"] == 9
    where = {s["where"]: s for s in report["skipped"]}
    assert where["info.txt:line 4"]["detail"] == "zero.mp4: unreadable video: empty file (0 bytes)"
    assert where["info.txt:line 8"]["reason"] == "missing video"
    assert where["info.txt:line 9"]["detail"] == "same content as info.txt:line 1"
    assert where["info.txt:line 13"]["detail"] == "same as info.txt:line 12"
    assert set(report["videos"]["bad"]) == {"zero.mp4", "text.mp4", "trunc.mp4", "missing.mp4"}
    # Scale 5–90 (observed): ties under 0.15 × 85 = 12.75 points: g0/g1, g1/g2, g3/g4, g5/g6.
    assert report["ties"] == 4
    pairs = {s: corpus.pairs[s].to_pandas() for s in SPLITS}
    assert {s: len(set(p["prompt"])) for s, p in pairs.items()} == {"train": 2, "validation": 1, "test": 1}
    prompt_sets = [set(p["prompt"]) for p in pairs.values()]
    assert all(x.isdisjoint(y) for i, x in enumerate(prompt_sets) for y in prompt_sets[i + 1 :])
    everything = [row for p in pairs.values() for row in p.to_dict("records")]
    one = [r for r in everything if "one.mp4" in (r["chosen_video"], r["rejected_video"])]
    assert len(one) == 3 and all(r["chosen_video"] == "one.mp4" for r in one)  # score 70 beats 10, 20, 30
    top = next(r for r in one if r["rejected_video"] == "g0.mp4")
    assert top["margin"] == pytest.approx(60 / 85) and top["chosen_score"] == pytest.approx(65 / 85)
    assert "skipped" in capsys.readouterr().out


def test_data_build_drop_ties_and_cross_prompt_negatives(broken_t2vqa):
    root = broken_t2vqa
    base = [
        "--source",
        f"t2vqa={root / 'info.txt'}",
        "--video-root",
        str(root / "videos"),
        "--min-gap",
        "0.15",
    ]
    base += ["--validation-fraction", "0", "--test-fraction", "0"]
    assert cli_main(["data", "build", *base, "--out", str(root / "a"), "--drop-ties", "true"]) == 0
    assert len(load_corpus(root / "a").pairs["train"]) == 9 - 4
    assert data_build.main([*base, "--out", str(root / "b"), "--cross-prompt-ratio", "1.0"]) == 0
    train = load_corpus(root / "b").pairs["train"].to_pandas()
    cross = train[train["kind"] == "cross_prompt"]
    assert len(cross) == 9 and len(train) == 18
    videos_of = train[train["kind"] == "same_prompt"].groupby("prompt")["chosen_video"].agg(set)
    videos_of = videos_of.combine(
        train[train["kind"] == "same_prompt"].groupby("prompt")["rejected_video"].agg(set), set.union
    )
    assert all(
        r.chosen_video in videos_of[r.prompt] and r.rejected_video not in videos_of[r.prompt]
        for r in cross.itertuples()
    )


def test_data_build_reads_every_source_format(tmp_path):
    videos = tmp_path / "videos"
    folders = {
        "videofeedback": ["1.mp4", "2.mp4", "3.mp4"],
        "t2vqa": ["t1.mp4", "t2.mp4", "t3.mp4"],
        "genai_bench": ["l1.mp4", "r1.mp4", "l2.mp4", "r2.mp4"],
        "videogen_rewardbench": ["videos/1_A.mp4", "videos/1_B.mp4"],
        "fetv": ["cogvideo/0.mp4", "zeroscope/0.mp4"],
        "videophy": ["v1.mp4", "v2.mp4"],
        "lgvq": ["x.mp4", "y.mp4"],
    }
    write_synthetic_videos(
        videos, [f"{folder}/{name}" for folder, names in folders.items() for name in names]
    )
    red, blue = "a red circle moving left", "a blue square moving up"
    vf_dims = [
        "visual quality",
        "temporal consistency",
        "dynamic degree",
        "text-to-video alignment",
        "factual consistency",
    ]
    write_videofeedback(
        tmp_path / "vf.parquet",
        [
            {"id": "1", "prompt": red, "scores": dict.fromkeys(vf_dims, 4)},
            {"id": "2", "prompt": red, "scores": {**dict.fromkeys(vf_dims, 1), "dynamic degree": 5}},
            {"id": "3", "prompt": blue, "scores": dict.fromkeys(vf_dims, 2)},
        ],
    )
    write_t2vqa(tmp_path / "t2vqa.txt", [("t1", red, 30.5), ("t2", red, 50.0), ("t3", red, 70.0)])
    write_genai_bench(
        tmp_path / "genai.parquet",
        [(red, "l1.mp4", "r1.mp4", "rightvote"), (blue, "l2.mp4", "r2.mp4", "tievote")],
    )
    write_rewardbench(
        tmp_path / "vgrb.csv",
        [
            {
                "path_A": "./videos/1_A.mp4",
                "path_B": "./videos/1_B.mp4",
                "prompt": red,
                "VQ": "A",
                "MQ": "same",
                "TA": "B",
            }
        ],
    )
    rating = {"0": {"static_quality": 4, "temporal_quality": 3, "alignment": 5}}
    low = {"0": {"static_quality": 2, "temporal_quality": 3, "alignment": 1}}
    write_fetv(tmp_path / "FETV", [red], {0: {"cogvideo": [rating], "zeroscope": [low]}})
    write_videophy(tmp_path / "videophy.csv", [("v1.mp4", red, 1, 1), ("v2.mp4", red, 0, 1)])
    write_generic_csv(
        tmp_path / "lgvq.csv",
        [{"video": "x.mp4", "prompt": red, "spatial": 2}, {"video": "y.mp4", "prompt": red, "spatial": 5}],
    )

    argv = [
        "--video-root",
        str(videos),
        "--out",
        str(tmp_path / "corpus"),
        "--validation-fraction",
        "0",
        "--test-fraction",
        "0",
    ]
    paths = {
        "videofeedback": "vf.parquet",
        "t2vqa": "t2vqa.txt",
        "genai_bench": "genai.parquet",
        "videogen_rewardbench": "vgrb.csv",
        "fetv": "FETV",
        "videophy": "videophy.csv",
        "lgvq": "lgvq.csv",
    }
    for name, path in paths.items():
        argv += ["--source", f"{name}={tmp_path / path}", "--video-folder", f"{name}={name}"]
    argv += [
        "--video-column",
        "video",
        "--prompt-column",
        "prompt",
        "--score-column",
        "spatial",
        "--score-scale",
        "1",
        "5",
    ]
    assert data_build.main(argv) == 0

    report = json.loads((tmp_path / "corpus" / "report.json").read_text())
    per_source = {name: sum(s["pairs"].values()) for name, s in report["sources"].items()}
    # vf: 4 dimensions where both red videos are valid; t2vqa: 3 of 3 videos; genai: 2 votes;
    # rewardbench: 3 labels; fetv: 3 dimensions; videophy: sa and physics; lgvq: 1.
    assert per_source == {
        "videofeedback": 4,
        "t2vqa": 3,
        "genai_bench": 2,
        "videogen_rewardbench": 3,
        "fetv": 3,
        "videophy": 2,
        "lgvq": 1,
    }
    assert report["sources"]["videofeedback"]["skipped"] == {"score out of range": 1}
    train = load_corpus(tmp_path / "corpus").pairs["train"].to_pandas()
    assert len(train) == 18
    keyed = {(r.source, r.dimension): r for r in train.itertuples()}
    assert keyed[("fetv", "text_alignment")].chosen_video == "fetv/cogvideo/0.mp4"
    assert keyed[("fetv", "text_alignment")].margin == pytest.approx(1.0)  # (5 - 1) / 4
    assert keyed[("fetv", "temporal_consistency")].tie
    assert keyed[("videophy", "text_alignment")].margin == 1.0
    assert keyed[("videophy", "factual_consistency")].tie
    assert keyed[("lgvq", "visual_quality")].margin == pytest.approx(0.75)
    assert keyed[("genai_bench", "overall")].chosen_video in {"genai_bench/r1.mp4", "genai_bench/l2.mp4"}
    assert math.isnan(keyed[("genai_bench", "overall")].chosen_score)
    assert (
        keyed[("videogen_rewardbench", "text_alignment")].chosen_video
        == "videogen_rewardbench/videos/1_B.mp4"
    )
    for row in train.itertuples():
        assert (videos / row.chosen_video).is_file() and (videos / row.rejected_video).is_file()


def test_data_inspect_prints_counts_and_writes_png(broken_t2vqa, capsys):
    root, out = broken_t2vqa, broken_t2vqa / "corpus"
    argv = ["--source", f"t2vqa={root / 'info.txt'}", "--video-root", str(root / "videos"), "--out", str(out)]
    assert (
        data_build.main(
            [*argv, "--min-gap", "0.15", "--validation-fraction", "0.25", "--test-fraction", "0.25"]
        )
        == 0
    )
    capsys.readouterr()
    assert cli_main(["data", "inspect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "t2vqa" in printed and "overall" in printed and "margin quantiles" in printed
    png = out / data_inspect.PLOT_NAME
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = data_inspect.summarise(data_inspect.pairs_frame(out))
    assert summary["counts"]["total"].sum() == 9
    assert summary["ties"]["overall"] == pytest.approx(4 / 9)
    assert summary["margin_quantiles"].iloc[-1] == pytest.approx(60 / 85)  # one − g0 and g7 − g0
