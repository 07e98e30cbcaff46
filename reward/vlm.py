"""VLM reward models: a Qwen2-VL-family backbone with a score head, read at one token.

    r(question, video) = w · h_L[t*]

`h_L` is the backbone's last hidden state over the chat-templated (video, question) prompt and
`t*` the position of the reward token (`config.reward_token`) or, without one, the last non-pad
token. The backbone is the model's own transformers class (`AutoModel`: Qwen2VLModel,
Qwen2_5_VLModel, Qwen3VLModel) run with its own forward; only the head is ours.

Design decisions:
- One forward pass over N (video, question) items: the processor concatenates the videos'
  patches (`pixel_values_videos`) and `video_grid_thw` in item order, so a chosen-first batch
  [chosen; rejected] stays chosen-first. The head position is found from `attention_mask` (or the
  reward token), so left and right padding read the same token.
- `build_inputs` samples frames to `num_frames` and resizes to `frame_size` (like the dual
  encoder), then hands uint8 frames to the processor: with `frame_size` a multiple of
  patch_size × merge_size the processor does no further resize, so the visual token count is
  exactly `reward.budget.video_tokens(...)`.
- Pretrained weights are loaded once, by `VLMRewardModel.from_backbone` (hub id or folder, with
  optional bitsandbytes quantisation); `__init__` builds from the stored backbone config, so
  `from_pretrained` of a trained reward model downloads nothing. `trust_remote_code` is off
  unless asked.
- transformers' video processors need torchvision. Where it is missing (the CPU-only torch wheel
  has no matching torchvision), `TensorVideoProcessor` does the Qwen2-VL video preprocessing
  (smart resize, CLIP normalisation, the same patch layout) in plain torch, and
  `TensorQwen2VLProcessor` is Qwen2VLProcessor with it. Qwen3-VL's differs in three ways, each
  taken from its own video processor: 16-px patches and 0.5 mean / std (the checkpoint's
  settings), pixel bounds on the whole clip (T · H · W) rather than per frame, and a timestamp
  before each temporal patch in the prompt (`<0.3 seconds>`, from each video's metadata);
  `TensorQwen3VLVideoProcessor` / `TensorQwen3VLProcessor` carry them. All save and load with the
  model folder.
- LoRA/QLoRA configs are built by small functions (`lora_config`, `quantization_config`) from
  flat fields, so configs and CLIs stay flat; `prepare_for_training` applies them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoProcessor,
    AutoTokenizer,
    BatchFeature,
    BitsAndBytesConfig,
    PreTrainedConfig,
    PreTrainedModel,
    ProcessorMixin,
    Qwen2Tokenizer,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.modeling_outputs import SequenceClassifierOutputWithPast
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize
from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize as video_smart_resize
from transformers.utils import is_torchvision_available
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata

from reward.dimensions import CANONICAL_DIMENSIONS, DEFAULT_QUESTION_TEMPLATE, DIMENSION_WORDS
from reward.hub import explain_missing_model
from reward.video import resample_videos

__all__ = [
    "VLM_MODEL_TYPE",
    "QWEN2_VL_SPECIAL_TOKENS",
    "QWEN2_VL_CHAT_TEMPLATE",
    "LANGUAGE_LORA_TARGETS",
    "VISION_LORA_TARGETS",
    "TensorVideoProcessor",
    "TensorQwen3VLVideoProcessor",
    "TensorQwen2VLProcessor",
    "TensorQwen3VLProcessor",
    "load_vlm_processor",
    "VLMRewardConfig",
    "VLMRewardModel",
    "quantization_config",
    "lora_config",
    "prepare_for_training",
    "merge_adapters",
    "build_vlm_reward_model",
    "save_vlm_reward_model",
    "build_tiny_qwen2_vl",
    "build_tiny_qwen3_vl",
]

VLM_MODEL_TYPE = "clevereward_vlm"
UINT8_MAX = 255
# Qwen2-VL's control tokens: the chat template and the processor look them up by these names.
QWEN2_VL_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Qwen2-VL-Instruct's chat template (text, image and video entries; no tool calls).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3-VL-Instruct's chat template, its text and video entries: no default system turn, and the
# video as one vision start / pad / end that the processor expands per temporal patch.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Module-name patterns (peft matches them as a full-name regex). Qwen2/2.5/3-VL name the text
# decoder's linears like Llama's, under `language_model`; the vision blocks under `visual`.
LANGUAGE_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
VISION_LORA_TARGETS = (
    r".*visual\.blocks.*\.(qkv|proj|fc1|fc2|gate_proj|up_proj|down_proj|linear_fc1|linear_fc2)"
)
SCORE_HEAD = "score"
# Modules bitsandbytes leaves unquantised: the head (trained in full) and the vision tower
# (small next to the LLM, and sensitive to 4-bit).
QUANTIZATION_SKIP_MODULES = [SCORE_HEAD, "visual"]
PROCESSOR_CONFIG = "processor_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"


# -- processing without torchvision ------------------------------------------------------------


class TensorVideoProcessor(VideoProcessorMixin):
    """Qwen2-VL video preprocessing in plain torch: the same output as `Qwen2VLVideoProcessor`'s.

    Each video `[F, C, H, W]` (uint8, or float when `do_rescale=False`) is resized to
    `smart_resize(H, W, patch_size * merge_size, min_pixels, max_pixels)` (bicubic, antialiased;
    a no-op when H and W already fit), rescaled and normalised with CLIP's mean/std, padded to a
    multiple of `temporal_patch_size` frames by repeating the last one, and cut into patches in
    Qwen2-VL's order. Returns `pixel_values_videos [sum_i T_i·H_i·W_i, C·t·p·p]` and
    `video_grid_thw [num_videos, 3]` (grid in patches), and with `return_metadata=True` one
    `VideoMetadata` per video (its frames read as sampled at `fps`, for processors that write
    timestamps into the prompt).
    """

    model_input_names = ["pixel_values_videos", "video_grid_thw"]
    # How min / max pixels bound a video: per frame (H · W, Qwen2-VL) or per clip (T · H · W,
    # Qwen3-VL); reward.budget reads it to count tokens the way the processor resizes.
    pixel_bounds = "frame"

    def __init__(
        self,
        patch_size: int = 14,
        temporal_patch_size: int = 2,
        merge_size: int = 2,
        min_pixels: int = 128 * 28 * 28,
        max_pixels: int = 768 * 28 * 28,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        do_rescale: bool = True,
        rescale_factor: float = 1 / UINT8_MAX,
        fps: float = 2.0,
        **kwargs,
    ):
        # `size` is how Qwen2VLVideoProcessor saves min/max pixels; accept its saved dicts too.
        size = kwargs.pop("size", None) or {}
        super().__init__(**{k: v for k, v in kwargs.items() if k != "video_processor_type"})
        self.patch_size = patch_size
        self.temporal_patch_size = temporal_patch_size
        self.merge_size = merge_size
        self.min_pixels = size.get("shortest_edge", min_pixels)
        self.max_pixels = size.get("longest_edge", max_pixels)
        self.image_mean = list(image_mean or OPENAI_CLIP_MEAN)
        self.image_std = list(image_std or OPENAI_CLIP_STD)
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.fps = fps

    def target_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        """The (H, W) a video of this size is resized to: Qwen2-VL's per-frame `smart_resize`."""
        return smart_resize(
            height, width, self.patch_size * self.merge_size, self.min_pixels, self.max_pixels
        )

    def preprocess(
        self,
        videos,
        return_tensors=None,
        do_rescale: bool | None = None,
        return_metadata: bool = False,
        **kwargs,
    ) -> BatchFeature:
        """`videos`: a list of `[F, C, H, W]` tensors (or one `[N, F, C, H, W]` tensor). Other kwargs
        that the processor forwards to every video processor (e.g. `do_sample_frames`) are ignored."""
        do_rescale = self.do_rescale if do_rescale is None else do_rescale
        patches, grids, metadata = [], [], []
        for video in videos:
            video = video.float() * (self.rescale_factor if do_rescale else 1.0)
            num_frames, channels, height, width = video.shape
            metadata.append(
                VideoMetadata(
                    total_num_frames=num_frames, fps=self.fps, frames_indices=list(range(num_frames))
                )
            )
            new_h, new_w = self.target_size(num_frames, height, width)
            if (new_h, new_w) != (height, width):
                video = F.interpolate(video, size=(new_h, new_w), mode="bicubic", antialias=True).clamp(0, 1)
            mean = video.new_tensor(self.image_mean).view(1, -1, 1, 1)  # broadcast over [F, C, H, W]
            std = video.new_tensor(self.image_std).view(1, -1, 1, 1)
            video = (video - mean) / std
            if pad := -num_frames % self.temporal_patch_size:
                video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])  # [F + pad, C, H, W]
            t, p, m = self.temporal_patch_size, self.patch_size, self.merge_size
            grid_t, grid_h, grid_w = video.shape[0] // t, new_h // p, new_w // p
            # [F, C, H, W] -> [T, t, C, H/(p·m), m, p, W/(p·m), m, p]
            video = video.view(grid_t, t, channels, grid_h // m, m, p, grid_w // m, m, p)
            # -> [T, H/(p·m), W/(p·m), m, m, C, t, p, p]: merge groups contiguous, as Qwen2-VL expects
            video = video.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
            patches.append(video.reshape(grid_t * grid_h * grid_w, channels * t * p * p))  # [T·H·W, C·t·p·p]
            grids.append([grid_t, grid_h, grid_w])
        data = {"pixel_values_videos": torch.cat(patches), "video_grid_thw": torch.tensor(grids)}
        if return_metadata:
            data["video_metadata"] = metadata
        return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["video_metadata"])


# Qwen3-VL's video processor settings (huggingface.co/Qwen/Qwen3-VL-2B-Instruct,
# video_preprocessor_config.json; the 4B and 8B checkpoints ship the same).
QWEN3_VL_VIDEO = dict(
    patch_size=16, temporal_patch_size=2, merge_size=2, min_pixels=4096, max_pixels=25165824,
    image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], fps=2.0,
)  # fmt: skip


class TensorQwen3VLVideoProcessor(TensorVideoProcessor):
    """Qwen3-VL's video preprocessing in plain torch: `Qwen3VLVideoProcessor`'s output.

    As `TensorVideoProcessor`, with Qwen3-VL's defaults (`QWEN3_VL_VIDEO`) and its resize rule:
    min / max pixels bound the whole clip, T' · H · W with T' the frames rounded to temporal
    patches (transformers' Qwen3-VL `smart_resize`; its optional per-frame cap is off, as there).
    """

    pixel_bounds = "video"

    def __init__(self, **kwargs):
        super().__init__(**{**QWEN3_VL_VIDEO, **kwargs})

    def target_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        """The (H, W) Qwen3-VL resizes a clip of `num_frames` frames of H × W to."""
        return video_smart_resize(
            # a single frame counts as one temporal patch (transformers' processor refuses it)
            max(num_frames, self.temporal_patch_size), height, width, self.temporal_patch_size,
            self.patch_size * self.merge_size, self.min_pixels, self.max_pixels,
        )  # fmt: skip


IMAGE_PROCESSOR_CONFIG = "preprocessor_config.json"
VIDEO_PROCESSOR_CONFIG = "video_preprocessor_config.json"
_VIDEO_SETTINGS_FROM_IMAGE = (
    "patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels", "image_mean", "image_std",
)  # fmt: skip


def _checkpoint_file(path: str | os.PathLike, name: str) -> dict | str | None:
    """A checkpoint's file `name` (a folder's, or a hub repo's through the download cache): parsed
    JSON, or the text of anything else; None when the checkpoint has no such file."""
    from transformers.utils import cached_file

    local = Path(path) / name
    if not local.is_file():
        found = cached_file(str(path), name, _raise_exceptions_for_missing_entries=False)
        if found is None:
            return None
        local = Path(found)
    return json.loads(local.read_text()) if name.endswith(".json") else local.read_text()


class _TensorProcessor:
    """What the torch-only processors share: their video processor is checked by its own type, and
    `from_pretrained` reads a checkpoint's processor files without transformers' video classes."""

    video_processor_class = TensorVideoProcessor

    def check_argument_for_proper_class(self, argument_name, argument):
        # transformers resolves the expected video-processor base class only when torchvision is
        # installed; ours needs none, so it is checked by its own type.
        if argument_name == "video_processor" and isinstance(argument, TensorVideoProcessor):
            return TensorVideoProcessor
        return super().check_argument_for_proper_class(argument_name, argument)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load from a folder written by `save_pretrained` (this class's, or the model's own processor's)."""
        path = pretrained_model_name_or_path
        video_settings = (_checkpoint_file(path, PROCESSOR_CONFIG) or {}).get("video_processor") or {}
        video_settings = video_settings or _checkpoint_file(path, VIDEO_PROCESSOR_CONFIG) or {}
        if not video_settings and (image := _checkpoint_file(path, IMAGE_PROCESSOR_CONFIG)):
            # As transformers' video processor does: a checkpoint without video settings (the
            # released Qwen2-VL ones) gives its image processor's geometry and pixel bounds.
            video_settings = {k: image[k] for k in _VIDEO_SETTINGS_FROM_IMAGE if k in image}
        chat_template = _checkpoint_file(path, CHAT_TEMPLATE_FILE)
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return cls(
            image_processor=AutoImageProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            tokenizer=tokenizer,
            video_processor=cls.video_processor_class(**video_settings),
            chat_template=chat_template or tokenizer.chat_template,
        )


class TensorQwen2VLProcessor(_TensorProcessor, Qwen2VLProcessor):
    """`Qwen2VLProcessor` whose video processor is a `TensorVideoProcessor` (no torchvision needed).

    Chat template, token expansion (`<|video_pad|>` × tokens per video), padding and
    `mm_token_type_ids` are Qwen2VLProcessor's own.
    """


class TensorQwen3VLProcessor(_TensorProcessor, Qwen3VLProcessor):
    """`Qwen3VLProcessor` whose video processor is a `TensorQwen3VLVideoProcessor`.

    The prompt layout (a `<t seconds>` timestamp and a vision start / end pair around each
    temporal patch's tokens), padding and `mm_token_type_ids` are Qwen3VLProcessor's own.
    """

    video_processor_class = TensorQwen3VLVideoProcessor


_TENSOR_PROCESSORS = {cls.__name__: cls for cls in (TensorQwen2VLProcessor, TensorQwen3VLProcessor)}
# What a checkpoint's files name its processor by -> ours; Qwen3-VL checkpoints say Qwen3VLProcessor.
_PROCESSOR_FOR = {"Qwen3VLProcessor": TensorQwen3VLProcessor, "qwen3_vl": TensorQwen3VLProcessor}


def _saved_processor_class(path: str | os.PathLike) -> type[_TensorProcessor]:
    """The torch-only processor for a checkpoint (folder or hub id), from what its files say it is."""
    for name in (PROCESSOR_CONFIG, VIDEO_PROCESSOR_CONFIG, IMAGE_PROCESSOR_CONFIG, "config.json"):
        saved = _checkpoint_file(path, name) or {}
        vlm = saved.get("vlm_config") or {}  # a saved reward model names its backbone inside
        for key in (saved.get("processor_class"), saved.get("model_type"), vlm.get("model_type")):
            if key in _TENSOR_PROCESSORS:
                return _TENSOR_PROCESSORS[key]
            if key in _PROCESSOR_FOR:
                return _PROCESSOR_FOR[key]
    return TensorQwen2VLProcessor


def load_vlm_processor(path: str | os.PathLike, trust_remote_code: bool = False) -> ProcessorMixin:
    """The processor saved with a VLM (hub id or folder): `AutoProcessor`, or the torch-only
    Qwen2-VL / Qwen3-VL processor when that is what was saved or torchvision is missing."""
    saved_class = (_checkpoint_file(path, PROCESSOR_CONFIG) or {}).get("processor_class")
    if saved_class in _TENSOR_PROCESSORS or not is_torchvision_available():
        return _saved_processor_class(path).from_pretrained(path)
    return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)


# -- the model ---------------------------------------------------------------------------------


class VLMRewardConfig(PreTrainedConfig):
    """A VLM reward model: the backbone's config (`vlm_config`), where it came from, the head's
    read position and the preprocessing (frames, size, question template, dimensions)."""

    model_type = VLM_MODEL_TYPE
    sub_configs_defaults = {"vlm_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2_vl")}

    vlm_config: dict | PreTrainedConfig | None = None
    vlm_name_or_path: str | None = None
    reward_token: str | None = None
    reward_token_id: int | None = None
    num_frames: int = 8
    frame_size: list[int] | None = None
    question_template: str = DEFAULT_QUESTION_TEMPLATE
    dimensions: list[str] | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None:
            kwargs.setdefault("num_labels", 1)
        self.frame_size = list(self.frame_size or (224, 224))
        self.dimensions = list(self.dimensions or CANONICAL_DIMENSIONS)
        super().__post_init__(**kwargs)
        if self.num_labels != 1:
            raise ValueError(f"a reward model has num_labels == 1, got {self.num_labels}")
        if len(self.frame_size) != 2:
            raise ValueError(f"frame_size is [height, width], got {self.frame_size}")


class VLMRewardModel(PreTrainedModel):
    """A VLM backbone (`self.vlm`) and a linear score head: `forward` → `logits [N, 1]` for N items."""

    config_class = VLMRewardConfig
    base_model_prefix = "vlm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True

    def __init__(self, config: VLMRewardConfig, vlm: PreTrainedModel | None = None):
        super().__init__(config)
        # A given backbone is already initialised (from_pretrained / from_config mark its modules),
        # so post_init below initialises only the head.
        self.vlm = vlm if vlm is not None else AutoModel.from_config(config.vlm_config)
        self.score = nn.Linear(config.vlm_config.get_text_config().hidden_size, 1, bias=False)
        # A quantised backbone makes the whole model quantised for peft/TRL (they read these).
        for name in ("is_loaded_in_4bit", "is_loaded_in_8bit", "quantization_method", "hf_quantizer"):
            if getattr(self.vlm, name, None) is not None:
                setattr(self, name, getattr(self.vlm, name))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is self.score:
            std = getattr(self.config.vlm_config.get_text_config(), "initializer_range", 0.02)
            nn.init.normal_(module.weight, std=std)

    def get_input_embeddings(self) -> nn.Module:
        return self.vlm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.vlm.set_input_embeddings(value)

    @classmethod
    def from_backbone(
        cls,
        name_or_path: str,
        *,
        quantization: BitsAndBytesConfig | None = None,
        dtype: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        **config_fields,
    ) -> VLMRewardModel:
        """A new reward model around a pretrained VLM (hub id, e.g. "Qwen/Qwen2-VL-2B-Instruct", or folder).

        The backbone loads through `AutoModel.from_pretrained` (the checkpoint's own class and key
        layout, optional bitsandbytes `quantization`); the head starts at random. `config_fields`
        are `VLMRewardConfig` fields (num_frames, frame_size, reward_token, ...).
        """
        with explain_missing_model(str(name_or_path), "VLM backbone"):
            vlm = AutoModel.from_pretrained(
                name_or_path,
                quantization_config=quantization,
                dtype=dtype,
                attn_implementation=attn_implementation,
                trust_remote_code=trust_remote_code,
            )
        # The config shares `vlm.config`; naming the backbone's attention implementation keeps the
        # wrapper from resetting it (an unset one builds no padding mask).
        config = VLMRewardConfig(
            vlm_config=vlm.config,
            vlm_name_or_path=str(name_or_path),
            attn_implementation=vlm.config._attn_implementation,
            **config_fields,
        )
        model = cls(config, vlm=vlm)
        model.score.to(torch.float32 if quantization is not None else vlm.dtype)
        return model

    def add_reward_token(self, processor: ProcessorMixin) -> int:
        """Add `config.reward_token` to the tokenizer and the embeddings; returns its id.

        The new row of the embedding table must train: with LoRA pass the id to `lora_config`.
        """
        token = self.config.reward_token
        if token is None:
            raise ValueError("config.reward_token is None; set it to a new token, e.g. '<|reward|>'")
        processor.tokenizer.add_tokens([AddedToken(token, special=True)])
        self.vlm.resize_token_embeddings(len(processor.tokenizer))
        self.config.vlm_config.get_text_config().vocab_size = len(processor.tokenizer)
        self.config.reward_token_id = processor.tokenizer.convert_tokens_to_ids(token)
        return self.config.reward_token_id

    def reward_positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`[N]`: where the head reads each row of `[N, L]`: the last reward token, or the last
        non-pad token. Works for left and right padding."""
        order = torch.arange(input_ids.shape[1], device=input_ids.device)  # [L]
        if self.config.reward_token_id is None:
            return (attention_mask.long() * order).argmax(-1)
        is_reward = (input_ids == self.config.reward_token_id) & attention_mask.bool()
        missing = (~is_reward.any(-1)).nonzero().flatten().tolist()
        if missing:
            raise ValueError(
                f"rows {missing} hold no reward token {self.config.reward_token!r}: build inputs with build_inputs"
            )
        return (is_reward.long() * order).argmax(-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.Tensor | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """Rewards of N (video, question) prompts `[N, L]` → `logits [N, 1]`.

        Video patches and grids are concatenated in item order (`build_inputs`); for training the
        batch is chosen-first, `[chosen; rejected]` on dim 0. Other kwargs that the trainer passes
        (`use_cache`, `margin`) are not the backbone's and are ignored.
        """
        outputs = self.vlm(
            input_ids=input_ids,
            attention_mask=attention_mask,
            pixel_values_videos=pixel_values_videos,
            video_grid_thw=video_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            use_cache=False,
        )
        hidden = outputs.last_hidden_state  # [N, L, D]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        read = hidden[rows, self.reward_positions(input_ids, attention_mask)]  # [N, D]
        logits = self.score(read.to(self.score.weight.dtype))  # [N, 1]
        return SequenceClassifierOutputWithPast(logits=logits)

    def prompts(self, questions: list[str], processor: ProcessorMixin) -> list[str]:
        """The chat-templated text for each question: a user turn with the video then the question,
        the assistant turn opened, and the reward token after it when there is one."""
        conversations = [
            [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": q}]}] for q in questions
        ]
        texts = processor.apply_chat_template(conversations, tokenize=False, add_generation_prompt=True)
        return [text + (self.config.reward_token or "") for text in texts]

    def preprocess_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """float `[N, F, C, H, W]` in [0, 1] → uint8 `[N, num_frames, C, *frame_size]` (uniform frame
        sampling like `read_video`, bilinear antialiased resize), the processor's input."""
        if not videos.is_floating_point():
            raise ValueError(
                f"videos must be float in [0, 1], got {videos.dtype} (divide uint8 frames by 255)"
            )
        videos = resample_videos(videos, self.config.num_frames, tuple(self.config.frame_size)).float()
        return (videos.clamp(0, 1) * UINT8_MAX).round().to(torch.uint8)

    def build_inputs(
        self, videos: torch.Tensor, questions: list[str], processing_class: ProcessorMixin
    ) -> dict[str, torch.Tensor]:
        """Forward kwargs for N (video, question) items, `videos` float `[N, F, C, H, W]` in [0, 1].

        Returns `input_ids` / `attention_mask` / `mm_token_type_ids [N, L]` (padded on the
        tokenizer's side), `pixel_values_videos [P, C·t·p·p]` (the N videos' patches, in item
        order) and `video_grid_thw [N, 3]`, on the CPU: the trainer moves batches to the device, and
        collators may run in DataLoader worker processes, which must not touch CUDA.
        """
        if len(questions) != videos.shape[0]:
            raise ValueError(f"build_inputs got {videos.shape[0]} videos but {len(questions)} questions")
        frames = self.preprocess_videos(videos.cpu())
        inputs = processing_class(
            text=self.prompts(questions, processing_class),
            videos=list(frames),
            padding=True,
            return_tensors="pt",
            do_sample_frames=False,  # frames are already sampled to num_frames
        )
        keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw")
        return {key: inputs[key] for key in keys if key in inputs}

    def score_questions(
        self, videos: torch.Tensor, questions: list[list[str]], processing_class: ProcessorMixin
    ) -> torch.Tensor:
        """Rewards of K questions per video: `videos` float `[B, F, C, H, W]` in [0, 1] → `[B, K]`.

        The B·K (video, question) prompts go through the model in one pass.
        """
        if len(questions) != videos.shape[0] or len({len(q) for q in questions}) > 1:
            raise ValueError("score_questions needs one list of K questions per video, the same K for all")
        per_video = len(questions[0])
        repeated = videos.repeat_interleave(per_video, dim=0)  # [B·K, F, C, H, W], video-major
        flat = [q for video_questions in questions for q in video_questions]
        inputs = self.build_inputs(repeated, flat, processing_class)
        logits = self(**{key: value.to(self.device) for key, value in inputs.items()}).logits  # [B·K, 1]
        return logits.view(videos.shape[0], per_video)  # [B, K]


AutoConfig.register(VLM_MODEL_TYPE, VLMRewardConfig)
AutoModel.register(VLMRewardConfig, VLMRewardModel)
AutoProcessor.register(VLMRewardConfig, TensorQwen2VLProcessor)


# -- LoRA / QLoRA ------------------------------------------------------------------------------


def quantization_config(
    load_in_4bit: bool = False, load_in_8bit: bool = False, compute_dtype: torch.dtype = torch.bfloat16
) -> BitsAndBytesConfig | None:
    """bitsandbytes settings for QLoRA: 4-bit NF4 with double quantisation and `compute_dtype`
    matmuls, or LLM.int8(); None when neither is asked. The head and the vision tower stay unquantised."""
    if load_in_4bit and load_in_8bit:
        raise ValueError("load_in_4bit and load_in_8bit exclude each other; pick one")
    if load_in_4bit:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            llm_int8_skip_modules=QUANTIZATION_SKIP_MODULES,
        )
    if load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=QUANTIZATION_SKIP_MODULES)
    return None


def lora_config(
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: str | None = None,
    train_vision: bool = False,
    trainable_token_ids: list[int] | None = None,
) -> LoraConfig:
    """LoRA on the language model's linears (and the vision blocks' with `train_vision`); the score
    head trains in full (`modules_to_save`). `target_modules`: a regex over module names, or a
    comma-separated list of names, replacing the defaults. `trainable_token_ids`: embedding rows
    that train (a new reward token)."""
    if target_modules is None:
        targets: str | list[str] = LANGUAGE_LORA_TARGETS
        if train_vision:
            targets = f"({LANGUAGE_LORA_TARGETS})|({VISION_LORA_TARGETS})"
    elif any(c in target_modules for c in ".*()|"):
        targets = target_modules
    else:
        targets = [name.strip() for name in target_modules.split(",") if name.strip()]
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        modules_to_save=[SCORE_HEAD],
        trainable_token_indices={"embed_tokens": list(trainable_token_ids)} if trainable_token_ids else None,
        bias="none",
    )


def prepare_for_training(
    model: VLMRewardModel, lora: LoraConfig | None, gradient_checkpointing: bool = True
) -> VLMRewardModel | PeftModel:
    """Ready `model` for training: k-bit preparation when quantised (frozen base, fp32 norms,
    input grads), gradient checkpointing, and LoRA adapters when `lora` is given."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        if lora is None:
            raise ValueError("a quantised backbone trains only through adapters: give a LoRA config")
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if lora is None:
        return model
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return get_peft_model(model, lora)


def merge_adapters(model: VLMRewardModel | PeftModel) -> VLMRewardModel:
    """A plain `VLMRewardModel` with LoRA merged into the weights (and the trained head kept), ready
    for `save_pretrained` / `load_scorer`. A model without adapters comes back as it is."""
    if not isinstance(model, PeftModel):
        return model
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise ValueError(
            "merging into a quantised backbone loses precision: reload the backbone unquantised "
            "(VLMRewardModel.from_backbone), load the adapter with PeftModel.from_pretrained, then merge"
        )
    return model.merge_and_unload()


# -- the training entry point's hooks -----------------------------------------------------------

TUNING_MODES = ("lora", "full")
ADAPTER_FOLDER = "adapter"  # where save_vlm_reward_model keeps the LoRA adapter next to the merged model
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _is_reward_folder(path: str) -> bool:
    config = Path(path) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == VLM_MODEL_TYPE


def build_vlm_reward_model(
    model_args, dimensions: list[str], trust_remote_code: bool = False
) -> tuple[VLMRewardModel | PeftModel, ProcessorMixin]:
    """The VLM reward model and processor `reward.train` trains, from its `ModelArguments`.

    `vlm_name_or_path` is a Qwen2-VL-family checkpoint (hub id or folder) or a saved VLM reward
    model to continue from. Quantisation (`load_in_4bit` / `load_in_8bit`), the reward token and
    LoRA (`vlm_tuning="lora"`, with `lora_r`, `lora_alpha`, `lora_dropout`,
    `vlm_lora_target_modules`, `vlm_train_vision`) are applied here; gradient checkpointing is
    the trainer's (`--gradient_checkpointing`).
    """
    if model_args.vlm_tuning not in TUNING_MODES:
        raise ValueError(f"vlm_tuning must be one of {TUNING_MODES}, got {model_args.vlm_tuning!r}")
    dtype = getattr(torch, model_args.vlm_dtype) if model_args.vlm_dtype else None
    quantization = quantization_config(
        model_args.load_in_4bit, model_args.load_in_8bit, compute_dtype=dtype or torch.bfloat16
    )
    if quantization is not None and model_args.vlm_tuning != "lora":
        raise ValueError("a 4-/8-bit backbone trains only through LoRA: set vlm_tuning to 'lora'")
    path = model_args.vlm_name_or_path
    processor = load_vlm_processor(path, trust_remote_code=trust_remote_code)
    if _is_reward_folder(path):
        model = VLMRewardModel.from_pretrained(path, dtype=dtype, quantization_config=quantization)
    else:
        model = VLMRewardModel.from_backbone(
            path,
            quantization=quantization,
            dtype=dtype,
            attn_implementation=model_args.attn_implementation,
            trust_remote_code=trust_remote_code,
            reward_token=model_args.vlm_reward_token,
            num_frames=model_args.num_frames,
            frame_size=model_args.frame_size,
            question_template=model_args.question_template,
            dimensions=dimensions,
        )
    token_ids = None
    if model.config.reward_token is not None:
        if model.config.reward_token not in processor.tokenizer.get_vocab():
            model.add_reward_token(processor)
        token_ids = [model.config.reward_token_id]
    if model_args.vlm_tuning == "full":
        return model, processor
    lora = lora_config(
        r=model_args.lora_r,
        alpha=model_args.lora_alpha,
        dropout=model_args.lora_dropout,
        target_modules=model_args.vlm_lora_target_modules,
        train_vision=model_args.vlm_train_vision,
        trainable_token_ids=token_ids,
    )
    return prepare_for_training(model, lora, gradient_checkpointing=False), processor


def save_vlm_reward_model(
    model: VLMRewardModel | PeftModel, processor: ProcessorMixin, out_dir: str | os.PathLike
) -> Path:
    """Save a trained VLM reward model so `load_scorer(out_dir)` reads it: LoRA merged into the
    weights, the processor beside it, and the adapter itself under `out_dir/adapter/`.

    A quantised (QLoRA) model keeps only its adapter (`out_dir/adapter/`): merge it into an
    unquantised backbone to score (see `merge_adapters`). Other files in `out_dir` (the trainer's
    checkpoints, logs) are kept; adapter files the trainer wrote at the top are moved under
    `adapter/`.
    """
    from reward.files import atomic_dir

    out_dir = Path(out_dir)
    if isinstance(model, PeftModel):
        with atomic_dir(out_dir / ADAPTER_FOLDER) as tmp:
            model.save_pretrained(tmp)
        for name in _ADAPTER_FILES:
            (out_dir / name).unlink(missing_ok=True)
        if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
            return out_dir
    merged = merge_adapters(model)
    with atomic_dir(out_dir / ".merged") as tmp:
        merged.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    for item in (out_dir / ".merged").iterdir():
        item.replace(out_dir / item.name)  # one rename per file: config, weights, processor
    (out_dir / ".merged").rmdir()
    return out_dir


# -- a tiny Qwen2-VL for CPU runs, tests and benchmarks -----------------------------------------

TINY_VOCAB_SIZE = 512
TINY_PATCH_SIZE = 8  # 64x64 synthetic frames → 8x8 patches → 4x4 merged tokens per temporal patch
TINY_TEMPORAL_PATCH_SIZE = 2
TINY_MERGE_SIZE = 2
TINY_MIN_PIXELS = (TINY_PATCH_SIZE * TINY_MERGE_SIZE) ** 2  # one merged token per frame pair at least
TINY_MAX_PIXELS = 128 * 128


def _tokenizer_corpus() -> list[str]:
    """Text the tiny tokenizer learns its merges from: the template's words and every question word."""
    from reward.synthetic import CAPTIONS

    words = [DEFAULT_QUESTION_TEMPLATE, "system You are a helpful assistant. user assistant"]
    return words + list(DIMENSION_WORDS.values()) + list(CAPTIONS)


def _tiny_tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE (Qwen2Tokenizer, as the Qwen VL families use) trained on the synthetic
    world's captions and the question words, with Qwen2-VL's special tokens."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=list(QWEN2_VL_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_corpus(), trainer)
    learned = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(vocab=learned["vocab"], merges=[tuple(pair) for pair in learned["merges"]])
    tokenizer.add_tokens([AddedToken(token, special=True) for token in QWEN2_VL_SPECIAL_TOKENS])
    return tokenizer


def _vision_token_ids(tokenizer) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


def _text_token_ids(tokenizer) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return dict(
        bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>")
    )


def _save_tiny(model: PreTrainedModel, processor: ProcessorMixin, out_dir: str | os.PathLike) -> Path:
    from reward.files import atomic_dir

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return out_dir


def _tiny_text_config(
    tokenizer, hidden_size: int, num_layers: int, mrope_interleaved: bool = False, **extra
) -> dict:
    """The tiny models' language model: 4 heads (2 KV), M-RoPE sections splitting head_dim / 2
    rotary frequencies over (time, height, width); `mrope_interleaved` for Qwen3-VL."""
    head_dim = hidden_size // 4
    rope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [head_dim // 4, head_dim // 8, head_dim // 8],
    }
    if mrope_interleaved:
        rope["mrope_interleaved"] = True
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rope_parameters=rope,
        **_text_token_ids(tokenizer),
        **extra,
    )


TINY_GEOMETRY = dict(
    patch_size=TINY_PATCH_SIZE,
    temporal_patch_size=TINY_TEMPORAL_PATCH_SIZE,
    merge_size=TINY_MERGE_SIZE,
    min_pixels=TINY_MIN_PIXELS,
    max_pixels=TINY_MAX_PIXELS,
)


def build_tiny_qwen2_vl(
    out_dir: str | os.PathLike, seed: int = 0, hidden_size: int = 64, num_layers: int = 2
) -> Path:
    """Write a tiny random Qwen2-VL checkpoint (Qwen2VLForConditionalGeneration + its processor) to
    `out_dir`, in the layout of a hub checkpoint, so `VLMRewardModel.from_backbone(out_dir)` runs the
    real loading path on a CPU with no download.

    The tokenizer is a byte-level BPE (Qwen2Tokenizer) trained on the synthetic world's captions and
    the question words, with Qwen2-VL's special tokens and chat template; the vision tower has
    8-pixel patches, so a 64×64 frame pair becomes 16 visual tokens.
    """
    tokenizer = _tiny_tokenizer()
    processor = TensorQwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(**TINY_GEOMETRY),
        tokenizer=tokenizer,
        video_processor=TensorVideoProcessor(**TINY_GEOMETRY),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    config = Qwen2VLConfig(
        text_config=_tiny_text_config(tokenizer, hidden_size, num_layers),
        vision_config=dict(
            depth=num_layers,
            embed_dim=hidden_size,
            hidden_size=hidden_size,
            num_heads=4,
            mlp_ratio=2,
            patch_size=TINY_PATCH_SIZE,
            temporal_patch_size=TINY_TEMPORAL_PATCH_SIZE,
            spatial_merge_size=TINY_MERGE_SIZE,
        ),
        **_vision_token_ids(tokenizer),
    )
    torch.manual_seed(seed)
    return _save_tiny(Qwen2VLForConditionalGeneration(config), processor, out_dir)


def build_tiny_qwen3_vl(
    out_dir: str | os.PathLike, seed: int = 0, hidden_size: int = 64, num_layers: int = 2
) -> Path:
    """Write a tiny random Qwen3-VL checkpoint (Qwen3VLForConditionalGeneration + its processor) to
    `out_dir`, like `build_tiny_qwen2_vl`: the same tokenizer, Qwen3-VL's chat template and
    prompt timestamps, interleaved M-RoPE, DeepStack features from every vision block, 8-pixel patches.
    """
    tokenizer = _tiny_tokenizer()
    processor = TensorQwen3VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(**TINY_GEOMETRY),
        tokenizer=tokenizer,
        video_processor=TensorQwen3VLVideoProcessor(**TINY_GEOMETRY),
        chat_template=QWEN3_VL_CHAT_TEMPLATE,
    )
    config = Qwen3VLConfig(
        text_config=_tiny_text_config(
            tokenizer, hidden_size, num_layers, head_dim=hidden_size // 4, mrope_interleaved=True
        ),  # fmt: skip
        vision_config=dict(
            depth=num_layers,
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_heads=4,
            out_hidden_size=hidden_size,
            patch_size=TINY_PATCH_SIZE,
            temporal_patch_size=TINY_TEMPORAL_PATCH_SIZE,
            spatial_merge_size=TINY_MERGE_SIZE,
            num_position_embeddings=64,  # an 8 x 8 grid of learned positions, interpolated to the frame
            deepstack_visual_indexes=list(range(num_layers)),
        ),
        **_vision_token_ids(tokenizer),
    )
    torch.manual_seed(seed)
    return _save_tiny(Qwen3VLForConditionalGeneration(config), processor, out_dir)
