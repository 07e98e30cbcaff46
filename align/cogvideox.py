"""CogVideoX, all of its quirks in one module: loading, sampling, latents, denoising error, LoRA.

The rest of `align` sees videos as float `[B, F, C, H, W]` in [0, 1] and latents as
`[B, F_lat, C_lat, h, w]`; everything below hides what diffusers' CogVideoX does differently:

- **Two layouts.** The transformer and the pipeline's latents are `[B, F, C, H, W]` (frames before
  channels); the VAE wants `[B, C, F, H, W]`. Only `decode_latents` / `encode_videos_to_latents`
  permute, each with a shape comment. Latents here are always *scaled* (times
  `vae.config.scaling_factor`), i.e. what the transformer denoises.
- **Frame counts.** The VAE compresses time by 4 (keeping the first frame): `F` frames become
  `F_lat = (F - 1) // 4 + 1` latent frames, and it decodes latent frames in chunks of two after a
  first chunk of three, so only an odd `F_lat` decodes back to `F` frames: `(F - 1) % 8 == 0`
  (9, 17, 25, ..., 49; 13 frames would decode to 16). Height and width must divide by the VAE's
  spatial factor (8) times the transformer's patch size (2), i.e. by 16.
- **One generator per candidate.** `CogVideoXPipeline` ignores `num_videos_per_prompt`; N
  candidates are the prompt repeated N times with a list of N seeded `torch.Generator`s. The
  initial noise of each row comes from its own generator, so a seed gives the same video alone or
  inside a batch.
- **v-prediction.** The scheduler is DDIM with `prediction_type="v_prediction"` and zero-terminal-SNR
  betas. `denoising_error` turns the transformer's v into an x0 prediction with
  `scheduler.get_velocity(v, x_t, t) = sqrt(a_t) x_t - sqrt(1 - a_t) v` and weights the squared
  x0 error by `1 / (1 - a_t)` (as diffusers' `train_cogvideox_lora.py`). That weighted error equals
  the plain squared v error, so it lives on the same O(1) scale as an epsilon-prediction MSE.
- **RoPE.** CogVideoX-5b and 1.5 use 3D rotary embeddings whose grid depends on the latent size;
  `rotary_embeddings` builds them for training exactly as the pipeline does for sampling.
- **CogVideoX 1.5 frame padding.** With `patch_size_t = 2` the latent frame count must be even; the
  pipeline prepends noise frames and drops them before decoding. `generate` returns the unpadded
  latents; `denoising_error` pads by repeating the first latent frame and ignores the pad in its mean.
- **LoRA.** Adapters go in with peft through `transformer.add_adapter` with B zero-initialised (the
  policy equals the reference at step 0), are saved as `pytorch_lora_weights.safetensors` by
  `CogVideoXPipeline.save_lora_weights` so `pipe.load_lora_weights(dir)` reads them, and the
  reference model is the same transformer inside `adapters_disabled`.
- **Loading.** `"tiny"` / `"tiny:SEED"` builds a real, randomly initialised `CogVideoXPipeline`
  from configs (no download) for tests and CPU demos; known hub ids and local folders go through
  `CogVideoXPipeline.from_pretrained`. Anything else fails in `validate_generator`, before any work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import extract_model_from_parallel
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
)
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid
from diffusers.training_utils import cast_training_params
from diffusers.utils.torch_utils import randn_tensor
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from reward.files import atomic_dir

__all__ = [
    "GeneratorSpec",
    "KNOWN_GENERATORS",
    "TINY",
    "TINY_VOCABULARY",
    "LORA_WEIGHTS_NAME",
    "DEFAULT_LORA_TARGETS",
    "GeneratedBatch",
    "validate_generator",
    "load_pipeline",
    "tiny_pipeline",
    "encode_prompts",
    "generate",
    "decode_latents",
    "encode_videos_to_latents",
    "latent_frame_count",
    "rotary_embeddings",
    "sample_noise_and_timesteps",
    "shared_noise_for_pairs",
    "denoising_error",
    "add_lora",
    "save_lora",
    "load_lora",
    "adapters_disabled",
]


@dataclass(frozen=True)
class GeneratorSpec:
    """What a released CogVideoX text-to-video checkpoint expects, from its model card.

    Sampling sizes equal the transformer config's defaults, which `generate` already uses; the
    memory figures are single-GPU inference peaks, for choosing `cpu_offload` and VAE switches.
    """

    height: int
    width: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    dtype: str  # the card's recommended precision
    memory_gb: float  # no optimisations (the card's SAT figure)
    memory_offload_gb: float  # diffusers with sequential CPU offload + VAE slicing and tiling ("from X GB")


# Model cards of THUDM/CogVideoX-2b, -5b and CogVideoX1.5-5B (figures in the README, "Supported generators").
KNOWN_GENERATORS: dict[str, GeneratorSpec] = {
    "THUDM/CogVideoX-2b": GeneratorSpec(
        height=480, width=720, num_frames=49, fps=8, num_inference_steps=50, guidance_scale=6.0,
        dtype="float16", memory_gb=18.0, memory_offload_gb=4.0,
    ),
    "THUDM/CogVideoX-5b": GeneratorSpec(
        height=480, width=720, num_frames=49, fps=8, num_inference_steps=50, guidance_scale=6.0,
        dtype="bfloat16", memory_gb=26.0, memory_offload_gb=5.0,
    ),
    "THUDM/CogVideoX1.5-5B": GeneratorSpec(
        height=768, width=1360, num_frames=81, fps=16, num_inference_steps=50, guidance_scale=6.0,
        dtype="bfloat16", memory_gb=76.0, memory_offload_gb=10.0,
    ),
}  # fmt: skip
TINY = "tiny"
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
DEFAULT_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
LORA_ADAPTER_NAME = "default"  # peft's name for a model's single adapter

# The tiny generator's word list: every word of the synthetic world's captions plus a few common
# ones; anything else maps to <unk>. Ids 0-2 are T5's pad / eos / unk convention.
TINY_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
TINY_VOCABULARY = (
    *("a", "an", "the", "moving", "object", "video", "of"),
    *("red", "green", "blue", "yellow"),
    *("circle", "square", "triangle"),
    *("left", "right", "up", "down"),
)
TINY_TEXT_LENGTH = 16  # tokens per prompt: captions are 5 words + </s>; padded to this length
TINY_TEXT_DIM = 32  # T5 d_model == transformer text_embed_dim
TINY_HEIGHT = TINY_WIDTH = 32  # pixels; / VAE spatial factor 8 -> 4x4 latents -> 2x2 patches
TINY_FRAMES = 9  # (9 - 1) / 4 + 1 = 3 latent frames
TINY_SEED_SEPARATOR = ":"


@dataclass
class GeneratedBatch:
    """Samples of one `generate` call, row i made from `prompts[i]` with `seeds[i]`.

    videos:  float32 [B, F, C, H, W] in [0, 1] (the package's video contract), on CPU.
    latents: float32 [B, F_lat, C_lat, h, w], the final denoised, scaled latents in the
             transformer's layout (frames before channels), before decoding; on CPU. What
             Diffusion-DPO trains on; `decode_latents` turns them back into `videos`.
    """

    videos: torch.Tensor
    latents: torch.Tensor
    prompts: list[str]
    seeds: list[int]

    def __len__(self) -> int:
        return len(self.prompts)


def validate_generator(generator: str) -> str:
    """Say what `generator` names ("tiny", "hub" or "folder"), or raise ValueError saying what was expected.

    Cheap (no download, no model): commands call it on their arguments before any work.
    """
    if generator == TINY or generator.startswith(TINY + TINY_SEED_SEPARATOR):
        seed = generator[len(TINY) + 1 :]
        if generator != TINY and not seed.isdigit():
            raise ValueError(f"generator {generator!r}: expected 'tiny' or 'tiny:SEED' with an integer SEED")
        return "tiny"
    if generator in KNOWN_GENERATORS:
        return "hub"
    path = Path(generator)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"generator folder {generator!r} has no model_index.json: expected a diffusers "
                "CogVideoXPipeline saved with save_pretrained"
            )
        return "folder"
    raise ValueError(
        f"unknown generator {generator!r}: expected one of {', '.join(KNOWN_GENERATORS)}, "
        f"'{TINY}' / '{TINY}:SEED', or a local folder holding a saved CogVideoXPipeline (model_index.json)"
    )


def _resolve_dtype(dtype: torch.dtype | str | None, generator: str, device: str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        # Half precision only where it is fast and was validated: on a GPU, for the released checkpoints.
        spec = KNOWN_GENERATORS.get(generator)
        dtype = spec.dtype if spec is not None and device != "cpu" else "float32"
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}: expected e.g. float32, float16, bfloat16")
    return resolved


def load_pipeline(
    generator: str,
    dtype: torch.dtype | str | None = None,
    device: str | None = None,
    enable_vae_tiling: bool = False,
    enable_vae_slicing: bool = False,
    cpu_offload: str | None = None,
    lora_weights: str | None = None,
) -> CogVideoXPipeline:
    """Load a CogVideoX text-to-video pipeline, ready to sample.

    `generator`: a known hub id (`KNOWN_GENERATORS`), a local folder with model_index.json, or
    "tiny" / "tiny:SEED" (`tiny_pipeline`). `dtype` defaults to the model card's precision on a GPU
    and float32 on CPU. `cpu_offload`: None (everything on `device`), "model" (one component on
    the GPU at a time) or "sequential" (layer by layer; least memory, slowest). VAE tiling/slicing
    cut the decoder's peak memory. `lora_weights`: a folder written by `save_lora`, loaded on top.
    """
    kind = validate_generator(generator)
    if cpu_offload not in (None, "model", "sequential"):
        raise ValueError(f"cpu_offload={cpu_offload!r}: expected None, 'model' or 'sequential'")
    if lora_weights is not None:
        _lora_file(lora_weights)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = _resolve_dtype(dtype, generator, device)
    if kind == "tiny":
        seed = int(generator.partition(TINY_SEED_SEPARATOR)[2] or 0)
        pipe = tiny_pipeline(seed=seed)
        if torch_dtype != torch.float32:  # built in float32; casting a float32 model to itself only warns
            pipe.to(dtype=torch_dtype)
    else:
        pipe = CogVideoXPipeline.from_pretrained(generator, torch_dtype=torch_dtype)
    if lora_weights is not None:
        pipe.load_lora_weights(lora_weights)
    if enable_vae_tiling:
        pipe.vae.enable_tiling()
    if enable_vae_slicing:
        pipe.vae.enable_slicing()
    if cpu_offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif cpu_offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)  # `generate` shows one bar over its batches instead
    return pipe


def _tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level T5-style tokenizer (pad=0, eos=1, unk=2, appends </s>) built in memory."""
    pad, eos, unk = TINY_SPECIAL_TOKENS
    vocab = {token: i for i, token in enumerate((*TINY_SPECIAL_TOKENS, *TINY_VOCABULARY))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", special_tokens=[(eos, vocab[eos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad,
        eos_token=eos,
        unk_token=unk,
        model_max_length=TINY_TEXT_LENGTH,
    )


def tiny_pipeline(seed: int = 0) -> CogVideoXPipeline:
    """A real `CogVideoXPipeline` with tiny random components, built from configs (no download).

    Same architecture and scheduler as CogVideoX-2b at a toy size: 32x32 pixels, 9 frames by
    default (any (F - 1) % 8 == 0 works; height/width multiples of 16). Weights are random but
    fixed by `seed`, so its samples are noise-like yet reproducible. `save_pretrained` folders load
    back with `load_pipeline(folder)`.
    """
    tokenizer = _tiny_tokenizer()
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=TINY_TEXT_DIM,
            d_kv=8,  # 4 heads x 8 = d_model
            num_heads=4,
            d_ff=64,  # 2 x d_model
            num_layers=1,  # one encoder block is enough to mix words
            relative_attention_num_buckets=8,  # captions are < 16 tokens
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    ).eval()
    torch.manual_seed(seed + 1)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,  # inner dim 32: the 3D sin-cos position embedding needs a multiple of 16
        in_channels=4,  # = VAE latent channels
        out_channels=4,
        time_embed_dim=8,
        text_embed_dim=TINY_TEXT_DIM,
        num_layers=2,  # two blocks so LoRA and reference differ in more than one place
        sample_width=TINY_WIDTH // 8,  # latent width: 32 px / spatial factor 8 = 4
        sample_height=TINY_HEIGHT // 8,  # latent height: 4
        sample_frames=TINY_FRAMES,  # pixel frames; latent frames (9 - 1) / 4 + 1 = 3
        patch_size=2,  # as the real models: 4x4 latents -> 2x2 tokens per latent frame
        temporal_compression_ratio=4,
        max_text_seq_length=TINY_TEXT_LENGTH,
    ).eval()
    torch.manual_seed(seed + 2)
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        # Four blocks as the real VAE: spatial factor 2**3 = 8; the first two also halve time (4x).
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),  # the smallest width GroupNorm(2 groups) accepts comfortably
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        sample_height=TINY_HEIGHT,
        sample_width=TINY_WIDTH,
    ).eval()
    # CogVideoX-2b's scheduler config: v-prediction, zero-terminal-SNR betas, trailing timesteps.
    scheduler = CogVideoXDDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
    )
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _max_text_length(pipe: CogVideoXPipeline) -> int:
    return pipe.transformer.config.max_text_seq_length


def encode_prompts(
    pipe: CogVideoXPipeline,
    prompts: list[str],
    negative_prompts: list[str] | None = None,
    do_classifier_free_guidance: bool = False,
    max_sequence_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """T5 embeddings as the pipeline computes them: `(prompt_embeds, negative_prompt_embeds)`.

    prompt_embeds: [B, L, D] with L = `max_sequence_length` (default: the transformer's
    `max_text_seq_length`, 226 for the released models). negative_prompt_embeds is the
    unconditional branch for classifier-free guidance (empty prompts unless given), else None.
    """
    with torch.no_grad():
        return pipe.encode_prompt(
            prompts,
            negative_prompt=negative_prompts,
            do_classifier_free_guidance=do_classifier_free_guidance,
            max_sequence_length=max_sequence_length or _max_text_length(pipe),
            device=pipe._execution_device,
        )


def latent_frame_count(pipe: CogVideoXPipeline, num_frames: int) -> int:
    """Latent frames of a `num_frames` video; ValueError unless the VAE round-trips that many frames.

    The VAE compresses time by 4 (F_lat = (F - 1) // 4 + 1) and decodes latent frames in chunks of
    2 after a first chunk of 3, so only an odd F_lat decodes back to F frames: (F - 1) % 8 == 0.
    """
    factor = pipe.vae_scale_factor_temporal
    chunk = factor * pipe.vae.num_latent_frames_batch_size
    if num_frames < 1 or (num_frames - 1) % chunk:
        raise ValueError(
            f"num_frames={num_frames}: CogVideoX's VAE round-trips only (num_frames - 1) % {chunk} == 0 "
            f"frames (1, {chunk + 1}, {2 * chunk + 1}, ..., 49)"
        )
    return (num_frames - 1) // factor + 1


def _check_size(pipe: CogVideoXPipeline, height: int, width: int) -> None:
    multiple = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size
    if height % multiple or width % multiple:
        raise ValueError(f"height={height}, width={width}: both must be multiples of {multiple}")


def generate(
    pipe: CogVideoXPipeline,
    prompts: list[str],
    seeds: list[int],
    num_inference_steps: int,
    guidance_scale: float,
    height: int | None = None,
    width: int | None = None,
    num_frames: int | None = None,
    batch_size: int | None = None,
) -> GeneratedBatch:
    """Sample one video per (prompt, seed) row; rows run `batch_size` at a time (default: all at once).

    N candidates of a prompt: repeat the prompt N times with N seeds. Each row gets its own
    `torch.Generator(seed)` (on CPU, so seeds mean the same on every device), hence a seed yields
    the same video whether it is sampled alone or in a batch. Sizes default to the transformer's
    sample size. Classifier-free guidance runs when guidance_scale > 1.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: expected one seed per prompt")
    if not prompts:
        raise ValueError("generate needs at least one prompt")
    config = pipe.transformer.config
    height = height or config.sample_height * pipe.vae_scale_factor_spatial
    width = width or config.sample_width * pipe.vae_scale_factor_spatial
    num_frames = num_frames or config.sample_frames
    _check_size(pipe, height, width)
    latent_frames = latent_frame_count(pipe, num_frames)
    batch_size = batch_size or len(prompts)
    starts = range(0, len(prompts), batch_size)
    latents, videos = [], []
    for start in tqdm(starts, desc="generate", unit="batch", disable=len(starts) == 1):
        rows = slice(start, start + batch_size)
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds[rows]]
        with torch.no_grad():
            out = pipe(
                prompt=prompts[rows],
                height=height,
                width=width,
                num_frames=num_frames,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=generators,
                max_sequence_length=_max_text_length(pipe),
                output_type="latent",
                return_dict=False,
            )[0]
        # CogVideoX 1.5 prepends padding frames (patch_size_t); the pipeline drops them before decoding.
        chunk = out[:, out.shape[1] - latent_frames :]  # [b, F_lat, C_lat, h, w]
        latents.append(chunk)
        videos.append(decode_latents(pipe, chunk))
    return GeneratedBatch(
        videos=torch.cat(videos),
        latents=torch.cat(latents).float().cpu(),
        prompts=list(prompts),
        seeds=list(seeds),
    )


def decode_latents(pipe: CogVideoXPipeline, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents [B, F_lat, C_lat, h, w] -> float32 videos [B, F, C, H, W] in [0, 1]."""
    vae = pipe.vae
    z = latents.to(device=pipe._execution_device, dtype=vae.dtype) / vae.config.scaling_factor
    z = z.permute(0, 2, 1, 3, 4)  # [B, F_lat, C_lat, h, w] -> [B, C_lat, F_lat, h, w]
    with torch.no_grad():
        frames = vae.decode(z).sample  # [B, 3, F, H, W] in [-1, 1]
    frames = frames.permute(0, 2, 1, 3, 4).float()  # [B, 3, F, H, W] -> [B, F, 3, H, W]
    return (frames / 2 + 0.5).clamp(0, 1).cpu()


def encode_videos_to_latents(pipe: CogVideoXPipeline, videos: torch.Tensor) -> torch.Tensor:
    """Videos float [B, F, C, H, W] in [0, 1] -> scaled latents [B, F_lat, C_lat, h, w] (float32, on CPU).

    Uses the posterior's mode, not a sample, so the same video always gives the same latents
    (cacheable; the CogVideoX posterior's variance is tiny anyway). F must satisfy (F - 1) % 8 == 0.
    """
    if videos.ndim != 5:
        raise ValueError(f"videos of shape {tuple(videos.shape)}: expected [B, F, C, H, W]")
    latent_frame_count(pipe, videos.shape[1])
    _check_size(pipe, videos.shape[3], videos.shape[4])
    vae = pipe.vae
    x = videos.to(device=pipe._execution_device, dtype=vae.dtype) * 2 - 1  # [0, 1] -> [-1, 1]
    x = x.permute(0, 2, 1, 3, 4)  # [B, F, C, H, W] -> [B, C, F, H, W]
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()  # [B, C_lat, F_lat, h, w]
    z = z.permute(0, 2, 1, 3, 4)  # [B, C_lat, F_lat, h, w] -> [B, F_lat, C_lat, h, w]
    return (z * vae.config.scaling_factor).float().cpu()


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


def sample_noise_and_timesteps(
    latents: torch.Tensor, generator: torch.Generator | None, num_train_timesteps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian noise shaped like `latents` and one training timestep per row, uniform in [0, T).

    Returns (noise [B, F_lat, C, h, w], timesteps long [B]), on `latents`' device; drawn from
    `generator` (any device) so a training run is reproducible.
    """
    noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    generator_device = generator.device if generator is not None else "cpu"
    timesteps = torch.randint(
        0, num_train_timesteps, (latents.shape[0],), generator=generator, device=generator_device
    )
    return noise, timesteps.to(latents.device)


def shared_noise_for_pairs(
    chosen_latents: torch.Tensor, generator: torch.Generator | None, num_train_timesteps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise and timesteps for a chosen-first pair batch `[chosen; rejected]` of 2B rows.

    Diffusion-DPO compares the two videos of a pair under the *same* noise and timestep, so row
    i and row B + i get identical draws: returns (noise [2B, F_lat, C, h, w], timesteps [2B]).
    """
    noise, timesteps = sample_noise_and_timesteps(chosen_latents, generator, num_train_timesteps)
    return torch.cat([noise, noise]), torch.cat([timesteps, timesteps])


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


def save_lora(transformer: CogVideoXTransformer3DModel, out_dir: str | os.PathLike) -> Path:
    """Write the transformer's LoRA adapter to `out_dir`/pytorch_lora_weights.safetensors, atomically.

    The format is diffusers': `pipe.load_lora_weights(out_dir)` (or `load_pipeline(...,
    lora_weights=out_dir)`) reads it into any CogVideoXPipeline of the same base model.
    `transformer` may be wrapped by `accelerator.prepare`. Call it on the main process only.
    """
    transformer = _unwrap(transformer)
    layers = get_peft_model_state_dict(transformer)
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
