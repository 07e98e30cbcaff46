"""Source adapters on small files in each source's exact published format."""

import math

import pytest
from fixtures_videocross import (
    write_fetv,
    write_genai_bench,
    write_generic_csv,
    write_rewardbench,
    write_t2vqa,
    write_videofeedback,
    write_videophy,
)

from reward.sources import (
    BINARY_SCALE,
    FETV_SCALE,
    LABEL_MARGIN,
    VIDEOFEEDBACK_SCALE,
    ColumnMapping,
    read_source,
    video_name,
    with_video_folder,
)

VF_SCORES = {
    "visual quality": 3,
    "temporal consistency": 2,
    "dynamic degree": 4,
    "text-to-video alignment": 1,
    "factual consistency": 3,
}


def reasons(data):
    return sorted((s.where, s.reason) for s in data.skipped)


def test_video_name_cleans_paths_and_urls():
    assert video_name("https://host/a/b/x%201.mp4?download=1") == "x 1.mp4"
    assert video_name("./videos/example_1_A.mp4") == "videos/example_1_A.mp4"
    assert video_name("clip_7", add_suffix=True) == "clip_7.mp4"
    assert video_name("clip_7.mp4", add_suffix=True) == "clip_7.mp4"
    for bad in ("../outside.mp4", "/abs/x.mp4", "", None, float("nan")):
        with pytest.raises(ValueError):
            video_name(bad)


def test_videofeedback_keeps_each_valid_dimension(tmp_path):
    path = tmp_path / "test.parquet"
    write_videofeedback(
        path,
        [
            {"id": "1", "prompt": "a red  circle\tmoving left", "scores": VF_SCORES},
            {
                "id": "2",
                "prompt": "a red circle moving left",
                "scores": {**VF_SCORES, "dynamic degree": math.nan, "visual quality": 5},
            },
            {"id": "3", "prompt": "  ", "scores": VF_SCORES},
        ],
    )
    data = read_source("videofeedback", path)
    assert data.rows == 3
    assert len(data.scores) == 5 + 3
    first = {r.dimension: r.score for r in data.scores if r.video == "1.mp4"}
    assert first == {
        "visual_quality": 3,
        "temporal_consistency": 2,
        "dynamic_degree": 4,
        "text_alignment": 1,
        "factual_consistency": 3,
    }
    assert {r.prompt for r in data.scores} == {"a red circle moving left"}  # whitespace collapsed
    assert reasons(data) == [
        ("test.parquet:row 1 (dynamic degree)", "nan score"),
        ("test.parquet:row 1 (visual quality)", "score out of range"),
        ("test.parquet:row 2", "empty prompt"),
    ]
    assert data.scales["visual_quality"] == VIDEOFEEDBACK_SCALE


def test_videofeedback_missing_column_names_the_file(tmp_path):
    path = tmp_path / "vf.parquet"
    write_videofeedback(path, [{"id": "1", "prompt": "p", "scores": {"visual quality": 3}}])
    with pytest.raises(ValueError, match=r"vf\.parquet: missing column\(s\) \['temporal consistency'"):
        read_source("videofeedback", path)


def test_t2vqa_lines_and_observed_scale(tmp_path):
    path = tmp_path / "info.txt"
    write_t2vqa(
        path,
        [
            ("0001", "a cat playing piano", 55.5),
            ("0002.mp4", "a sign that says | stop |", 70.25),
            ("0003", "a dog", "nan"),
            "no pipes on this line",
            ("0004", "", 40),
            ("0005", "a bird", "loud"),
            ("0006", "a fish", 12),
        ],
    )
    data = read_source("t2vqa", path)
    assert data.rows == 7
    assert [(r.video, r.prompt, r.score, r.dimension) for r in data.scores] == [
        ("0001.mp4", "a cat playing piano", 55.5, "overall"),
        ("0002.mp4", "a sign that says | stop |", 70.25, "overall"),
        ("0006.mp4", "a fish", 12.0, "overall"),
    ]
    assert reasons(data) == [
        ("info.txt:line 3", "nan score"),
        ("info.txt:line 4", "unparseable line"),
        ("info.txt:line 5", "empty prompt"),
        ("info.txt:line 6", "unparseable score"),
    ]
    assert data.scales == {"overall": (12.0, 70.25)}


def test_genai_bench_votes(tmp_path):
    path = tmp_path / "video_generation.parquet"
    write_genai_bench(
        path,
        [
            ("p1", "l1.mp4", "r1.mp4", "leftvote"),
            ("p2", "l2.mp4", "r2.mp4", "rightvote"),
            ("p3", "l3.mp4", "r3.mp4", "tievote"),
            ("p4", "l4.mp4", "r4.mp4", "bothbad_vote"),
            ("p5", "l5.mp4", "r5.mp4", "upvote"),
        ],
    )
    data = read_source("genai_bench", path)
    got = [(p.prompt, p.chosen_video, p.rejected_video, p.tie, p.margin, p.dimension) for p in data.pairs]
    assert got == [
        ("p1", "l1.mp4", "r1.mp4", False, LABEL_MARGIN, "overall"),
        ("p2", "r2.mp4", "l2.mp4", False, LABEL_MARGIN, "overall"),
        ("p3", "l3.mp4", "r3.mp4", True, 0.0, "overall"),
        ("p4", "l4.mp4", "r4.mp4", True, 0.0, "overall"),
    ]
    assert all(math.isnan(p.chosen_score) for p in data.pairs)
    assert reasons(data) == [("video_generation.parquet:row 4", "invalid label")]


def test_rewardbench_labels_and_mos_margins(tmp_path):
    path = tmp_path / "videogen-rewardbench.csv"
    write_rewardbench(
        path,
        [
            {"path_A": "./videos/1_A.mp4", "path_B": "./videos/1_B.mp4", "prompt": "p1", "VQ": "A", "MQ": "B", "TA": "same",
             "Overall": "A", "MOS_A_VQ": 4.0, "MOS_B_VQ": 2.0},
            {"path_A": "./videos/2_A.mp4", "path_B": "./videos/2_B.mp4", "prompt": "p2", "VQ": "B", "MQ": "invalid", "TA": "A",
             "Overall": None, "MOS_A_VQ": 1.0, "MOS_B_VQ": 5.0},
        ],
    )  # fmt: skip
    data = read_source("videogen_rewardbench", path)
    got = {(p.prompt, p.dimension): (p.chosen_video, p.rejected_video, p.tie, p.margin) for p in data.pairs}
    # VQ margins: MOS normalised by the observed range [1, 5]: (4 - 2) / 4 and (5 - 1) / 4.
    assert got == {
        ("p1", "visual_quality"): ("videos/1_A.mp4", "videos/1_B.mp4", False, 0.5),
        ("p1", "temporal_consistency"): ("videos/1_B.mp4", "videos/1_A.mp4", False, LABEL_MARGIN),
        ("p1", "text_alignment"): ("videos/1_A.mp4", "videos/1_B.mp4", True, 0.0),
        ("p1", "overall"): ("videos/1_A.mp4", "videos/1_B.mp4", False, LABEL_MARGIN),
        ("p2", "visual_quality"): ("videos/2_B.mp4", "videos/2_A.mp4", False, 1.0),
        ("p2", "text_alignment"): ("videos/2_A.mp4", "videos/2_B.mp4", False, LABEL_MARGIN),
    }
    vq = next(p for p in data.pairs if p.prompt == "p1" and p.dimension == "visual_quality")
    assert (vq.chosen_score, vq.rejected_score) == (0.75, 0.25)
    assert reasons(data) == [
        ("videogen-rewardbench.csv:line 3 (MQ)", "invalid label"),
        ("videogen-rewardbench.csv:line 3 (Overall)", "invalid label"),
    ]


def test_videoalign_alias_names_records(tmp_path):
    path = tmp_path / "data.csv"
    write_rewardbench(
        path, [{"path_A": "a.mp4", "path_B": "b.mp4", "prompt": "p", "VQ": "A", "MQ": "A", "TA": "A"}]
    )
    data = read_source("videoalign", path)
    assert data.name == "videoalign" and {p.source for p in data.pairs} == {"videoalign"}
    assert len(data.pairs) == 3


def test_fetv_averages_raters(tmp_path):
    def rating(index, s, t, a):
        return {
            str(index): {"video_id": 1000 + index, "static_quality": s, "temporal_quality": t, "alignment": a}
        }

    write_fetv(
        tmp_path / "FETV",
        ["a red circle moving left", "a blue square moving up"],
        {
            0: {"cogvideo": [rating(0, 5, 4, 3), rating(1, 2, 2, 2)], "zeroscope": [rating(0, 1, 1, 1)]},
            1: {"cogvideo": [rating(0, 4, 4, 5), rating(1, 2, 6, 2)]},
            2: {"cogvideo": [rating(0, 3, 4, 4), "{not json", rating(7, 3, 3, 3)]},
        },
    )
    data = read_source("fetv", tmp_path / "FETV")
    got = {(r.video, r.dimension): (r.score, r.rater_count) for r in data.scores}
    assert got[("cogvideo/0.mp4", "visual_quality")] == (4.0, 3)
    assert got[("cogvideo/0.mp4", "text_alignment")] == (4.0, 3)
    assert got[("cogvideo/1.mp4", "temporal_consistency")] == (2.0, 1)  # rater 1 gave 6: out of range
    assert got[("cogvideo/1.mp4", "visual_quality")] == (2.0, 2)
    assert got[("zeroscope/0.mp4", "visual_quality")] == (1.0, 1)
    assert len(data.scores) == 3 * 3
    assert {r.prompt for r in data.scores if r.video.endswith("/1.mp4")} == {"a blue square moving up"}
    assert data.rows == 8
    assert sorted(s.reason for s in data.skipped) == [
        "empty prompt",
        "score out of range",
        "unparseable line",
    ]
    assert data.scales["temporal_consistency"] == FETV_SCALE


def test_fetv_needs_its_prompt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetv_data.json"):
        read_source("fetv", tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_videophy_binary_columns(tmp_path, split):
    path = tmp_path / f"videophy_{split}.csv"
    write_videophy(path, [("v1.mp4", "a ball bounces", 1, 0), ("v2.mp4", "a ball bounces", 0, 0.5)], split)
    data = read_source("videophy", path)
    got = sorted((r.video, r.dimension, r.score) for r in data.scores)
    assert got == [
        ("v1.mp4", "factual_consistency", 0.0),
        ("v1.mp4", "text_alignment", 1.0),
        ("v2.mp4", "text_alignment", 0.0),
    ]
    assert [(s.reason, s.detail.split("=")[1]) for s in data.skipped] == [
        ("score out of range", " 0.5 is not an integer in [0, 1]")
    ]
    assert data.scales == {"text_alignment": BINARY_SCALE, "factual_consistency": BINARY_SCALE}


def test_generic_csv_with_yaml_mapping(tmp_path):
    table = tmp_path / "lgvq.csv"
    write_generic_csv(
        table,
        [
            {"name": "a", "text": "a cat", "spatial": 3.5, "temporal": 2.0, "alignment": 4.0},
            {"name": "b", "text": "a cat", "spatial": 9.0, "temporal": None, "alignment": 1.0},
        ],
    )
    mapping = tmp_path / "lgvq.yaml"
    mapping.write_text(
        "video: name\nprompt: text\nscores: [spatial, temporal, alignment]\nscale: [1, 5]\nadd_suffix: true\n"
    )
    data = read_source("lgvq", table, ColumnMapping.from_yaml(mapping))
    got = sorted((r.video, r.dimension, r.score) for r in data.scores)
    assert got == [
        ("a.mp4", "temporal_consistency", 2.0),
        ("a.mp4", "text_alignment", 4.0),
        ("a.mp4", "visual_quality", 3.5),
        ("b.mp4", "text_alignment", 1.0),
    ]
    assert sorted(s.reason for s in data.skipped) == ["nan score", "score out of range"]
    assert data.scales["visual_quality"] == (1.0, 5.0)


def test_generic_jsonl_skips_unparseable_lines_and_observes_scale(tmp_path):
    table = tmp_path / "scores.jsonl"
    table.write_text(
        '{"v": "x.mp4", "p": "a dog", "q": 10}\nnot json\n\n{"v": "y.mp4", "p": "a dog", "q": 30}\n'
    )
    mapping = ColumnMapping(video="v", prompt="p", scores={"q": "overall"})
    data = read_source("mine", table, mapping)
    assert [(r.video, r.score) for r in data.scores] == [("x.mp4", 10.0), ("y.mp4", 30.0)]
    assert reasons(data) == [("scores.jsonl:line 2", "unparseable line")]
    assert data.scales == {"overall": (10.0, 30.0)} and data.rows == 3


def test_mapping_yaml_errors_and_unknown_source(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("video: v\nscores: {q: overall}\nextra: 1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown keys \['extra'\], missing keys \['prompt'\]"):
        ColumnMapping.from_yaml(bad)
    table = tmp_path / "t.csv"
    write_generic_csv(table, [{"v": "x", "p": "y", "q": 1}])
    with pytest.raises(ValueError, match="not built in"):
        read_source("mystery", table)
    with pytest.raises(ValueError, match="unknown dimension 'sharpness'"):
        read_source("mystery", table, ColumnMapping("v", "p", {"q": "sharpness"}))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_source("t2vqa", tmp_path / "nope.txt")


def test_with_video_folder_prefixes_paths(tmp_path):
    path = tmp_path / "data.csv"
    write_rewardbench(
        path, [{"path_A": "a.mp4", "path_B": "b.mp4", "prompt": "p", "VQ": "A", "MQ": "A", "TA": "A"}]
    )
    data = with_video_folder(read_source("videoalign", path), "videoalign")
    assert {(p.chosen_video, p.rejected_video) for p in data.pairs} == {
        ("videoalign/a.mp4", "videoalign/b.mp4")
    }
