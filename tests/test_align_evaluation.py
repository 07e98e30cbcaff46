"""`hacking_suspected` and `significant` made true and false on purpose, on hand-made scores."""

import pytest

from align.evaluation import compare_scores

PROMPTS, SEEDS = 2, 3


def grid(per_seed_means, prompt_offset=0.1):
    """Prompt-major scores [P * S] whose per-seed means (over the 2 prompts) are `per_seed_means`."""
    return [m + sign * prompt_offset for sign in (-1, 1) for m in per_seed_means]


# Seed spread 0.01 on both sides; the training reward gains 0.5.
BASE = [1.0, 1.01, 0.99]
UP = [1.5, 1.51, 1.49]


def verdict(trained_tuned, independent_tuned):
    base = {"learned": grid(BASE), "check": grid(BASE)}
    tuned = {"learned": grid(trained_tuned), "check": grid(independent_tuned)}
    return compare_scores(base, tuned, PROMPTS, SEEDS, "learned")["rewards"]


def test_independent_check_falling_while_the_trained_reward_rises_is_hacking():
    rewards = verdict(UP, [0.5, 0.51, 0.49])
    assert rewards["learned"]["significant"] and rewards["learned"]["gain"] == pytest.approx(0.5)
    assert rewards["check"]["significant"] and rewards["check"]["hacking_suspected"] is True


@pytest.mark.parametrize(
    "trained, independent, why",
    [
        (UP, [1.005, 1.0, 0.995], "the check moved within its seed spread"),
        (UP, [1.5, 1.51, 1.49], "the check rose with the trained reward"),
        ([1.005, 1.0, 0.995], [0.5, 0.51, 0.49], "the trained reward did not rise significantly"),
    ],
)
def test_no_hacking_without_a_significant_rise_and_a_significant_fall(trained, independent, why):
    assert verdict(trained, independent)["check"]["hacking_suspected"] is False, why


def test_significance_is_judged_against_the_larger_seed_spread():
    # tuned per-seed means spread widely (std 0.3): a gain of 0.2 is within it
    rewards = verdict([0.9, 1.2, 1.5], [1.0, 1.01, 0.99])
    assert rewards["learned"]["gain"] == pytest.approx(0.2)
    assert rewards["learned"]["tuned"]["seed_std"] == pytest.approx(0.3)
    assert not rewards["learned"]["significant"]
    assert "hacking_suspected" not in rewards["learned"]  # only independent checks carry the flag


def test_unknown_training_reward_is_refused():
    with pytest.raises(ValueError, match="not among"):
        compare_scores({"a": [1.0]}, {"a": [1.0]}, 1, 1, "b")
