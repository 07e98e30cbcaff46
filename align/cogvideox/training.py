"""CogVideoX training: RoPE tables, the denoising error, and LoRA adapters (add, save, load, disable)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate.utils import extract_model_from_parallel
from diffusers import (
    CogVideoXDDIMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
)
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid
from diffusers.training_utils import cast_training_params
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from reward.files import atomic_dir

__all__ = [
    "LORA_WEIGHTS_NAME",
    "DEFAULT_LORA_TARGETS",
    "rotary_embeddings",
    "denoising_error",
    "add_lora",
    "save_lora",
    "load_lora",
    "adapters_disabled",
]


LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
DEFAULT_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
LORA_ADAPTER_NAME = "default"  # peft's name for a model's single adapter


def rotary_embeddings(
    transformer: CogVideoXTransformer3DModel, latent_frames: int, latent_height: int, latent_width: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (cos, sin) 3D RoPE tables the pipeline builds for this latent size; None for models without RoPE.

    Same grid as `CogVideoXPipeline._prepare_rotary_positional_embeddings`, in latent units: the
    token grid is the latent grid divided by the patch size, cropped against the trained sample size
    (CogVideoX 1.0) or sliced from it (1.5, which also counts frames in patches of `patch_size_t`).
    """
    config = transformer.config
    if not config.use_rotary_positional_embeddings:
        return None
    p, p_t = config.patch_size, config.patch_size_t
    grid = (latent_height // p, latent_width // p)
    base_height, base_width = config.sample_height // p, config.sample_width // p
    if p_t is None:
        return get_3d_rotary_pos_embed(
            embed_dim=config.attention_head_dim,
            crops_coords=get_resize_crop_region_for_grid(grid, base_width, base_height),
            grid_size=grid,
            temporal_size=latent_frames,
            device=transformer.device,
        )
    return get_3d_rotary_pos_embed(
        embed_dim=config.attention_head_dim,
        crops_coords=None,
        grid_size=grid,
        temporal_size=math.ceil(latent_frames / p_t),
        grid_type="slice",
        max_size=(base_height, base_width),
        device=transformer.device,
    )


def _unwrap(model: torch.nn.Module) -> CogVideoXTransformer3DModel:
    """The transformer inside accelerate's wrappers (DDP, DeepSpeed, FSDP, torch.compile)."""
    return extract_model_from_parallel(model, keep_torch_compile=False)


def _pad_frames(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Prepend `pad` copies of the first latent frame: [B, F, C, h, w] -> [B, pad + F, C, h, w]."""
    return torch.cat([x[:, :1].expand(-1, pad, -1, -1, -1), x], dim=1) if pad else x


def denoising_error(
    transformer: CogVideoXTransformer3DModel,
    scheduler: CogVideoXDDIMScheduler,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per-example weighted denoising error of a v-prediction CogVideoX transformer: float [B].

        x_t     = sqrt(a_t) x0 + sqrt(1 - a_t) noise                  (scheduler.add_noise)
        x0_hat  = sqrt(a_t) x_t - sqrt(1 - a_t) v_theta(x_t, t, c)    (scheduler.get_velocity)
        err     = mean over (F, C, h, w) of (x0_hat - x0)^2 / (1 - a_t)

    with a_t = scheduler.alphas_cumprod[t]. The weight makes err exactly the squared error of the
    v prediction, O(1) per element for a random model. `latents` [B, F_lat, C, h, w] are scaled
    latents (as `generate` returns), `prompt_embeds` [B, L, D], `noise` like latents, `timesteps`
    long [B]. Gradients flow through the transformer (wrap in no_grad for a reference pass). RoPE
    tables are built here when the model uses them and none are given. `transformer` may be
    wrapped by `accelerator.prepare` (DDP, DeepSpeed, FSDP): the call goes through the wrapper so
    gradients synchronise; the config is read from the module inside.
    """
    base = _unwrap(transformer)
    pad = 0
    if base.config.patch_size_t is not None:
        pad = -latents.shape[1] % base.config.patch_size_t
    x0, eps = _pad_frames(latents, pad), _pad_frames(noise, pad)
    if image_rotary_emb is None:
        image_rotary_emb = rotary_embeddings(base, x0.shape[1], x0.shape[3], x0.shape[4])
    dtype = base.dtype
    x_t = scheduler.add_noise(x0, eps, timesteps)
    v = transformer(
        hidden_states=x_t.to(dtype),
        encoder_hidden_states=prompt_embeds.to(dtype),
        timestep=timesteps,
        image_rotary_emb=image_rotary_emb,
        return_dict=False,
    )[0]
    x0_hat = scheduler.get_velocity(v.float(), x_t.float(), timesteps)
    alphas_cumprod = scheduler.alphas_cumprod.to(device=timesteps.device)[timesteps].float()
    squared = (x0_hat - x0.float())[:, pad:] ** 2  # [B, F_lat, C, h, w], padding frames dropped
    return squared.flatten(1).mean(dim=1) / (1 - alphas_cumprod)  # [B, F_lat * C * h * w] -> [B]


def add_lora(
    transformer: CogVideoXTransformer3DModel,
    rank: int,
    alpha: float,
    target_modules: tuple[str, ...] = DEFAULT_LORA_TARGETS,
    dropout: float = 0.0,
) -> list[torch.nn.Parameter]:
    """Freeze `transformer` and add a trainable LoRA adapter; returns the adapter's parameters.

    peft's default init draws A (Kaiming) and sets B = 0, so the adapted model equals the base
    model until the first update: Diffusion-DPO's reference is the same transformer with the
    adapter disabled. Adapter parameters are kept in float32 even in a half-precision model.
    """
    transformer.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        init_lora_weights=True,
        target_modules=list(target_modules),
    )
    transformer.add_adapter(config, adapter_name=LORA_ADAPTER_NAME)
    cast_training_params(transformer, dtype=torch.float32)
    return [p for p in transformer.parameters() if p.requires_grad]


def save_lora(
    transformer: CogVideoXTransformer3DModel,
    out_dir: str | os.PathLike,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the transformer's LoRA adapter to `out_dir`/pytorch_lora_weights.safetensors, atomically.

    The format is diffusers': `pipe.load_lora_weights(out_dir)` (or `load_pipeline(...,
    lora_weights=out_dir)`) reads it into any CogVideoXPipeline of the same base model.
    `transformer` may be wrapped by `accelerator.prepare`. Call it on the main process only.
    `state_dict`: the adapter's tensors when the module holds only shards of them (FSDP).
    """
    transformer = _unwrap(transformer)
    layers = get_peft_model_state_dict(transformer, state_dict=state_dict)
    # The adapter config (rank, alpha, targets) goes into the file's metadata: without it the
    # loader assumes alpha == rank and the reloaded adapter is scaled differently.
    metadata = transformer.peft_config[LORA_ADAPTER_NAME].to_dict()
    with atomic_dir(out_dir) as tmp:
        CogVideoXPipeline.save_lora_weights(
            tmp,
            transformer_lora_layers=layers,
            weight_name=LORA_WEIGHTS_NAME,
            transformer_lora_adapter_metadata=metadata,
        )
    return Path(out_dir)


def _lora_file(lora_dir: str | os.PathLike) -> Path:
    path = Path(lora_dir) / LORA_WEIGHTS_NAME
    if not path.is_file():
        raise ValueError(
            f"LoRA folder {str(lora_dir)!r} has no {LORA_WEIGHTS_NAME}: expected a save_lora folder"
        )
    return path


def load_lora(transformer: CogVideoXTransformer3DModel, lora_dir: str | os.PathLike) -> None:
    """Copy an adapter written by `save_lora` into `transformer`'s own (from `add_lora`, same rank/targets).

    For continuing training from a saved adapter; to sample with one, use
    `load_pipeline(..., lora_weights=lora_dir)`. A missing file or an adapter of another shape
    raises ValueError naming the file.
    """
    path = _lora_file(lora_dir)
    prefix = f"{CogVideoXPipeline.transformer_name}."  # diffusers files key layers as "transformer.<module>"
    state = CogVideoXPipeline.lora_state_dict(str(lora_dir))
    weights = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    try:
        result = set_peft_model_state_dict(_unwrap(transformer), weights, adapter_name=LORA_ADAPTER_NAME)
    except RuntimeError as error:  # torch's size-mismatch report
        raise ValueError(f"{path}: the adapter does not fit this transformer's LoRA: {error}") from error
    missing = [key for key in result.missing_keys if "lora_" in key]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path}: the adapter does not match this transformer's LoRA (missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})"
        )


@contextmanager
def adapters_disabled(transformer: CogVideoXTransformer3DModel) -> Iterator[CogVideoXTransformer3DModel]:
    """Run the base (reference) model inside the block; adapters are enabled again on exit, even on error.

    Yields `transformer` as given (wrapped or not), so the reference pass is the same call as the policy's.
    """
    base = _unwrap(transformer)
    base.disable_adapters()
    try:
        yield transformer
    finally:
        base.enable_adapters()
