"""align.rewards: one contract for every reward, rule rewards on synthetic renderings, combinations."""

import numpy as np
import pytest
import torch

from align.rewards import (
    Reward,
    check,
    color_match,
    differentiable_reward,
    learned_reward,
    motion,
    normalize_per_prompt,
    resolve_reward,
    weighted,
)
from reward import load_scorer
from reward.synthetic import (
    COLORS,
    DIRECTION_STEPS,
    draw_scene,
    freeze,
    object_displacement,
    render_scene,
)

CAPTIONS = ["a red circle moving left", "a blue square moving up", "a green triangle moving right"]


def render(caption: str, seed: int = 0, frozen: bool = False) -> torch.Tensor:
    """float [F, C, H, W] in [0, 1]: a faithful (or frozen) synthetic rendering of `caption`."""
    scene = draw_scene(caption, np.random.default_rng(seed))
    return render_scene(scene, freeze(scene) if frozen else None).float() / 255


@pytest.fixture(scope="module")
def videos() -> torch.Tensor:
    return torch.stack([render(c, seed=i) for i, c in enumerate(CAPTIONS)])  # [B, F, C, H, W]


def constant(name: str, values: list[float]) -> Reward:
    return Reward(name=name, fn=lambda v, p, d: torch.tensor(values, dtype=torch.float64))


REWARD_FACTORIES = {
    "color_match": lambda model_dir: color_match,
    "motion": lambda model_dir: motion,
    "check": lambda model_dir: check,
    "learned": lambda model_dir: learned_reward(model_dir),
    "learned_dimension": lambda model_dir: learned_reward(model_dir, dimension="visual_quality"),
    "resolved_rule": lambda model_dir: resolve_reward("rule:motion"),
    "resolved_model": lambda model_dir: resolve_reward(f"{model_dir}:text_alignment"),
    "weighted": lambda model_dir: weighted({"c": (color_match, 1.0), "m": (motion, 0.1)}),
    "weighted_normalized": lambda model_dir: weighted(
        {"c": (color_match, 1.0), "visual_quality": (learned_reward(model_dir), 0.5)}, normalize=True
    ),
}


@pytest.mark.parametrize("kind", sorted(REWARD_FACTORIES))
def test_every_reward_returns_float32_b_on_cpu(kind, videos, tiny_reward_model_dir):
    reward = REWARD_FACTORIES[kind](tiny_reward_model_dir)
    scores = reward(videos, CAPTIONS)
    assert scores.dtype == torch.float32
    assert scores.shape == (len(CAPTIONS),)
    assert scores.device.type == "cpu"
    assert not scores.requires_grad
    assert torch.isfinite(scores).all()
    assert isinstance(reward.name, str) and reward.name


def test_reward_checks_its_inputs_and_outputs(videos):
    with pytest.raises(ValueError, match=r"\[B, F, C, H, W\]"):
        color_match(videos[0], CAPTIONS)
    with pytest.raises(ValueError, match="3 videos but 2 prompts"):
        color_match(videos, CAPTIONS[:2])
    with pytest.raises(ValueError, match="returned shape"):
        constant("bad", [1.0, 2.0])(videos, CAPTIONS)


def test_rule_rewards_need_synthetic_captions(videos):
    with pytest.raises(
        ValueError, match="rule reward motion needs synthetic-world captions.*'a cat surfing'"
    ):
        motion(videos[:1], ["a cat surfing"])


def test_color_match_prefers_the_named_color():
    for caption_color in COLORS:
        caption = f"a {caption_color} circle moving left"
        rendered = torch.stack([render(f"a {c} circle moving left") for c in COLORS])  # same scene, 4 colors
        scores = color_match(rendered, [caption] * len(COLORS))
        assert list(COLORS)[scores.argmax()] == caption_color
        assert scores.max() > 0.95  # a faithful rendering is ~1
    red, blue = render("a red circle moving left"), render("a blue circle moving left")
    scores = color_match(torch.stack([red, blue]), ["a red circle moving left"] * 2)
    assert scores[0] > scores[1] + 0.4  # |red - blue| / sqrt(3) = 0.55


def test_color_match_is_smooth_on_noise():
    """Noise drifting towards red scores higher step by step: it can rank an untrained generator's samples."""
    generator = torch.Generator().manual_seed(0)
    noise = 0.5 + 0.1 * torch.randn(1, 9, 3, 32, 32, generator=generator)
    red = torch.tensor(COLORS["red"]).float().view(1, 1, 3, 1, 1) / 255
    mask = torch.zeros(1, 1, 1, 32, 32)
    mask[..., 8:20, 8:20] = 1.0  # a patch that turns red
    steps = torch.cat([(noise + a * mask * (red - noise)).clamp(0, 1) for a in (0.0, 0.1, 0.2, 0.4, 0.8)])
    scores = color_match(steps, ["a red square moving up"] * len(steps))
    assert (scores.diff() > 0).all()


def test_motion_measures_speed_along_the_caption():
    caption = "a red circle moving left"
    moving, frozen = render(caption, seed=1), render(caption, seed=1, frozen=True)
    scores = motion(torch.stack([moving, frozen]), [caption] * 2)
    assert scores[0] > 1.4  # the world's speeds are 1.5-2.5 px/frame
    assert scores[1].abs() < 1e-4
    opposite = motion(moving[None], ["a red circle moving right"])
    assert opposite < -1.4


def test_motion_agrees_with_the_synthetic_measurement(videos):
    scores = motion(videos, CAPTIONS)
    for video, caption, score in zip(videos, CAPTIONS, scores, strict=True):
        measured = float(np.dot(object_displacement(video), DIRECTION_STEPS[caption.split()[-1]]))
        assert score == pytest.approx(measured, abs=0.05)


def test_check_counts_the_attributes_read_back(videos):
    """The oracle scores the share of color, shape and direction the independent check reads back."""
    assert check(videos, CAPTIONS).tolist() == [1.0, 1.0, 1.0]
    wrong_shape = ["a red square moving left", "a blue square moving up", "a green triangle moving right"]
    wrong_two = ["a blue circle moving right", "a blue square moving up", "a green triangle moving right"]
    assert check(videos, wrong_shape).tolist() == [pytest.approx(2 / 3), 1.0, 1.0]
    assert check(videos, wrong_two).tolist() == [pytest.approx(1 / 3), 1.0, 1.0]
    frozen = render(CAPTIONS[0], frozen=True)[None]  # no motion: the direction is not read back
    assert check(frozen, CAPTIONS[:1]).item() == pytest.approx(2 / 3)
    assert resolve_reward("rule:check") is check
    with pytest.raises(ValueError, match="rule:check' is measured on hard masks and has no gradient"):
        differentiable_reward("rule:check")


def test_normalize_per_prompt_hand_computed():
    scores = torch.tensor([1.0, 2.0, 4.0, 5.0, 5.0, 7.0])
    prompts = ["a", "a", "a", "b", "b", "c"]
    # group a: mean 7/3, population std sqrt(42 / 27); group b: equal scores -> 0; c: alone -> 0
    std = (42 / 27) ** 0.5
    expected = torch.tensor([(1 - 7 / 3) / std, (2 - 7 / 3) / std, (4 - 7 / 3) / std, 0.0, 0.0, 0.0])
    torch.testing.assert_close(normalize_per_prompt(scores, prompts), expected)
    with pytest.raises(ValueError, match="6 scores but 2 prompts"):
        normalize_per_prompt(scores, ["a", "b"])


def test_weighted_sums_hand_computed():
    videos = torch.zeros(4, 1, 3, 2, 2)
    prompts = ["p", "p", "q", "q"]
    first, second = constant("first", [1.0, 2.0, 3.0, 4.0]), constant("second", [0.0, 0.0, 1.0, 1.0])
    combined = weighted({"first": (first, 2.0), "second": (second, -1.0)})
    torch.testing.assert_close(combined(videos, prompts), torch.tensor([2.0, 4.0, 5.0, 7.0]))
    assert combined.dimension == "overall"
    # normalised per prompt: first -> [-1, 1, -1, 1]; second is constant within each prompt -> 0
    normalized = weighted({"first": (first, 2.0), "second": (second, -1.0)}, normalize=True)
    torch.testing.assert_close(normalized(videos, prompts), torch.tensor([-2.0, 2.0, -2.0, 2.0]))
    with pytest.raises(ValueError, match="at least one"):
        weighted({})


def test_weighted_asks_dimension_labels_as_dimensions():
    asked = []

    def record(videos, prompts, dimension):
        asked.append(dimension)
        return torch.ones(len(prompts))

    judge = Reward(name="judge", fn=record)
    weighted({"visual_quality": (judge, 1.0), "text_alignment": (judge, 1.0), "mine": (judge, 1.0)})(
        torch.zeros(1, 1, 3, 2, 2), ["p"]
    )
    assert asked == ["visual_quality", "text_alignment", None]


def test_learned_reward_is_the_scorer(tiny_reward_model_dir, videos):
    scorer = load_scorer(tiny_reward_model_dir, device="cpu")
    reward = learned_reward(tiny_reward_model_dir, dimension="dynamic_degree")
    assert reward.name == f"{tiny_reward_model_dir.name}:dynamic_degree"
    assert reward.dimension == "dynamic_degree"
    torch.testing.assert_close(reward(videos, CAPTIONS), scorer.score(videos, CAPTIONS, "dynamic_degree"))
    # the call's dimension overrides the reward's; None asks the mean question
    torch.testing.assert_close(
        reward(videos, CAPTIONS, "visual_quality"), scorer.score(videos, CAPTIONS, "visual_quality")
    )
    torch.testing.assert_close(learned_reward(scorer)(videos, CAPTIONS), scorer.score(videos, CAPTIONS))


def test_learned_reward_errors_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_model"):
        learned_reward(tmp_path / "no_model")
    with pytest.raises(ValueError, match="unknown dimension 'beauty'"):
        learned_reward(tmp_path, dimension="beauty")


def test_resolve_reward_specs(tiny_reward_model_dir, tmp_path):
    assert resolve_reward("rule:color_match") is color_match
    assert resolve_reward("rule:motion") is motion
    learned = resolve_reward(str(tiny_reward_model_dir))
    assert learned.name == str(tiny_reward_model_dir) and learned.dimension is None
    asked = resolve_reward(f"{tiny_reward_model_dir}:visual_quality")
    assert asked.dimension == "visual_quality"
    with pytest.raises(
        ValueError, match="unknown rule reward 'rule:beauty'.*rule:color_match, rule:motion, rule:check"
    ):
        resolve_reward("rule:beauty")
    with pytest.raises(FileNotFoundError, match="not a reward model folder; options: rule:color_match"):
        resolve_reward(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="not a reward model folder"):
        resolve_reward(f"{tiny_reward_model_dir}:beauty")  # not a dimension: the whole spec is the path
