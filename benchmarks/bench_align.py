"""Diffusion-DPO step cost: the reference as adapters-disabled vs a second frozen copy; latents precomputed vs VAE.

    .venv/bin/python benchmarks/bench_align.py              # CPU or GPU, about 40 s on 2 CPU cores
    .venv/bin/python benchmarks/bench_align.py --layers 24 --width 1024 --heads 16

Each variant runs in a fresh process (so one cannot inherit another's memory). Memory is the CUDA
peak allocated (`torch.cuda.max_memory_allocated`) on a GPU; on CPU it is the growth of the
process's peak resident set (`resource.getrusage().ru_maxrss`) from just before the models are
built to after the last step. The transformer is a CogVideoX transformer big enough that its
weights dominate memory (tiny latents, so activations are small), as they do for CogVideoX-2b/5b
(3.4 / 10 GB of bf16 weights) with gradient checkpointing. The default (16 x 768, 478 MiB) is the
smallest size measured at which that holds on CPU: at 8 x 512 (112 MiB) the process's fixed
overhead (allocator, kernels, LoRA and optimizer state) is 70 % of the weights and the ratio reads 0.64. Step time is the median over the timed steps, after one warm-up step.

The latents comparison uses the tiny generator's VAE, far cheaper than CogVideoX's real one: its
ratio is a lower bound on what precomputing saves.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

__all__ = ["main"]

# Sizes of the benchmark's data: latents as the tiny generator makes them.
BATCH = 2  # pairs per step
LATENT_SHAPE = (3, 4, 4, 4)  # [F_lat, C_lat, h, w] of a 9-frame 32 x 32 video
VIDEO_SHAPE = (9, 3, 32, 32)  # [F, C, H, W]
TEXT_LENGTH = 16
TIME_EMBED_DIM = 64
LORA_RANK = 16
BETA = 100.0
KIB_PER_MIB = 1024
# adapters_disabled reads precomputed latents: it is also the baseline of vae_each_step.
VARIANTS = ("adapters_disabled", "frozen_copy", "vae_each_step")


def _transformer(layers: int, width: int, heads: int):
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(0)
    return CogVideoXTransformer3DModel(
        num_attention_heads=heads,
        attention_head_dim=width // heads,
        in_channels=LATENT_SHAPE[1],
        out_channels=LATENT_SHAPE[1],
        time_embed_dim=TIME_EMBED_DIM,
        text_embed_dim=width,
        num_layers=layers,
        sample_width=LATENT_SHAPE[3],
        sample_height=LATENT_SHAPE[2],
        sample_frames=VIDEO_SHAPE[0],
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=TEXT_LENGTH,
    )


def _memory_mb(device: torch.device, rss_start_kib: int) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / KIB_PER_MIB**2
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_start_kib) / KIB_PER_MIB


def _measure(variant: str, args: argparse.Namespace) -> dict:
    """One process: build the models of `variant`, run DPO steps, return peak memory (MiB) and median step time (s)."""
    from safetensors.torch import load_file, save_file

    from align import cogvideox
    from align.losses import diffusion_dpo_loss

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = cogvideox.tiny_pipeline(seed=0)  # scheduler (CogVideoX-2b's config) and the tiny VAE
    scheduler = tiny.scheduler
    tiny.vae.to(device)
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(2 * BATCH, *LATENT_SHAPE, generator=gen)  # [chosen; rejected]
    videos = torch.rand(2 * BATCH, *VIDEO_SHAPE, generator=gen)  # [2B, F, C, H, W]
    embeds = torch.randn(2 * BATCH, TEXT_LENGTH, args.width, generator=gen).to(device)
    noise = (
        torch.randn(BATCH, *LATENT_SHAPE, generator=gen).repeat(2, 1, 1, 1, 1).to(device)
    )  # shared per pair
    timesteps = (
        torch.randint(0, scheduler.config.num_train_timesteps, (BATCH,), generator=gen).repeat(2).to(device)
    )
    folder = Path(tempfile.mkdtemp())
    files = []
    for i, z in enumerate(latents):
        files.append(folder / f"{i}.safetensors")
        save_file({"latents": z.contiguous()}, str(files[-1]))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    policy = _transformer(args.layers, args.width, args.heads).to(device)
    reference = None
    if variant == "frozen_copy":
        reference = copy.deepcopy(policy).requires_grad_(False).eval()  # the copy the adapters replace
    params = cogvideox.add_lora(policy, rank=LORA_RANK, alpha=LORA_RANK)
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step() -> None:
        if variant == "vae_each_step":
            batch = cogvideox.encode_videos_to_latents(tiny, videos.to(device)).to(device)
        else:  # read from the manifest's safetensors, as align.train does
            batch = torch.stack([load_file(str(f))["latents"] for f in files]).to(device)
        with torch.no_grad():
            if reference is None:
                with cogvideox.adapters_disabled(policy):
                    ref = cogvideox.denoising_error(policy, scheduler, batch, embeds, noise, timesteps)
            else:
                ref = cogvideox.denoising_error(reference, scheduler, batch, embeds, noise, timesteps)
        err = cogvideox.denoising_error(policy, scheduler, batch, embeds, noise, timesteps)
        loss, _ = diffusion_dpo_loss(*err.chunk(2), *ref.chunk(2), BETA)
        loss.mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    times = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    weights_mb = sum(p.numel() * p.element_size() for p in policy.parameters()) / KIB_PER_MIB**2
    return {
        "memory_mb": _memory_mb(device, rss_start),
        "step_s": statistics.median(times),
        "weights_mb": weights_mb,
        "device": str(device),
    }


def _in_fresh_process(variant: str, args: argparse.Namespace) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, (variant, args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--layers", type=int, default=16, help="transformer blocks")
    parser.add_argument("--width", type=int, default=768, help="transformer width (heads x head dim)")
    parser.add_argument("--heads", type=int, default=12, help="attention heads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    results = {variant: _in_fresh_process(variant, args) for variant in VARIANTS}
    first = results[VARIANTS[0]]
    memory = "CUDA peak allocated" if first["device"].startswith("cuda") else "peak RSS growth (ru_maxrss)"
    print(
        f"device {first['device']}; transformer {args.layers} layers x {args.width} wide, "
        f"{first['weights_mb']:.0f} MiB of weights; memory = {memory}"
    )
    print(f"{'variant':<22} {'memory MiB':>11} {'step s':>9}")
    for variant, r in results.items():
        print(f"{variant:<22} {r['memory_mb']:>11.1f} {r['step_s']:>9.4f}")
    ref, copy_ = results["adapters_disabled"], results["frozen_copy"]
    vae = results["vae_each_step"]
    print()
    print(f"{'ratio':<44} {'value':>7}")
    print(
        f"{'memory: adapters disabled / frozen copy':<44} {ref['memory_mb'] / copy_['memory_mb']:>7.2f}  (goal <= 0.60)"
    )
    print(f"{'step time: adapters disabled / frozen copy':<44} {ref['step_s'] / copy_['step_s']:>7.2f}")
    print(f"{'step time: VAE each step / precomputed':<44} {vae['step_s'] / ref['step_s']:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
