"""Diffusion-DPO of CogVideoX-2b with a trained reward model: sample, score, pair, train LoRA.

    # real size: 4 samples per prompt from CogVideoX-2b, scored by a reward model, all same-prompt
    # pairs, then the recipe configs/align/cogvideox-2b-dpo.yaml under accelerate
    accelerate launch --config_file configs/accelerate/single_gpu.yaml examples/dpo_cogvideox.py \
        --reward runs/reward-synthetic --prompts prompts.txt --out runs/dpo-2b
    # tiny: the built-in tiny CogVideoX and a rule reward, a few steps on a CPU
    python examples/dpo_cogvideox.py --tiny --out runs/example-dpo

Writes OUT/samples (videos, latents, manifest, pairs) and OUT/train (log.jsonl, checkpoints,
lora/). Sample from the result with `load_pipeline(generator, lora_weights="OUT/train/lora")`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from align.config import config_parser
from align.preference import save_sample_pairs
from align.rerank import read_prompts, rerank
from align.rewards import resolve_reward
from align.train import build_pipeline, train

RECIPE = "configs/align/cogvideox-2b-dpo.yaml"
TINY_RECIPE = "configs/align/tiny-dpo.yaml"
TINY_PROMPTS = ["a red circle moving left", "a blue square moving up"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reward", help="a reward model folder[:DIMENSION] or rule:NAME")
    parser.add_argument("--prompts", help="text file, one prompt per line")
    parser.add_argument("--recipe", default=RECIPE, help="AlignConfig YAML (generator, beta, LoRA, steps)")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--sample-steps", type=int, default=50, help="denoising steps when sampling")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tiny", action="store_true", help="tiny generator, rule reward, a few steps")
    args = parser.parse_args(argv)
    overrides = {}
    if args.tiny:
        args.recipe, args.reward, args.sample_steps = TINY_RECIPE, args.reward or "rule:color_match", 2
        prompts, overrides = TINY_PROMPTS, {"steps": 4, "train_batch_size": 2, "checkpointing_steps": 2}
    else:
        if not (args.reward and args.prompts):
            parser.error("give --reward and --prompts, or --tiny")
        prompts = read_prompts(args.prompts)
    (config,) = config_parser().parse_args_and_config(["--config", args.recipe])
    out = Path(args.out)
    config = dataclasses.replace(
        config, data=str(out / "samples"), output_dir=str(out / "train"), **overrides
    )

    pipe = build_pipeline(config)  # the generator with zero-initialised LoRA adapters: policy = base
    # guidance 1 (none): the samples the policy itself draws, which DPO then reweights
    rerank(pipe, prompts, [resolve_reward(args.reward)], out / "samples", n=args.n, top_k=1, seed=0,
           num_inference_steps=args.sample_steps, guidance_scale=1.0, generator_name=config.generator)  # fmt: skip
    save_sample_pairs(out / "samples", strategy="all")
    summary = train(config, pipe)
    print(
        f"trained {summary['steps']} steps on {summary['data']['examples']} pairs; LoRA in {out / 'train' / 'lora'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
