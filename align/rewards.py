"""Reward functions: everything `align` scores videos with, behind one contract.

A reward takes `videos: float [B, F, C, H, W] in [0, 1]`, `prompts: list[str]` (one per video) and
an optional taxonomy `dimension`, and returns `float32 [B]` on the CPU, higher is better
(docs/design.md, "Score function"). Every reward here is a `Reward`, whose `__call__` checks that
layout on the way in and enforces it on the way out, so no caller meets a reward that returns a
different type or shape.

Design decisions:
- A reward carries a `name` (the key of its scores in manifests) and the `dimension` it judges
  (the pair dimension when samples become DPO pairs; None means "overall").
- The learned reward wraps `reward.load_scorer`; `align` never imports a model class.
- Rule rewards for the synthetic world are smooth (soft-mask means, least-squares fits; no hard mask)
  so that they can rank the noisy samples of an untrained generator, not only clean renderings.
- Per-prompt normalisation (z-score within a prompt's candidates) lives in one function; it is
  what `weighted(..., normalize=True)` uses so that rewards on different scales combine fairly.
  It is only meaningful when a call holds several candidates per prompt, as best-of-N reranking
  does (`align.rerank` scores all N candidates of a prompt in one call).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from reward.dimensions import CANONICAL_DIMENSIONS, canonical_dimension

__all__ = [
    "ScoreFn",
    "RewardFunction",
    "Reward",
    "RULE_REWARDS",
    "color_match",
    "motion",
    "check",
    "learned_reward",
    "weighted",
    "normalize_per_prompt",
    "resolve_reward",
    "differentiable_reward",
]

ScoreFn = Callable[[torch.Tensor, list[str], str | None], torch.Tensor]

# Largest distance between two RGB colors in [0, 1]^3: the diagonal of the unit cube.
_MAX_RGB_DISTANCE = math.sqrt(3.0)
_PIXEL_MAX = 255.0
# RGB distance (in [0, 1] units) from the background below which a pixel is codec noise: ~10 levels.
_NOISE_FLOOR = 10.0 / _PIXEL_MAX
# Keeps soft-mask sums positive for frames with no object at all.
_WEIGHT_EPS = 1e-6
# Below this standard deviation a prompt's candidates count as equal (their z-scores are 0).
_NORMALIZE_EPS = 1e-6


class RewardFunction(Protocol):
    """What `align` consumes: a named score function (see the module docstring for the contract)."""

    name: str
    dimension: str | None

    def __call__(
        self, videos: torch.Tensor, prompts: list[str], dimension: str | None = None
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Reward:
    """A score function with a name and the dimension it judges; calls are checked against the contract.

    `fn(videos, prompts, dimension)` may return any real tensor with B elements on any device;
    the caller always gets `float32 [B]` on the CPU. `dimension` passed to a call overrides the
    reward's own (rule rewards measure one thing and ignore it).
    """

    name: str
    fn: ScoreFn
    dimension: str | None = None
    # False for a score measured on hard masks: no gradient reaches the pixels, so reward
    # backpropagation (`differentiable_reward`) refuses it.
    differentiable: bool = True

    def __call__(
        self, videos: torch.Tensor, prompts: list[str], dimension: str | None = None
    ) -> torch.Tensor:
        if videos.ndim != 5:
            raise ValueError(
                f"reward {self.name}: videos must be [B, F, C, H, W], got shape {tuple(videos.shape)}"
            )
        if len(prompts) != videos.shape[0]:
            raise ValueError(f"reward {self.name}: {videos.shape[0]} videos but {len(prompts)} prompts")
        with torch.no_grad():
            scores = self.fn(videos, list(prompts), dimension or self.dimension)
        scores = torch.as_tensor(scores).detach().to(device="cpu", dtype=torch.float32)
        if scores.numel() != videos.shape[0]:
            raise ValueError(
                f"reward {self.name} returned shape {tuple(scores.shape)} for {videos.shape[0]} videos"
            )
        return scores.reshape(-1)  # [B]


def _synthetic_caption(reward_name: str, prompt: str) -> tuple[str, str, str]:
    """(color, shape, direction) of a synthetic-world caption, or an error naming the reward and prompt."""
    from reward.synthetic import parse_caption

    try:
        return parse_caption(prompt)
    except ValueError as err:
        raise ValueError(
            f"rule reward {reward_name} needs synthetic-world captions "
            f"('a {{color}} {{shape}} moving {{direction}}'); got {prompt!r}: {err}"
        ) from err


def _object_weights(videos: torch.Tensor) -> torch.Tensor:
    """float [B, F, H, W]: how much each pixel belongs to the object, a soft foreground mask.

    The RGB distance of a pixel from its frame's median color (the background: the object covers
    well under half a frame, as in `reward.synthetic.foreground_mask`), minus a floor that ignores
    codec noise. Unlike that hard mask it changes smoothly with the pixels, so noisy samples of
    an untrained generator still get graded scores instead of "no object".
    """
    background = videos.flatten(3).median(dim=-1).values  # [B, F, C, H * W] -> [B, F, C]
    distance = torch.linalg.vector_norm(videos - background[..., None, None], dim=2)  # [B, F, H, W]
    weights = (distance - _NOISE_FLOOR).clamp(min=0.0)
    # A frame that is all background weighs its pixels equally: the centroid is the frame centre.
    return weights + _WEIGHT_EPS


def _color_match(videos: torch.Tensor, prompts: list[str], dimension: str | None = None) -> torch.Tensor:
    """How close the object's color is to the color the caption names, in [0, 1].

    1 - |object color - named color| / sqrt(3), colors as RGB in [0, 1]; the object color is the mean
    over all frames and pixels weighted by the soft foreground mask (`_object_weights`). A faithful
    red object scores ~1, a blue one for a red caption ~0.45; the palette is reward.synthetic.COLORS.
    """
    from reward.synthetic import COLORS

    target = (
        torch.tensor([COLORS[_synthetic_caption("color_match", p)[0]] for p in prompts]) / _PIXEL_MAX
    )  # [B, 3]
    weights = _object_weights(videos)  # [B, F, H, W]
    color = (videos * weights[:, :, None]).sum(dim=(1, 3, 4)) / weights.sum(dim=(1, 2, 3))[:, None]  # [B, 3]
    return 1.0 - torch.linalg.vector_norm(color - target, dim=-1) / _MAX_RGB_DISTANCE


def _motion(videos: torch.Tensor, prompts: list[str], dimension: str | None = None) -> torch.Tensor:
    """Speed of the object along the caption's direction, in pixels per frame.

    The least-squares slope over frames of the object's centroid (weighted by the soft foreground
    mask), projected on the named direction. On clean renderings it agrees with
    `reward.synthetic.object_displacement` (which uses a hard mask, so it gives NaN on noisy
    samples): the world moves objects at 1.5-2.5 px/frame, a frozen object scores 0, one moving the
    wrong way below 0. Pixels are those of the video as given (no resizing).
    """
    from reward.synthetic import DIRECTION_STEPS

    unit = torch.tensor(
        [DIRECTION_STEPS[_synthetic_caption("motion", p)[2]] for p in prompts], dtype=torch.float32
    )
    weights = _object_weights(videos)  # [B, F, H, W]
    height, width = videos.shape[-2:]
    xs = torch.arange(width, dtype=torch.float32) + 0.5  # pixel centres, as reward.synthetic.object_centroids
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    total = weights.sum(dim=(2, 3))  # [B, F]
    centroid = torch.stack(
        [(weights.sum(dim=2) * xs).sum(dim=-1) / total, (weights.sum(dim=3) * ys).sum(dim=-1) / total], dim=-1
    )  # [B, F, 2] (x, y)
    # Least-squares slope of the centroid over frame index: px per frame, robust to one jittery frame.
    t = torch.arange(videos.shape[1], dtype=torch.float32)
    t = t - t.mean()
    velocity = (t[None, :, None] * (centroid - centroid.mean(dim=1, keepdim=True))).sum(dim=1) / (
        t**2
    ).sum()  # [B, 2]
    return (velocity * unit).sum(dim=-1)


def _check(videos: torch.Tensor, prompts: list[str], dimension: str | None = None) -> torch.Tensor:
    """The share of the caption's color, shape and direction the independent check reads back: 0, 1/3, 2/3 or 1.

    An *oracle*, for diagnostics only: it is `align.checker.check_video`, the measurement that
    judges alignment, so a run driven by it answers "how far could this method move this generator
    with a perfect reward?" and never counts as a result of the learned reward. Hard masks: not
    differentiable (`differentiable_reward` refuses it).
    """
    from align.checker import ATTRIBUTES, check_video

    for prompt in prompts:
        _synthetic_caption("check", prompt)
    parts = [a for a in ATTRIBUTES if a != "prompt_ok"]  # color_ok, shape_ok, direction_ok
    return torch.tensor(
        [sum(check_video(v, p)[a] for a in parts) / len(parts) for v, p in zip(videos, prompts)]
    )


color_match = Reward(name="color_match", fn=_color_match, dimension="text_alignment")

motion = Reward(name="motion", fn=_motion, dimension="dynamic_degree")

check = Reward(name="check", fn=_check, dimension="text_alignment", differentiable=False)

RULE_REWARDS: dict[str, Reward] = {"color_match": color_match, "motion": motion, "check": check}


def learned_reward(
    path_or_scorer: str | os.PathLike | Callable, dimension: str | None = None, name: str | None = None
) -> Reward:
    """A trained CleveReward model (a folder for `reward.load_scorer`, or a loaded scorer) as a `Reward`.

    `dimension` is the question the model is asked (a canonical name, None: the model's default,
    judged as "overall"). A folder that is not a reward model is an error here, before any generation.
    """
    if dimension is not None:
        dimension = canonical_dimension(dimension)
    if isinstance(path_or_scorer, str | os.PathLike):
        from reward.scoring import load_scorer

        scorer = load_scorer(path_or_scorer)  # raises, naming the folder, when it is not a reward model
        default_name = Path(path_or_scorer).name
    else:
        scorer = path_or_scorer
        default_name = "learned"
    if name is None:
        name = default_name if dimension is None else f"{default_name}:{dimension}"
    return Reward(
        name=name, fn=lambda videos, prompts, dim: scorer(videos, prompts, dim), dimension=dimension
    )


def normalize_per_prompt(scores: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """Z-score `scores [B]` within each group of equal prompts: (s - mean) / std, std over the group.

    A group whose scores are all equal (or a single candidate) gets 0: it carries no preference.
    Only meaningful when the batch holds several candidates per prompt (best-of-N).
    """
    if len(prompts) != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} scores but {len(prompts)} prompts")
    scores = scores.to(torch.float32)
    out = torch.zeros_like(scores)
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    for index in groups.values():
        group = scores[index]
        std = group.std(unbiased=False)
        if std > _NORMALIZE_EPS:
            out[index] = (group - group.mean()) / std
    return out


def weighted(
    rewards: dict[str, tuple[RewardFunction, float]], normalize: bool = False, name: str = "weighted"
) -> Reward:
    """sum_i w_i * r_i(videos): several rewards or dimensions combined into one.

    `rewards` maps a label to `(reward, weight)`; a label that is a canonical dimension is passed
    to its reward as the dimension (so one learned model can be asked several questions). With
    `normalize`, each r_i is z-scored per prompt first (`normalize_per_prompt`), which puts
    rewards on different scales (a [0, 1] color score, a px/frame speed) on one footing.
    """
    if not rewards:
        raise ValueError("weighted() needs at least one reward")

    def combined(videos: torch.Tensor, prompts: list[str], dimension: str | None = None) -> torch.Tensor:
        total = torch.zeros(videos.shape[0])
        for label, (reward, weight) in rewards.items():
            scores = reward(videos, prompts, label if label in CANONICAL_DIMENSIONS else None)
            total += weight * (normalize_per_prompt(scores, prompts) if normalize else scores)
        return total

    return Reward(name=name, fn=combined, dimension="overall")


MIX_SEPARATOR, WEIGHT_SEPARATOR = "+", "="


def resolve_reward(spec: str) -> Reward:
    """A reward from its command-line spec.

    `rule:color_match`, `rule:motion` (synthetic world), or a reward model folder, optionally
    `FOLDER:dimension` to ask it about one canonical dimension. A rule reward keeps its name
    (color_match, motion); a learned one is named by its spec. A weighted mix joins specs with
    `+`, each with `=WEIGHT` (default 1), e.g. `runs/rm:text_alignment=1+runs/rm:visual_quality=0.5`:
    sum_i w_i r_i, each model folder loaded once.
    """
    if MIX_SEPARATOR in spec or WEIGHT_SEPARATOR in spec:
        return _resolve_mix(spec)
    return _resolve_one(spec, {})


def _mix_terms(spec: str) -> list[tuple[str, float]]:
    """(reward spec, weight) of each `SPEC=W` term of a mix (weight 1 when absent)."""
    terms = []
    for term in spec.split(MIX_SEPARATOR):
        one, _, weight = term.partition(WEIGHT_SEPARATOR)
        try:
            terms.append((one, float(weight) if weight else 1.0))
        except ValueError:
            raise ValueError(f"reward mix {spec!r}: weight {weight!r} of {one!r} is not a number") from None
    return terms


def _resolve_mix(spec: str) -> Reward:
    scorers: dict[str, Callable] = {}
    parts = {one: (_resolve_one(one, scorers), weight) for one, weight in _mix_terms(spec)}
    return weighted(parts, name=spec)


def _resolve_one(spec: str, scorers: dict[str, Callable]) -> Reward:
    """One reward spec; learned models already loaded (`scorers`, by folder) are reused."""
    if spec.startswith("rule:"):
        rule = spec.removeprefix("rule:")
        if rule not in RULE_REWARDS:
            raise ValueError(f"unknown rule reward {spec!r}; options: {', '.join(_spec_options())}")
        return RULE_REWARDS[rule]
    folder, _, dimension = spec.rpartition(":")
    if not folder or dimension not in CANONICAL_DIMENSIONS:
        folder, dimension = spec, None
    if not Path(folder).is_dir():
        raise FileNotFoundError(
            f"reward {spec!r}: {folder} is not a reward model folder; options: {', '.join(_spec_options())}"
        )
    if folder not in scorers:
        from reward.scoring import load_scorer

        scorers[folder] = load_scorer(folder)  # raises, naming the folder, when it is not a reward model
    return learned_reward(scorers[folder], dimension=dimension, name=spec)


def _spec_options() -> list[str]:
    return [f"rule:{name}" for name in RULE_REWARDS] + [
        "MODEL_DIR",
        "MODEL_DIR:DIMENSION",
        "SPEC=WEIGHT+SPEC=WEIGHT (a weighted mix)",
    ]


def differentiable_reward(spec: str) -> Callable[[torch.Tensor, list[str]], torch.Tensor]:
    """The reward of `spec` as a function with gradients to the videos (reward backpropagation).

    `videos` float [B, F, C, H, W] in [0, 1] (with grad) -> [B] (with grad, on the videos' device).
    Learned terms use `Scorer.score_with_grad` (dual-encoder reward models; a VLM is refused) and
    must name their dimension; rule rewards are smooth tensor functions used as they are. Mixes
    (`SPEC=W+SPEC=W`) weight their terms as in `resolve_reward`.
    """
    scorers: dict[str, Callable] = {}
    terms: list[tuple[ScoreFn, str | None, float]] = []
    for one, value in _mix_terms(spec):
        if one.startswith("rule:"):
            rule = RULE_REWARDS.get(one.removeprefix("rule:"))
            if rule is None:
                raise ValueError(f"unknown rule reward {one!r}; options: {', '.join(_spec_options())}")
            if not rule.differentiable:
                smooth = " / ".join(f"rule:{name}" for name, r in RULE_REWARDS.items() if r.differentiable)
                raise ValueError(
                    f"reward {one!r} is measured on hard masks and has no gradient: reward backpropagation "
                    f"needs a learned FOLDER:DIMENSION or {smooth}"
                )
            terms.append((rule.fn, None, value))
            continue
        folder, _, dimension = one.rpartition(":")
        if not folder or dimension not in CANONICAL_DIMENSIONS:
            raise ValueError(
                f"reward {one!r}: a differentiable learned reward names its dimension, FOLDER:DIMENSION"
            )
        if folder not in scorers:
            _resolve_one(one, scorers)  # loads the folder once, with resolve_reward's errors
        terms.append((scorers[folder].score_with_grad, dimension, value))

    def score(videos: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        total = torch.zeros(videos.shape[0], device=videos.device)
        for fn, dimension, weight in terms:
            total = total + weight * fn(videos, prompts, dimension).to(videos.device).reshape(-1)
        return total

    return score
