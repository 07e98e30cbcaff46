"""The graded world (synthetic-v2): videos with graded qualities, and five simulated scoring datasets.

World v1 (`reward.synthetic`) gives every pair one strong defect and is saturated: every model
reads it. v2 keeps v1's scenes (colours, shapes, directions, 64 x 64 x 16 frames) and grades them:

- every video draws a severity in [0, 1] for each of five defects (`DEFECTS`), several at once,
  and a number of caption attributes rendered wrong (0, 1 or 2 of colour / shape / direction);
- its true quality per dimension (`true_qualities`) follows from the severities, and its true
  overall quality is a fixed weighting of them (`OVERALL_WEIGHTS`);
- a "generator model" (`GeneratorModel`) is a distribution over defects; a source draws its
  videos from its own mix of models.

Five sources (`SOURCES`) then rate those videos the way the public datasets do, each written in
that dataset's exact file format (`reward.formats`) and read back only through
`clevereward data build`'s adapters: VideoFeedback (parquet, integers 1-4 on five aspects, the
rounded mean of a few raters), T2VQA-DB (`info.txt`, one MOS on 0-100 under its own weighting of
the dimensions), GenAI-Bench (left / right / tie / both-bad votes of one rater), VideoGen-
RewardBench (CSV, A / B / same on VQ / MQ / TA) and FETV (JSON lines, 1-5 per rater and model).
Each has its own prompts, model mix, rater noise and bias (`RaterModel.blind`: how much of a
defect its raters notice). Held out of all of them, two benchmarks in VideoGen-RewardBench format
with ties are labelled from the true qualities: `benchmark/` on the test-split captions (colour-
shape pairs no source contains) and `validation/` on the validation-split captions.

`simulate_sources(out)` writes it all, plus `truth.jsonl` (each video's severities and true
qualities) so any pair can be checked against the truth. The spec: docs/graded-world.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reward.build import BuildConfig, build_corpus
from reward.files import atomic_write, write_json
from reward.formats import (
    write_fetv,
    write_genai_bench,
    write_rewardbench,
    write_t2vqa,
    write_videofeedback,
)
from reward.sources import (
    FETV_DIMENSIONS,
    FETV_SCALE,
    VIDEOFEEDBACK_DIMENSIONS,
    VIDEOFEEDBACK_SCALE,
    SourceData,
    read_source,
    with_video_folder,
)
from reward.synthetic import (
    ATTRIBUTE_VALUES,
    CAPTIONS,
    FLICKER_MAX_AMPLITUDE,
    FPS,
    NUM_FRAMES,
    Scene,
    _draw,
    _to_frames,
    add_noise,
    caption_split,
    draw_scene,
    flicker,
    gaussian_blur,
    scene_centres,
    teleport_frames,
)
from reward.video import write_video

__all__ = [
    "WORLD_V2",
    "GRADED_DIMENSIONS",
    "DEFECTS",
    "OVERALL_WEIGHTS",
    "Defects",
    "GeneratorModel",
    "MODELS",
    "RaterModel",
    "SourceSpec",
    "SOURCES",
    "BENCHMARK_TIE",
    "true_qualities",
    "draw_defects",
    "render_graded",
    "simulate_sources",
    "read_truth",
    "read_simulated",
    "ALL_TRAIN",
    "simulated_pairs",
    "label_agreement",
]

WORLD_V2 = "synthetic-v2"
GRADED_DIMENSIONS: tuple[str, ...] = (
    "visual_quality",
    "temporal_consistency",
    "dynamic_degree",
    "text_alignment",
    "factual_consistency",
)
# Severity-graded defects, and the dimension each one lowers.
DEFECTS: dict[str, str] = {
    "noise": "visual_quality",
    "blur": "visual_quality",
    "flicker": "temporal_consistency",
    "freeze": "dynamic_degree",  # the object moves (1 - severity) of its speed
    "jumps": "factual_consistency",  # objects do not teleport: severity x JUMP_FRAMES_MAX frames do
}
NOISE_SIGMA_MAX = 60.0  # pixel levels at severity 1 (v1 draws 25-60)
BLUR_SIGMA_MAX = 3.0  # px at severity 1 (v1 draws 1.5-3)
JUMP_FRAMES_MAX = 8  # frames teleported at severity 1 (v1: 4-8)
MAX_WRONG_ATTRIBUTES = 2  # of colour, shape, direction: text alignment 1, 1/2 or 0
# The true overall quality: a fixed weighting of the true per-dimension qualities.
OVERALL_WEIGHTS: dict[str, float] = {
    "visual_quality": 0.25,
    "temporal_consistency": 0.2,
    "dynamic_degree": 0.1,
    "text_alignment": 0.3,
    "factual_consistency": 0.15,
}
BENCHMARK_TIE = 0.05  # a benchmark pair whose true qualities differ by less is labelled "same"
BENCHMARK_VIDEOS_PER_PROMPT = 6  # every pair of them is a benchmark row (15 per prompt)
TRUTH_FILE = "truth.jsonl"
BENCHMARK_FORMAT = "videogen_rewardbench"  # the benchmarks' file format


@dataclass(frozen=True)
class Defects:
    """One video's defect severities in [0, 1] and its number of wrongly rendered caption attributes."""

    noise: float = 0.0
    blur: float = 0.0
    flicker: float = 0.0
    freeze: float = 0.0
    jumps: float = 0.0
    wrong_attributes: int = 0


def true_qualities(defects: Defects) -> dict[str, float]:
    """The true quality in [0, 1] per dimension, and `overall` (`OVERALL_WEIGHTS` of them).

    visual quality 1 - (noise + blur) / 2; temporal consistency 1 - flicker; dynamic degree
    1 - freeze; factual consistency 1 - jumps; text alignment 1 - wrong attributes / 2.
    """
    qualities = {
        "visual_quality": 1.0 - (defects.noise + defects.blur) / 2,
        "temporal_consistency": 1.0 - defects.flicker,
        "dynamic_degree": 1.0 - defects.freeze,
        "text_alignment": 1.0 - defects.wrong_attributes / MAX_WRONG_ATTRIBUTES,
        "factual_consistency": 1.0 - defects.jumps,
    }
    qualities["overall"] = sum(OVERALL_WEIGHTS[d] * q for d, q in qualities.items())
    return qualities


@dataclass(frozen=True)
class GeneratorModel:
    """A text-to-video "model": a distribution over defects.

    Each defect is present with probability `presence`, and then has a Beta-distributed
    severity of mean `severity[d]` (concentration `concentration`); `wrong_attributes[k]` is the
    probability of k wrong caption attributes.
    """

    name: str
    severity: dict[str, float]
    presence: float = 0.6
    concentration: float = 4.0
    wrong_attributes: tuple[float, float, float] = (0.7, 0.2, 0.1)


def draw_defects(model: GeneratorModel, rng: np.random.Generator) -> Defects:
    """One video's defects under `model` (a fixed number of draws from `rng` per video)."""
    severities = {}
    for defect in DEFECTS:
        present, mean = rng.uniform() < model.presence, model.severity.get(defect, 0.0)
        value = rng.beta(model.concentration * mean, model.concentration * (1 - mean)) if mean > 0 else 0.0
        severities[defect] = float(value) if present else 0.0
    wrong = int(rng.choice(len(model.wrong_attributes), p=model.wrong_attributes))
    return Defects(**severities, wrong_attributes=wrong)


def _quiet(**overrides: float) -> dict[str, float]:
    return {**dict.fromkeys(DEFECTS, 0.1), **overrides}


MODELS: dict[str, GeneratorModel] = {
    m.name: m
    for m in (
        GeneratorModel("crisp", _quiet(), wrong_attributes=(0.85, 0.1, 0.05)),
        GeneratorModel("blurry", _quiet(blur=0.6, noise=0.3)),
        GeneratorModel("noisy", _quiet(noise=0.6)),
        GeneratorModel("jittery", _quiet(flicker=0.6, jumps=0.5)),
        GeneratorModel("static", _quiet(freeze=0.7)),
        GeneratorModel("confused", _quiet(), wrong_attributes=(0.3, 0.4, 0.3)),
    )
}


def _wrong_scene(scene: Scene, count: int, rng: np.random.Generator) -> Scene:
    """`scene` with `count` distinct caption attributes replaced by other values."""
    changes = {}
    for attribute in rng.permutation(list(ATTRIBUTE_VALUES))[:count]:
        others = [v for v in ATTRIBUTE_VALUES[attribute] if v != getattr(scene, attribute)]
        changes[str(attribute)] = others[rng.integers(len(others))]
    return dataclasses.replace(scene, **changes)


def render_graded(caption: str, defects: Defects, rng: np.random.Generator) -> torch.Tensor:
    """uint8 [F, C, H, W] video of `caption` with `defects` (scene and defect draws from `rng`)."""
    scene = _wrong_scene(draw_scene(caption, rng), defects.wrong_attributes, rng)
    centres = scene_centres(scene)  # [F, 2]
    centres = centres[:1] + (centres - centres[:1]) * (1.0 - defects.freeze)  # slowed towards a stand-still
    if jumps := round(defects.jumps * JUMP_FRAMES_MAX):
        centres = teleport_frames(scene, centres, jumps, rng)
    pixels = _draw(scene, centres)  # float [F, H, W, C]
    if defects.blur > 0:
        pixels = gaussian_blur(pixels, defects.blur * BLUR_SIGMA_MAX)
    if defects.flicker > 0:
        amplitude = defects.flicker * FLICKER_MAX_AMPLITUDE
        pixels = flicker(pixels, 1.0 + rng.uniform(-amplitude, amplitude, size=NUM_FRAMES))
    if defects.noise > 0:
        pixels = add_noise(pixels, defects.noise * NOISE_SIGMA_MAX, rng)
    return _to_frames(pixels)


# --- raters and sources ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RaterModel:
    """How a source's raters perceive a video: each rater sees, per dimension,

        perceived = 1 - blind[d] * (1 - true quality) + N(0, noise²)

    (`blind[d]` < 1: the raters notice only that share of the dimension's defects; default 1),
    and rates its overall quality with `weights` (default: the true `OVERALL_WEIGHTS`).
    """

    count: int = 3
    noise: float = 0.1
    blind: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] | None = None

    def perceive(self, truth: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        """One rater's perceived quality per dimension and overall (a draw per dimension)."""
        seen = {
            d: 1.0 - self.blind.get(d, 1.0) * (1.0 - truth[d]) + rng.normal(0.0, self.noise)
            for d in GRADED_DIMENSIONS
        }
        weights = self.weights or OVERALL_WEIGHTS
        seen["overall"] = sum(weights[d] * seen[d] for d in GRADED_DIMENSIONS) / sum(weights.values())
        return seen

    def mean_perception(self, truth: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        """The mean over `count` raters of their perceptions."""
        views = [self.perceive(truth, rng) for _ in range(self.count)]
        return {k: float(np.mean([v[k] for v in views])) for k in views[0]}


@dataclass(frozen=True)
class SourceSpec:
    """One simulated dataset: its format (`name`, a `clevereward data build` source), prompts, models, raters.

    `prompts` train-split captions (a seeded draw per source, so the sources overlap only in part),
    `videos_per_prompt` videos each, every one from a model drawn from `models`.
    """

    name: str
    models: tuple[str, ...]
    prompts: int
    videos_per_prompt: int
    raters: RaterModel


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        "videofeedback", ("crisp", "blurry", "jittery", "confused"), 20, 6, RaterModel(count=3, noise=0.12)
    ),
    SourceSpec(
        "t2vqa",
        ("crisp", "noisy", "static", "blurry"),
        22,
        6,
        RaterModel(
            count=5,
            noise=0.15,
            weights={
                "visual_quality": 0.5,
                "temporal_consistency": 0.2,
                "dynamic_degree": 0.0,
                "text_alignment": 0.2,
                "factual_consistency": 0.1,
            },
        ),
    ),  # fmt: skip
    SourceSpec(
        "genai_bench", ("crisp", "noisy", "confused", "static"), 24, 6, RaterModel(count=1, noise=0.12)
    ),
    SourceSpec(
        "videogen_rewardbench",
        ("crisp", "jittery", "blurry", "confused"),
        20,
        6,
        RaterModel(count=2, noise=0.1, blind={"temporal_consistency": 0.3}),  # its raters barely see flicker
    ),
    SourceSpec("fetv", ("crisp", "static", "noisy", "jittery"), 18, 4, RaterModel(count=3, noise=0.15)),
)
# VideoGen-RewardBench's labels: VQ / MQ / TA (and Overall), from these dimensions.
REWARDBENCH_FROM = {
    "VQ": "visual_quality",
    "MQ": "temporal_consistency",
    "TA": "text_alignment",
    "Overall": "overall",
}
# FETV's three aspects, from these dimensions.
FETV_FROM = dict(
    zip(FETV_DIMENSIONS, ("visual_quality", "temporal_consistency", "text_alignment"), strict=True)
)
# VideoFeedback's five aspects are the five graded dimensions, in its column order.
VIDEOFEEDBACK_FROM = dict(zip(VIDEOFEEDBACK_DIMENSIONS, GRADED_DIMENSIONS, strict=True))
GENAI_BOTH_BAD = 0.35  # a rater votes "both bad" when both videos look worse than this overall
PAIR_TIE = 0.05  # raters call perceived differences under this a tie / "same"


def _scale(value: float, low: float, high: float) -> int:
    """A perceived quality in [0, 1] as an integer rating on low..high (rounded, clipped)."""
    return int(np.clip(round(low + value * (high - low)), low, high))


def _vote(a: float, b: float, tie: float) -> str:
    return "same" if abs(a - b) < tie else ("A" if a > b else "B")


class _Videos:
    """Renders videos into `root/<folder>/` and records their truth, one random stream per video."""

    def __init__(self, root: Path, folder: str, seed: tuple[int, ...], truth: list[dict]):
        self.root, self.folder, self.seed, self.truth = root, folder, seed, truth

    def render(self, name: str, caption: str, model: GeneratorModel) -> dict[str, float]:
        """Write `<folder>/<name>` for `caption` under `model`; return its true qualities."""
        rng = np.random.default_rng([*self.seed, len(self.truth)])
        defects = draw_defects(model, rng)
        path = f"{self.folder}/{name}"
        write_video(render_graded(caption, defects, rng), self.root / path, fps=FPS)
        qualities = true_qualities(defects)
        self.truth.append({"video": path, "prompt": caption, "model": model.name,
                           "defects": dataclasses.asdict(defects), "qualities": qualities})  # fmt: skip
        return qualities


@dataclass(frozen=True)
class _Video:
    prompt: str
    model: str
    name: str  # relative to the source's video folder
    qualities: dict[str, float]


def _captions(split: str, count: int | None, rng: np.random.Generator) -> list[str]:
    """`count` captions of `split` (a seeded draw; all of them when `count` is None), in world order."""
    captions = [c for c in CAPTIONS if caption_split(c) == split]
    if count is None:
        return captions
    if count > len(captions):
        raise ValueError(f"{count} prompts asked of the {split} split, which has {len(captions)} captions")
    return [captions[i] for i in sorted(rng.choice(len(captions), size=count, replace=False))]


def _render(
    captions: list[str],
    models: tuple[str, ...],
    per_prompt: int,
    videos: _Videos,
    rng,
    every_model: bool = False,
) -> list[_Video]:
    """`per_prompt` videos per caption, each from a model drawn from `models`; with `every_model`,
    each model renders each caption once instead, named `<model>/<caption index>.mp4` as FETV does."""
    rendered = []
    for p, prompt in enumerate(captions):
        drawn = models if every_model else [models[i] for i in rng.integers(len(models), size=per_prompt)]
        for k, model in enumerate(drawn):
            name = f"{model}/{p}.mp4" if every_model else f"{p:03d}_{k:02d}.mp4"
            rendered.append(_Video(prompt, model, name, videos.render(name, prompt, MODELS[model])))
    return rendered


def _prompt_pairs(rendered: list[_Video]) -> list[tuple[_Video, _Video]]:
    """Every pair of videos of the same prompt, in a fixed order."""
    return [(a, b) for a, b in itertools.combinations(rendered, 2) if a.prompt == b.prompt]


def _same_prompt_pairs(
    rendered: list[_Video], rng: np.random.Generator, share: float
) -> list[tuple[_Video, _Video]]:
    """A seeded `share` of all same-prompt video pairs, in a fixed order."""
    pairs = _prompt_pairs(rendered)
    keep = sorted(rng.choice(len(pairs), size=max(1, round(share * len(pairs))), replace=False))
    return [pairs[i] for i in keep]


PAIR_SHARE = 1 / 3  # of a prompt's video pairs, the share a pair-wise source has rated


def _write_videofeedback(folder: Path, rendered, raters: RaterModel, rng) -> Path:
    rows = []
    for video in rendered:
        seen = raters.mean_perception(video.qualities, rng)
        scores = {column: _scale(seen[d], *VIDEOFEEDBACK_SCALE) for column, d in VIDEOFEEDBACK_FROM.items()}
        rows.append({"id": Path(video.name).stem, "prompt": video.prompt, "scores": scores})
    write_videofeedback(folder / "data.parquet", rows)
    return folder / "data.parquet"


def _write_t2vqa(folder: Path, rendered, raters: RaterModel, rng) -> Path:
    rows = []
    for video in rendered:
        mos = 100 * float(np.clip(raters.mean_perception(video.qualities, rng)["overall"], 0.0, 1.0))
        rows.append((video.name, video.prompt, round(mos, 2)))
    write_t2vqa(folder / "info.txt", rows)
    return folder / "info.txt"


def _write_genai_bench(folder: Path, rendered, raters: RaterModel, rng) -> Path:
    rows = []
    for left, right in _same_prompt_pairs(rendered, rng, PAIR_SHARE):
        a, b = (raters.perceive(v.qualities, rng)["overall"] for v in (left, right))
        vote = {"A": "leftvote", "B": "rightvote", "same": "tievote"}[_vote(a, b, PAIR_TIE)]
        rows.append(
            (left.prompt, left.name, right.name, "bothbad_vote" if max(a, b) < GENAI_BOTH_BAD else vote)
        )
    write_genai_bench(folder / "data.parquet", rows)
    return folder / "data.parquet"


def _rewardbench_rows(pairs, perceive, tie: float) -> list[dict]:
    """A / B / same per VideoGen-RewardBench column, from `perceive(video)`'s qualities."""
    rows = []
    for a, b in pairs:
        seen_a, seen_b = perceive(a), perceive(b)
        labels = {column: _vote(seen_a[d], seen_b[d], tie) for column, d in REWARDBENCH_FROM.items()}
        rows.append({"path_A": a.name, "path_B": b.name, "prompt": a.prompt, **labels})
    return rows


def _write_rewardbench(folder: Path, rendered, raters: RaterModel, rng) -> Path:
    pairs = _same_prompt_pairs(rendered, rng, PAIR_SHARE)
    write_rewardbench(
        folder / "train.csv",
        _rewardbench_rows(pairs, lambda v: raters.mean_perception(v.qualities, rng), PAIR_TIE),
    )
    return folder / "train.csv"


def _write_fetv(folder: Path, rendered, raters: RaterModel, rng) -> Path:
    prompts = list(dict.fromkeys(v.prompt for v in rendered))  # line i of fetv_data.json is prompt i
    ratings: dict[int, dict[str, list[dict]]] = {r: defaultdict(list) for r in range(raters.count)}
    for video in rendered:
        index = prompts.index(video.prompt)
        for rater in range(raters.count):
            seen = raters.perceive(video.qualities, rng)
            ratings[rater][video.model].append(
                {str(index): {c: _scale(seen[d], *FETV_SCALE) for c, d in FETV_FROM.items()}}
            )
    write_fetv(folder, prompts, ratings)
    return folder


_WRITERS = {
    "videofeedback": _write_videofeedback,
    "t2vqa": _write_t2vqa,
    "genai_bench": _write_genai_bench,
    "videogen_rewardbench": _write_rewardbench,
    "fetv": _write_fetv,
}
VIDEO_FOLDER = "videos"  # each source's videos, under its folder


def _benchmark(root: Path, split: str, seed: tuple[int, ...], truth: list[dict]) -> Path:
    """A VideoGen-RewardBench CSV on `split`'s captions: every pair of `BENCHMARK_VIDEOS_PER_PROMPT`
    videos per caption (models drawn from all of `MODELS`), labelled from the true qualities."""
    rng = np.random.default_rng(seed)
    videos = _Videos(root, f"{split}/{VIDEO_FOLDER}", seed, truth)
    rendered = _render(_captions(split, None, rng), tuple(MODELS), BENCHMARK_VIDEOS_PER_PROMPT, videos, rng)
    pairs = _prompt_pairs(rendered)
    rows = _rewardbench_rows(pairs, lambda v: v.qualities, BENCHMARK_TIE)
    for row, (a, b) in zip(rows, pairs, strict=True):  # the true qualities as MOS columns: for SRCC
        for column, dimension in REWARDBENCH_FROM.items():
            row[f"MOS_A_{column}"], row[f"MOS_B_{column}"] = a.qualities[dimension], b.qualities[dimension]
    write_rewardbench(root / split / "pairs.csv", rows)
    return root / split / "pairs.csv"


def simulate_sources(
    out: str | os.PathLike, seed: int = 0, sources: tuple[SourceSpec, ...] = SOURCES, log=print
) -> dict:
    """Write every source of `sources` and both benchmarks under `out`; return the manifest.

    Layout: `<source>/` holds the source's files (the path in `manifest["sources"]`) and its videos
    under `<source>/videos/`; `test/pairs.csv` and `validation/pairs.csv` are the benchmarks;
    `truth.jsonl` has each video's defects and true qualities; `manifest.json` the rest. Read
    them with `clevereward data build --source NAME=PATH --video-root OUT --video-folder
    NAME=NAME/videos` (the manifest lists the exact arguments).
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    truth: list[dict] = []
    paths = {}
    for index, spec in enumerate(sources):
        rng = np.random.default_rng([seed, index])
        videos = _Videos(root, f"{spec.name}/{VIDEO_FOLDER}", (seed, index), truth)
        captions = _captions("train", spec.prompts, rng)
        rendered = _render(captions, spec.models, spec.videos_per_prompt, videos, rng, spec.name == "fetv")
        folder = root / spec.name
        paths[spec.name] = str(_WRITERS[spec.name](folder, rendered, spec.raters, rng).relative_to(root))
        log(f"{spec.name}: {len(rendered)} videos -> {paths[spec.name]}")
    benchmarks = {
        split: str(_benchmark(root, split, (seed, len(sources) + i), truth).relative_to(root))
        for i, split in enumerate(("validation", "test"))
    }
    with atomic_write(root / TRUTH_FILE) as f:
        f.writelines(json.dumps(row) + "\n" for row in truth)
    manifest = {
        "world": WORLD_V2,
        "seed": seed,
        "sources": paths,
        "benchmarks": benchmarks,
        "video_folders": {name: f"{name}/{VIDEO_FOLDER}" for name in [*paths, *benchmarks]},
        "specs": [dataclasses.asdict(spec) for spec in sources],
        "videos": len(truth),
    }
    write_json(root / "manifest.json", manifest)
    return manifest


def read_truth(out: str | os.PathLike) -> dict[str, dict]:
    """{video path relative to `out`: its truth row} from `out/truth.jsonl`."""
    path = Path(out) / TRUTH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {out} is not a folder written by simulate_sources")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["video"]: row for row in rows}


def read_simulated(out: str | os.PathLike, name: str) -> SourceData:
    """Source or benchmark `name` of a `simulate_sources` folder, read through its real adapter
    (`reward.sources.read_source`), video paths relative to `out`."""
    root = Path(out)
    manifest = json.loads((root / "manifest.json").read_text())
    paths = {**manifest["sources"], **manifest["benchmarks"]}
    if name not in paths:
        raise ValueError(f"{root}: no source or benchmark {name!r}; it has {sorted(paths)}")
    reader = name if name in manifest["sources"] else BENCHMARK_FORMAT
    return with_video_folder(read_source(reader, root / paths[name]), manifest["video_folders"][name])


# Every record of a source in one split (train): the benchmarks are separate sources.
ALL_TRAIN = BuildConfig(validation_fraction=0.0, test_fraction=0.0)


def simulated_pairs(out: str | os.PathLike, name: str, config: BuildConfig = ALL_TRAIN):
    """The pairs `clevereward data build` makes of source or benchmark `name` alone (a `Dataset`)."""
    pairs, _ = build_corpus([read_simulated(out, name)], out, config)
    return pairs["train"]


def label_agreement(pairs, truth: dict[str, dict]) -> dict[str, float]:
    """How often a corpus's non-tie pairs prefer the video whose true quality (on the pair's
    dimension) is higher: {"pairs", "ties", "agreement"}; `truth` from `read_truth`."""
    decided = [p for p in pairs if not p["tie"]]
    agree = sum(
        truth[p["chosen_video"]]["qualities"][p["dimension"]]
        > truth[p["rejected_video"]]["qualities"][p["dimension"]]
        for p in decided
    )
    return {"pairs": len(pairs), "ties": len(pairs) - len(decided), "agreement": agree / max(1, len(decided))}
