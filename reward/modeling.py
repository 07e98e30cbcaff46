"""CleveReward: a dual-encoder video reward model that answers a question about a video.

    r(question, video) = exp(s) · cos(P_v(f_v(video)), P_t(f_t(question)))

`f_v` / `f_t` are the towers (`reward.towers`), `P_v` / `P_t` separate linear projections into a
shared `projection_dim` space, and `s` a learned log-temperature clamped to
[0, log(logit_scale_max)]. Cosine alone bounds a reward gap by 2 and the Bradley–Terry loss
saturates near log(1 + e^-2); the temperature lifts that bound. The question is
`build_question(dimension, prompt, config.question_template)`, so one model scores every dimension.

Design decisions:
- The model is a `PreTrainedModel` with `num_labels == 1` whose forward takes a chosen-first batch
  and returns `logits [2B, 1]`: TRL's `RewardTrainer` trains it as it is.
- The config carries the preprocessing (frames, size, mean/std, question template, dimensions);
  the tokenizer is saved in the same folder, so a loaded model scores raw videos.
- HF towers are built from backbone configs stored in the config (`*_tower_config`); pretrained
  backbone weights are loaded once, by `CleveRewardModel.from_towers`, never inside `__init__`,
  so `from_pretrained` of a trained model downloads nothing.
- Tower modes: `full` trains the tower, `frozen` freezes it (and keeps it in eval mode, so its
  outputs are deterministic and cacheable; pair it with mean temporal pooling, as a frozen
  temporal transformer stays random), `lora` adds peft LoRA adapters to that tower only and
  trains them plus any layer the tower adds around a pretrained backbone (temporal transformer).
  The projections and the temperature always train.
- Questions repeat inside a batch (a pair's two videos share one): `build_inputs` tokenises each
  unique question once and `text_index [N]` maps items to them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field

import torch
import torch.nn.functional as F
from peft import LoraConfig, inject_adapter_in_model
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import SequenceClassifierOutput

from reward.dimensions import DEFAULT_QUESTION_TEMPLATE
from reward.hub import explain_missing_model
from reward.towers import (
    BUILTIN_TEXT_TOWER,
    BUILTIN_VIDEO_TOWER,
    backbone_config,
    backbone_image_size,
    build_text_tower,
    build_video_tower,
)
from reward.video import resample_videos

__all__ = ["TOWER_MODES", "CleveRewardConfig", "CleveRewardModel", "user_fields"]

TOWER_MODES = ("full", "frozen", "lora")
_LORA_MARKER = "lora_"  # peft's parameter-name prefix for adapter weights
BUILTIN_FRAME_SIZE = (64, 64)  # the synthetic world's frames
DEFAULT_STATISTIC = (0.5, 0.5, 0.5)  # frames in [0, 1] -> [-1, 1] when a backbone names none


def _arg(default, help_: str):
    """A config field that users set, with its help string (the command line and YAML read it)."""
    return field(default=default, metadata={"help": help_})


class CleveRewardConfig(PreTrainedConfig):
    """Architecture and preprocessing of a CleveReward dual encoder (see the module docstring).

    `video_tower` / `text_tower`: "conv3d" / "bag-of-words" (built in), or a Hugging Face model id or
    path; then `*_tower_config` holds the backbone's config dict (filled by `from_towers`, or given
    in code to build a tower from a config with no download).
    """

    model_type = "clevereward"

    # Each field a user sets has a help string: `reward.train.ModelArguments` is derived from them.
    video_tower: str = _arg(
        BUILTIN_VIDEO_TOWER,
        "'conv3d' (built in) or a HF vision/video model id or path (CLIP, SigLIP, VideoMAE).",
    )
    video_tower_config: dict | None = None  # the backbone's config, filled by `from_towers`
    text_tower: str = _arg(
        BUILTIN_TEXT_TOWER,
        "'bag-of-words' (built in) or a HF text model id or path (T5, CLIP text, BERT, decoder LM).",
    )
    text_tower_config: dict | None = None  # likewise
    # Built-in towers.
    conv_channels: list[int] | None = _arg(
        None, "Widths of the built-in conv tower's stem and blocks (default 32 64 128)."
    )
    patch_size: int = _arg(4, "Built-in conv tower: frame patch size of its stem.")
    shape_channels: int = _arg(
        0, "Built-in conv tower: width of its color-blind shape branch on the saturation map (0: none)."
    )
    vocab_size: int = 64  # the tokenizer's, set when the model is built
    word_embedding_dim: int = _arg(128, "Built-in text tower: word embedding width.")
    text_hidden_size: int = _arg(256, "Built-in text tower: MLP width (its output).")
    # HF towers.
    temporal_pooling: str = _arg("mean", "Image towers: pool frames by 'mean' or a one-layer 'transformer'.")
    text_pooling: str = _arg("auto", "HF text towers: 'mean', 'last' (decoder LMs) or 'auto'.")
    # Shared space and score.
    projection_dim: int = _arg(256, "Width of the shared video-text space.")
    logit_scale_init: float = _arg(
        10.0, "Initial temperature: reward = temperature × cosine (learned, log-scale)."
    )
    logit_scale_max: float = _arg(100.0, "Upper clamp of the temperature.")
    # How each tower trains.
    video_tower_mode: str = _arg("full", f"How the video tower trains: one of {TOWER_MODES}.")
    text_tower_mode: str = _arg("full", f"How the text tower trains: one of {TOWER_MODES}.")
    lora_r: int = _arg(8, "LoRA rank (lora towers, and the VLM reward model).")
    lora_alpha: int = _arg(16, "LoRA alpha; the update is scaled by alpha / r.")
    lora_dropout: float = _arg(0.0, "LoRA dropout.")
    lora_target_modules: str = _arg("all-linear", "Comma-separated module names to adapt, or 'all-linear'.")
    # Preprocessing.
    num_frames: int = _arg(8, "Frames read per video (uniformly over the clip).")
    frame_size: list[int] | None = _arg(
        None, "Frame size H W (default: the backbone's image size; 64 64 for the built-in tower)."
    )
    image_mean: list[float] | None = _arg(
        None, "Per-channel mean for normalising frames (default: the backbone processor's; 0.5 built in)."
    )
    image_std: list[float] | None = _arg(
        None, "Per-channel std (default: the backbone processor's; 0.5 for the built-in tower)."
    )
    question_template: str = _arg(DEFAULT_QUESTION_TEMPLATE, "Question text with {dimension} and {prompt}.")
    dimensions: list[str] | None = None  # the trained dimensions, set from the training corpus
    max_text_length: int = _arg(64, "Questions are truncated to this many tokens.")

    def __post_init__(self, **kwargs):
        if self.id2label is None:
            kwargs.setdefault("num_labels", 1)
        self.conv_channels = list(self.conv_channels or (32, 64, 128))
        # An HF video tower's preprocessing is filled once its backbone is known (`from_towers`).
        if self.video_tower == BUILTIN_VIDEO_TOWER or self.video_tower_config is not None:
            self.resolve_preprocessing()
        self.dimensions = list(self.dimensions or ())
        super().__post_init__(**kwargs)
        if self.num_labels != 1:
            raise ValueError(f"a reward model has num_labels == 1, got {self.num_labels}")
        for name in ("video_tower_mode", "text_tower_mode"):
            if getattr(self, name) not in TOWER_MODES:
                raise ValueError(f"{name} must be one of {TOWER_MODES}, got {getattr(self, name)!r}")

    def resolve_preprocessing(
        self, image_mean: list[float] | None = None, image_std: list[float] | None = None
    ):
        """Fill the unset `frame_size`, `image_mean`, `image_std`.

        An HF video tower's size is its backbone config's `image_size` (what its position
        embeddings were built for); its statistics are the processor's, passed in by `from_towers`.
        The built-in tower's are the synthetic world's 64 x 64 and 0.5 / 0.5.
        """
        size = None
        if self.video_tower != BUILTIN_VIDEO_TOWER and self.video_tower_config is not None:
            size = backbone_image_size(backbone_config(self.video_tower_config, "vision"))
        self.frame_size = list(self.frame_size or size or BUILTIN_FRAME_SIZE)
        self.image_mean = list(self.image_mean or image_mean or DEFAULT_STATISTIC)
        self.image_std = list(self.image_std or image_std or DEFAULT_STATISTIC)


def user_fields() -> list:
    """The `dataclasses.Field`s of `CleveRewardConfig` that a user sets (those with a help string)."""
    return [f for f in dataclasses.fields(CleveRewardConfig) if "help" in f.metadata]


def _processor_statistics(
    name: str, trust_remote_code: bool
) -> tuple[list[float] | None, list[float] | None]:
    """(image_mean, image_std) of a backbone's image processor; (None, None) when it ships none."""
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):  # no preprocessor_config.json: the defaults apply
        return None, None
    return getattr(processor, "image_mean", None), getattr(processor, "image_std", None)


class CleveRewardModel(PreTrainedModel):
    """Dual-encoder reward model: `forward` scores N (video, question) items → `logits [N, 1]`."""

    config_class = CleveRewardConfig
    base_model_prefix = "clevereward"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True

    def __init__(self, config: CleveRewardConfig):
        super().__init__(config)
        for part, built_in in (("video", BUILTIN_VIDEO_TOWER), ("text", BUILTIN_TEXT_TOWER)):
            tower = getattr(config, f"{part}_tower")
            if tower != built_in and getattr(config, f"{part}_tower_config") is None:
                raise ValueError(
                    f"{part} tower {tower!r} needs its backbone config: build the model with "
                    "CleveRewardModel.from_towers(config), which reads it from the hub or a local folder"
                )
        self.video_tower = build_video_tower(config)
        self.text_tower = build_text_tower(config)
        self.video_projection = nn.Linear(self.video_tower.hidden_size, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(self.text_tower.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))
        for tower, mode in (
            (self.video_tower, config.video_tower_mode),
            (self.text_tower, config.text_tower_mode),
        ):
            self._set_tower_mode(tower, mode)
        self.post_init()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_towers(cls, config: CleveRewardConfig, trust_remote_code: bool = False) -> CleveRewardModel:
        """A new model whose HF towers start from their pretrained weights (hub id or local folder).

        Fills `video_tower_config` / `text_tower_config` from the backbones when they are unset;
        built-in towers start from random weights. Weights load into the plain backbone (the
        backbone class reads a composite CLIP / SigLIP checkpoint too), then the tower modes
        (frozen, LoRA) apply.
        """
        pretrained = {}
        for part in ("video", "text"):
            name = getattr(config, f"{part}_tower")
            if name in (BUILTIN_VIDEO_TOWER, BUILTIN_TEXT_TOWER):
                continue
            if getattr(config, f"{part}_tower_config") is None:
                with explain_missing_model(name, f"{part} tower"):
                    backbone = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
                setattr(config, f"{part}_tower_config", backbone.to_dict())
            pretrained[part] = name
        if "video" in pretrained:
            statistics = _processor_statistics(pretrained["video"], trust_remote_code)
            config.resolve_preprocessing(*statistics)
        modes = {part: getattr(config, f"{part}_tower_mode") for part in ("video", "text")}
        for part in modes:
            setattr(config, f"{part}_tower_mode", "full")
        model = cls(config)
        for part, name in pretrained.items():
            backbone = getattr(model, f"{part}_tower").backbone
            weights = type(backbone).from_pretrained(name, trust_remote_code=trust_remote_code).state_dict()
            backbone.load_state_dict(weights)
        for part, mode in modes.items():
            setattr(config, f"{part}_tower_mode", mode)
            model._set_tower_mode(getattr(model, f"{part}_tower"), mode)
        return model

    def _set_tower_mode(self, tower: nn.Module, mode: str) -> None:
        if mode == "lora":
            targets = self.config.lora_target_modules
            lora = LoraConfig(
                r=self.config.lora_r,
                lora_alpha=self.config.lora_alpha,
                lora_dropout=self.config.lora_dropout,
                target_modules=targets
                if targets == "all-linear"
                else [t.strip() for t in targets.split(",")],
            )
            # Adapters go on the pretrained backbone only. The layers a tower adds around it (the
            # temporal transformer) start from random weights and train in full; an adapter there
            # would be redundant, and on `nn.MultiheadAttention.out_proj` it would never see a
            # gradient (the attention calls its weight directly, not the module).
            inject_adapter_in_model(lora, getattr(tower, "backbone", tower))
        new_layers = hasattr(tower, "backbone")
        for name, param in tower.named_parameters():
            added = new_layers and not name.startswith("backbone.")
            param.requires_grad_(mode == "full" or (mode == "lora" and (_LORA_MARKER in name or added)))

    def _init_weights(self, module: nn.Module) -> None:
        # Built-in layers keep PyTorch's defaults (HF towers use their own init, see `smart_apply`).
        if module is self:
            with torch.no_grad():
                self.logit_scale.fill_(math.log(self.config.logit_scale_init))
        elif isinstance(module, (nn.Linear, nn.Conv3d, nn.Embedding, nn.GroupNorm, nn.LayerNorm)):
            module.reset_parameters()

    def train(self, mode: bool = True) -> CleveRewardModel:
        """Like `nn.Module.train`, but a frozen tower stays in eval mode (deterministic, cacheable features)."""
        super().train(mode)
        for tower, tower_mode in (
            (self.video_tower, self.config.video_tower_mode),
            (self.text_tower, self.config.text_tower_mode),
        ):
            if tower_mode == "frozen":
                tower.eval()
        return self

    # -- the hook shared with other reward models ---------------------------------------------

    def preprocess_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """float `[N, F, C, H, W]` in [0, 1] → normalised `[N, num_frames, C, *frame_size]`, same device.

        Frames are picked like `read_video`'s "uniform" sampling when F differs from `num_frames`,
        and resized bilinearly with antialiasing when their size differs from `frame_size`. Runs
        where `videos` are (a collator calls it on CPU; the Trainer moves the batch).
        """
        videos = resample_videos(videos, self.config.num_frames, tuple(self.config.frame_size)).float()
        mean = videos.new_tensor(self.config.image_mean).view(
            1, 1, -1, 1, 1
        )  # broadcasts over [N, F, C, H, W]
        std = videos.new_tensor(self.config.image_std).view(1, 1, -1, 1, 1)
        return ((videos - mean) / std).to(self.dtype)

    def tokenize(
        self, questions: list[str], processing_class: PreTrainedTokenizerBase
    ) -> dict[str, torch.Tensor]:
        """`input_ids` / `attention_mask` `[Q, L]` (CPU) for `questions`, truncated to `max_text_length`."""
        tokens = processing_class(
            questions,
            padding=True,
            truncation=True,
            max_length=self.config.max_text_length,
            return_tensors="pt",
        )
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}

    def build_inputs(
        self, videos: torch.Tensor, questions: list[str], processing_class: PreTrainedTokenizerBase
    ) -> dict[str, torch.Tensor]:
        """Forward kwargs for N (video, question) items: `videos` float `[N, F, C, H, W]` in [0, 1].

        Returns, on the device of `videos`, `pixel_values [N, F, C, H, W]`, `input_ids` /
        `attention_mask [Q, L]` for the Q unique questions, and `text_index [N]` (item → question).
        """
        if len(questions) != videos.shape[0]:
            raise ValueError(f"build_inputs got {videos.shape[0]} videos but {len(questions)} questions")
        unique = list(dict.fromkeys(questions))
        position = {q: i for i, q in enumerate(unique)}
        tokens = self.tokenize(unique, processing_class)
        return {
            "pixel_values": self.preprocess_videos(videos),
            **{name: t.to(videos.device) for name, t in tokens.items()},
            "text_index": torch.tensor([position[q] for q in questions], device=videos.device),
        }

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Video-tower output before the projection: `[N, F, C, H, W]` (preprocessed) → `[N, Dv]`."""
        return self.video_tower(pixel_values)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text-tower output before the projection: `[Q, L]` → `[Q, Dt]`."""
        return self.text_tower(input_ids, attention_mask)

    def embed(
        self, video_features: torch.Tensor, text_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tower outputs `[N, Dv]`, `[Q, Dt]` → unit vectors in the shared space `[N, P]`, `[Q, P]`."""
        video = F.normalize(self.video_projection(video_features), dim=-1)
        text = F.normalize(self.text_projection(text_features), dim=-1)
        return video, text

    @property
    def temperature(self) -> torch.Tensor:
        """exp(s), with s clamped to [0, log(logit_scale_max)]."""
        return self.logit_scale.clamp(0, math.log(self.config.logit_scale_max)).exp()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_index: torch.Tensor | None = None,
        video_features: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Rewards of N (video, question) items → `logits [N, 1]`.

        Videos come as `pixel_values [N, F, C, H, W]` or as cached tower outputs `video_features [N, Dv]`;
        questions as `input_ids` / `attention_mask [Q, L]` or `text_features [Q, Dt]`, with `text_index [N]`
        naming each item's question (default: item i asks question i). For training the batch is
        chosen-first, `[chosen; rejected]` on dim 0. Extra kwargs (e.g. TRL's `use_cache`) are ignored.
        """
        if video_features is None:
            video_features = self.video_features(pixel_values)
        if text_features is None:
            text_features = self.text_features(input_ids, attention_mask)
        if text_index is None:
            text_index = torch.arange(video_features.shape[0], device=video_features.device)
        video, text = self.embed(video_features, text_features)  # [N, P], [Q, P]
        logits = self.temperature * (video * text[text_index]).sum(-1, keepdim=True)  # [N, 1]
        return SequenceClassifierOutput(logits=logits)

    def score_questions(
        self, videos: torch.Tensor, questions: list[list[str]], processing_class: PreTrainedTokenizerBase
    ) -> torch.Tensor:
        """Rewards of K questions per video: `videos` float `[B, F, C, H, W]` in [0, 1] → `[B, K]`.

        Each video is encoded once and each distinct question once, whatever K is.
        """
        if len(questions) != videos.shape[0] or len({len(q) for q in questions}) > 1:
            raise ValueError("score_questions needs one list of K questions per video, the same K for all")
        unique = list(dict.fromkeys(q for per_video in questions for q in per_video))
        position = {q: i for i, q in enumerate(unique)}
        video = self.video_features(self.preprocess_videos(videos.to(self.device)))  # [B, Dv]
        tokens = self.tokenize(unique, processing_class)
        text = self.text_features(**{name: t.to(self.device) for name, t in tokens.items()})  # [Q, Dt]
        video, text = self.embed(video, text)
        rewards = self.temperature * video @ text.T  # [B, Q]
        index = torch.tensor(
            [[position[q] for q in per_video] for per_video in questions], device=rewards.device
        )
        return rewards.gather(1, index)  # [B, K]


AutoConfig.register(CleveRewardConfig.model_type, CleveRewardConfig)
AutoModel.register(CleveRewardConfig, CleveRewardModel)
