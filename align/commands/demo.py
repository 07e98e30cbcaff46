"""the main job on the synthetic world: data, reward model, alignment of the world generator

    clevereward demo --out runs/demo

Three stages, each skipped when its output is already there (a rerun resumes):
  1. render the synthetic world and train the default CleveReward on it
     (`reward.train` with configs/reward/synthetic.yaml)                       -> OUT/data, OUT/reward-model
  2. evaluate it on the compositional test split (unseen color-shape pairs)  -> OUT/eval
  3. align the world generator (a small CogVideoX that learned the world; its weights ship with
     the package) with that reward model: best-of-N, Diffusion-DPO, reward-weighted regression and
     online DPO rounds on one budget of reward queries, each judged by the independent check of the
     pixels on held-out seeds and on the test captions (`clevereward compare`)     -> OUT/compare
Every stage is the same code a user runs through its own command.
"""

from __future__ import annotations

import time
from pathlib import Path

from reward.commands import CommandParser
from reward.recipes import resolve_config

__all__ = ["main"]

# The methods of the before/after table, and a budget of reward queries that keeps the demo within
# 20 minutes on 2 CPU cores (17.5 measured; 8 per training caption, `clevereward compare` defaults to 16).
DEMO_METHODS = ("best_of_n", "dpo", "rwr", "online_dpo")
DEMO_BUDGET = 224
# The world generator's prompt accuracy is the same at 25, 50 and 100 denoising steps (docs/generators.md).
DEMO_STEPS = 25
# The learned reward that drives alignment: the dimension that reads a caption back from the pixels.
DEMO_DIMENSION = "text_alignment"


def _parser() -> CommandParser:
    parser = CommandParser("clevereward demo", __doc__)
    parser.add_argument("--out", default="runs/demo", help="output folder (a rerun resumes)")
    parser.add_argument(
        "--reward-config", default="configs/reward/synthetic.yaml", help="reward training recipe"
    )
    parser.add_argument(
        "--generator", default="world", help="base generator: 'world' (shipped) or a pipeline folder"
    )
    parser.add_argument("--budget", type=int, default=DEMO_BUDGET, help="reward queries per method")
    parser.add_argument("--methods", nargs="+", default=list(DEMO_METHODS), help="alignment methods compared")
    parser.add_argument("--skip-align", action="store_true", help="stop after the reward model's evaluation")
    return parser


def _stage(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


def _done(start: float) -> None:
    print(f"--- {time.perf_counter() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A recipe is a file, or a name under configs/ that the package ships (works from a wheel too).
    args.reward_config = str(resolve_config(args.reward_config))
    out = Path(args.out)
    model_dir, data_dir = out / "reward-model", out / "data"
    if not args.skip_align:
        from align.cogvideox import validate_generator
        from align.experiment import CompareConfig

        # a wrong generator or method fails now, not after training the reward model
        validate_generator(args.generator)
        comparison = CompareConfig(
            generator=args.generator, reward=f"{model_dir}:{DEMO_DIMENSION}", out=str(out / "compare"),
            methods=list(args.methods), budget=args.budget, steps=DEMO_STEPS,
        )  # fmt: skip
    total = time.perf_counter()

    start = _stage("1. synthetic world + CleveReward training")
    if (model_dir / "config.json").is_file():
        print(f"{model_dir} exists: training skipped")
    else:
        from reward import train

        train.main(
            ["--config", args.reward_config, "--data_dir", str(data_dir), "--output_dir", str(model_dir)]
        )
    _done(start)

    start = _stage("2. evaluation on the compositional test split")
    from reward.evaluate import evaluate_corpus, format_table
    from reward.pairs import load_corpus
    from reward.scoring import load_scorer

    report = evaluate_corpus(load_scorer(model_dir), load_corpus(data_dir), "test", out_dir=out / "eval")
    print(format_table(report))
    _done(start)
    if args.skip_align:
        return 0

    from align.experiment import format_table as format_comparison
    from align.experiment import run_comparison

    start = _stage(f"3. alignment of the {args.generator} generator with the trained reward model")
    print(format_comparison(run_comparison(comparison)))
    _done(start)
    print(f"\nall stages done in {time.perf_counter() - total:.0f} s; outputs under {out}")
    return 0
