"""Best-of-N on the tiny CogVideoX generator (CPU): batched vs one-at-a-time sampling, and where the time goes.

    .venv/bin/python benchmarks/bench_rerank.py [--n 8] [--prompts 2] [--steps 4] [--repeats 1] [--threads 2]

Measured in this one run, each timing the best of `--repeats`:
- candidates/s when a prompt's N candidates are sampled as one batch (`generate(..., batch_size=N)`)
  vs one at a time (`batch_size=1`); same seeds, so the same videos;
- the share of time spent in the reward vs the generator. The reward is a tiny, untrained but real
  CleveReward model saved with `save_pretrained` and loaded with `reward.load_scorer`
  (bench_scoring's model, asked all its dimensions: dimension=None), so its cost is a
  small-model lower bound; `rule:color_match` is timed beside it;
- a full `align.rerank.rerank` run (generation, scoring, mp4 + latents files, manifest) and the
  part of it that is neither generation nor scoring.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from bench_scoring import save_tiny_model  # the benchmarks folder is on sys.path when run as a script

from align.cogvideox import generate, tiny_pipeline
from align.rerank import candidate_seed, rerank
from align.rewards import color_match, learned_reward
from reward.synthetic import CAPTIONS

GUIDANCE = 6.0  # CogVideoX-2b's classifier-free guidance: two transformer passes per step


def best_time(fn, repeats: int) -> tuple[float, object]:
    """(best wall time over `repeats` calls, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="candidates per prompt")
    parser.add_argument("--prompts", type=int, default=2, help="prompts (synthetic captions)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps")
    parser.add_argument("--repeats", type=int, default=1, help="timings per setting; the best is kept")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prompts = list(CAPTIONS[: args.prompts])
    pipe = tiny_pipeline(seed=args.seed)
    seeds = [[candidate_seed(args.seed, p, c) for c in range(args.n)] for p in range(len(prompts))]

    def sample(batch_size: int) -> list:
        return [
            generate(pipe, [prompt] * args.n, s, args.steps, GUIDANCE, batch_size=batch_size)
            for prompt, s in zip(prompts, seeds, strict=True)
        ]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        learned = learned_reward(save_tiny_model(tmp / "reward_model", args.seed))
        sample(args.n)  # warm-up: first calls allocate and initialise kernels
        batched, batches = best_time(lambda: sample(args.n), args.repeats)
        single, singles = best_time(lambda: sample(1), args.repeats)
        same = all(
            torch.allclose(a.latents, b.latents, atol=1e-5) for a, b in zip(batches, singles, strict=True)
        )
        scores = {}
        for reward in (learned, color_match):
            reward(batches[0].videos, [prompts[0]] * args.n)  # warm-up
            scores[reward.name] = best_time(
                lambda r=reward: [r(b.videos, b.prompts) for b in batches], args.repeats
            )[0]
        total, _ = best_time(
            lambda: rerank(
                pipe,
                prompts,
                [learned],
                tmp / f"run_{time.perf_counter_ns()}",
                n=args.n,
                seed=args.seed,
                batch_size=args.n,
                num_inference_steps=args.steps,
                guidance_scale=GUIDANCE,
                generator_name="tiny",
            ),
            args.repeats,
        )

    count = args.n * len(prompts)
    print(
        f"tiny CogVideoX, {len(prompts)} prompts x {args.n} candidates, {args.steps} steps, guidance {GUIDANCE}, "
        f"{args.threads} threads; batched and one-at-a-time latents equal: {same}"
    )
    print(f"{'measurement':<44} {'seconds':>8} {'cand/s':>8} {'vs batched':>10}")
    rows = [
        ("generate, N candidates as one batch", batched, batched / batched),
        ("generate, one candidate at a time", single, single / batched),
        (
            f"reward: tiny CleveReward model ({learned.name})",
            scores[learned.name],
            scores[learned.name] / batched,
        ),
        ("reward: rule:color_match", scores["color_match"], scores["color_match"] / batched),
        ("rerank end-to-end (tiny model reward)", total, total / batched),
    ]
    for name, seconds, ratio in rows:
        print(f"{name:<44} {seconds:>8.3f} {count / seconds:>8.1f} {ratio:>9.2f}x")
    print(f"batched sampling speed-up: {single / batched:.2f}x")
    reward_time = scores[learned.name]
    print(f"share of (generator + reward) time in the reward: {reward_time / (batched + reward_time):.1%}")
    other = max(0.0, total - batched - reward_time)
    print(f"rerank time outside generation and scoring (mp4, latents, manifest): {other / total:.1%}")


if __name__ == "__main__":
    main()
