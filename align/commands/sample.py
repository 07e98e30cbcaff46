"""sample prompts x seeds from a generator into mp4 files with a samples.jsonl beside them

    clevereward sample --generator world --prompts synthetic:train --seeds 0 1 2 3 \\
        --steps 20 --guidance 3 --out runs/world-generator/samples-train
    clevereward check runs/world-generator/samples-train

`--prompts` is a text file (one prompt per line) or `synthetic:SPLIT` (the synthetic world's
train, validation or test captions). Row i of the grid is prompt i // S with seed i % S; each
sample's seed fixes its initial noise (`align.cogvideox.generate`), so the same command on an
aligned generator (`--lora`) gives the same prompts and seeds for a side-by-side check.
"""

from __future__ import annotations

from align.cogvideox import load_pipeline, validate_generator
from align.evaluation import sample_and_score, write_samples
from align.rerank import prompts_from
from reward.commands import CommandParser

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("clevereward sample", __doc__)
    parser.add_argument(
        "--generator", required=True, help="'tiny', 'world', a CogVideoX hub id or a pipeline folder"
    )
    parser.add_argument("--lora", help="a LoRA folder (align.train's lora/) to sample the aligned generator")
    parser.add_argument("--prompts", required=True, help="a prompt file, or synthetic:train|validation|test")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="sampling seeds")
    parser.add_argument("--steps", type=int, default=50, help="denoising steps")
    parser.add_argument("--guidance", type=float, default=6.0, help="classifier-free guidance (1: none)")
    parser.add_argument("--batch-size", type=int, default=16, help="videos per pipeline call")
    parser.add_argument("--out", required=True, help="folder for the mp4 files and samples.jsonl")
    args = parser.parse_args(argv)
    prompts = prompts_from(args.prompts)
    validate_generator(args.generator)
    pipe = load_pipeline(args.generator, lora_weights=args.lora)
    result = sample_and_score(
        pipe, prompts, args.seeds, [], num_inference_steps=args.steps, guidance_scale=args.guidance,
        batch_size=args.batch_size,
    )  # fmt: skip
    write_samples(args.out, result)
    print(
        f"{len(result['prompts'])} samples ({len(prompts)} prompts x {len(args.seeds)} seeds) in {args.out}"
    )
    return 0
