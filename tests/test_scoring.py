"""Scoring: `load_scorer` on a saved tiny CleveRewardModel, the score-function contract, and `clevereward score`."""

import json

import pytest
import torch

from align.cli import main as cli
from reward import load_scorer
from reward.pairs import load_corpus
from reward.scoring import Scorer
from reward.video import VideoReadError, read_video


@pytest.fixture(scope="module")
def scorer(tiny_reward_model_dir):
    return load_scorer(tiny_reward_model_dir, device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def videos(synthetic_corpus_dir):
    """Three (path, prompt) of the test split: two videos of one pair and one of another."""
    corpus = load_corpus(synthetic_corpus_dir)
    test = corpus.pairs["test"]
    rows = [(test[0]["chosen_video"], test[0]["prompt"]), (test[0]["rejected_video"], test[0]["prompt"])]
    rows.append((test[1]["chosen_video"], test[1]["prompt"]))
    return [str(corpus.video_path(v)) for v, _ in rows], [p for _, p in rows]


def test_load_scorer_builds_the_saved_model_in_eval_mode(scorer, tiny_reward_model_dir):
    assert isinstance(scorer, Scorer)
    assert not scorer.model.training
    assert scorer.num_frames == 8 and scorer.frame_size == (32, 32)
    assert scorer.dimensions == ["text_alignment", "visual_quality", "temporal_consistency", "dynamic_degree"]
    assert scorer.processing_class("rate a red circle")["input_ids"]  # the saved word tokenizer


def test_paths_and_tensors_give_the_same_scores(scorer, videos):
    paths, prompts = videos
    tensors = torch.stack([read_video(p, 8, size=(32, 32)) for p in paths]).float() / 255  # [B, F, C, H, W]
    from_paths = scorer.score(paths, prompts, "visual_quality")
    from_tensors = scorer.score(tensors, prompts, "visual_quality")
    assert from_paths.dtype == torch.float32 and from_paths.shape == (3,)
    assert not from_paths.requires_grad
    torch.testing.assert_close(from_paths, from_tensors)
    torch.testing.assert_close(scorer(paths, prompts, "visual_quality"), from_paths)  # callable = score


def test_batch_size_does_not_change_scores(tiny_reward_model_dir, scorer, videos):
    paths, prompts = videos
    one_at_a_time = load_scorer(tiny_reward_model_dir, device="cpu", batch_size=1)
    torch.testing.assert_close(one_at_a_time.score(paths, prompts), scorer.score(paths, prompts))


def test_score_dimensions_equals_separate_calls_and_none_is_their_mean(scorer, videos):
    paths, prompts = videos
    together = scorer.score_dimensions(paths, prompts, scorer.dimensions)
    assert list(together) == scorer.dimensions
    separate = {d: scorer.score(paths, prompts, d) for d in scorer.dimensions}
    for d in scorer.dimensions:
        torch.testing.assert_close(together[d], separate[d])
    mean = torch.stack(list(separate.values())).mean(0)
    torch.testing.assert_close(scorer.score(paths, prompts), mean)
    # the dimensions are really asked: different questions, different rewards
    assert not torch.equal(separate["visual_quality"], separate["text_alignment"])


def test_score_matches_the_model_hook(scorer, videos):
    paths, prompts = videos
    tensors = torch.stack([scorer.read_video(p) for p in paths])
    questions = [[scorer.question("dynamic_degree", p)] for p in prompts]
    with torch.no_grad():
        expected = scorer.model.score_questions(tensors, questions, scorer.processing_class)[:, 0]
    torch.testing.assert_close(scorer.score(tensors, prompts, "dynamic_degree"), expected)


def test_other_frame_counts_and_sizes_are_left_to_the_model(scorer, videos):
    _, prompts = videos
    generated = torch.rand(3, 5, 3, 24, 40)  # [B, F, C, H, W], not the model's 8 frames at 32x32
    assert scorer.score(generated, prompts, "overall").shape == (3,)


def test_bad_inputs_raise_clear_errors(scorer, videos):
    paths, prompts = videos
    good = torch.rand(3, 8, 3, 32, 32)
    with pytest.raises(ValueError, match="3 videos but 2 prompts"):
        scorer.score(good, prompts[:2], "visual_quality")
    with pytest.raises(ValueError, match="float in \\[0, 1\\], got torch.uint8"):
        scorer.score((good * 255).to(torch.uint8), prompts, "visual_quality")
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        scorer.score(good * 2, prompts, "visual_quality")
    with pytest.raises(ValueError, match="\\[B, F, 3, H, W\\]"):
        scorer.score(good[:, 0], prompts, "visual_quality")
    with pytest.raises(ValueError, match="unknown dimension 'beauty'"):
        scorer.score(good, prompts, "beauty")
    with pytest.raises(TypeError, match="not a single string"):
        scorer.score(good[:1], prompts[0], "visual_quality")
    with pytest.raises(VideoReadError, match="no such file"):
        scorer.score([paths[0], "missing.mp4"], prompts[:2], "visual_quality")


def test_load_scorer_rejects_what_is_not_a_reward_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        load_scorer(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_scorer(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert'"):
        load_scorer(tmp_path)


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_score_command_prints_one_json_line_per_video(tiny_reward_model_dir, scorer, videos, capsys):
    paths, prompts = videos
    code = cli(["score", "--model", str(tiny_reward_model_dir), "--videos", *paths, "--prompts", *prompts])
    assert code == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [line["video"] for line in lines] == paths and [line["prompt"] for line in lines] == prompts
    expected = scorer.score_dimensions(paths, prompts, scorer.dimensions)
    for b, line in enumerate(lines):
        assert list(line["scores"]) == [*scorer.dimensions, "mean"]
        for d in scorer.dimensions:
            assert line["scores"][d] == pytest.approx(expected[d][b].item(), abs=1e-5)


def test_score_command_broadcasts_one_prompt_and_reports_unreadable_videos(
    tiny_reward_model_dir, scorer, videos, tmp_path, capsys
):
    paths, prompts = videos
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    argv = ["score", "--model", str(tiny_reward_model_dir), "--videos", paths[0], str(broken), paths[1]]
    code = cli([*argv, "--prompts", prompts[0], "--dimension", "visual_quality", "dynamic_degree"])
    captured = capsys.readouterr()
    assert code == 1 and "1 of 3 videos could not be read" in captured.err
    lines = _json_lines(captured.out)
    assert "not a readable video" in lines[1]["error"] and lines[1]["video"] == str(broken)
    expected = scorer.score([paths[0], paths[1]], [prompts[0]] * 2, "dynamic_degree")
    assert [lines[0]["scores"]["dynamic_degree"], lines[2]["scores"]["dynamic_degree"]] == pytest.approx(
        expected.tolist(), abs=1e-5
    )
    assert list(lines[0]["scores"]) == ["visual_quality", "dynamic_degree"]  # no "mean" for chosen dimensions


def test_score_command_rejects_mismatched_prompt_counts(tiny_reward_model_dir, videos):
    paths, prompts = videos
    with pytest.raises(SystemExit):
        cli(["score", "--model", str(tiny_reward_model_dir), "--videos", *paths, "--prompts", *prompts[:2]])
