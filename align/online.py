"""Online alignment rounds: sample from the current policy, score, build pairs, train, evaluate; repeat.

Each round samples N candidates per training prompt from the current policy (best-of-N
machinery, `align.rerank`), scores them with the training reward, turns them into DPO pairs
(`align.preference`) or keeps the scores for RWR, trains the LoRA further (`align.train`), and
compares base vs tuned on held-out prompts and seeds under the training reward and independent
rewards (`align.evaluation`). The LoRA carries over from round to round; the DPO reference stays
the base model (adapters disabled), so every round is anchored to it.

Outputs under `out`: round-<r>/samples (manifest, videos, latents, pairs), round-<r>/train
(log.jsonl, checkpoints, lora/), round-<r>/evaluation.json|.txt, round-<r>/evaluation/ (the base
and tuned samples as mp4 + samples.jsonl; for synthetic captions the independent check's
strips.png), rounds.json (base and every
round's rewards, rewritten atomically after each round) and rounds.png. A rerun skips finished
rounds (their LoRA is loaded back).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

from align.cogvideox import LORA_WEIGHTS_NAME, load_lora
from align.config import AlignConfig
from align.evaluation import compare_base_tuned, format_comparison, write_comparison
from align.preference import save_sample_pairs
from align.rerank import rerank
from align.rewards import Reward
from align.train import LORA_DIR, build_pipeline, train
from reward.files import atomic_write, write_json

__all__ = ["ROUNDS_NAME", "PLOT_NAME", "run_rounds", "plot_rounds"]

ROUNDS_NAME = "rounds.json"
PLOT_NAME = "rounds.png"


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


def run_rounds(
    config: AlignConfig,
    reward: Reward,
    train_prompts: list[str],
    eval_prompts: list[str],
    eval_seeds: list[int],
    eval_rewards: list[Reward],
    out: str | Path,
    *,
    rounds: int,
    n: int = 8,
    pair_strategy: str = "all",
    sample_steps: int = 10,
    guidance: float = 1.0,
    log=print,
) -> list[dict]:
    """Run (or resume) `rounds` online rounds under `out`; returns one record per finished round.

    `config` holds the training hyper-parameters (its `data` and `output_dir` are set per round;
    its `seed` seeds sampling and training). `reward` trains; `eval_rewards` (the training reward
    first, then independent checks) evaluate base vs tuned on `eval_prompts` x `eval_seeds`.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rounds_path = out / ROUNDS_NAME
    records: list[dict] = json.loads(rounds_path.read_text())["rounds"] if rounds_path.is_file() else []
    pipe = build_pipeline(config)
    if records:
        load_lora(pipe.transformer, out / f"round-{records[-1]['round']}" / "train" / LORA_DIR)
        log(f"resuming after round {records[-1]['round']}")
    sample_kwargs = {"num_inference_steps": sample_steps, "guidance_scale": guidance}
    for round_ in range(len(records) + 1, rounds + 1):
        round_dir = out / f"round-{round_}"
        samples = round_dir / "samples"
        rerank(
            pipe,
            train_prompts,
            [reward],
            samples,
            n=n,
            top_k=1,
            seed=config.seed * 1000 + round_,
            generator_name=config.generator,
            **sample_kwargs,
        )
        if config.algorithm == "dpo":
            save_sample_pairs(samples, strategy=pair_strategy)
        round_config = dataclasses.replace(
            config, data=str(samples), output_dir=str(round_dir / "train"), seed=config.seed + round_
        )
        train(round_config, pipe)
        if not (round_dir / "train" / LORA_DIR / LORA_WEIGHTS_NAME).is_file():
            raise RuntimeError(f"round {round_}: training wrote no LoRA under {round_dir / 'train'}")
        pipe.transformer.eval()
        comparison = compare_base_tuned(
            pipe,
            eval_prompts,
            list(eval_seeds),
            eval_rewards,
            reward.name,
            round_dir / "evaluation",
            **sample_kwargs,
        )
        write_comparison(round_dir / "evaluation.json", comparison)
        records.append(_round_record(round_, comparison))
        write_json(
            rounds_path, {"training_reward": reward.name, "algorithm": config.algorithm, "rounds": records}
        )
        plot_rounds(out / PLOT_NAME, records)
        log(f"round {round_}\n{format_comparison(comparison)}")
    return records
