"""The graded world (synthetic-v2): true qualities, and five simulated sources read back through
the real `clevereward data build` adapters, checked pair by pair against the truth."""

import dataclasses

import numpy as np
import pytest

from reward.build import BuildConfig, build_corpus
from reward.commands import data_simulate
from reward.graded import (
    MODELS,
    OVERALL_WEIGHTS,
    SOURCES,
    Defects,
    RaterModel,
    draw_defects,
    label_agreement,
    read_simulated,
    read_truth,
    render_graded,
    simulate_sources,
    true_qualities,
)

# Every record in one split: agreement is a property of the whole source.
EVERYTHING = BuildConfig(validation_fraction=0.0, test_fraction=0.0, check_videos=True)
SMALL = tuple(dataclasses.replace(spec, prompts=3, videos_per_prompt=4) for spec in SOURCES)
NOISELESS = tuple(
    dataclasses.replace(spec, raters=RaterModel(count=spec.raters.count, noise=0.0)) for spec in SMALL
)


def test_true_qualities_by_hand():
    q = true_qualities(Defects(noise=0.4, blur=0.2, flicker=0.5, freeze=1.0, jumps=0.0, wrong_attributes=1))
    assert q["visual_quality"] == pytest.approx(0.7)  # 1 - (0.4 + 0.2) / 2
    assert q["temporal_consistency"] == pytest.approx(0.5)
    assert q["dynamic_degree"] == pytest.approx(0.0)
    assert q["text_alignment"] == pytest.approx(0.5)  # one of two attributes the scale allows wrong
    assert q["factual_consistency"] == pytest.approx(1.0)
    # 0.25 * 0.7 + 0.2 * 0.5 + 0.1 * 0 + 0.3 * 0.5 + 0.15 * 1
    assert q["overall"] == pytest.approx(0.575)
    assert sum(OVERALL_WEIGHTS.values()) == pytest.approx(1.0)


def test_defects_change_the_pixels_they_should():
    caption = "a red circle moving left"
    clean = render_graded(caption, Defects(), np.random.default_rng(0)).float()
    frozen = render_graded(caption, Defects(freeze=1.0), np.random.default_rng(0)).float()
    noisy = render_graded(caption, Defects(noise=1.0), np.random.default_rng(0)).float()
    assert (frozen - frozen[:1]).abs().max() == 0  # a full freeze: every frame the first
    assert (clean - clean[:1]).abs().max() > 0
    assert (noisy - clean).std() > 30  # 60 levels of noise, clipped at 0 / 255
    draws = [draw_defects(MODELS["static"], np.random.default_rng(s)).freeze for s in range(200)]
    assert 0.3 < np.mean(draws) < 0.6  # present 60 % of the time, mean severity 0.7 then


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("graded")
    return out, simulate_sources(out, seed=0, sources=SMALL, log=lambda *_: None)


def _pairs(out, name):
    pairs, report = build_corpus([read_simulated(out, name)], out, EVERYTHING)
    return pairs["train"], report


def test_every_source_reads_back_through_its_adapter_and_agrees_with_the_truth(small_world):
    out, manifest = small_world
    truth = read_truth(out)
    assert set(manifest["sources"]) == {
        "videofeedback",
        "t2vqa",
        "genai_bench",
        "videogen_rewardbench",
        "fetv",
    }
    for name in manifest["sources"]:
        pairs, report = _pairs(out, name)
        assert report["skipped_total"] == 0, (name, report["skipped"])
        stats = label_agreement(pairs, truth)
        assert stats["pairs"] > stats["ties"], name
        # noisy raters, but informative ones (a flipped A / B would give ~0.2)
        assert 0.6 < stats["agreement"], (name, stats)
    for name in manifest["benchmarks"]:  # labelled from the truth itself
        pairs, _ = _pairs(out, name)
        assert label_agreement(pairs, truth)["agreement"] == 1.0
        assert set(pairs["dimension"]) == {
            "visual_quality",
            "temporal_consistency",
            "text_alignment",
            "overall",
        }


def test_noiseless_unbiased_raters_order_every_pair_as_the_truth_does(tmp_path):
    """With rater noise 0 and no bias, each format's labels (integer ratings, MOS, votes, A / B / same)
    must order every non-tie pair exactly as the true qualities do."""
    simulate_sources(tmp_path, seed=1, sources=NOISELESS, log=lambda *_: None)
    truth = read_truth(tmp_path)
    for spec in NOISELESS:
        pairs, _ = _pairs(tmp_path, spec.name)
        if spec.name == "t2vqa":  # its MOS weighs the dimensions its own way: compare with that
            continue
        assert label_agreement(pairs, truth)["agreement"] == 1.0, spec.name


def test_benchmark_captions_are_held_out_of_every_source(small_world):
    from reward.synthetic import caption_split

    out, _ = small_world
    by_folder = {}
    for row in read_truth(out).values():
        by_folder.setdefault(row["video"].split("/")[0], set()).add(caption_split(row["prompt"]))
    assert by_folder.pop("test") == {"test"} and by_folder.pop("validation") == {"validation"}
    assert all(splits == {"train"} for splits in by_folder.values())


def test_same_seed_same_world(tmp_path):
    one = simulate_sources(tmp_path / "a", seed=3, sources=SMALL[:1], log=lambda *_: None)
    two = simulate_sources(tmp_path / "b", seed=3, sources=SMALL[:1], log=lambda *_: None)
    assert one == two
    assert (tmp_path / "a" / "truth.jsonl").read_text() == (tmp_path / "b" / "truth.jsonl").read_text()


def test_data_simulate_command_prints_agreement(tmp_path, capsys):
    assert (
        data_simulate.main(["--out", str(tmp_path / "g"), "--prompts", "2", "--videos-per-prompt", "3"]) == 0
    )
    out = capsys.readouterr().out
    assert "agree with truth" in out and "fetv" in out and "test" in out
    for bad in (["--seed", "-1"], ["--videos-per-prompt", "1"]):
        with pytest.raises(SystemExit):
            data_simulate.main(["--out", str(tmp_path / "h"), *bad])
        assert "error:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="29 prompts asked of the train split, which has 28"):
        data_simulate.main(["--out", str(tmp_path / "h"), "--prompts", "29"])
