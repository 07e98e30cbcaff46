"""Evaluation: metrics on hand-computed numbers, and `clevereward eval` end to end on the synthetic world."""

import json
import math
import shutil

import datasets
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from align.cli import main as cli
from reward import load_scorer
from reward.evaluate import (
    choose_tie_threshold,
    correlations,
    evaluate_corpus,
    format_table,
    pair_metrics,
    pairwise_accuracy,
    score_pairs,
    summarize,
)
from reward.pairs import load_corpus, save_corpus

# diffs chosen - rejected = [2, -1, 0, 0.25, 0.25] (binary-exact), the last two pairs are ties
CHOSEN = [3.0, 1.0, 2.0, 5.0, 0.5]
REJECTED = [1.0, 2.0, 2.0, 4.75, 0.25]
TIE = [False, False, False, True, True]


def test_accuracy_without_ties_counts_non_tie_pairs_and_equal_rewards_as_wrong():
    # non-tie diffs 2, -1, 0 -> only the first is right
    assert pairwise_accuracy(CHOSEN, REJECTED, TIE) == pytest.approx(1 / 3)
    assert pairwise_accuracy([2.0, 3.0], [1.0, 1.0], [False, False]) == 1.0
    assert math.isnan(pairwise_accuracy([1.0], [1.0], [True]))  # no non-tie pair


def test_accuracy_with_ties_is_three_way_over_all_pairs():
    # tau = 0.5: pair 0 right (2 > 0.5), 1 wrong, 2 predicted tie but is not, 3 and 4 predicted ties: right
    assert pairwise_accuracy(CHOSEN, REJECTED, TIE, threshold=0.5) == pytest.approx(3 / 5)
    # tau = 0: only exact equality predicts a tie -> pair 0 right, the ties (gap 0.25) wrong
    assert pairwise_accuracy(CHOSEN, REJECTED, TIE, threshold=0.0) == pytest.approx(1 / 5)
    # tau = 2: everything predicted a tie -> exactly the two ties are right
    assert pairwise_accuracy(CHOSEN, REJECTED, TIE, threshold=2.0) == pytest.approx(2 / 5)
    assert math.isnan(pairwise_accuracy([], [], [], threshold=0.1))


def test_choose_tie_threshold_takes_the_smallest_best_threshold():
    # candidates 0 -> 1 right, 0.25 -> 3, 1 -> 3, 2 -> 2: the smallest best is 0.25
    assert choose_tie_threshold(CHOSEN, REJECTED, TIE) == 0.25
    # no ties: predicting one can only lose
    assert choose_tie_threshold([1.0, 0.0], [0.0, 1.0], [False, False]) == 0.0


def test_choose_tie_threshold_matches_brute_force():
    rng = np.random.default_rng(0)
    chosen, rejected = rng.normal(size=200), rng.normal(size=200)
    tie = rng.random(200) < 0.3
    tau = choose_tie_threshold(chosen, rejected, tie)
    candidates = np.concatenate([[0.0], np.abs(chosen - rejected)])
    best = max(pairwise_accuracy(chosen, rejected, tie, t) for t in candidates)
    assert pairwise_accuracy(chosen, rejected, tie, tau) == best
    assert tau == min(t for t in candidates if pairwise_accuracy(chosen, rejected, tie, t) == best)


def test_correlations_on_known_rankings():
    perfect = correlations([1, 2, 3, 4], [10, 20, 30, 40])
    assert perfect == pytest.approx({"srcc": 1.0, "krcc": 1.0, "plcc": 1.0, "n": 4})
    reversed_ = correlations([1, 2, 3, 4], [40, 30, 20, 10])
    assert reversed_ == pytest.approx({"srcc": -1.0, "krcc": -1.0, "plcc": -1.0, "n": 4})
    # one swapped pair: rho = 1 - 6 * 2 / (4 * 15) = 0.8; tau = (5 - 1) / 6; Pearson 4 / 5
    swapped = correlations([1, 2, 3, 4, 9], [1, 3, 2, 4, np.nan])  # the NaN point is dropped
    assert swapped == pytest.approx({"srcc": 0.8, "krcc": 2 / 3, "plcc": 0.8, "n": 4})


def test_correlations_are_nan_when_undefined():
    for rewards, human in (
        ([1.0], [2.0]),
        ([1.0, 2.0], [np.nan, np.nan]),
        ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]),
    ):
        result = correlations(rewards, human)
        assert all(math.isnan(result[k]) for k in ("srcc", "krcc", "plcc"))


def _frame():
    """Two dimensions, two sources; video 'a' is in two pairs of the same prompt (counted once)."""
    return pd.DataFrame(
        {
            "prompt": ["p", "p", "q", "q"],
            "dimension": ["visual_quality", "visual_quality", "text_alignment", "text_alignment"],
            "chosen_video": ["a", "a", "c", "e"],
            "rejected_video": ["b", "d", "d", "f"],
            "tie": [False, False, False, True],
            "source": ["s1", "s2", "s1", "s1"],
            "chosen_score": [0.9, 0.9, 0.8, 0.5],
            "rejected_score": [0.1, 0.5, 0.2, 0.5],
            "chosen_reward": [2.0, 2.0, 0.0, 1.0],
            "rejected_reward": [1.0, 3.0, 1.0, 1.0],
        }
    )


def test_pair_metrics_and_summarize():
    frame = _frame()
    vq = pair_metrics(frame[frame["dimension"] == "visual_quality"], tie_threshold=0.0)
    # videos a, b, d: rewards 2, 1, 3 vs scores 0.9, 0.1, 0.5 -> ranks (2,1,3) vs (3,1,2)
    assert vq["pairs"] == 2 and vq["accuracy"] == 0.5 and vq["scored_videos"] == 3
    assert vq["srcc"] == pytest.approx(0.5)
    report = summarize(frame, tie_threshold=0.0)
    ta = report["dimensions"]["text_alignment"]
    assert ta["accuracy"] == 0.0 and ta["accuracy_with_ties"] == 0.5  # the tie has equal rewards
    assert report["overall"]["accuracy"] == pytest.approx((0.5 + 0.0) / 2)
    assert report["overall"]["pairs"] == 4
    assert report["sources"]["s2"]["visual_quality"]["accuracy"] == 0.0
    assert set(report["sources"]["s1"]) == {"visual_quality", "text_alignment"}
    table = format_table(report)
    assert "visual_quality" in table and "overall" in table and "50.0%" in table


# --------------------------------------------------------------------------- end to end


def _strict_json(path):
    def reject(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def _rewards(scorer, pairs):
    """Independent rewards per pair: `scorer.score` on the pair's two videos with its dimension."""
    chosen, rejected = [], []
    for row in pairs:
        both = scorer.score([row["chosen_path"], row["rejected_path"]], [row["prompt"]] * 2, row["dimension"])
        chosen.append(both[0].item())
        rejected.append(both[1].item())
    return np.array(chosen), np.array(rejected)


def _with_paths(corpus, split):
    return [
        {
            **row,
            "chosen_path": corpus.video_path(row["chosen_video"]),
            "rejected_path": corpus.video_path(row["rejected_video"]),
        }
        for row in corpus.pairs[split]
    ]


@pytest.fixture(scope="module")
def scorer(tiny_reward_model_dir):
    return load_scorer(tiny_reward_model_dir, device="cpu")


def test_eval_command_end_to_end(tiny_reward_model_dir, synthetic_corpus_dir, scorer, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--model",
        str(tiny_reward_model_dir),
        "--data",
        str(synthetic_corpus_dir),
        "--out",
        str(out),
    ]
    assert cli([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "acc w/ ties" in printed and "text_alignment" in printed and "overall" in printed

    report = _strict_json(out / "report.json")
    assert report["split"] == "test" and report["skipped_videos"] == {} and report["pairs_dropped"] == 0
    # the synthetic world has no ties, so tau is 0 without scoring validation
    assert (
        report["tie_threshold"] == 0.0
        and report["tie_threshold_source"] == "validation (it has no tie pairs)"
    )

    pairs = _with_paths(load_corpus(synthetic_corpus_dir), "test")
    chosen, rejected = _rewards(scorer, pairs)
    dims = np.array([row["dimension"] for row in pairs])
    ties = np.zeros(len(pairs), dtype=bool)
    assert report["pairs_scored"] == len(pairs) == report["overall"]["pairs"]
    per_dimension = []
    for dim in sorted(set(dims)):
        m = dims == dim
        expected = pairwise_accuracy(chosen[m], rejected[m], ties[m])
        per_dimension.append(expected)
        assert report["dimensions"][dim]["accuracy"] == pytest.approx(expected)
        assert report["dimensions"][dim]["accuracy_with_ties"] == pytest.approx(
            pairwise_accuracy(chosen[m], rejected[m], ties[m], 0.0)
        )
        assert report["dimensions"][dim]["srcc"] is None  # synthetic pairs carry no human scores
        assert report["sources"]["synthetic"][dim] == report["dimensions"][dim]
    assert report["overall"]["accuracy"] == pytest.approx(np.mean(per_dimension))

    saved = pd.read_csv(out / "pair_rewards.csv")
    assert saved["chosen_reward"].to_numpy() == pytest.approx(chosen, abs=1e-5)
    assert saved["rejected_reward"].to_numpy() == pytest.approx(rejected, abs=1e-5)
    for name in ("reward_histograms.png", "accuracy.png"):
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 100


def _rescored_corpus(synthetic_corpus_dir, out_dir):
    """The synthetic corpus with some ties and human scores, to exercise tau and the correlations."""
    corpus = load_corpus(synthetic_corpus_dir)
    rng = np.random.default_rng(0)

    def relabel(split, ties):
        frame = corpus.pairs[split].to_pandas()
        frame["tie"] = ties
        frame["chosen_score"] = rng.random(len(frame)).astype(np.float32)
        frame["rejected_score"] = rng.random(len(frame)).astype(np.float32)
        frame.loc[0, "rejected_score"] = np.nan  # a video without a human score is left out
        return datasets.Dataset.from_pandas(frame, preserve_index=False)

    pairs = datasets.DatasetDict(
        {
            "train": corpus.pairs["train"],
            "validation": relabel("validation", [True, False, True, False]),
            "test": relabel("test", [False, True, False, False]),
        }
    )
    return load_corpus(save_corpus(out_dir, pairs, corpus.video_root))


def test_evaluate_corpus_chooses_tau_on_validation_and_correlates_with_human_scores(
    synthetic_corpus_dir, scorer, tmp_path
):
    corpus = _rescored_corpus(synthetic_corpus_dir, tmp_path / "rescored")
    report = evaluate_corpus(scorer, corpus, "test", out_dir=tmp_path / "eval", progress=False)

    # tau: the best threshold on validation rewards (scored here independently; batches differ in float noise)
    val_chosen, val_rejected = _rewards(scorer, _with_paths(corpus, "validation"))
    tau = choose_tie_threshold(val_chosen, val_rejected, corpus.pairs["validation"]["tie"])
    assert (
        report["tie_threshold"] == pytest.approx(tau, abs=1e-5)
        and report["tie_threshold_source"] == "validation"
    )

    # the report's numbers are the pure functions' on the report's own rewards
    test = _with_paths(corpus, "test")
    saved = pd.read_csv(tmp_path / "eval" / "pair_rewards.csv")
    chosen, rejected = _rewards(scorer, test)
    assert saved["chosen_reward"].to_numpy() == pytest.approx(chosen, abs=1e-5)
    chosen, rejected = saved["chosen_reward"].to_numpy(), saved["rejected_reward"].to_numpy()
    for i, row in enumerate(test):
        metrics = report["dimensions"][row["dimension"]]  # one test pair per dimension
        assert metrics["ties"] == int(row["tie"])
        assert metrics["accuracy_with_ties"] == pairwise_accuracy(
            chosen[i : i + 1], rejected[i : i + 1], [row["tie"]], report["tie_threshold"]
        )
        videos = 1 if i == 0 else 2  # pair 0's rejected video has no human score
        assert metrics["scored_videos"] == videos
        expected = correlations(
            [chosen[i], rejected[i]][:videos], [row["chosen_score"], row["rejected_score"]][:videos]
        )
        assert metrics["srcc"] == (None if math.isnan(expected["srcc"]) else pytest.approx(expected["srcc"]))

    given = evaluate_corpus(scorer, corpus, "test", tie_threshold=0.5, progress=False)
    assert given["tie_threshold"] == 0.5 and given["tie_threshold_source"] == "given"


def test_an_unreadable_video_is_skipped_counted_and_reported(synthetic_corpus_dir, scorer, tmp_path):
    corpus_dir = shutil.copytree(synthetic_corpus_dir, tmp_path / "corpus")
    corpus = load_corpus(corpus_dir)
    broken = corpus.pairs["test"][2]["rejected_video"]
    corpus.video_path(broken).write_bytes(b"\x00" * 100)
    report = evaluate_corpus(scorer, corpus, "test", out_dir=tmp_path / "eval", progress=False)
    assert list(report["skipped_videos"]) == [broken]
    assert "not a readable video" in report["skipped_videos"][broken]
    assert report["pairs_dropped"] == 1 and report["pairs_scored"] == len(corpus.pairs["test"]) - 1
    assert (tmp_path / "eval" / "accuracy.png").is_file()


class _Interrupted(RuntimeError):
    pass


class _CountingScorer:
    """Delegates to a real scorer, counts the videos it scores, and fails after `fail_after` calls."""

    def __init__(self, scorer, fail_after=None):
        self.scorer, self.fail_after, self.videos_scored = scorer, fail_after, []

    def __getattr__(self, name):
        return getattr(self.scorer, name)

    def score_questions(self, videos, questions):
        if self.fail_after is not None and len(self.videos_scored) == self.fail_after:
            raise _Interrupted("killed mid-evaluation")
        self.videos_scored.append(len(videos))
        return self.scorer.score_questions(videos, questions)


def test_an_interrupted_evaluation_resumes_from_its_journal(
    tiny_reward_model_dir, synthetic_corpus_dir, tmp_path
):
    corpus = load_corpus(synthetic_corpus_dir)
    scorer = load_scorer(tiny_reward_model_dir, device="cpu", batch_size=2)
    out = tmp_path / "eval"
    videos = 2 * len(corpus.pairs["test"])  # every test video is in one pair
    with pytest.raises(_Interrupted):
        evaluate_corpus(_CountingScorer(scorer, fail_after=2), corpus, "test", out_dir=out, progress=False)
    journal = (out / "rewards.jsonl").read_text().splitlines()
    assert len(journal) == 1 + 4  # the header and the two batches scored before the kill
    (out / "rewards.jsonl").write_text("\n".join(journal) + '\n{"video": "torn')  # a write cut short

    resumed = _CountingScorer(scorer)
    report = evaluate_corpus(resumed, corpus, "test", out_dir=out, progress=False)
    assert sum(resumed.videos_scored) == videos - 4  # only what the journal lacked
    fresh = score_pairs(scorer, corpus, "test", progress=False).frame
    resumed_rewards = pd.read_csv(out / "pair_rewards.csv")
    for column in ("chosen_reward", "rejected_reward"):
        assert resumed_rewards[column].to_numpy() == pytest.approx(fresh[column].to_numpy(), abs=1e-5)
    assert report["pairs_scored"] == len(fresh)

    again = _CountingScorer(scorer)
    evaluate_corpus(again, corpus, "test", out_dir=out, progress=False)
    assert again.videos_scored == []  # everything was journaled

    other = _CountingScorer(load_scorer(tiny_reward_model_dir, device="cpu", batch_size=2))
    other.scorer.num_frames = 4  # other preprocessing, other scores: the journal starts over
    evaluate_corpus(other, corpus, "test", out_dir=out, progress=False)
    assert sum(other.videos_scored) == videos
