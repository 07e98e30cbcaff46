"""Online alignment costs: sampling with log-probabilities vs plain sampling; reward backpropagation's
peak memory with all frames decoded vs a subset vs decoder checkpointing.

    .venv/bin/python benchmarks/bench_online.py            # CPU or GPU, about a minute on 2 CPU cores

1. Sampling. The same prompts and seeds through `CogVideoXPipeline` (deterministic DDIM, what users
   run) and through `align.cogvideox.sample_trajectories` (stochastic DDIM that records every
   step's log-probability and keeps the trajectory; decoded the same way), `--repeats` times each,
   median wall time.
   Goal: <= 1.1x. The generator is the world generator's architecture (CogVideoX classes at the
   sizes of configs/generator/world.yaml, random weights): timing does not depend on the weights.
2. Reward backpropagation. One `align.reward_gradient` step's loss.backward() in a fresh process
   per variant; memory is the CUDA peak on a GPU, else the growth of the process's peak RSS over
   the step. Variants: every latent frame decoded; only the first `--subset` latent frames; all
   frames with the VAE decoder's gradient checkpointing. The VAE is a 3-block CogVideoX VAE at
   64 x 64 (5 latent frames, 9 video frames), large enough that its activations dominate a step.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time

import torch

__all__ = ["main"]

KIB_PER_MIB = 1024
VARIANTS = ("all_frames", "frame_subset", "decoder_checkpointing")


def _world_pipeline(height: int, frames: int, vae_blocks: int):
    """A CogVideoXPipeline with the world generator's architecture (random weights), `height` px square."""
    from diffusers import CogVideoXPipeline

    from align.pretrain import _models
    from align.pretrain_config import PretrainConfig

    channels = [16, 32, 64, 64][:vae_blocks]
    config = PretrainConfig(height=height, width=height, num_frames=frames, vae_channels=channels)
    tokenizer, vae, transformer, text_encoder, scheduler = _models(config)
    vae.register_to_config(scaling_factor=1.0)
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=scheduler)  # fmt: skip
    return pipe.to("cuda" if torch.cuda.is_available() else "cpu")


def _sampling(args) -> tuple[float, float]:
    from align.cogvideox import decode_latents, generate, sample_trajectories

    pipe = _world_pipeline(32, 9, 2)
    prompts, seeds = ["a red circle moving left"] * args.batch, list(range(args.batch))
    plain, logged = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        generate(pipe, prompts, seeds, args.steps, 1.0)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        decode_latents(
            pipe, sample_trajectories(pipe, prompts, seeds, args.steps, 1.0, eta=1.0).final_latents
        )
        logged.append(time.perf_counter() - start)
    return statistics.median(plain), statistics.median(logged)


def _peak_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB


def _backprop(variant: str, subset: int, queue) -> None:
    from align import cogvideox
    from align.rewards import color_match

    torch.manual_seed(0)
    pipe = _world_pipeline(64, 17, 3)
    cogvideox.add_lora(
        pipe.transformer, rank=8, alpha=8.0, target_modules=("to_q", "to_k", "to_v", "to_out.0")
    )
    pipe.vae.requires_grad_(False)
    if variant == "decoder_checkpointing":
        pipe.vae.enable_gradient_checkpointing()
    latents = torch.randn(2, 5, 4, 16, 16, device=pipe.device)
    embeds = cogvideox.encode_prompts(pipe, ["a red circle moving left"] * 2)[0]
    pipe.scheduler.set_timesteps(10)
    t = int(pipe.scheduler.timesteps[-2])
    before = _peak_mib()
    start = time.perf_counter()
    v = cogvideox.guided_velocity(pipe.transformer, latents, t, embeds, None, 1.0)
    x0, _ = cogvideox.ddim_transition(pipe.scheduler, v, t, latents, eta=0.0)
    videos = cogvideox.decode_with_grad(pipe, x0, subset if variant == "frame_subset" else None)
    loss = -color_match.fn(videos, ["a red circle moving left"] * 2, None).mean()
    loss.backward()
    queue.put((variant, _peak_mib() - before, time.perf_counter() - start, videos.shape[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=8, help="videos sampled per call")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each sampler")
    parser.add_argument("--subset", type=int, default=1, help="latent frames decoded in the subset variant")
    args = parser.parse_args(argv)

    plain, logged = _sampling(args)
    print(f"sampling {args.batch} videos x {args.steps} steps (median of {args.repeats})")
    print(f"  {'plain pipeline':<36}{plain:8.2f} s")
    print(
        f"  {'with log-probabilities (stochastic)':<36}{logged:8.2f} s   ratio {logged / plain:.2f}  (goal <= 1.1)"
    )

    context = multiprocessing.get_context("spawn")
    rows = {}
    for variant in VARIANTS:
        queue = context.Queue()
        process = context.Process(target=_backprop, args=(variant, args.subset, queue))
        process.start()
        rows[variant] = queue.get()
        process.join()
    base = rows["all_frames"][1]
    print("\nreward backpropagation, one step (2 videos, 64 x 64, 5 latent frames, 3-block VAE)")
    print(f"  {'variant':<24}{'frames':>7}{'peak MiB':>10}{'ratio':>7}{'time s':>8}")
    for variant, (_, mib, seconds, frames) in rows.items():
        print(f"  {variant:<24}{frames:>7}{mib:>10.1f}{mib / base:>7.2f}{seconds:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
