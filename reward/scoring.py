"""Score videos with a saved reward model: `load_scorer(folder)` gives a `Scorer`, the score function.

Design decisions
- The folder's config.json says which model class to build (`model_type`); the processing class
  (tokenizer, or processor for VLM rewards) loads from the same folder. Nothing runs remote code.
- The model is asked through text: a *question* per (dimension, prompt) built with the model's
  own `question_template`. `score_dimensions` asks K questions per video in one
  `score_questions` call, so each video is decoded and encoded once for all K dimensions.
- `dimension=None` means the mean over the dimensions the model was trained on
  (`config.dimensions`), so a single number is still a balanced judgement.
- Inputs are checked at this boundary (shape, dtype, range, counts) with errors that say what
  was expected. Float videos of another frame count or size are passed on as they are: each
  model's own preprocessing samples frames and resizes (so a generator's output scores directly).
- Scores come back float32 [B], on the device of the input tensor (CPU for paths).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from reward.dimensions import build_question, canonical_dimension
from reward.video import read_video

__all__ = ["DEFAULT_BATCH_SIZE", "Scorer", "load_scorer"]

DEFAULT_BATCH_SIZE = 8
UINT8_MAX = 255


def _load_dual_encoder(path: Path, dtype: torch.dtype | str) -> tuple[torch.nn.Module, object]:
    from transformers import AutoTokenizer

    from reward.modeling import CleveRewardModel

    return CleveRewardModel.from_pretrained(path, dtype=dtype), AutoTokenizer.from_pretrained(path)


def _load_vlm(path: Path, dtype: torch.dtype | str) -> tuple[torch.nn.Module, object]:
    from reward.vlm import VLMRewardModel, load_vlm_processor

    return VLMRewardModel.from_pretrained(path, dtype=dtype), load_vlm_processor(path)


# model_type (config.json) -> loader of (model, processing class). Imports happen inside the loaders,
# so a dual encoder never imports the VLM stack.
_LOADERS = {"clevereward": _load_dual_encoder, "clevereward_vlm": _load_vlm}

Videos = torch.Tensor | Sequence[str | os.PathLike]


class Scorer:
    """A reward model with its processing class, in eval mode, answering without gradients.

    Call it like the score function of docs/design.md: `scorer(videos, prompts, dimension) -> float32 [B]`.
    `videos` is float [B, F, C, H, W] in [0, 1] or a list of B video paths (read at the model's
    frame count and size). `batch_size` videos go through the model at a time.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processing_class,
        batch_size: int = DEFAULT_BATCH_SIZE,
        weights_id: str | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.processing_class = processing_class
        self.batch_size = batch_size
        self.weights_id = weights_id
        config = model.config
        missing = [
            name
            for name in ("num_frames", "frame_size", "question_template", "dimensions")
            if not hasattr(config, name)
        ]
        if missing:
            raise ValueError(
                f"{type(config).__name__} lacks {missing}; a reward model config needs them to score"
            )
        self.num_frames: int = config.num_frames
        size = config.frame_size
        self.frame_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self.dimensions: list[str] = list(config.dimensions)

    @property
    def fingerprint(self) -> str | None:
        """Identifies what the scores depend on (saved weights and config, frames, size), for caches.

        None for a scorer built around an in-memory model (nothing stable to identify it by).
        """
        if self.weights_id is None:
            return None
        return hashlib.sha256(f"{self.weights_id}|{self.num_frames}|{self.frame_size}".encode()).hexdigest()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def question(self, dimension: str, prompt: str) -> str:
        """The text the model is asked about `dimension` of a video made for `prompt`."""
        return build_question(dimension, prompt, self.model.config.question_template)

    def read_video(self, path: str | os.PathLike) -> torch.Tensor:
        """float [F, C, H, W] in [0, 1] at the model's frame count and size; `VideoReadError` if unreadable."""
        frames = read_video(path, self.num_frames, size=self.frame_size)  # uint8 [F, C, H, W]
        return frames.float().div_(UINT8_MAX)

    @staticmethod
    def _check_videos(videos: torch.Tensor) -> None:
        """float [B, F, 3, H, W] in [0, 1], or a clear error (the model samples frames and resizes)."""
        if videos.ndim != 5 or videos.shape[2] != 3:
            raise ValueError(
                f"videos must be float [B, F, 3, H, W] in [0, 1], got shape {list(videos.shape)}"
            )
        if not videos.is_floating_point():
            raise ValueError(
                f"videos must be float in [0, 1], got {videos.dtype} (divide uint8 frames by 255)"
            )
        if videos.numel() and not (videos.isfinite().all() and videos.min() >= 0 and videos.max() <= 1):
            low, high = videos.min().item(), videos.max().item()
            raise ValueError(f"videos must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]")

    @torch.no_grad()
    def score_questions(self, videos: Videos, questions: list[list[str]]) -> torch.Tensor:
        """float32 [B, K]: the reward of video b for each of its K questions `questions[b]`.

        Every video must have the same number K of questions.
        """
        if isinstance(videos, str | os.PathLike):
            raise TypeError(f"videos must be a tensor or a list of paths, got a single path {videos!r}")
        count = len(videos)
        if len(questions) != count:
            raise ValueError(f"{count} videos but {len(questions)} question lists; give one list per video")
        if count and len({len(q) for q in questions}) != 1:
            raise ValueError(
                f"every video needs the same number of questions, got {sorted({len(q) for q in questions})}"
            )
        if not isinstance(videos, torch.Tensor):
            out_device = torch.device("cpu")
        else:
            out_device = videos.device
            self._check_videos(videos)
        rewards = []
        for start in range(0, count, self.batch_size):
            stop = start + self.batch_size
            if isinstance(videos, torch.Tensor):
                batch = videos[start:stop]
            else:
                batch = torch.stack([self.read_video(path) for path in videos[start:stop]])
            batch = batch.to(self.device)  # the model casts to its own dtype (uint8 for VLM processors)
            rewards.append(
                self.model.score_questions(batch, questions[start:stop], self.processing_class).float()
            )
        if not rewards:
            return torch.zeros(0, len(questions[0]) if questions else 0, device=out_device)
        return torch.cat(rewards).to(out_device)  # [B, K]

    def score_dimensions(
        self, videos: Videos, prompts: list[str], dimensions: list[str]
    ) -> dict[str, torch.Tensor]:
        """{dimension: float32 [B]} for each of `dimensions`, decoding and encoding each video once."""
        prompts = self._check_prompts(videos, prompts)
        if not dimensions:
            raise ValueError("dimensions is empty; name at least one")
        dimensions = [canonical_dimension(d) for d in dimensions]
        questions = [[self.question(d, prompt) for d in dimensions] for prompt in prompts]
        rewards = self.score_questions(videos, questions)  # [B, K]
        return {d: rewards[:, k] for k, d in enumerate(dimensions)}

    def score(self, videos: Videos, prompts: list[str], dimension: str | None = None) -> torch.Tensor:
        """float32 [B]: the reward for `dimension`, or with None the mean over `config.dimensions`."""
        if dimension is None:
            if not self.dimensions:
                raise ValueError(
                    "dimension=None means the mean over config.dimensions, but the model lists none"
                )
            by_dimension = self.score_dimensions(videos, prompts, self.dimensions)
            return torch.stack(list(by_dimension.values()), dim=1).mean(dim=1)  # [B, K] -> [B]
        return self.score_dimensions(videos, prompts, [dimension])[canonical_dimension(dimension)]

    __call__ = score

    def score_with_grad(self, videos: torch.Tensor, prompts: list[str], dimension: str) -> torch.Tensor:
        """float32 [B] like `score(videos, prompts, dimension)`, differentiable in `videos` (reward backpropagation).

        Needs a model whose preprocessing is tensor arithmetic (the dual encoder: frame sampling,
        bilinear resize, normalisation); a VLM's processor quantises frames to uint8 and patches them
        outside autograd, so it is refused. The model's weights get no gradient (frozen).
        """
        from reward.vlm import VLM_MODEL_TYPE

        if getattr(self.model.config, "model_type", None) == VLM_MODEL_TYPE:
            raise ValueError(
                f"{type(self.model).__name__} cannot pass gradients to videos (its processor works on uint8 "
                "frames): reward backpropagation needs a dual-encoder reward model"
            )
        prompts = self._check_prompts(videos, prompts)
        if videos.ndim != 5 or not videos.is_floating_point():
            raise ValueError(f"videos must be float [B, F, 3, H, W] in [0, 1], got {list(videos.shape)}")
        self.model.requires_grad_(False)
        questions = [[self.question(canonical_dimension(dimension), p)] for p in prompts]
        return self.model.score_questions(videos.to(self.device), questions, self.processing_class)[
            :, 0
        ].float()

    @staticmethod
    def _check_prompts(videos: Videos, prompts: list[str]) -> list[str]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings, one per video, not a single string")
        prompts = list(prompts)
        if len(prompts) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(prompts)} prompts; give one prompt per video")
        bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        if bad:
            raise TypeError(f"prompts must be strings; prompt {bad[0]} is {type(prompts[bad[0]]).__name__}")
        return prompts


def load_scorer(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Scorer:
    """Load the reward model saved at `path` (`save_pretrained`) with its processing class, as a `Scorer`.

    `device`: where the model runs (default: CUDA when available, else CPU). `dtype`: e.g.
    torch.bfloat16 or "bfloat16" (default: as saved). Raises FileNotFoundError / ValueError naming
    `path` when it is not a reward model folder.
    """
    path = Path(path)
    config_path = path / "config.json"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: no such folder; expected a reward model folder written by save_pretrained"
        )
    if not config_path.is_file():
        raise FileNotFoundError(f"{path} is not a reward model folder: {config_path} is missing")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}: not valid JSON ({error})") from error
    if model_type not in _LOADERS:
        raise ValueError(
            f"{path} is not a CleveReward reward model: config.json has model_type {model_type!r}, "
            f"expected one of {sorted(_LOADERS)}"
        )
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, processing_class = _LOADERS[model_type](path, dtype or "auto")  # "auto": as saved
    return Scorer(model.to(device), processing_class, batch_size=batch_size, weights_id=_folder_id(path))


def _folder_id(path: Path) -> str:
    """The model folder's identity: its path, config.json's bytes and each weights file's size and mtime.

    Cheap (no hashing of gigabytes of weights) and changes whenever the model is saved again.
    """
    digest = hashlib.sha256(str(path.resolve()).encode())
    digest.update((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()
