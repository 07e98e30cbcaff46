"""the main job on the synthetic world: data, reward model, alignment

    clevereward demo --out runs/demo

Four stages, each skipped when its output is already there (a rerun resumes):
  1. render the synthetic world and train the default CleveReward on it
     (`reward.train` with configs/reward/synthetic.yaml)                       -> OUT/data, OUT/reward-model
  2. evaluate it on the compositional test split (unseen color-shape pairs)  -> OUT/eval
  3. best-of-N: the tiny CogVideoX samples N candidates per test caption and
     the trained reward model keeps the best                                 -> OUT/rerank
  4. a short Diffusion-DPO round of the tiny generator against that reward
     model, with base vs tuned rewards on held-out prompts and seeds         -> OUT/align
Every stage is the same code a user runs through its own command.
"""

from __future__ import annotations

import time
from pathlib import Path

from reward.commands import CommandParser
from reward.files import atomic_write
from reward.recipes import resolve_config

__all__ = ["main"]

# Best-of-N on every test caption would dominate the run on CPU: a handful makes the point.
RERANK_PROMPTS = 4


def _parser() -> CommandParser:
    parser = CommandParser("clevereward demo", __doc__)
    parser.add_argument("--out", default="runs/demo", help="output folder (a rerun resumes)")
    parser.add_argument(
        "--reward-config", default="configs/reward/synthetic.yaml", help="reward training recipe"
    )
    parser.add_argument("--align-config", default="configs/align/tiny-dpo.yaml", help="Diffusion-DPO recipe")
    parser.add_argument("--n", type=int, default=8, help="best-of-N candidates per prompt")
    parser.add_argument("--align-steps", type=int, default=None, help="DPO steps (default: the recipe's)")
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
    if not args.skip_align:
        args.align_config = str(resolve_config(args.align_config))
    out = Path(args.out)
    model_dir, data_dir = out / "reward-model", out / "data"
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

    from align.commands import align, rerank
    from reward.synthetic import CAPTIONS, caption_split

    start = _stage(f"3. best-of-{args.n}: tiny CogVideoX scored by the trained reward model")
    prompts_file = out / "rerank-prompts.txt"
    test_captions = [caption for caption in CAPTIONS if caption_split(caption) == "test"]
    with atomic_write(prompts_file) as f:
        f.write("\n".join(test_captions[:RERANK_PROMPTS]) + "\n")
    rerank.main(
        ["--generator", "tiny", "--reward", str(model_dir), "--reward", "rule:color_match",
         "--prompts", str(prompts_file), "--n", str(args.n), "--out", str(out / "rerank")]
    )  # fmt: skip
    _done(start)

    start = _stage("4. Diffusion-DPO of the tiny generator against the trained reward model")
    align_argv = ["--rounds", "1", "--generator", "tiny", "--reward", str(model_dir),
                  "--algorithm", "dpo", "--config", args.align_config, "--out", str(out / "align")]  # fmt: skip
    if args.align_steps is not None:
        align_argv += ["--steps", str(args.align_steps)]
    align.main(align_argv)
    _done(start)
    print(f"\nall stages done in {time.perf_counter() - total:.0f} s; outputs under {out}")
    return 0
