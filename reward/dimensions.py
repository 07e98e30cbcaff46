"""The canonical dimension taxonomy, how source dimensions map onto it, and the question text.

One reward model scores every dimension: the dimension is asked through the text. The question
is built from a template with two fields, `{dimension}` (the dimension's words, e.g. "visual
quality") and `{prompt}` (the caption the video was made for).
"""

from __future__ import annotations

__all__ = [
    "CANONICAL_DIMENSIONS",
    "DIMENSION_WORDS",
    "SOURCE_DIMENSIONS",
    "DEFAULT_QUESTION_TEMPLATE",
    "canonical_dimension",
    "build_question",
]

CANONICAL_DIMENSIONS: tuple[str, ...] = (
    "visual_quality",
    "temporal_consistency",
    "dynamic_degree",
    "text_alignment",
    "factual_consistency",
    "overall",
)

# The words a question uses for each dimension.
DIMENSION_WORDS: dict[str, str] = {
    "visual_quality": "visual quality",
    "temporal_consistency": "temporal consistency",
    "dynamic_degree": "dynamic degree",
    "text_alignment": "text alignment",
    "factual_consistency": "factual consistency",
    "overall": "overall quality",
}

# Source dimension name -> canonical name, per source (the table in docs/design.md).
SOURCE_DIMENSIONS: dict[str, dict[str, str]] = {
    "videofeedback": {
        "visual quality": "visual_quality",
        "temporal consistency": "temporal_consistency",
        "dynamic degree": "dynamic_degree",
        "text-to-video alignment": "text_alignment",
        "factual consistency": "factual_consistency",
    },
    "lgvq": {"spatial": "visual_quality", "temporal": "temporal_consistency", "alignment": "text_alignment"},
    "fetv": {
        "static_quality": "visual_quality",
        "temporal_quality": "temporal_consistency",
        "alignment": "text_alignment",
    },
    "videogen_rewardbench": {
        "VQ": "visual_quality",
        "MQ": "temporal_consistency",
        "TA": "text_alignment",
        "Overall": "overall",
    },
    "t2vqa": {"mos": "overall"},
    "genai_bench": {"vote": "overall"},
    "videophy": {
        "sa": "text_alignment",
        "physics": "factual_consistency",
        "majority_sa": "text_alignment",
        "majority_pc": "factual_consistency",
    },
}

DEFAULT_QUESTION_TEMPLATE = "rate the {dimension} of a video of {prompt}"


def canonical_dimension(name: str, source: str | None = None) -> str:
    """Map a dimension name (canonical, or a source's own name for `source`) to its canonical name."""
    if name in CANONICAL_DIMENSIONS:
        return name
    if source is not None and name in SOURCE_DIMENSIONS.get(source, {}):
        return SOURCE_DIMENSIONS[source][name]
    known = sorted(CANONICAL_DIMENSIONS) + sorted(SOURCE_DIMENSIONS.get(source or "", {}))
    where = f" for source {source!r}" if source else ""
    raise ValueError(f"unknown dimension {name!r}{where}; expected one of {known}")


def build_question(dimension: str, prompt: str, template: str = DEFAULT_QUESTION_TEMPLATE) -> str:
    """The text a reward model is asked: `template` filled with the dimension's words and the prompt."""
    dimension = canonical_dimension(dimension)
    return template.format(dimension=DIMENSION_WORDS[dimension], prompt=prompt.strip())
