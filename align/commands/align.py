"""online rounds: sample, score, build pairs, train, evaluate; repeat.

    clevereward align --rounds 2 --generator tiny --reward rule:color_match --prompts synthetic \\
        --algorithm dpo --config configs/align/tiny-dpo.yaml --out runs/align

The rounds themselves are `align.online.run_rounds`; see its module for what each round does
and writes under --out. A rerun skips finished rounds.
"""

from __future__ import annotations

import dataclasses

from align.cogvideox import validate_generator
from align.config import ALGORITHMS, config_parser
from align.rewards import RULE_REWARDS, resolve_reward
from reward.commands import CommandParser

__all__ = ["SYNTHETIC", "main"]

SYNTHETIC = "synthetic"  # --prompts / --eval-prompts value: the synthetic world's train / test captions


def _parser() -> CommandParser:
    parser = CommandParser("clevereward align", __doc__)
    parser.add_argument("--rounds", type=int, default=2, help="sample-score-train rounds")
    parser.add_argument("--generator", default="tiny", help="'tiny', 'world', a CogVideoX hub id or folder")
    parser.add_argument(
        "--reward",
        required=True,
        help="training reward: rule:color_match | rule:motion | rule:check (oracle) | MODEL_DIR[:DIMENSION]",
    )
    parser.add_argument(
        "--prompts",
        default=SYNTHETIC,
        help=f"training prompts: a text file (one per line) or '{SYNTHETIC}' (train-split captions)",
    )
    parser.add_argument(
        "--eval-prompts",
        default=SYNTHETIC,
        help=f"held-out prompts: a file or '{SYNTHETIC}' (test-split captions)",
    )
    parser.add_argument(
        "--eval-seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="held-out sampling seeds"
    )
    parser.add_argument(
        "--eval-reward",
        action="append",
        help="independent evaluation rewards (default: every rule reward for synthetic prompts)",
    )
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="dpo")
    parser.add_argument(
        "--config",
        help="AlignConfig YAML with the training hyper-parameters (e.g. configs/align/tiny-dpo.yaml)",
    )
    parser.add_argument("--steps", type=int, help="training steps per round (default: the config's)")
    parser.add_argument("--n", type=int, default=8, help="candidates per prompt and round")
    parser.add_argument("--pair-strategy", default="all", help="DPO pairs per prompt: best_vs_worst | all")
    parser.add_argument("--sample-steps", type=int, default=10, help="denoising steps when sampling")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance when sampling")
    parser.add_argument(
        "--seed", type=int, default=0, help="run seed (sampling and training seeds derive from it)"
    )
    parser.add_argument(
        "--out", required=True, help="output folder (a rerun resumes after the last finished round)"
    )
    return parser


def _prompts(spec: str, split: str) -> list[str]:
    """`--prompts` / `--eval-prompts`: a file, or `synthetic` for that option's split of the world."""
    from align.rerank import SYNTHETIC_PREFIX, prompts_from

    return prompts_from(f"{SYNTHETIC_PREFIX}{split}" if spec == SYNTHETIC else spec)


def main(argv: list[str] | None = None) -> int:
    """Online rounds: sample, score, build pairs, train."""
    args = _parser().parse_args(argv)
    validate_generator(args.generator)
    reward = resolve_reward(args.reward)
    train_prompts, eval_prompts = _prompts(args.prompts, "train"), _prompts(args.eval_prompts, "test")
    if args.eval_reward:
        independent = [resolve_reward(spec) for spec in args.eval_reward]
    else:
        independent = list(RULE_REWARDS.values()) if args.eval_prompts == SYNTHETIC else []
    eval_rewards = [reward] + [r for r in independent if r.name != reward.name]

    from align.online import run_rounds

    (config,) = config_parser().parse_args_and_config(["--config", args.config] if args.config else [])
    overrides = {"generator": args.generator, "algorithm": args.algorithm, "seed": args.seed}
    if args.steps is not None:
        overrides["steps"] = args.steps
    run_rounds(
        dataclasses.replace(config, **overrides),
        reward,
        train_prompts,
        eval_prompts,
        list(args.eval_seeds),
        eval_rewards,
        args.out,
        rounds=args.rounds,
        n=args.n,
        pair_strategy=args.pair_strategy,
        sample_steps=args.sample_steps,
        guidance=args.guidance,
    )
    return 0
