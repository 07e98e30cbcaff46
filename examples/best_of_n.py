"""Best-of-N with CogVideoX: sample N videos per prompt, score them with a reward model, keep the best.

    # CogVideoX-2b on a GPU, ranked by a trained reward model (its mean over dimensions)
    python examples/best_of_n.py --generator THUDM/CogVideoX-2b --reward runs/reward-synthetic \
        --prompts prompts.txt --n 8 --out runs/best-of-8
    # tiny: the built-in tiny CogVideoX (random weights) ranked by a rule reward, on a CPU
    python examples/best_of_n.py --tiny --out runs/example-best-of-n

The output folder holds every candidate (mp4 + latents), manifest.json with every score,
gallery.html (best first) and gain.png. A rerun resumes after the last finished prompt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from align.cogvideox import KNOWN_GENERATORS, load_pipeline
from align.manifest import plot_gain, summary_table, write_gallery
from align.rerank import read_prompts, rerank
from align.rewards import resolve_reward

TINY_PROMPTS = ["a red circle moving left", "a blue square moving up"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--generator", default="THUDM/CogVideoX-2b", help="hub id or pipeline folder")
    parser.add_argument("--reward", default=None, help="a reward model folder[:DIMENSION] or rule:NAME")
    parser.add_argument("--prompts", help="text file, one prompt per line")
    parser.add_argument("--n", type=int, default=8, help="candidates per prompt")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model card's)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tiny", action="store_true", help="tiny generator, rule reward, two prompts")
    args = parser.parse_args(argv)
    if args.tiny:
        args.generator, args.reward, args.n, args.steps = "tiny", args.reward or "rule:color_match", 4, 2
        prompts = TINY_PROMPTS
    else:
        if not (args.reward and args.prompts):
            parser.error("give --reward and --prompts, or --tiny")
        prompts = read_prompts(args.prompts)
    card = KNOWN_GENERATORS.get(args.generator)
    steps = args.steps or (card.num_inference_steps if card else 50)
    guidance = card.guidance_scale if card else 6.0

    pipe = load_pipeline(args.generator)  # fp16 / bf16 on a GPU as the model card says
    out = Path(args.out)
    manifest = rerank(
        pipe, prompts, [resolve_reward(args.reward)], out, n=args.n, top_k=1, seed=0,
        num_inference_steps=steps, guidance_scale=guidance, generator_name=args.generator,
    )  # fmt: skip
    write_gallery(out, manifest)
    plot_gain(out, manifest)
    print(summary_table(manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
