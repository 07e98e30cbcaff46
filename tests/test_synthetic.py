"""The synthetic world against its spec (docs/synthetic-world.md): constants, rendering, defects, corpus, measurements."""

import itertools
import math

import numpy as np
import pytest
import torch

from reward.commands import data_synth
from reward.files import content_hash
from reward.pairs import PAIR_COLUMNS, load_corpus
from reward.synthetic import (
    BACKGROUND,
    CAPTIONS,
    COLORS,
    DIRECTIONS,
    FPS,
    FRAME_SIZE,
    NUM_FRAMES,
    SHAPES,
    SYNTHETIC_DIMENSIONS,
    TEST_COLOR_SHAPES,
    VALIDATION_COLOR_SHAPES,
    Scene,
    add_noise,
    build_synthetic_corpus,
    caption_split,
    describe_video,
    dominant_color,
    dominant_shape,
    draw_scene,
    gaussian_blur,
    iter_synthetic_pairs,
    motion_direction,
    object_centroids,
    object_displacement,
    parse_caption,
    plan_pairs,
    render_pair,
    render_scene,
    render_video,
    scene_centres,
)
from reward.video import read_video, write_video


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def pair_with_defect(caption: str, dimension: str, defect: str):
    """The first seed's pair for `dimension` whose drawn defect is `defect` (render_pair draws it)."""
    for seed in range(100):
        pair = render_pair(caption, dimension, rng(seed))
        if pair.defect == defect:
            return seed, pair
    raise AssertionError(f"no {defect} among 100 seeds")


def test_constants_follow_the_spec():
    assert COLORS == {
        "red": (220, 50, 50),
        "green": (50, 190, 70),
        "blue": (60, 90, 230),
        "yellow": (235, 215, 50),
    }
    assert SHAPES == ("circle", "square", "triangle") and DIRECTIONS == ("left", "right", "up", "down")
    assert (BACKGROUND, NUM_FRAMES, FRAME_SIZE, FPS) == ((96, 96, 96), 16, 64, 8)
    assert SYNTHETIC_DIMENSIONS == (
        "text_alignment",
        "visual_quality",
        "temporal_consistency",
        "dynamic_degree",
    )
    assert len(set(CAPTIONS)) == 48 and "a red circle moving left" in CAPTIONS


def test_splits_are_compositional_and_prompt_disjoint():
    test = {c for c in CAPTIONS if caption_split(c) == "test"}
    expected = {
        f"a {color} {shape} moving {direction}"
        for color, shape in TEST_COLOR_SHAPES
        for direction in DIRECTIONS
    }
    assert test == expected and len(test) == 16
    validation = {c for c in CAPTIONS if caption_split(c) == "validation"}
    assert validation == {
        f"a {color} {shape} moving {direction}"
        for color, shape in VALIDATION_COLOR_SHAPES
        for direction in DIRECTIONS
    }
    assert len(validation) == 4 and not validation & test
    train = {c for c in CAPTIONS if caption_split(c) == "train"}
    assert len(train) == 28
    # Compositional: no validation (color, shape) pair occurs in train, but every word does.
    train_pairs = {parse_caption(c)[:2] for c in train}
    assert not train_pairs & {parse_caption(c)[:2] for c in validation}
    assert {w for c in train for w in parse_caption(c)} == {w for c in CAPTIONS for w in parse_caption(c)}


def test_parse_caption_round_trip_and_errors():
    for caption in CAPTIONS:
        assert "a {} {} moving {}".format(*parse_caption(caption)) == caption
    for bad in ["a purple circle moving left", "a red circle going left", "red circle moving left", ""]:
        with pytest.raises(ValueError, match="not a synthetic-world caption"):
            parse_caption(bad)


def test_render_video_layout_background_and_object():
    frames = render_video("a blue square moving right", rng(0))
    assert frames.shape == (NUM_FRAMES, 3, FRAME_SIZE, FRAME_SIZE) and frames.dtype == torch.uint8
    pixels = frames.permute(0, 2, 3, 1).reshape(-1, 3)  # [F, C, H, W] -> [F*H*W, C]
    colors, counts = pixels.unique(dim=0, return_counts=True)
    assert tuple(colors[counts.argmax()].tolist()) == BACKGROUND  # most pixels are background
    assert (pixels == torch.tensor(COLORS["blue"], dtype=torch.uint8)).all(dim=1).any()  # solid fill


def test_render_scene_draws_the_object_in_another_color_on_the_same_pixels():
    scene = draw_scene("a green triangle moving up", rng(2))
    palette, recolored = render_scene(scene), render_scene(scene, rgb=(240, 30, 220))
    assert dominant_shape(recolored) == "triangle" and motion_direction(recolored) == "up"
    # the same place (anti-aliased edges aside)
    assert np.allclose(object_centroids(palette), object_centroids(recolored), atol=0.7)
    pixels = recolored.permute(0, 2, 3, 1).reshape(-1, 3)  # [F, C, H, W] -> [F*H*W, C]
    assert (pixels == torch.tensor((240, 30, 220), dtype=torch.uint8)).all(dim=1).any()  # solid fill
    assert not (pixels == torch.tensor(COLORS["green"], dtype=torch.uint8)).all(dim=1).any()


def test_same_seed_same_video():
    assert torch.equal(render_video(CAPTIONS[5], rng(3)), render_video(CAPTIONS[5], rng(3)))
    assert not torch.equal(render_video(CAPTIONS[5], rng(3)), render_video(CAPTIONS[5], rng(4)))


@pytest.mark.parametrize(("shape", "direction"), itertools.product(SHAPES, DIRECTIONS))
def test_object_stays_inside_for_extreme_draws(shape, direction):
    for scale, speed, along, cross in itertools.product((0.8, 1.2), (1.5, 2.5), (0.0, 1.0), (0.0, 1.0)):
        scene = Scene("red", shape, direction, scale, speed, along, cross)
        frames = render_scene(scene)
        background = torch.tensor(BACKGROUND, dtype=torch.uint8).view(1, 3, 1, 1)
        changed = (frames != background).any(dim=1)  # [F, H, W]
        # Every frame shows the whole object: the same number of object pixels in each frame
        # (up to anti-aliased edges) and at least 85 % of the object's nominal area.
        areas = changed.flatten(1).sum(dim=1).float()
        assert areas.min() > 0.85 * (areas.max()), (scene, areas)
        centres = scene_centres(scene)
        step = np.diff(centres, axis=0)
        assert np.allclose(np.linalg.norm(step, axis=1), speed)
        # The spec's sizes: circle radius 7, square side 14, triangle base 16 and height 14.
        half = np.array({"circle": (7, 7), "square": (7, 7), "triangle": (8, 7)}[shape]) * scale
        assert (centres - half >= -1e-9).all() and (centres + half <= FRAME_SIZE + 1e-9).all(), scene


def test_measurements_read_back_every_caption_after_h264(tmp_path):
    for index, caption in enumerate(CAPTIONS):
        frames = render_video(caption, rng(index))
        assert describe_video(frames) == caption
        if index % 4 == 0:  # a sample through the codec: yuv420p blurs colour edges
            path = tmp_path / f"{index}.mp4"
            write_video(frames, path, fps=FPS)
            assert describe_video(read_video(path, NUM_FRAMES)) == caption


def test_displacement_measures_speed_and_direction():
    scene = draw_scene("a green circle moving up", rng(1))
    dx, dy = object_displacement(render_scene(scene))
    assert abs(dx) < 0.1 and dy == pytest.approx(-scene.speed, abs=0.1)
    assert motion_direction(render_scene(scene)) == "up"
    # float frames in [0, 1] (the batch layout) measure the same
    assert np.allclose(object_displacement(render_scene(scene).float() / 255), (dx, dy))


def test_measurements_of_an_empty_video():
    blank = torch.tensor(BACKGROUND, dtype=torch.uint8).view(1, 3, 1, 1).expand(NUM_FRAMES, 3, 64, 64)
    assert dominant_color(blank) is None and dominant_shape(blank) is None and motion_direction(blank) is None
    assert describe_video(blank) is None and np.isnan(object_displacement(blank)).all()


def test_text_alignment_changes_exactly_one_attribute():
    changed = set()
    for seed, caption in enumerate(CAPTIONS[:24]):
        pair = render_pair(caption, "text_alignment", rng(seed))
        assert pair.severity == 1.0 and pair.defect == "attribute_swap"
        assert describe_video(pair.chosen) == caption
        seen = describe_video(pair.rejected)
        differ = [i for i, (a, b) in enumerate(zip(parse_caption(caption), parse_caption(seen))) if a != b]
        assert len(differ) == 1, (caption, seen)
        changed.add(differ[0])
    assert changed == {0, 1, 2}  # color, shape and direction swaps all occur


def test_noise_defect_sigma_matches_severity():
    _, pair = pair_with_defect("a red circle moving left", "visual_quality", "noise")
    sigma = 25 + pair.severity * (60 - 25)
    residual = pair.rejected.float() - pair.chosen.float()
    # Clipping at 0 and 255 only trims the tails a little on a mid-gray background.
    assert 0 <= pair.severity <= 1 and residual.std().item() == pytest.approx(sigma, rel=0.1)
    assert 25 * 0.9 < residual.std().item() < 60 * 1.05
    noisy = add_noise(np.full((4, 8, 8, 3), 250.0), 40.0, rng(0))
    assert noisy.max() == 255.0 and noisy.min() >= 0.0  # clipped to the pixel range


def test_blur_defect_smooths_and_keeps_the_mean():
    _, pair = pair_with_defect("a yellow square moving down", "visual_quality", "blur")
    chosen, rejected = pair.chosen.float(), pair.rejected.float()
    gradient = lambda x: (x[..., 1:] - x[..., :-1]).abs().max().item()  # noqa: E731
    assert 0 <= pair.severity <= 1 and gradient(rejected) < 0.6 * gradient(chosen)
    assert rejected.mean().item() == pytest.approx(chosen.mean().item(), abs=0.5)
    # Blur acts within frames only: a one-frame impulse stays in its frame.
    impulse = np.zeros((3, 33, 33, 3))  # wide enough that no mass reaches the border
    impulse[1, 16, 16] = 255
    blurred = gaussian_blur(impulse, 2.0)
    assert blurred[0].max() == 0 and blurred[2].max() == 0 and blurred[1].sum() == pytest.approx(3 * 255)


def test_flicker_scales_each_frame_within_range():
    _, pair = pair_with_defect("a blue triangle moving left", "temporal_consistency", "flicker")
    # The gray background (96) never clips, so a corner pixel gives each frame's factor.
    factors = pair.rejected[:, 0, 0, 0].float() / BACKGROUND[0]
    assert ((factors > 0.5 - 0.01) & (factors < 1.5 + 0.01)).all()
    assert pair.severity == pytest.approx((factors - 1).abs().max().item() / 0.5, abs=0.02)


def test_teleport_moves_the_object_on_severity_frames():
    _, pair = pair_with_defect("a green triangle moving right", "temporal_consistency", "teleport")
    differs = (pair.rejected != pair.chosen).flatten(1).any(dim=1)  # [F]
    assert 4 <= differs.sum().item() <= 8 and differs.sum().item() == round(pair.severity * NUM_FRAMES)


def test_freeze_holds_the_start_frame():
    pair = render_pair("a red square moving up", "dynamic_degree", rng(0))
    assert pair.defect == "freeze" and pair.severity == 1.0
    assert torch.equal(pair.rejected, pair.chosen[:1].expand_as(pair.chosen))
    assert np.allclose(object_displacement(pair.rejected), 0) and motion_direction(pair.rejected) is None
    assert motion_direction(pair.chosen) == "up"


def test_render_pair_rejects_unknown_dimension():
    with pytest.raises(ValueError, match="not a synthetic dimension"):
        render_pair(CAPTIONS[0], "overall", rng(0))


def test_plan_counts_splits_and_seeds():
    specs = plan_pairs(pairs_per_dimension=48, seed=7, alignment_factor=4)
    per = {
        (d, s): sum(1 for x in specs if (x.dimension, x.split) == (d, s))
        for d in SYNTHETIC_DIMENSIONS
        for s in ("train", "validation", "test")
    }
    assert per[("visual_quality", "test")] == 16 and per[("visual_quality", "validation")] == 4
    assert per[("visual_quality", "train")] == 28 and per[("text_alignment", "test")] == 64
    assert sum(v for (d, _), v in per.items() if d == "text_alignment") == 4 * 48
    assert all(caption_split(x.caption) == x.split for x in specs)
    assert len({x.entropy for x in specs}) == len(specs)
    # 48 pairs over 28 train captions: each caption once or twice
    counts = np.unique(
        [x.caption for x in specs if (x.dimension, x.split) == ("dynamic_degree", "train")],
        return_counts=True,
    )[1]
    assert len(counts) == 28 and counts.max() - counts.min() <= 1
    with pytest.raises(ValueError, match="at least 3 pairs"):
        plan_pairs(2, seed=0)


def test_in_memory_pairs_are_the_corpus_pairs():
    first = list(iter_synthetic_pairs(3, seed=1))
    again = list(iter_synthetic_pairs(3, seed=1))
    assert len(first) == 4 * 3
    for (spec, pair), (spec2, pair2) in zip(first, again):
        assert (
            spec == spec2
            and torch.equal(pair.chosen, pair2.chosen)
            and torch.equal(pair.rejected, pair2.rejected)
        )
        assert 0.0 <= pair.severity <= 1.0 and not torch.equal(pair.chosen, pair.rejected)


def corpus_rows(path):
    corpus = load_corpus(path)
    rows = {split: corpus.pairs[split].to_list() for split in corpus.pairs}
    hashes = {
        row[column]: content_hash(corpus.video_path(row[column]))
        for split_rows in rows.values()
        for row in split_rows
        for column in ("chosen_video", "rejected_video")
    }
    return corpus, rows, hashes


def test_corpus_builds_loads_and_is_the_same_for_any_worker_count(tmp_path):
    one = build_synthetic_corpus(tmp_path / "one", pairs_per_dimension=8, seed=0, num_workers=1)
    two = build_synthetic_corpus(tmp_path / "two", pairs_per_dimension=8, seed=0, num_workers=2)
    corpus, rows, hashes = corpus_rows(one)
    _, rows2, hashes2 = corpus_rows(two)
    assert hashes == hashes2 and len(hashes) == 2 * 4 * 8
    for split in rows:
        for row, row2 in zip(rows[split], rows2[split], strict=True):
            assert math.isnan(row.pop("chosen_score")) and math.isnan(row2.pop("chosen_score"))
            assert math.isnan(row.pop("rejected_score")) and math.isnan(row2.pop("rejected_score"))
            assert row == row2
    assert set(PAIR_COLUMNS) <= set(corpus.pairs["train"].column_names)
    prompts = {split: {row["prompt"] for row in split_rows} for split, split_rows in rows.items()}
    assert not prompts["train"] & prompts["test"] and not prompts["train"] & prompts["validation"]
    assert all(caption_split(p) == split for split, ps in prompts.items() for p in ps)
    for split_rows in rows.values():
        for row in split_rows:
            assert (row["source"], row["kind"], row["tie"]) == ("synthetic", "same_prompt", False)
            assert 0.0 <= row["margin"] <= 1.0
    video = read_video(corpus.video_path(rows["test"][0]["chosen_video"]), NUM_FRAMES)
    assert video.shape == (NUM_FRAMES, 3, FRAME_SIZE, FRAME_SIZE)
    report = (one / "report.json").read_text()
    assert '"text_alignment": 4' in report and '"seed": 0' in report


def test_corpus_resumes_and_refuses_other_parameters(tmp_path):
    out = build_synthetic_corpus(tmp_path / "c", pairs_per_dimension=3, seed=2, num_workers=1)
    _, _, hashes = corpus_rows(out)
    lost = next(iter(hashes))
    (out / "videos" / lost).unlink()  # an interrupted build: one video missing
    build_synthetic_corpus(out, pairs_per_dimension=3, seed=2, num_workers=1)
    assert corpus_rows(out)[2] == hashes
    with pytest.raises(ValueError, match="choose another --out"):
        build_synthetic_corpus(out, pairs_per_dimension=3, seed=3, num_workers=1)


def test_data_synth_command_prints_counts(tmp_path, capsys):
    assert (
        data_synth.main(
            [
                "--out",
                str(tmp_path / "c"),
                "--pairs-per-dimension",
                "3",
                "--workers",
                "1",
                "--alignment-factor",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "text_alignment" in printed and "15 pairs" in printed
    assert (
        len(load_corpus(tmp_path / "c").pairs["test"]) == 2 + 3
    )  # 2 alignment pairs + 1 per other dimension
