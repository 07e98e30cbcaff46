"""Source adapters: public video-scoring datasets, read in their published formats.

Each adapter turns one source into a `SourceData`: *score records* (one video's score on one
canonical dimension, for a prompt) or, where the source is already pairwise, *pair records*,
plus every row it had to skip and why. Adapters only read tables; whether a video exists and
opens, duplicates, normalisation and pairing happen in `reward.build`.

Design decisions
- Scores stay raw here; `SourceData.scales` holds the scale each dimension is normalised by
  (a published range, or the observed min–max where the source defines none, e.g. T2VQA MOS).
- Video paths are POSIX paths relative to the source's video folder. A URL keeps only its file
  name; a path that leaves the folder (absolute, `..`) is a bad row, not a crash.
- A bad value skips only what it touches: one NaN dimension of a VideoFeedback row leaves the
  row's other dimensions in. A file that lacks a required column is an error naming the file.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import pandas as pd
import yaml

from reward.dimensions import canonical_dimension

__all__ = [
    "ScoreRecord",
    "PairRecord",
    "Skip",
    "SourceData",
    "ColumnMapping",
    "ADAPTERS",
    "VIDEOFEEDBACK_SCALE",
    "FETV_SCALE",
    "BINARY_SCALE",
    "LABEL_MARGIN",
    "video_name",
    "read_videofeedback",
    "read_t2vqa",
    "read_genai_bench",
    "read_videogen_rewardbench",
    "read_fetv",
    "read_videophy",
    "read_generic",
    "read_source",
    "with_video_folder",
]

VIDEOFEEDBACK_SCALE = (1.0, 4.0)  # integer ratings 1–4 per dimension
FETV_SCALE = (1.0, 5.0)  # integer ratings 1–5 per rater, averaged over raters
BINARY_SCALE = (0.0, 1.0)  # VideoPhy's yes/no judgments
# A bare preference label (a vote, "A"/"B") says which video is better, not by how much: on a
# binary 0/1 scale the winner scores 1 and the loser 0, so the normalised gap is 1.
LABEL_MARGIN = 1.0

VIDEOFEEDBACK_DIMENSIONS = (
    "visual quality",
    "temporal consistency",
    "dynamic degree",
    "text-to-video alignment",
    "factual consistency",
)
GENAI_BENCH_VOTES = {"leftvote": "left", "rightvote": "right", "tievote": None, "bothbad_vote": None}
REWARDBENCH_DIMENSIONS = ("VQ", "MQ", "TA", "Overall")
REWARDBENCH_LABELS = {"a": "A", "b": "B", "same": None}
FETV_DIMENSIONS = ("static_quality", "temporal_quality", "alignment")
FETV_PROMPTS = "fetv_data.json"
FETV_RATINGS = "manual_eval_results/human*/manual_eval_results_*.json"
FETV_RATINGS_PREFIX = "manual_eval_results_"
VIDEOPHY_COLUMNS = {"train": ("sa", "physics"), "test": ("majority_sa", "majority_pc")}
VIDEO_SUFFIX = ".mp4"
JSON_LINES_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class ScoreRecord:
    """One video's raw score on one canonical dimension, judged against `prompt`."""

    source: str
    video: str
    prompt: str
    dimension: str
    score: float
    where: str
    rater_count: int | None = None


@dataclass(frozen=True)
class PairRecord:
    """A pairwise judgment as the source gave it; `margin` and the scores are already normalised."""

    source: str
    prompt: str
    dimension: str
    chosen_video: str
    rejected_video: str
    tie: bool
    margin: float
    where: str
    chosen_score: float = math.nan
    rejected_score: float = math.nan


@dataclass(frozen=True)
class Skip:
    """A row (or one dimension of it) left out: `reason` is a short category, `detail` says what."""

    source: str
    where: str
    reason: str
    detail: str = ""


@dataclass
class SourceData:
    """What one adapter read: records, skipped rows, and the scale per canonical dimension."""

    name: str
    path: str
    rows: int = 0
    scores: list[ScoreRecord] = field(default_factory=list)
    pairs: list[PairRecord] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    scales: dict[str, tuple[float, float]] = field(default_factory=dict)


class _RowError(ValueError):
    """A bad row: caught by the adapter's loop and recorded as a `Skip`."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def video_name(value: object, add_suffix: bool = False) -> str:
    """A source's video reference as a clean POSIX path relative to its video folder.

    A URL keeps its file name; `./a/b.mp4` becomes `a/b.mp4`. With `add_suffix`, a name without
    an extension gets `.mp4` (T2VQA lists some files without it).
    """
    text = "" if _is_missing(value) else str(value).strip()
    if not text:
        raise _RowError("missing video", "no video path in the row")
    if "://" in text:
        text = unquote(PurePosixPath(urlparse(text).path).name)
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise _RowError("bad video path", f"{text!r} leaves the video folder")
    parts = [p for p in path.parts if p != "."]
    if not parts:
        raise _RowError("missing video", f"{text!r} names no file")
    name = "/".join(parts)
    if add_suffix and not PurePosixPath(name).suffix:
        name += VIDEO_SUFFIX
    return name


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _prompt(value: object) -> str:
    """The prompt with runs of whitespace collapsed; an empty prompt is a bad row."""
    text = "" if _is_missing(value) else " ".join(str(value).split())
    if not text:
        raise _RowError("empty prompt", "the prompt is empty")
    return text


def _score(value: object, column: str, scale: tuple[float, float] | None, integer: bool = False) -> float:
    """A finite score inside `scale` (when the scale is known); `integer` for published integer ratings."""
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        raise _RowError("nan score", f"{column!r} is empty or NaN")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise _RowError("unparseable score", f"{column!r} = {value!r} is not a number") from None
    if not math.isfinite(score):
        raise _RowError("nan score", f"{column!r} = {score}")
    if (scale is not None and not scale[0] <= score <= scale[1]) or (integer and not score.is_integer()):
        kind = "an integer " if integer else ""
        raise _RowError(
            "score out of range", f"{column!r} = {score:g} is not {kind}in [{scale[0]:g}, {scale[1]:g}]"
        )
    return score


def _require_columns(path: Path, columns: Iterable[str], needed: Iterable[str]) -> None:
    missing = [c for c in needed if c not in set(columns)]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(columns)}")


def _observed_scale(scores: Iterable[float]) -> tuple[float, float]:
    scores = list(scores)
    return (min(scores), max(scores)) if scores else (0.0, 1.0)


def _read_table(path: Path) -> pd.DataFrame:
    """A parquet or CSV table (empty CSV cells read as NaN, which `_score` reports)."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _row_where(path: Path, index: int, header: bool) -> str:
    """`file:line N` for text tables (1-based, counting the header), `file:row N` for parquet."""
    if path.suffix.lower() == ".parquet":
        return f"{path.name}:row {index}"
    return f"{path.name}:line {index + (2 if header else 1)}"


def _wide_scores(
    data: SourceData,
    rows: Iterable[tuple[dict, str]],
    prompt_column: str,
    video_of: Callable[[dict], str],
    dimensions: dict[str, str],
    scale: tuple[float, float] | None,
    integer: bool = False,
) -> None:
    """Score records from a wide table (one row per video, one score column per dimension).

    `rows` are (row, where) pairs; `dimensions` maps score columns to canonical dimensions. A bad
    prompt or video skips the row; a bad score skips only its own column.
    """
    for row, where in rows:
        try:
            prompt, video = _prompt(row[prompt_column]), video_of(row)
        except _RowError as e:
            data.skipped.append(Skip(data.name, where, e.reason, e.detail))
            continue
        for column, dimension in dimensions.items():
            cell = f"{where} ({column})"
            try:
                score = _score(row[column], column, scale, integer)
            except _RowError as e:
                data.skipped.append(Skip(data.name, cell, e.reason, e.detail))
                continue
            data.scores.append(ScoreRecord(data.name, video, prompt, dimension, score, cell))


def _table_rows(path: Path, table: pd.DataFrame) -> list[tuple[dict, str]]:
    return [(row, _row_where(path, i, header=True)) for i, row in enumerate(table.to_dict("records"))]


def read_videofeedback(path: Path) -> SourceData:
    """TIGER-Lab/VideoFeedback: parquet rows `id, text prompt, video link, <5 dimensions>` (1–4).

    The video is the file name of `video link` (`<id>.mp4`), falling back to `<id>.mp4`.
    """
    data = SourceData("videofeedback", str(path))
    table = _read_table(path)
    _require_columns(path, table.columns, ("id", "text prompt", "video link", *VIDEOFEEDBACK_DIMENSIONS))
    data.rows = len(table)

    def video_of(row: dict) -> str:
        link = row["video link"]
        missing = _is_missing(link) or not str(link).strip()
        return video_name(f"{row['id']}{VIDEO_SUFFIX}" if missing else link)

    dimensions = {c: canonical_dimension(c, data.name) for c in VIDEOFEEDBACK_DIMENSIONS}
    _wide_scores(
        data, _table_rows(path, table), "text prompt", video_of, dimensions, VIDEOFEEDBACK_SCALE, True
    )
    data.scales = dict.fromkeys(dimensions.values(), VIDEOFEEDBACK_SCALE)
    return data


def read_t2vqa(path: Path) -> SourceData:
    """T2VQA-DB: text lines `filename|prompt|mos`, no header; one overall MOS per video.

    The prompt is everything between the first and the last `|`. The MOS scale is the observed
    min–max of the valid rows (the release does not fix one).
    """
    data = SourceData("t2vqa", str(path))
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        data.rows += 1
        where = f"{path.name}:line {number}"
        try:
            if line.count("|") < 2:
                raise _RowError("unparseable line", f"expected 'filename|prompt|mos', got {line[:80]!r}")
            filename, rest = line.split("|", 1)
            prompt, mos = rest.rsplit("|", 1)
            record = ScoreRecord(
                data.name,
                video_name(filename, add_suffix=True),
                _prompt(prompt),
                canonical_dimension("mos", data.name),
                _score(mos, "mos", None),
                where,
            )
        except _RowError as e:
            data.skipped.append(Skip(data.name, where, e.reason, e.detail))
            continue
        data.scores.append(record)
    data.scales = {canonical_dimension("mos", data.name): _observed_scale(r.score for r in data.scores)}
    return data


def read_genai_bench(path: Path) -> SourceData:
    """TIGER-Lab/GenAI-Bench `video_generation`: parquet votes between a left and a right video.

    `leftvote` / `rightvote` pick the winner (margin `LABEL_MARGIN`); `tievote` and
    `bothbad_vote` are ties. Dimension `overall`.
    """
    data = SourceData("genai_bench", str(path))
    table = _read_table(path)
    _require_columns(path, table.columns, ("prompt", "left_video", "right_video", "vote_type"))
    data.rows = len(table)
    dimension = canonical_dimension("vote", data.name)
    for index, row in enumerate(table.to_dict("records")):
        where = _row_where(path, index, header=True)
        try:
            prompt = _prompt(row["prompt"])
            left, right = video_name(row["left_video"]), video_name(row["right_video"])
            vote = str(row["vote_type"]).strip()
            if vote not in GENAI_BENCH_VOTES:
                raise _RowError("invalid label", f"vote_type {vote!r} not in {sorted(GENAI_BENCH_VOTES)}")
        except _RowError as e:
            data.skipped.append(Skip(data.name, where, e.reason, e.detail))
            continue
        winner = GENAI_BENCH_VOTES[vote]
        chosen, rejected = (right, left) if winner == "right" else (left, right)
        tie = winner is None
        margin = 0.0 if tie else LABEL_MARGIN
        data.pairs.append(PairRecord(data.name, prompt, dimension, chosen, rejected, tie, margin, where))
    return data


def read_videogen_rewardbench(path: Path) -> SourceData:
    """KwaiVGI VideoGen-RewardBench / VideoAlign training CSV: labelled pairs of videos A and B.

    Columns `path_A, path_B, prompt` and per-dimension labels `VQ, MQ, TA` (optional `Overall`)
    valued A / B / same (same = tie). Optional `MOS_A_<dim>` / `MOS_B_<dim>` give the two videos'
    mean opinion scores: the margin is then their gap normalised by the observed MOS range of that
    dimension (both columns), else `LABEL_MARGIN`. Any other label (e.g. `invalid`) is skipped.
    """
    data = SourceData("videogen_rewardbench", str(path))
    table = _read_table(path)
    dims = [d for d in REWARDBENCH_DIMENSIONS if d in table.columns]
    _require_columns(path, table.columns, ("path_A", "path_B", "prompt"))
    if not dims:
        raise ValueError(f"{path}: no label column; expected some of {list(REWARDBENCH_DIMENSIONS)}")
    data.rows = len(table)
    mos_scales = {}
    for dim in dims:
        columns = [f"MOS_A_{dim}", f"MOS_B_{dim}"]
        if all(c in table.columns for c in columns):
            values = pd.to_numeric(pd.concat([table[c] for c in columns]), errors="coerce")
            values = values[values.map(math.isfinite)]
            mos_scales[dim] = _observed_scale(values)
    for index, row in enumerate(table.to_dict("records")):
        where = _row_where(path, index, header=True)
        try:
            prompt = _prompt(row["prompt"])
            video_a, video_b = video_name(row["path_A"]), video_name(row["path_B"])
        except _RowError as e:
            data.skipped.append(Skip(data.name, where, e.reason, e.detail))
            continue
        for dim in dims:
            try:
                pair = _rewardbench_pair(data.name, row, dim, prompt, video_a, video_b, mos_scales.get(dim))
            except _RowError as e:
                data.skipped.append(Skip(data.name, f"{where} ({dim})", e.reason, e.detail))
                continue
            data.pairs.append(PairRecord(**pair, where=f"{where} ({dim})"))
    return data


def _rewardbench_pair(
    source: str,
    row: dict,
    dim: str,
    prompt: str,
    video_a: str,
    video_b: str,
    mos_scale: tuple[float, float] | None,
) -> dict:
    raw = row[dim]
    label = REWARDBENCH_LABELS.get("" if _is_missing(raw) else str(raw).strip().lower(), "?")
    if label == "?":
        raise _RowError("invalid label", f"{dim} = {raw!r}, expected A, B or same")
    scores = {"A": math.nan, "B": math.nan}
    if mos_scale is not None:
        low, high = mos_scale
        span = high - low
        for side in scores:
            mos = _score(row[f"MOS_{side}_{dim}"], f"MOS_{side}_{dim}", None)
            scores[side] = (mos - low) / span if span > 0 else 0.0
    winner = label or "A"
    loser = "B" if winner == "A" else "A"
    if label is None:
        margin = 0.0
    elif mos_scale is not None:
        margin = max(scores[winner] - scores[loser], 0.0)
    else:
        margin = LABEL_MARGIN
    videos = {"A": video_a, "B": video_b}
    return dict(
        source=source,
        prompt=prompt,
        dimension=canonical_dimension(dim, source),
        chosen_video=videos[winner],
        rejected_video=videos[loser],
        tie=label is None,
        margin=margin,
        chosen_score=scores[winner],
        rejected_score=scores[loser],
    )


def read_fetv(root: Path) -> SourceData:
    """FETV (llyx97/FETV): the root folder holding `fetv_data.json` and `manual_eval_results/`.

    Prompts are the JSON lines of `fetv_data.json`, indexed by line (0-based). Each rater file
    `manual_eval_results/human{0,1,2}/manual_eval_results_<model>.json` has JSON lines
    `{"<prompt index>": {"static_quality": s, "temporal_quality": t, "alignment": a, ...}}`
    (integers 1–5). A video `<model>/<index>.mp4` scores the mean over the raters who rated it;
    `rater_count` says how many.
    """
    data = SourceData("fetv", str(root))
    prompts_path = root / FETV_PROMPTS
    if not prompts_path.is_file():
        raise FileNotFoundError(f"{root} is not a FETV folder: {prompts_path} is missing")
    prompts: dict[int, str] = {}
    for index, line in enumerate(prompts_path.read_text(encoding="utf-8").splitlines()):
        try:
            prompts[index] = _prompt(json.loads(line).get("prompt"))
        except (json.JSONDecodeError, AttributeError):
            data.skipped.append(Skip(data.name, f"{FETV_PROMPTS}:line {index + 1}", "unparseable line"))
        except _RowError as e:
            data.skipped.append(Skip(data.name, f"{FETV_PROMPTS}:line {index + 1}", e.reason, e.detail))
    rating_files = sorted(root.glob(FETV_RATINGS))
    if not rating_files:
        raise FileNotFoundError(f"{root}: no rating files matching {FETV_RATINGS}")
    ratings: dict[tuple[str, int, str], list[float]] = defaultdict(list)
    first_seen: dict[tuple[str, int, str], str] = {}
    for path in rating_files:
        model = path.stem.removeprefix(FETV_RATINGS_PREFIX)
        name = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            data.rows += 1
            where = f"{name}:line {number}"
            try:
                entry = json.loads(line)
                (key, values), *rest = entry.items()
                if rest or not isinstance(values, dict):
                    raise ValueError
                index = int(key)
            except (json.JSONDecodeError, ValueError, AttributeError):
                data.skipped.append(Skip(data.name, where, "unparseable line", line[:80]))
                continue
            if index not in prompts:
                data.skipped.append(Skip(data.name, where, "empty prompt", f"no prompt for index {index}"))
                continue
            for column in FETV_DIMENSIONS:
                try:
                    score = _score(values.get(column), column, FETV_SCALE, integer=True)
                except _RowError as e:
                    data.skipped.append(Skip(data.name, f"{where} ({column})", e.reason, e.detail))
                    continue
                ratings[(model, index, column)].append(score)
                first_seen.setdefault((model, index, column), where)
    for (model, index, column), scores in ratings.items():
        video = f"{model}/{index}{VIDEO_SUFFIX}"
        dimension = canonical_dimension(column, data.name)
        mean = sum(scores) / len(scores)
        where = f"{first_seen[(model, index, column)]} ({column}, {len(scores)} raters)"
        data.scores.append(ScoreRecord(data.name, video, prompts[index], dimension, mean, where, len(scores)))
    data.scales = {canonical_dimension(c, data.name): FETV_SCALE for c in FETV_DIMENSIONS}
    return data


def read_videophy(path: Path) -> SourceData:
    """VideoPhy (Hritikbansal/videophy): CSV of binary judgments per `video_url` and `caption`.

    The train release has `sa` (semantic adherence) and `physics`; the test release
    `majority_sa` and `majority_pc`. Values are 0 or 1.
    """
    data = SourceData("videophy", str(path))
    table = _read_table(path)
    _require_columns(path, table.columns, ("video_url", "caption"))
    columns = next((c for c in VIDEOPHY_COLUMNS.values() if all(x in table.columns for x in c)), None)
    if columns is None:
        raise ValueError(
            f"{path}: expected score columns {list(VIDEOPHY_COLUMNS.values())}, found {list(table.columns)}"
        )
    data.rows = len(table)
    dimensions = {c: canonical_dimension(c, data.name) for c in columns}

    def video_of(row: dict) -> str:
        return video_name(row["video_url"])

    _wide_scores(data, _table_rows(path, table), "caption", video_of, dimensions, BINARY_SCALE, integer=True)
    data.scales = dict.fromkeys(dimensions.values(), BINARY_SCALE)
    return data


@dataclass
class ColumnMapping:
    """How a generic CSV / JSON-lines table maps onto score records (LGVQ and anything else).

    `scores` maps a score column to a dimension: canonical, or the source's own name when
    `reward.dimensions.SOURCE_DIMENSIONS` knows the source (e.g. LGVQ's `spatial`). `scale` is
    the score range; when None it is the observed min–max.
    """

    video: str
    prompt: str
    scores: dict[str, str]
    scale: tuple[float, float] | None = None
    add_suffix: bool = False

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> ColumnMapping:
        """Read `{video: COL, prompt: COL, scores: {COL: DIM}, scale: [LO, HI], add_suffix: bool}`."""
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping with keys video, prompt, scores")
        unknown = set(raw) - {"video", "prompt", "scores", "scale", "add_suffix"}
        missing = {"video", "prompt", "scores"} - set(raw)
        if unknown or missing:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        scores = raw["scores"]
        if isinstance(scores, list):  # a list of columns named like dimensions
            scores = {c: c for c in scores}
        if not isinstance(scores, dict) or not scores:
            raise ValueError(f"{path}: 'scores' must map score columns to dimensions")
        scale = raw.get("scale")
        if scale is not None and (not isinstance(scale, list) or len(scale) != 2 or scale[0] >= scale[1]):
            raise ValueError(f"{path}: 'scale' must be [low, high] with low < high, got {scale!r}")
        return cls(
            video=str(raw["video"]),
            prompt=str(raw["prompt"]),
            scores={str(k): str(v) for k, v in scores.items()},
            scale=None if scale is None else (float(scale[0]), float(scale[1])),
            add_suffix=bool(raw.get("add_suffix", False)),
        )


def read_generic(path: Path, name: str, mapping: ColumnMapping) -> SourceData:
    """A CSV or JSON-lines (`.jsonl` / `.json`) table of per-video scores, mapped by `mapping`."""
    data = SourceData(name, str(path))
    if path.suffix.lower() in JSON_LINES_SUFFIXES:
        table, where_of = _read_jsonl_rows(path, data)
    else:
        table = _read_table(path)
        where_of = [_row_where(path, i, header=True) for i in range(len(table))]
    _require_columns(path, table.columns, (mapping.video, mapping.prompt, *mapping.scores))
    dimensions = {column: canonical_dimension(dim, name) for column, dim in mapping.scores.items()}
    data.rows += len(table)

    def video_of(row: dict) -> str:
        return video_name(row[mapping.video], add_suffix=mapping.add_suffix)

    rows = zip(table.to_dict("records"), where_of)
    _wide_scores(data, rows, mapping.prompt, video_of, dimensions, mapping.scale)
    for dimension in set(dimensions.values()):
        observed = _observed_scale(r.score for r in data.scores if r.dimension == dimension)
        data.scales[dimension] = mapping.scale or observed
    return data


def _read_jsonl_rows(path: Path, data: SourceData) -> tuple[pd.DataFrame, list[str]]:
    """JSON lines one by one, so that an unparseable line is skipped and named, not fatal."""
    rows, where_of = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:line {number}"
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError
        except ValueError:
            data.rows += 1
            data.skipped.append(Skip(data.name, where, "unparseable line", line[:80]))
            continue
        rows.append(row)
        where_of.append(where)
    return pd.DataFrame(rows), where_of


# Built-in source name -> adapter(path). Any other name is read by `read_generic` with a mapping.
ADAPTERS: dict[str, Callable[[Path], SourceData]] = {
    "videofeedback": read_videofeedback,
    "t2vqa": read_t2vqa,
    "genai_bench": read_genai_bench,
    "videogen_rewardbench": read_videogen_rewardbench,
    "videoalign": read_videogen_rewardbench,
    "fetv": read_fetv,
    "videophy": read_videophy,
}


def read_source(name: str, path: str | os.PathLike, mapping: ColumnMapping | None = None) -> SourceData:
    """Read source `name` from `path`: a built-in adapter, or the generic one given a `mapping`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"source {name!r}: {path} does not exist")
    if name in ADAPTERS:
        return _renamed(ADAPTERS[name](path), name)
    if mapping is None:
        raise ValueError(
            f"source {name!r} is not built in ({sorted(ADAPTERS)}); give a column mapping "
            "(--mapping NAME=YAML or --video-column/--prompt-column/--score-column)"
        )
    return read_generic(path, name, mapping)


def _renamed(data: SourceData, name: str) -> SourceData:
    """Records carry the name the user gave (e.g. `videoalign` for the VideoAlign training CSV)."""
    data.name = name
    data.scores = [replace(r, source=name) for r in data.scores]
    data.pairs = [replace(r, source=name) for r in data.pairs]
    data.skipped = [replace(r, source=name) for r in data.skipped]
    return data


def with_video_folder(data: SourceData, folder: str) -> SourceData:
    """The source's video paths prefixed with `folder`, a sub-folder of the corpus video root.

    Lets sources whose file names could collide (`<id>.mp4`) share one video root.
    """
    prefix = video_name(folder)
    data.scores = [replace(r, video=f"{prefix}/{r.video}") for r in data.scores]
    data.pairs = [
        replace(r, chosen_video=f"{prefix}/{r.chosen_video}", rejected_video=f"{prefix}/{r.rejected_video}")
        for r in data.pairs
    ]
    return data
