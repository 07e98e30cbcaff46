"""The synthetic preference world (v1.1, docs/synthetic-world.md): render it, build a corpus, measure it.

Design decisions:
- A video is a `Scene` (caption attributes + size factor, speed and where the start lies in its
  allowed range, as fractions) turned into pixels by one pure function. The start position is
  stored as fractions of the allowed range, so the same draws stay valid when a defect swaps the
  shape or the direction: chosen and rejected videos share one seed and one scene.
- Shapes are drawn anti-aliased from signed distances (coverage = clip(0.5 - distance, 0, 1)),
  so sub-pixel motion is smooth. Pixel i covers [i, i + 1); the object stays inside [0, 64].
- Rendered videos are torch uint8 `[F, C, H, W]` RGB, the layout `read_video` returns and
  `write_video` takes, so in-memory and on-disk pairs look the same to a model.
- Splits are compositional: test = the 16 captions of the four held-out (color, shape) pairs;
  validation = the 4 captions of (yellow, circle) (`VALIDATION_COLOR_SHAPES`), also never seen in
  training; train = the other 28 captions. Every color, shape and direction still occurs in train.
- A corpus's pair counts are set per dimension and shared among splits in proportion to their
  captions (16/48 test, 4/48 validation, 28/48 train, at least one pair each); within a split,
  captions take turns in a seeded order. Every pair's randomness comes from
  `(seed, dimension, split, index)`, never from worker order, so any worker count gives the same
  bytes.
- Measurements (`dominant_color`, `dominant_shape`, `object_displacement`, `motion_direction`,
  `describe_video`) read a video back from its pixels alone, as an independent check of generated
  samples: they know the palette and the background, not the renderer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from tqdm.auto import tqdm

from reward.files import write_json
from reward.pairs import SPLITS, save_corpus
from reward.video import write_video

__all__ = [
    "WORLD",
    "COLORS",
    "SHAPES",
    "DIRECTIONS",
    "DIRECTION_STEPS",
    "BACKGROUND",
    "NUM_FRAMES",
    "FRAME_SIZE",
    "FPS",
    "CAPTIONS",
    "TEST_COLOR_SHAPES",
    "VALIDATION_COLOR_SHAPES",
    "SYNTHETIC_DIMENSIONS",
    "DEFECTS",
    "Scene",
    "SyntheticPair",
    "PairSpec",
    "parse_caption",
    "is_caption",
    "caption_split",
    "draw_scene",
    "scene_centres",
    "render_scene",
    "add_noise",
    "gaussian_blur",
    "flicker",
    "ATTRIBUTE_VALUES",
    "swap_attribute",
    "teleport_frames",
    "teleport",
    "freeze",
    "render_video",
    "render_pair",
    "plan_pairs",
    "iter_synthetic_pairs",
    "build_synthetic_corpus",
    "pixel_levels",
    "foreground_mask",
    "dominant_color",
    "dominant_shape",
    "object_centroids",
    "object_displacement",
    "motion_direction",
    "describe_video",
]

WORLD = "synthetic-v1"
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 50, 50),
    "green": (50, 190, 70),
    "blue": (60, 90, 230),
    "yellow": (235, 215, 50),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
BACKGROUND: tuple[int, int, int] = (96, 96, 96)
NUM_FRAMES = 16
FRAME_SIZE = 64
FPS = 8

# Unjittered sizes in px.
CIRCLE_RADIUS = 7.0
SQUARE_SIDE = 14.0
TRIANGLE_BASE = 16.0
TRIANGLE_HEIGHT = 14.0
SIZE_JITTER = (0.8, 1.2)  # one factor per video, on every linear size
SPEED_RANGE = (1.5, 2.5)  # px per frame
# (dx, dy) unit step per direction; image y grows downwards.
DIRECTION_STEPS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}

# The caption's attributes and their values, in caption order.
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "direction": DIRECTIONS,
}

CAPTION_TEMPLATE = "a {color} {shape} moving {direction}"
CAPTIONS: tuple[str, ...] = tuple(
    CAPTION_TEMPLATE.format(color=c, shape=s, direction=d) for c in COLORS for s in SHAPES for d in DIRECTIONS
)
TEST_COLOR_SHAPES: tuple[tuple[str, str], ...] = (
    ("red", "triangle"),
    ("green", "square"),
    ("blue", "circle"),
    ("yellow", "triangle"),
)
# The validation split is compositional too (v1.1): the 4 captions of one more (color, shape) pair,
# held out of training, so choices can be checked on unseen combinations without the test split.
VALIDATION_COLOR_SHAPES: tuple[tuple[str, str], ...] = (("yellow", "circle"),)

SYNTHETIC_DIMENSIONS: tuple[str, ...] = (
    "text_alignment",
    "visual_quality",
    "temporal_consistency",
    "dynamic_degree",
)
# The defects that make a rejected video, per dimension; one is drawn per pair.
DEFECTS: dict[str, tuple[str, ...]] = {
    "text_alignment": ("attribute_swap",),
    "visual_quality": ("noise", "blur"),
    "temporal_consistency": ("flicker", "teleport"),
    "dynamic_degree": ("freeze",),
}
NOISE_SIGMA = (25.0, 60.0)  # pixel levels
BLUR_SIGMA = (1.5, 3.0)  # px
FLICKER_FACTOR = (0.5, 1.5)  # per-frame brightness multiplier
FLICKER_MAX_AMPLITUDE = 0.5  # |factor - 1| at most: severity = amplitude / this
TELEPORT_FRAMES = (4, 8)  # inclusive
PIXEL_MAX = 255.0

# A pixel belongs to the object when a channel differs from the frame's background colour by
# more than this; the palette differs from the background by >= 94 in some channel, so this
# keeps pixels at least ~40% covered by the object.
FOREGROUND_THRESHOLD = 40.0
# Fraction of its bounding box an ideal shape fills, and a triangle's upper-half / lower-half area.
SHAPE_FILL: dict[str, float] = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}
TRIANGLE_TOP_BOTTOM = 1 / 3
# Below this many px/frame of centroid motion a video counts as static.
MIN_SPEED = 0.5


def parse_caption(caption: str) -> tuple[str, str, str]:
    """`"a red circle moving left"` -> `("red", "circle", "left")`; ValueError for anything else."""
    words = caption.strip().split()
    if len(words) == 5 and words[0] == "a" and words[3] == "moving":
        color, shape, direction = words[1], words[2], words[4]
        if color in COLORS and shape in SHAPES and direction in DIRECTIONS:
            return color, shape, direction
    raise ValueError(
        f"{caption!r} is not a synthetic-world caption: expected 'a {{color}} {{shape}} moving {{direction}}' "
        f"with color in {list(COLORS)}, shape in {list(SHAPES)}, direction in {list(DIRECTIONS)}"
    )


def is_caption(text: str) -> bool:
    """Whether `text` is one of the world's 48 captions (`parse_caption` would accept it)."""
    try:
        parse_caption(text)
    except ValueError:
        return False
    return True


def caption_split(caption: str) -> str:
    """The corpus split a caption belongs to: "test" (held-out color-shape pair), "validation" or "train"."""
    color, shape, _ = parse_caption(caption)
    if (color, shape) in TEST_COLOR_SHAPES:
        return "test"
    return "validation" if (color, shape) in VALIDATION_COLOR_SHAPES else "train"


@dataclass(frozen=True)
class Scene:
    """Everything that fixes a video: the caption's attributes and the per-video draws.

    `along` / `cross` in [0, 1] place the start within its allowed range along / across the
    motion, so a scene stays valid (object inside all frames) whatever shape or direction it gets.
    """

    color: str
    shape: str
    direction: str
    scale: float
    speed: float
    along: float
    cross: float


def draw_scene(caption: str, rng: np.random.Generator) -> Scene:
    """Draw size factor, speed and start position for `caption` (four draws from `rng`)."""
    color, shape, direction = parse_caption(caption)
    scale = rng.uniform(*SIZE_JITTER)
    speed = rng.uniform(*SPEED_RANGE)
    along, cross = rng.uniform(size=2)
    return Scene(color, shape, direction, float(scale), float(speed), float(along), float(cross))


def _half_extent(shape: str, scale: float) -> tuple[float, float]:
    """(half width, half height) of a shape's bounding box, in px."""
    if shape == "circle":
        return CIRCLE_RADIUS * scale, CIRCLE_RADIUS * scale
    if shape == "square":
        return SQUARE_SIDE / 2 * scale, SQUARE_SIDE / 2 * scale
    return TRIANGLE_BASE / 2 * scale, TRIANGLE_HEIGHT / 2 * scale


def scene_centres(scene: Scene) -> np.ndarray:
    """Bounding-box centre (x, y) of the object in each frame, float64 [NUM_FRAMES, 2]."""
    half = np.array(_half_extent(scene.shape, scene.scale))
    step = np.array(DIRECTION_STEPS[scene.direction], dtype=np.float64)
    moving = np.abs(step)  # 1 on the motion axis, 0 on the cross axis
    travel = scene.speed * (NUM_FRAMES - 1)
    low, high = half, FRAME_SIZE - half  # the centre's range that keeps the object inside
    # Along the motion the start leaves room for the whole travel ahead of it.
    start_along = np.where(
        step > 0, low + scene.along * (high - low - travel), high - scene.along * (high - low - travel)
    )
    start_cross = low + scene.cross * (high - low)
    start = moving * start_along + (1 - moving) * start_cross
    return start + np.arange(NUM_FRAMES)[:, None] * scene.speed * step  # [F, 2]


def _coverage(shape: str, scale: float, centres: np.ndarray) -> np.ndarray:
    """Anti-aliased object coverage in [0, 1], float32 [F, H, W], from the shape's signed distance."""
    grid = np.arange(FRAME_SIZE, dtype=np.float32) + 0.5  # pixel centres
    dx = grid[None, None, :] - centres[:, 0, None, None].astype(np.float32)  # [F, 1, W]
    dy = grid[None, :, None] - centres[:, 1, None, None].astype(np.float32)  # [F, H, 1]
    half_w, half_h = _half_extent(shape, scale)
    if shape == "circle":
        distance = np.sqrt(dx**2 + dy**2) - half_w
    elif shape == "square":
        distance = np.maximum(np.abs(dx) - half_w, np.abs(dy) - half_h)
    else:  # triangle, apex up: inside all three edges' half-planes
        norm = math.hypot(2 * half_h, half_w)
        sides = (np.abs(dx) * 2 * half_h - (dy + half_h) * half_w) / norm  # both slanted edges at once
        distance = np.maximum(dy - half_h, sides)
    return np.clip(0.5 - distance, 0.0, 1.0)  # [F, H, W]


def _to_frames(pixels: np.ndarray) -> torch.Tensor:
    """float [F, H, W, C] pixel levels -> uint8 [F, C, H, W] (rounded and clipped)."""
    pixels = np.clip(np.rint(pixels), 0, PIXEL_MAX).astype(np.uint8)
    return torch.from_numpy(
        np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
    )  # [F, H, W, C] -> [F, C, H, W]


def _draw(
    scene: Scene, centres: np.ndarray | None = None, rgb: tuple[float, float, float] | None = None
) -> np.ndarray:
    """float32 pixel levels [F, H, W, C] of `scene` (object at `centres`, default its own motion)."""
    centres = scene_centres(scene) if centres is None else centres
    coverage = _coverage(scene.shape, scene.scale, centres)[..., None]  # [F, H, W, 1]
    background = np.array(BACKGROUND, dtype=np.float32)
    color = np.array(COLORS[scene.color] if rgb is None else rgb, dtype=np.float32)
    return background + coverage * (color - background)


def render_scene(
    scene: Scene, centres: np.ndarray | None = None, rgb: tuple[float, float, float] | None = None
) -> torch.Tensor:
    """uint8 [F, C, H, W] video of `scene`; `centres` [F, 2] overrides the object's positions and
    `rgb` (pixel levels) its palette color."""
    return _to_frames(_draw(scene, centres, rgb))


# --- defects: small pure functions on float pixel levels [F, H, W, C] or on the scene -----------


def add_noise(pixels: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian pixel noise of standard deviation `sigma` levels, clipped to [0, 255]."""
    return np.clip(pixels + rng.normal(0.0, sigma, size=pixels.shape), 0.0, PIXEL_MAX)


def gaussian_blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Spatial Gaussian blur of standard deviation `sigma` px in every frame (not across frames)."""
    return gaussian_filter(pixels, sigma=(0, sigma, sigma, 0), mode="nearest")


def flicker(pixels: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Frame f multiplied by `factors[f]` (brightness flicker), clipped to [0, 255]."""
    return np.clip(pixels * factors[:, None, None, None], 0.0, PIXEL_MAX)


def swap_attribute(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with exactly one of color, shape or direction replaced by another value."""
    attribute = tuple(ATTRIBUTE_VALUES)[rng.integers(len(ATTRIBUTE_VALUES))]
    others = [v for v in ATTRIBUTE_VALUES[attribute] if v != getattr(scene, attribute)]
    return dataclasses.replace(scene, **{attribute: others[rng.integers(len(others))]})


def teleport_frames(scene: Scene, centres: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`centres` [F, 2] with the object moved to a random valid position on `count` random frames (in place)."""
    frames = rng.choice(NUM_FRAMES, size=count, replace=False)
    half = np.array(_half_extent(scene.shape, scene.scale))
    centres[frames] = rng.uniform(half, FRAME_SIZE - half, size=(count, 2))
    return centres


def teleport(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Centres [F, 2] with the object moved to a random valid position on 4-8 random frames.

    Returns the centres and the severity, the fraction of frames affected.
    """
    count = int(rng.integers(TELEPORT_FRAMES[0], TELEPORT_FRAMES[1] + 1))
    return teleport_frames(scene, scene_centres(scene), count, rng), count / NUM_FRAMES


def freeze(scene: Scene) -> np.ndarray:
    """Centres [F, 2] holding the object at its start position in every frame."""
    centres = scene_centres(scene)
    return np.repeat(centres[:1], NUM_FRAMES, axis=0)


def _apply_defect(scene: Scene, defect: str, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """The rejected video of `scene` with `defect` (parameters drawn from `rng`) and its severity in [0, 1]."""
    if defect == "attribute_swap":
        return render_scene(swap_attribute(scene, rng)), 1.0
    if defect == "freeze":
        return render_scene(scene, freeze(scene)), 1.0
    if defect == "teleport":
        centres, severity = teleport(scene, rng)
        return render_scene(scene, centres), severity
    if defect == "noise":
        sigma = rng.uniform(*NOISE_SIGMA)
        pixels = add_noise(_draw(scene), sigma, rng)
        return _to_frames(pixels), (sigma - NOISE_SIGMA[0]) / (NOISE_SIGMA[1] - NOISE_SIGMA[0])
    if defect == "blur":
        sigma = rng.uniform(*BLUR_SIGMA)
        return _to_frames(gaussian_blur(_draw(scene), sigma)), (sigma - BLUR_SIGMA[0]) / (
            BLUR_SIGMA[1] - BLUR_SIGMA[0]
        )
    if defect == "flicker":
        factors = rng.uniform(*FLICKER_FACTOR, size=NUM_FRAMES)
        return _to_frames(flicker(_draw(scene), factors)), float(
            np.abs(factors - 1).max() / FLICKER_MAX_AMPLITUDE
        )
    known = sorted({d for ds in DEFECTS.values() for d in ds})
    raise ValueError(f"unknown defect {defect!r}; expected one of {known}")


def render_video(caption: str, rng: np.random.Generator, defect: str | None = None) -> torch.Tensor:
    """uint8 [F, C, H, W] video of `caption`: faithful, or with `defect` (a name in `DEFECTS`).

    The scene is drawn first (size, speed, start), then the defect's parameters, from `rng`.
    """
    scene = draw_scene(caption, rng)
    return render_scene(scene) if defect is None else _apply_defect(scene, defect, rng)[0]


@dataclass
class SyntheticPair:
    """A chosen (faithful) and rejected (defective) rendering of one scene, uint8 [F, C, H, W] each."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    severity: float
    defect: str


def render_pair(caption: str, dimension: str, rng: np.random.Generator) -> SyntheticPair:
    """A preference pair for `dimension`: one scene, rendered faithfully and with a drawn defect."""
    if dimension not in DEFECTS:
        raise ValueError(
            f"{dimension!r} is not a synthetic dimension; expected one of {list(SYNTHETIC_DIMENSIONS)}"
        )
    scene = draw_scene(caption, rng)
    defect = DEFECTS[dimension][rng.integers(len(DEFECTS[dimension]))]
    rejected, severity = _apply_defect(scene, defect, rng)
    return SyntheticPair(render_scene(scene), rejected, float(severity), defect)


# --- corpus ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairSpec:
    """One planned pair: where it goes and the entropy its randomness comes from."""

    split: str
    dimension: str
    caption: str
    index: int  # within (split, dimension)
    entropy: tuple[int, ...]  # (seed, dimension index, split index, index)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(list(self.entropy))

    def video_path(self, role: str) -> str:
        """Path of the `role` ("chosen" / "rejected") video, relative to the corpus's video root."""
        return f"{self.split}/{self.dimension}/{self.index:06d}_{role}.mp4"


def _split_counts(num_pairs: int) -> dict[str, int]:
    """Pairs per split, in proportion to the split's captions, at least one each (`num_pairs` >= 3)."""
    captions = Counter(caption_split(c) for c in CAPTIONS)
    counts = {
        split: max(1, round(num_pairs * captions[split] / len(CAPTIONS))) for split in ("validation", "test")
    }
    return {"train": num_pairs - sum(counts.values()), **counts}


def plan_pairs(pairs_per_dimension: int, seed: int, alignment_factor: int = 1) -> list[PairSpec]:
    """Every pair of a corpus, in a fixed order; text_alignment gets `alignment_factor` times as many."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if alignment_factor < 1:
        raise ValueError(f"alignment_factor must be >= 1, got {alignment_factor}")
    if pairs_per_dimension < len(SPLITS):
        raise ValueError(
            f"need at least {len(SPLITS)} pairs per dimension (one per split), got {pairs_per_dimension}"
        )
    specs = []
    for d, dimension in enumerate(SYNTHETIC_DIMENSIONS):
        factor = alignment_factor if dimension == "text_alignment" else 1
        counts = _split_counts(pairs_per_dimension * factor)
        for s, split in enumerate(SPLITS):
            captions = [c for c in CAPTIONS if caption_split(c) == split]
            order = np.random.default_rng([seed, d, s]).permutation(len(captions))
            for k in range(counts[split]):
                caption = captions[order[k % len(captions)]]
                specs.append(PairSpec(split, dimension, caption, k, (seed, d, s, k)))
    return specs


def iter_synthetic_pairs(
    pairs_per_dimension: int, seed: int, alignment_factor: int = 1
) -> Iterator[tuple[PairSpec, SyntheticPair]]:
    """The pairs `build_synthetic_corpus` would write, rendered in memory (no files)."""
    for spec in plan_pairs(pairs_per_dimension, seed, alignment_factor):
        yield spec, render_pair(spec.caption, spec.dimension, spec.rng())


def _render_row(job: tuple[PairSpec, str]) -> dict:
    """Render one planned pair, write its two videos unless already there, return its corpus row."""
    spec, video_root = job
    pair = render_pair(spec.caption, spec.dimension, spec.rng())
    for role, frames in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        path = Path(video_root, spec.video_path(role))
        if not path.is_file():  # written atomically, so a present file is complete (resume)
            write_video(frames, path, fps=FPS)
    return {
        "prompt": spec.caption,
        "dimension": spec.dimension,
        "chosen_video": spec.video_path("chosen"),
        "rejected_video": spec.video_path("rejected"),
        "margin": pair.severity,
        "tie": False,
        "source": "synthetic",
        "kind": "same_prompt",
        "chosen_score": math.nan,
        "rejected_score": math.nan,
        "defect": pair.defect,
        "split": spec.split,
    }


def build_synthetic_corpus(
    out_dir: str | os.PathLike,
    pairs_per_dimension: int,
    seed: int,
    alignment_factor: int = 1,
    num_workers: int | None = None,
) -> Path:
    """Render the synthetic world to mp4s under `out_dir/videos/` and save its pairs as a corpus.

    `pairs_per_dimension` counts a dimension's pairs over all splits (text_alignment gets
    `alignment_factor` times as many). `num_workers` processes render (default: every core);
    the output is the same for any worker count. An interrupted build resumes: videos already
    written are kept (the build parameters are checked first). Writes `report.json` with the
    counts per split and dimension. Returns `out_dir`, ready for `reward.pairs.load_corpus`.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    video_root = out_dir / "videos"
    params = {
        "world": WORLD,
        "seed": seed,
        "pairs_per_dimension": pairs_per_dimension,
        "alignment_factor": alignment_factor,
    }
    specs = plan_pairs(pairs_per_dimension, seed, alignment_factor)
    params_path = video_root / "params.json"
    if params_path.is_file():
        previous = json.loads(params_path.read_text())
        if previous != params:
            raise ValueError(
                f"{video_root} holds videos built with {previous}, not {params}: choose another --out or delete it"
            )
    write_json(params_path, params)
    workers = max(1, min(num_workers or os.cpu_count() or 1, len(specs)))
    jobs = [(spec, str(video_root)) for spec in specs]
    progress = {"total": len(jobs), "desc": "rendering synthetic pairs", "unit": "pair"}
    if workers == 1:
        rows = [_render_row(job) for job in tqdm(jobs, **progress)]
    else:
        with multiprocessing.get_context().Pool(workers) as pool:
            rows = list(
                tqdm(pool.imap(_render_row, jobs, chunksize=max(1, len(jobs) // (8 * workers))), **progress)
            )
    by_split = {split: [r for r in rows if r["split"] == split] for split in SPLITS}
    pairs = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list(
                [{k: v for k, v in r.items() if k != "split"} for r in split_rows]
            )
            for split, split_rows in by_split.items()
        }
    )
    counts = {
        split: dict(Counter(r["dimension"] for r in split_rows)) for split, split_rows in by_split.items()
    }
    save_corpus(out_dir, pairs, video_root, meta={"source": "synthetic", **params})
    report = {
        **params,
        "pairs": counts,
        "total_pairs": len(rows),
        "captions": {
            split: sorted({r["prompt"] for r in split_rows}) for split, split_rows in by_split.items()
        },
        "workers": workers,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out_dir / "report.json", report)
    return out_dir


# --- measurements: read a video back from its pixels ----------------------------------------------


def pixel_levels(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 [F, C, H, W], or float in [0, 1], -> float32 pixel levels [F, H, W, C]."""
    if isinstance(frames, torch.Tensor):  # float() first: numpy has no bfloat16
        frames = frames.detach().cpu()
        frames = (frames if frames.dtype == torch.uint8 else frames.float()).numpy()
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(f"frames must be [F, 3, H, W], got {list(array.shape)}")
    array = array.astype(np.float32) * (1.0 if array.dtype == np.uint8 else PIXEL_MAX)
    return array.transpose(0, 2, 3, 1)  # [F, C, H, W] -> [F, H, W, C]


def foreground_mask(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """bool [F, H, W]: pixels whose colour differs from the frame's background (its median colour)."""
    pixels = pixel_levels(frames)
    background = np.median(pixels, axis=(1, 2), keepdims=True)  # the object covers well under half
    return np.abs(pixels - background).max(axis=-1) > FOREGROUND_THRESHOLD


def dominant_color(frames: torch.Tensor | np.ndarray) -> str | None:
    """The palette color most foreground pixels are nearest to; None when nothing stands out."""
    pixels, mask = pixel_levels(frames), foreground_mask(frames)
    if not mask.any():
        return None
    palette = np.array(list(COLORS.values()), dtype=np.float32)  # [K, C]
    nearest = np.linalg.norm(pixels[mask][:, None, :] - palette[None], axis=-1).argmin(axis=1)  # [N]
    return list(COLORS)[np.bincount(nearest, minlength=len(COLORS)).argmax()]


def dominant_shape(frames: torch.Tensor | np.ndarray) -> str | None:
    """circle, square or triangle, from the object's bounding box; None when nothing stands out.

    A triangle (apex up) holds 1/4 of its area in the upper half of its box and 3/4 in the lower
    (ratio 1/3; circle and square 1); a circle fills pi/4 of its box, a square all of it. Each
    measurement is the median over frames, each decision the midpoint between the ideals.
    """
    fills, top_bottom = [], []
    for mask in foreground_mask(frames):
        ys, xs = np.nonzero(mask)
        if len(xs):
            fills.append(len(xs) / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)))
            middle = (ys.min() + ys.max()) / 2
            top_bottom.append((ys < middle).sum() / max(1, (ys > middle).sum()))
    if not fills:
        return None
    if np.median(top_bottom) < (TRIANGLE_TOP_BOTTOM + 1) / 2:
        return "triangle"
    return "square" if np.median(fills) > (SHAPE_FILL["circle"] + SHAPE_FILL["square"]) / 2 else "circle"


def object_centroids(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """(x, y) centroid of the foreground pixels per frame, float [F, 2]; NaN where a frame has none."""
    centroids = np.full((len(frames), 2), np.nan)
    for f, mask in enumerate(foreground_mask(frames)):
        ys, xs = np.nonzero(mask)
        if len(xs):
            centroids[f] = xs.mean() + 0.5, ys.mean() + 0.5  # pixel centres
    return centroids


def object_displacement(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean (dx, dy) motion of the object's centroid in px per frame, float [2] (y grows down).

    A frozen object gives (0, 0); frames with no object are left out; NaN if under two frames have one.
    """
    steps = np.diff(object_centroids(frames), axis=0)  # [F - 1, 2]
    steps = steps[~np.isnan(steps).any(axis=1)]
    return steps.mean(axis=0) if len(steps) else np.full(2, np.nan)


def motion_direction(frames: torch.Tensor | np.ndarray) -> str | None:
    """left / right / up / down along the dominant axis of motion; None when slower than MIN_SPEED."""
    dx, dy = object_displacement(frames)
    if not np.hypot(dx, dy) >= MIN_SPEED:  # also catches NaN
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def describe_video(frames: torch.Tensor | np.ndarray) -> str | None:
    """The caption a video shows, measured from its pixels; None when color, shape or motion is unclear."""
    color, shape, direction = dominant_color(frames), dominant_shape(frames), motion_direction(frames)
    if color is None or shape is None or direction is None:
        return None
    return CAPTION_TEMPLATE.format(color=color, shape=shape, direction=direction)
