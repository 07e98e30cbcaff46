"""CogVideoX sampling: prompt embeddings, seeded batched generation, latents to videos and back."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import (
    CogVideoXPipeline,
)
from tqdm.auto import tqdm

from align.cogvideox.loading import KNOWN_GENERATORS

__all__ = [
    "GeneratedBatch",
    "default_video_size",
    "encode_prompts",
    "generate",
    "decode_latents",
    "decode_with_grad",
    "encode_videos_to_latents",
    "latent_frame_count",
]


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

    The VAE compresses time by its temporal factor t (4 in the released models: F_lat = (F - 1) // t + 1)
    and decodes latent frames in chunks of 2 after a first chunk of 3, so only an odd F_lat decodes
    back to F frames: (F - 1) % 2t == 0 ((F - 1) % 8 == 0 for the released models, % 4 for the
    world generator's t = 2, any odd F for the sharp-VAE recipe's t = 1).
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


def default_video_size(pipe: CogVideoXPipeline) -> tuple[int, int, int]:
    """(height, width, frames) a pipeline samples when none are given: its model card's for a known
    generator, else the transformer config's sample size.

    Why not always the config: CogVideoX 1.5's `sample_height` / `sample_width` (300 latent pixels)
    are the base of its RoPE grid, not a video size; times the VAE's factor 8 they would give
    2400 × 2400 × 81 frames instead of the card's 768 × 1360 × 81.
    """
    spec = KNOWN_GENERATORS.get(pipe.name_or_path or "")
    if spec is not None:
        return spec.height, spec.width, spec.num_frames
    config = pipe.transformer.config
    factor = pipe.vae_scale_factor_spatial
    return config.sample_height * factor, config.sample_width * factor, config.sample_frames


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
    the same video whether it is sampled alone or in a batch. Sizes default to
    `default_video_size(pipe)`. Classifier-free guidance runs when guidance_scale > 1.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: expected one seed per prompt")
    if not prompts:
        raise ValueError("generate needs at least one prompt")
    default_height, default_width, default_frames = default_video_size(pipe)
    height, width, num_frames = height or default_height, width or default_width, num_frames or default_frames
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
    """Scaled latents [B, F_lat, C_lat, h, w] -> float32 videos [B, F, C, H, W] in [0, 1], on CPU."""
    with torch.no_grad():
        return decode_with_grad(pipe, latents).cpu()


def decode_with_grad(
    pipe: CogVideoXPipeline, latents: torch.Tensor, latent_frames: int | None = None
) -> torch.Tensor:
    """`decode_latents` with gradients to `latents` (reward backpropagation), on the pipeline's device.

    `latent_frames` decodes only the first that many latent frames (fewer video frames, less memory).
    """
    vae = pipe.vae
    z = (
        latents[:, :latent_frames].to(device=pipe._execution_device, dtype=vae.dtype)
        / vae.config.scaling_factor
    )
    z = z.permute(0, 2, 1, 3, 4)  # [B, F_lat, C_lat, h, w] -> [B, C_lat, F_lat, h, w]
    frames = vae.decode(z).sample  # [B, 3, F, H, W] in [-1, 1]
    frames = frames.permute(0, 2, 1, 3, 4).float()  # [B, 3, F, H, W] -> [B, F, 3, H, W]
    return (frames / 2 + 0.5).clamp(0, 1)


def encode_videos_to_latents(pipe: CogVideoXPipeline, videos: torch.Tensor) -> torch.Tensor:
    """Videos float [B, F, C, H, W] in [0, 1] -> scaled latents [B, F_lat, C_lat, h, w] (float32, on CPU).

    Uses the posterior's mode, not a sample, so the same video always gives the same latents
    (cacheable; the CogVideoX posterior's variance is tiny anyway). F must be a frame count that
    `latent_frame_count` accepts ((F - 1) % 8 == 0 for the released models).
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
