"""Visual token budgets: how many frames at what resolution a VLM reward model should see.

A Qwen2-VL-family model turns a video of F frames of H × W pixels into

    tokens = ceil(F / t) · (H / (p·m)) · (W / (p·m))

visual tokens (t: temporal patch size, p: patch size, m: spatial merge size; H, W multiples of
p·m). A budget N caps that count per video; frames and resolution trade against each other
under it.

`sweep_budget` searches that trade-off the way the seed paper did (Flux, "a token budget sweep"):
start small (fewest frames, the largest resolution that fits), add frames until accuracy stops
rising, then trade resolution for frames (each smaller resolution with as many frames as the
budget allows) while accuracy keeps rising. It is pure logic over an evaluation callback, so
any metric and any model can drive it; `scorer_accuracy` is the callback `clevereward eval
--sweep-budget N` uses.

Design decisions:
- The geometry (p, t, m) comes from the model's processor or config, never from constants here.
- Frames are multiples of t and sizes multiples of p·m, so every setting costs exactly its
  computed tokens (no processor padding or resizing).
- Each setting is evaluated at most once; the result keeps every trial, so the path is auditable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

__all__ = [
    "VisionGeometry",
    "BudgetSetting",
    "BudgetTrial",
    "BudgetSweep",
    "processed_size",
    "video_tokens",
    "vision_geometry",
    "settings_within",
    "sweep_budget",
    "scorer_accuracy",
    "default_grid",
    "sweep_scorer",
    "format_sweep",
]

SWEEP_PHASES = ("frames", "resolution")
MAX_DEFAULT_FRAMES = 32  # the default frame grid doubles from one temporal patch up to this


@dataclass(frozen=True)
class VisionGeometry:
    """How a VLM cuts video into tokens: spatial `patch_size` p, `temporal_patch_size` t, `merge_size` m.

    `min_pixels` / `max_pixels`: the processor's pixel bounds (a video outside them is resized,
    keeping its aspect); None when unknown (a bare config). `pixel_bounds` says what they bound:
    "frame", H · W per frame (Qwen2-VL, 2.5-VL: the image `smart_resize`), or "video", T' · H · W
    per clip with T' the frames rounded to temporal patches (Qwen3-VL: its video `smart_resize`).
    """

    patch_size: int
    temporal_patch_size: int
    merge_size: int
    min_pixels: int | None = None
    max_pixels: int | None = None
    pixel_bounds: str = "frame"

    @property
    def factor(self) -> int:
        """Pixels per merged token along H or W: p · m."""
        return self.patch_size * self.merge_size


@dataclass(frozen=True)
class BudgetSetting:
    """`num_frames` frames of `size` × `size` pixels, costing `tokens` visual tokens per video."""

    num_frames: int
    size: int
    tokens: int


@dataclass(frozen=True)
class BudgetTrial:
    """One evaluated setting, its accuracy, and the sweep phase that asked for it."""

    setting: BudgetSetting
    accuracy: float
    phase: str


@dataclass
class BudgetSweep:
    """The sweep's answer: the best setting, its accuracy, and every trial in order."""

    budget: int
    best: BudgetSetting
    best_accuracy: float
    trials: list[BudgetTrial] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def processed_size(height: int, width: int, geometry: VisionGeometry, num_frames: int = 1) -> tuple[int, int]:
    """The frame size the processor hands the model for `num_frames` frames of H × W: (H, W) itself
    inside the pixel bounds, else what the family's `smart_resize` makes of it (the processors
    call the same functions)."""
    if geometry.min_pixels is None and geometry.max_pixels is None:
        return height, width
    low, high = geometry.min_pixels or 0, geometry.max_pixels or num_frames * height * width
    if geometry.pixel_bounds == "video":
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize

        frames = max(num_frames, geometry.temporal_patch_size)  # one frame: one temporal patch
        return smart_resize(frames, height, width, geometry.temporal_patch_size, geometry.factor, low, high)
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    return smart_resize(height, width, geometry.factor, low, high)


def video_tokens(num_frames: int, height: int, width: int, geometry: VisionGeometry) -> int:
    """Visual tokens of one video: ceil(F / t) · (H' / (p·m)) · (W' / (p·m)), (H', W') = `processed_size`.

    H and W must be multiples of p·m; a size outside the processor's pixel bounds costs the tokens
    of the size it is resized to.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    factor = geometry.factor
    if height % factor or width % factor or height < factor or width < factor:
        raise ValueError(
            f"frame size {height}x{width} must be positive multiples of patch_size·merge_size = {factor}"
        )
    height, width = processed_size(height, width, geometry, num_frames)
    return math.ceil(num_frames / geometry.temporal_patch_size) * (height // factor) * (width // factor)


def vision_geometry(source) -> VisionGeometry:
    """The geometry of a processor (its `video_processor`), a video processor, a VLM config
    (`vision_config`), or a VLM reward model's config (`vlm_config`)."""
    for attribute in ("video_processor", "vlm_config"):
        source = getattr(source, attribute, source)
    size = getattr(source, "size", None)
    size = size if isinstance(size, dict) else {}
    bounds = {
        "min_pixels": getattr(source, "min_pixels", None) or size.get("shortest_edge"),
        "max_pixels": getattr(source, "max_pixels", None) or size.get("longest_edge"),
    }
    vision = getattr(source, "vision_config", source)
    merge = getattr(vision, "merge_size", None) or getattr(vision, "spatial_merge_size", None)
    patch, temporal = getattr(vision, "patch_size", None), getattr(vision, "temporal_patch_size", None)
    if not all(isinstance(v, int) for v in (patch, temporal, merge)):
        raise ValueError(
            f"{type(source).__name__} has no Qwen2-VL-style geometry (patch_size, temporal_patch_size, "
            "merge_size): token budgets apply to VLM reward models"
        )
    if getattr(source, "pixel_bounds", None):  # our torch-only video processors say it
        bounds["pixel_bounds"] = source.pixel_bounds
    elif type(source).__name__.startswith("Qwen3VL") or getattr(source, "model_type", "") == "qwen3_vl":
        bounds["pixel_bounds"] = "video"
    return VisionGeometry(patch_size=patch, temporal_patch_size=temporal, merge_size=merge, **bounds)


def settings_within(
    budget: int, geometry: VisionGeometry, frame_options: Sequence[int], size_options: Sequence[int]
) -> list[BudgetSetting]:
    """Every (frames, size) of the grid costing at most `budget` tokens, by size then frames.

    Sizes the processor would resize (outside its pixel bounds) are left out: their label would
    not be the size the model sees.
    """
    settings = [
        BudgetSetting(f, s, video_tokens(f, s, s, geometry))
        for s in sorted(set(size_options))
        for f in sorted(set(frame_options))
        if processed_size(s, s, geometry, f) == (s, s)
    ]
    return [setting for setting in settings if setting.tokens <= budget]


def _check_options(
    geometry: VisionGeometry, frame_options: Sequence[int], size_options: Sequence[int]
) -> None:
    bad_frames = [f for f in frame_options if f < 1 or f % geometry.temporal_patch_size]
    bad_sizes = [s for s in size_options if s < geometry.factor or s % geometry.factor]
    if bad_frames or bad_sizes or not frame_options or not size_options:
        raise ValueError(
            f"frames must be positive multiples of temporal_patch_size = {geometry.temporal_patch_size} "
            f"(bad: {bad_frames}) and sizes multiples of patch_size·merge_size = {geometry.factor} "
            f"(bad: {bad_sizes}); neither list may be empty"
        )


def sweep_budget(
    budget: int,
    evaluate: Callable[[int, int], float],
    geometry: VisionGeometry,
    frame_options: Sequence[int],
    size_options: Sequence[int],
    min_gain: float = 0.0,
) -> BudgetSweep:
    """Find a good (frames, size) under `budget` tokens per video, evaluating few settings.

    `evaluate(num_frames, size)` returns the accuracy (higher is better) at that setting.
    1. Start small: the fewest frames at the largest size that fits the budget.
    2. Frames: at that size, add frames (next option up) while the budget allows and accuracy rises
       by more than `min_gain`.
    3. Resolution: from the best so far, step the size down one option at a time, each time with
       the most frames the budget allows; keep going while accuracy rises by more than `min_gain`.
       A smaller size that buys no extra frames is passed over.
    Raises ValueError when no setting fits the budget.
    """
    _check_options(geometry, frame_options, size_options)
    frames = sorted(set(frame_options))
    sizes = sorted(set(size_options), reverse=True)
    cost = {(f, s): video_tokens(f, s, s, geometry) for f in frames for s in sizes}
    start_size = next((s for s in sizes if cost[frames[0], s] <= budget), None)
    if start_size is None:
        cheapest = min(cost.values())
        raise ValueError(f"no setting fits a budget of {budget} tokens; the cheapest costs {cheapest}")

    trials: list[BudgetTrial] = []
    seen: dict[tuple[int, int], float] = {}

    def run(f: int, s: int, phase: str) -> float:
        if (f, s) not in seen:
            seen[f, s] = float(evaluate(f, s))
            trials.append(BudgetTrial(BudgetSetting(f, s, cost[f, s]), seen[f, s], phase))
        return seen[f, s]

    best, best_accuracy = (frames[0], start_size), run(frames[0], start_size, SWEEP_PHASES[0])
    for f in frames[1:]:
        if cost[f, start_size] > budget:
            break
        accuracy = run(f, start_size, SWEEP_PHASES[0])
        if accuracy <= best_accuracy + min_gain:
            break
        best, best_accuracy = (f, start_size), accuracy

    for s in (s for s in sizes if s < best[1]):
        affordable = [f for f in frames if cost[f, s] <= budget]
        if not affordable or affordable[-1] <= best[0]:
            continue
        accuracy = run(affordable[-1], s, SWEEP_PHASES[1])
        if accuracy <= best_accuracy + min_gain:
            break
        best, best_accuracy = (affordable[-1], s), accuracy

    return BudgetSweep(
        budget=budget, best=BudgetSetting(*best, cost[best]), best_accuracy=best_accuracy, trials=trials
    )


def scorer_accuracy(scorer, corpus, split: str, progress: bool = False) -> Callable[[int, int], float]:
    """The sweep's callback for a `reward.scoring.Scorer`: pairwise accuracy (mean over dimensions)
    on `split` of `corpus` with the model reading `num_frames` frames of `size` × `size` (its own
    settings are restored after each evaluation)."""
    from reward.evaluate import evaluate_corpus

    def evaluate(num_frames: int, size: int) -> float:
        config = scorer.model.config
        saved = scorer.num_frames, scorer.frame_size, config.num_frames, config.frame_size
        # The scorer reads videos and the model samples/resizes them at these settings.
        scorer.num_frames, scorer.frame_size = num_frames, (size, size)
        config.num_frames, config.frame_size = num_frames, [size, size]
        try:
            report = evaluate_corpus(scorer, corpus, split, tie_threshold=0.0, progress=progress)
        finally:
            scorer.num_frames, scorer.frame_size, config.num_frames, config.frame_size = saved
        return report["overall"]["accuracy"]

    return evaluate


def default_grid(geometry: VisionGeometry, frame_size: Sequence[int]) -> tuple[list[int], list[int]]:
    """Frames t, 2t, 4t, ... up to 32, and sizes p·m, 2·p·m, ... up to the model's trained `frame_size`."""
    frames = [geometry.temporal_patch_size]
    while frames[-1] * 2 <= MAX_DEFAULT_FRAMES:
        frames.append(frames[-1] * 2)
    largest = max(geometry.factor, max(frame_size) // geometry.factor * geometry.factor)
    return frames, list(range(geometry.factor, largest + 1, geometry.factor))


def sweep_scorer(
    scorer,
    corpus,
    split: str,
    budget: int,
    frame_options: Sequence[int] | None = None,
    size_options: Sequence[int] | None = None,
    progress: bool = False,
) -> BudgetSweep:
    """`sweep_budget` for a loaded VLM reward model (`reward.scoring.Scorer`) on a corpus split,
    with the geometry from its processor and `default_grid` where options are not given."""
    geometry = vision_geometry(scorer.processing_class)
    frames, sizes = default_grid(geometry, scorer.model.config.frame_size)
    return sweep_budget(
        budget,
        scorer_accuracy(scorer, corpus, split, progress=progress),
        geometry,
        frame_options or frames,
        size_options or sizes,
    )


def format_sweep(sweep: BudgetSweep) -> str:
    """A text table of the trials, the best one marked."""
    lines = [f"token budget {sweep.budget} per video", "phase       frames  size  tokens  accuracy"]
    for trial in sweep.trials:
        mark = "  <- best" if trial.setting == sweep.best else ""
        s = trial.setting
        lines.append(
            f"{trial.phase:<10}  {s.num_frames:>6}  {s.size:>4}  {s.tokens:>6}  {trial.accuracy:>8.4f}{mark}"
        )
    return "\n".join(lines)
