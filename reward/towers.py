"""The two encoders of the dual-encoder reward model: video towers and text towers.

Every tower maps its input to one feature vector per item and says how wide it is
(`hidden_size`); the projections into the shared space live in `reward.modeling`, so a frozen
tower's outputs can be cached (`reward.cache`) and the projections still train.

Built-in towers (trainable from scratch on a CPU, the synthetic default):
- `Conv3dVideoTower`: a small 3D-conv stack over frames plus their temporal differences (motion,
  flicker and frozen objects are visible to the first layer), pooled by mean and max over time
  and space (max keeps a defect that hits a few frames).
- `BagOfWordsTextTower`: a masked mean of word embeddings, then an MLP. A mean composes word
  meanings, which generalises to unseen color–shape combinations where a recurrent encoder
  memorises whole captions (docs/synthetic-world.md, "Measured difficulty").

Hugging Face towers, built from a backbone config (weights loaded by `reward.modeling`):
- `FrameImageTower`: an image encoder (CLIP / SigLIP vision) run on every frame, then pooled over
  time by a mean or a one-layer temporal transformer.
- `VideoBackboneTower`: a video encoder (VideoMAE, ViViT, TimeSformer), mean over its tokens.
- `HFTextTower`: a text encoder (T5 encoder, CLIP text, BERT-like) with masked-mean pooling, or a
  decoder LM with last-token pooling.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding, PretrainedConfig
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES,
)

__all__ = [
    "BUILTIN_VIDEO_TOWER",
    "BUILTIN_TEXT_TOWER",
    "VIDEO_BACKBONE_TYPES",
    "Conv3dVideoTower",
    "BagOfWordsTextTower",
    "FrameImageTower",
    "VideoBackboneTower",
    "HFTextTower",
    "backbone_config",
    "backbone_image_size",
    "check_video_geometry",
    "masked_mean",
    "build_video_tower",
    "build_text_tower",
    "text_pooling_for",
]

BUILTIN_VIDEO_TOWER = "conv3d"
BUILTIN_TEXT_TOWER = "bag-of-words"
# Backbones whose forward takes a whole clip `[N, F, C, H, W]`; every other vision backbone is
# treated as an image encoder and run frame by frame.
VIDEO_BACKBONE_TYPES = frozenset({"videomae", "vivit", "timesformer"})
# Frames and their temporal differences enter the conv tower side by side.
_FRAME_AND_DIFFERENCE = 2
_SATURATION_EPS = 1e-6  # a frame with no colored pixel keeps a zero mask
_GROUPS = 8  # GroupNorm groups: batch-size independent, so DDP and eval behave like training
_TEMPORAL_HEADS = 4


def _with_temporal_difference(x: torch.Tensor) -> torch.Tensor:
    """`[N, F, C, H, W]` → `[N, F, 2C, H, W]`: each frame beside its difference to the previous one (zero for the first)."""
    difference = torch.cat([torch.zeros_like(x[:, :1]), x.diff(dim=1)], dim=1)  # [N, F, C, H, W]
    return torch.cat([x, difference], dim=2)


class Conv3dVideoTower(nn.Module):
    """Small conv video encoder: `pixel_values [N, F, C, H, W]` (normalised) → `[N, hidden_size]`.

    `hidden_size` = 2 (channels[0] + channels[-1] + shape_channels).

    Stem: a per-frame patch embedding (Conv2d, kernel = stride = `patch_size`) of each frame, its
    saturation (hue-independent object evidence) and their temporal differences, → GroupNorm → GELU. Then one block per further width: Conv3d
    (kernel 3, stride 1 in time for the first block then 2, stride 2 in space) → GroupNorm → GELU.
    The stem's features are pooled too, beside the last block's: local evidence (a color) stays
    apart from the deep, joint features (a red triangle), which helps unseen combinations.
    With `shape_channels` > 0 a color-blind branch (the saturation map scaled to [0, 1] per frame,
    two convs, mean + max pooled) adds `2 * shape_channels` features that are the same whatever
    the object's hue: on the synthetic test split (color–shape pairs never seen in training) it
    takes text_alignment from 0.73–0.83 to 0.998–1.000 (3 seeds).
    The stem is 2D because PyTorch's CPU Conv3d backward is slow for few input channels. Blocks
    support gradient checkpointing (switched on by `PreTrainedModel.gradient_checkpointing_enable`).
    """

    def __init__(self, channels: list[int], patch_size: int, in_channels: int = 3, shape_channels: int = 0):
        super().__init__()
        stem_in = (in_channels + 1) * _FRAME_AND_DIFFERENCE  # + saturation, see forward
        self.stem = nn.Sequential(
            nn.Conv2d(stem_in, channels[0], kernel_size=patch_size, stride=patch_size),
            nn.GroupNorm(min(_GROUPS, channels[0]), channels[0]),
            nn.GELU(),
        )
        blocks = []
        for i, (previous, width) in enumerate(zip(channels[:-1], channels[1:])):
            time_stride = 1 if i == 0 else 2
            blocks.append(
                nn.Sequential(
                    nn.Conv3d(previous, width, kernel_size=3, stride=(time_stride, 2, 2), padding=1),
                    nn.GroupNorm(min(_GROUPS, width), width),
                    nn.GELU(),
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.hidden_size = 2 * (channels[0] + channels[-1])
        # The color-blind branch: the same patch grid over the saturation map scaled to [0, 1] per
        # frame (and its temporal difference), then one 3 x 3 conv. It sees where the object is but
        # not its hue, so a shape feature cannot depend on the color it was trained with.
        self.shape = None
        if shape_channels:
            self.shape = nn.Sequential(
                nn.Conv2d(_FRAME_AND_DIFFERENCE, shape_channels, kernel_size=patch_size, stride=patch_size),
                nn.GroupNorm(min(_GROUPS, shape_channels), shape_channels),
                nn.GELU(),
                nn.Conv2d(shape_channels, shape_channels, kernel_size=3, padding=1),
                nn.GroupNorm(min(_GROUPS, shape_channels), shape_channels),
                nn.GELU(),
            )
            self.hidden_size += 2 * shape_channels
        self.gradient_checkpointing = False

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        n, f = pixel_values.shape[:2]
        # Saturation (spread over the color channels) marks colored objects whatever their hue, so
        # the stem can learn shape detectors that do not depend on color: [N, F, 1, H, W].
        saturation = pixel_values.std(dim=2, keepdim=True)
        frames = torch.cat([pixel_values, saturation], dim=2)  # [N, F, C + 1, H, W]
        frames = _with_temporal_difference(frames).flatten(0, 1)  # [N * F, 2 (C + 1), H, W]
        x = self.stem(frames)  # [N * F, C0, H / p, W / p]
        x = x.unflatten(0, (n, f)).transpose(1, 2)  # -> [N, C0, F, H / p, W / p], Conv3d's layout
        stem = x.flatten(2)  # [N, C0, F * H/p * W/p]
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                x = self._gradient_checkpointing_func(block.__call__, x)
            else:
                x = block(x)
        x = x.flatten(2)  # [N, C', F' * H' * W']
        pooled = [stem.mean(-1), stem.amax(-1), x.mean(-1), x.amax(-1)]  # 4 x [N, C0 or C']
        if self.shape is not None:
            peak = saturation.amax(dim=(-2, -1), keepdim=True).clamp_min(_SATURATION_EPS)
            mask = saturation / peak  # [N, F, 1, H, W], 1 at the most saturated pixel of each frame
            mask = _with_temporal_difference(mask)  # [N, F, 2, H, W]
            shape = self.shape(mask.flatten(0, 1)).unflatten(0, (n, f)).transpose(1, 2).flatten(2)
            # [N * F, 2, H, W] -> [N * F, S, H / p, W / p] -> [N, S, F * H/p * W/p]
            pooled += [shape.mean(-1), shape.amax(-1)]
        return torch.cat(pooled, dim=-1)  # [N, hidden_size]


class BagOfWordsTextTower(nn.Module):
    """Mean of word embeddings, then a linear map plus an MLP: `[Q, L]` ids and mask → `[Q, hidden_size]`.

    The linear path keeps the output a sum of word meanings (what carries over to unseen word
    combinations); the MLP beside it can still gate words by the question asked.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, embedding_dim)
        self.linear = nn.Linear(embedding_dim, hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(embedding_dim, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, hidden_size),
        )
        self.hidden_size = hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        words = masked_mean(self.embeddings(input_ids), attention_mask)  # [Q, E]
        return self.linear(words) + self.mlp(words)


class FrameImageTower(nn.Module):
    """An image backbone on every frame, pooled over time: `[N, F, C, H, W]` → `[N, hidden_size]`.

    `temporal_pooling="mean"` averages frame features; `"transformer"` first runs one
    self-attention layer with learned frame positions over them (order-aware: motion direction).
    """

    def __init__(self, backbone: nn.Module, num_frames: int, temporal_pooling: str = "mean"):
        super().__init__()
        if temporal_pooling not in ("mean", "transformer"):
            raise ValueError(f"temporal_pooling must be 'mean' or 'transformer', got {temporal_pooling!r}")
        self.backbone = backbone
        self.all_tied_weights_keys = _tied_keys(backbone)
        self.hidden_size = backbone.config.hidden_size
        self.temporal = None
        if temporal_pooling == "transformer":
            self.frame_positions = nn.Parameter(torch.zeros(num_frames, self.hidden_size))
            self.temporal = nn.TransformerEncoderLayer(
                self.hidden_size, _TEMPORAL_HEADS, 2 * self.hidden_size, dropout=0.0, batch_first=True
            )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        n, f = pixel_values.shape[:2]
        frames = pixel_values.flatten(0, 1)  # [N, F, C, H, W] -> [N * F, C, H, W]
        features = self.backbone(pixel_values=frames).pooler_output.view(n, f, -1)  # [N * F, D] -> [N, F, D]
        if self.temporal is not None:
            features = self.temporal(features + self.frame_positions[:f])
        return features.mean(1)


class VideoBackboneTower(nn.Module):
    """A video backbone on the whole clip, mean over its tokens: `[N, F, C, H, W]` → `[N, hidden_size]`."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.all_tied_weights_keys = _tied_keys(backbone)
        self.hidden_size = backbone.config.hidden_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixel_values=pixel_values).last_hidden_state.mean(1)


class HFTextTower(nn.Module):
    """A text backbone with pooling: `input_ids [Q, L]`, `attention_mask [Q, L]` → `[Q, hidden_size]`.

    `pooling="mean"`: masked mean of the last hidden states (encoders). `"last"`: the hidden state
    of the last real token, wherever padding is (decoder LMs, whose last token has seen the whole
    text).
    """

    def __init__(self, backbone: nn.Module, pooling: str):
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"text pooling must be 'mean' or 'last', got {pooling!r}")
        self.backbone = backbone
        self.all_tied_weights_keys = _tied_keys(backbone)
        self.pooling = pooling
        self.hidden_size = backbone.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state  # [Q, L, D]
        if self.pooling == "mean":
            return masked_mean(hidden, attention_mask)
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (attention_mask * positions).argmax(1)  # index of the last real token, left or right padding
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def _tied_keys(backbone: nn.Module) -> dict[str, str]:
    """The backbone's tied weights, named from the wrapping tower (so `post_init` of the reward model
    sees them: e.g. T5's `encoder.embed_tokens` is `shared`, stored once)."""
    tied = getattr(backbone, "all_tied_weights_keys", None) or {}
    return {f"backbone.{k}": f"backbone.{v}" for k, v in tied.items()}


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden [Q, L, D]` over the positions where `attention_mask [Q, L]` is 1 → `[Q, D]`."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [Q, L, 1]
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def backbone_config(config: dict, part: str) -> PretrainedConfig:
    """A backbone config from its dict; a composite (CLIP, SigLIP) config yields its `part` ("vision"/"text")."""
    config = AutoConfig.for_model(**config) if "model_type" in config else PretrainedConfig(**config)
    sub = getattr(config, f"{part}_config", None)
    return sub if isinstance(sub, PretrainedConfig) else config


def text_pooling_for(config: PretrainedConfig) -> str:
    """'last' for decoder-only language models, 'mean' for text encoders."""
    kind = config.model_type
    is_decoder_lm = (
        kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and kind not in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES
        and not getattr(config, "is_encoder_decoder", False)
    )
    return "last" if is_decoder_lm else "mean"


def backbone_image_size(backbone_cfg: PretrainedConfig) -> list[int] | None:
    """[H, W] a vision backbone's position embeddings were built for (its config's `image_size`), or None."""
    size = getattr(backbone_cfg, "image_size", None)
    if size is None:
        return None
    return [size, size] if isinstance(size, int) else list(size)


def check_video_geometry(config, backbone_cfg: PretrainedConfig) -> None:
    """ValueError naming the field when `num_frames` / `frame_size` cannot feed this backbone.

    Video backbones (VideoMAE, ViViT, TimeSformer) embed a fixed number of frames; ViT-style image
    and video backbones a fixed image size (their position embeddings are not interpolated here).
    """
    name = config.video_tower
    frames = getattr(backbone_cfg, "num_frames", None)
    if backbone_cfg.model_type in VIDEO_BACKBONE_TYPES and frames is not None and config.num_frames != frames:
        raise ValueError(
            f"num_frames={config.num_frames} does not fit video tower {name!r}: its position embeddings "
            f"cover {frames} frames (the backbone config's num_frames); set num_frames: {frames}"
        )
    size = backbone_image_size(backbone_cfg)
    if size is not None and list(config.frame_size) != size:
        raise ValueError(
            f"frame_size={list(config.frame_size)} does not fit video tower {name!r}: it was built for "
            f"{size[0]} x {size[1]} frames (the backbone config's image_size); set frame_size: {size}"
        )


def build_video_tower(config) -> nn.Module:
    """The video tower a `CleveRewardConfig` describes (random weights; pretrained ones are loaded later)."""
    if config.video_tower == BUILTIN_VIDEO_TOWER:
        return Conv3dVideoTower(
            list(config.conv_channels), config.patch_size, shape_channels=config.shape_channels
        )
    backbone_cfg = backbone_config(config.video_tower_config, "vision")
    check_video_geometry(config, backbone_cfg)
    backbone = AutoModel.from_config(backbone_cfg)
    if backbone_cfg.model_type in VIDEO_BACKBONE_TYPES:
        return VideoBackboneTower(backbone)
    return FrameImageTower(backbone, config.num_frames, config.temporal_pooling)


def build_text_tower(config) -> nn.Module:
    """The text tower a `CleveRewardConfig` describes (random weights; pretrained ones are loaded later)."""
    if config.text_tower == BUILTIN_TEXT_TOWER:
        return BagOfWordsTextTower(config.vocab_size, config.word_embedding_dim, config.text_hidden_size)
    backbone_cfg = backbone_config(config.text_tower_config, "text")
    if backbone_cfg.model_type in MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES:
        backbone = AutoModelForTextEncoding.from_config(backbone_cfg)
    else:
        backbone = AutoModel.from_config(backbone_cfg)
    pooling = config.text_pooling if config.text_pooling != "auto" else text_pooling_for(backbone_cfg)
    return HFTextTower(backbone, pooling)
