"""CogVideoX loading: known hub ids, local folders, the built-in tiny generator and the world generator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    CogVideoXDDIMScheduler,
    CogVideoXPipeline,
    CogVideoXTransformer3DModel,
)
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

from align.cogvideox.training import _lora_file
from reward.hub import explain_missing_model

__all__ = [
    "COGVIDEOX_SCHEDULER",
    "GeneratorSpec",
    "KNOWN_GENERATORS",
    "TINY",
    "TINY_VOCABULARY",
    "WORLD",
    "WORLD_PIPELINE",
    "validate_generator",
    "load_pipeline",
    "tiny_pipeline",
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
# The world generator: a small CogVideoX pretrained on the synthetic world, its weights committed inside
# the package (`clevereward generator pretrain --config configs/generator/world.yaml`, seed 0; how it was
# made and what it draws: docs/generators.md). "world" loads it like any pipeline folder.
WORLD = "world"
WORLD_PIPELINE = Path(__file__).resolve().parent.parent / "world_generator"

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
# CogVideoX-2b's scheduler config (as diffusers' conversion script writes it): v-prediction,
# zero-terminal-SNR betas, trailing timesteps. The tiny and the world generators use it too.
COGVIDEOX_SCHEDULER: dict = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    snr_shift_scale=3.0,
    timestep_spacing="trailing",
)


def _folder(generator: str) -> Path:
    """The local folder `generator` names: `WORLD_PIPELINE` for "world", else the path itself."""
    return WORLD_PIPELINE if generator == WORLD else Path(generator)


def validate_generator(generator: str) -> str:
    """Say what `generator` names ("tiny", "hub" or "folder"), or raise ValueError saying what was expected.

    "world" is the folder `WORLD_PIPELINE` (the committed world generator).

    Cheap (no download, no model): commands call it on their arguments before any work.
    """
    if generator == TINY or generator.startswith(TINY + TINY_SEED_SEPARATOR):
        seed = generator[len(TINY) + 1 :]
        if generator != TINY and not seed.isdigit():
            raise ValueError(f"generator {generator!r}: expected 'tiny' or 'tiny:SEED' with an integer SEED")
        return "tiny"
    if generator in KNOWN_GENERATORS:
        return "hub"
    path = _folder(generator)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"generator folder {generator!r} has no model_index.json: expected a diffusers "
                "CogVideoXPipeline saved with save_pretrained"
            )
        return "folder"
    raise ValueError(
        f"unknown generator {generator!r}: expected one of {', '.join(KNOWN_GENERATORS)}, "
        f"'{TINY}' / '{TINY}:SEED', '{WORLD}', or a local folder holding a saved CogVideoXPipeline (model_index.json)"
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
    "tiny" / "tiny:SEED" (`tiny_pipeline`), or "world" (the committed world generator). `dtype` defaults to the model card's precision on a GPU
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
        with explain_missing_model(generator, "generator"):
            source = generator if kind == "hub" else str(_folder(generator))
            pipe = CogVideoXPipeline.from_pretrained(source, torch_dtype=torch_dtype)
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
    scheduler = CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER)
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
