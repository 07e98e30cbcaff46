"""online rounds: sample, score, build pairs, train, evaluate; repeat.

    clevereward align --rounds 2 --generator tiny --reward rule:color_match --prompts synthetic \\
        --algorithm dpo --config configs/align/tiny-dpo.yaml --out runs/align

Each round samples N candidates per training prompt from the current policy (best-of-N
machinery, `align.rerank`), scores them with the training reward, turns them into DPO pairs
(`align.preference`) or RWR weights, trains the LoRA further (`align.train`), and compares base vs
tuned on held-out prompts and seeds under the training reward and independent rewards
(`align.evaluation`). The LoRA carries over from round to round; the DPO reference stays the base
model (adapters disabled), so every round is anchored to it. Outputs under --out:
round-<r>/samples (manifest, videos, latents, pairs), round-<r>/train (log.jsonl, checkpoints,
lora/), round-<r>/evaluation.json|.txt, rounds.json (base and every round's rewards), rounds.png.
A rerun skips finished rounds (their LoRA is loaded back).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path

from align.cogvideox import LORA_WEIGHTS_NAME, load_lora, validate_generator
from align.rewards import RULE_REWARDS, resolve_reward
from align.train import ALGORITHMS, LORA_DIR, AlignConfig
from reward.files import atomic_write, write_json

__all__ = ["SYNTHETIC", "ROUNDS_NAME", "PLOT_NAME", "main"]

SYNTHETIC = "synthetic"  # --prompts / --eval-prompts value: the synthetic world's train / test captions
ROUNDS_NAME = "rounds.json"
PLOT_NAME = "rounds.png"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clevereward align",
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=2, help="sample-score-train rounds")
    parser.add_argument("--generator", default="tiny", help="'tiny', a CogVideoX hub id or folder")
    parser.add_argument(
        "--reward",
        required=True,
        help="training reward: rule:color_match | rule:motion | MODEL_DIR[:DIMENSION]",
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
    if spec != SYNTHETIC:
        from align.rerank import read_prompts

        return read_prompts(spec)
    from reward.synthetic import CAPTIONS, caption_split

    return [c for c in CAPTIONS if caption_split(c) == split]


def _round_record(round_: int, comparison: dict) -> dict:
    return {
        "round": round_,
        "rewards": {
            name: {
                "base": e["base"]["mean"],
                "base_seed_std": e["base"]["seed_std"],
                "tuned": e["tuned"]["mean"],
                "tuned_seed_std": e["tuned"]["seed_std"],
                "gain": e["gain"],
                "trained_on": e["trained_on"],
            }
            for name, e in comparison["rewards"].items()
        },
    }


def plot_rounds(path: Path, records: list[dict]) -> None:
    """Reward per round (round 0 = base), one panel per reward, error bars = seed-to-seed spread."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    names = list(records[0]["rewards"])
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        first = records[0]["rewards"][name]
        means = [first["base"]] + [r["rewards"][name]["tuned"] for r in records]
        stds = [first["base_seed_std"]] + [r["rewards"][name]["tuned_seed_std"] for r in records]
        ax.errorbar(range(len(means)), means, yerr=stds, marker="o", capsize=3)
        ax.set_xticks(range(len(means)), ["base"] + [str(r["round"]) for r in records])
        ax.set_xlabel("round")
        ax.set_title(f"{name} ({'trained on' if first['trained_on'] else 'independent'})")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    with atomic_write(path, mode="wb") as f:
        f.write(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    """Online rounds: sample, score, build pairs, train."""
    args = _parser().parse_args(argv)
    if args.rounds < 1:
        raise SystemExit("--rounds must be >= 1")
    validate_generator(args.generator)
    reward = resolve_reward(args.reward)
    train_prompts, eval_prompts = _prompts(args.prompts, "train"), _prompts(args.eval_prompts, "test")
    if args.eval_reward:
        independent = [resolve_reward(spec) for spec in args.eval_reward]
    else:
        independent = list(RULE_REWARDS.values()) if args.eval_prompts == SYNTHETIC else []
    eval_rewards = [reward] + [r for r in independent if r.name != reward.name]

    from trl import TrlParser

    (config,) = TrlParser((AlignConfig,)).parse_args_and_config(
        ["--config", args.config] if args.config else []
    )
    overrides = {"generator": args.generator, "algorithm": args.algorithm, "seed": args.seed}
    if args.steps is not None:
        overrides["steps"] = args.steps
    config = dataclasses.replace(config, **overrides)

    from align.evaluation import compare_base_tuned, write_comparison
    from align.preference import save_sample_pairs
    from align.rerank import rerank
    from align.train import build_pipeline, train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rounds_path = out / ROUNDS_NAME
    records: list[dict] = []
    if rounds_path.is_file():
        import json

        records = json.loads(rounds_path.read_text())["rounds"]
    pipe = build_pipeline(config)
    if records:
        load_lora(pipe.transformer, out / f"round-{records[-1]['round']}" / "train" / LORA_DIR)
        print(f"resuming after round {records[-1]['round']}")
    sample_kwargs = {"num_inference_steps": args.sample_steps, "guidance_scale": args.guidance}
    for round_ in range(len(records) + 1, args.rounds + 1):
        round_dir = out / f"round-{round_}"
        samples = round_dir / "samples"
        rerank(
            pipe,
            train_prompts,
            [reward],
            samples,
            n=args.n,
            top_k=1,
            seed=args.seed * 1000 + round_,
            generator_name=args.generator,
            **sample_kwargs,
        )
        if args.algorithm == "dpo":
            save_sample_pairs(samples, strategy=args.pair_strategy)
        round_config = dataclasses.replace(
            config, data=str(samples), output_dir=str(round_dir / "train"), seed=config.seed + round_
        )
        train(round_config, pipe)
        if not (round_dir / "train" / LORA_DIR / LORA_WEIGHTS_NAME).is_file():
            raise RuntimeError(f"round {round_}: training wrote no LoRA under {round_dir / 'train'}")
        pipe.transformer.eval()
        comparison = compare_base_tuned(
            pipe, eval_prompts, list(args.eval_seeds), eval_rewards, reward.name, **sample_kwargs
        )
        write_comparison(round_dir / "evaluation.json", comparison)
        records.append(_round_record(round_, comparison))
        write_json(
            rounds_path, {"training_reward": reward.name, "algorithm": args.algorithm, "rounds": records}
        )
        plot_rounds(out / PLOT_NAME, records)
        from align.evaluation import format_comparison

        print(f"round {round_}\n{format_comparison(comparison)}")
    return 0
