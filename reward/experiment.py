"""The VideoCross experiment on the graded world: does merging scoring datasets make a better reward?

    clevereward experiment videocross --out runs/videocross [--seeds 0 1 2]

For each seed: simulate the graded world's five sources and benchmarks (`reward.graded`), then
train one dual encoder (configs/reward/graded.yaml) per training set and evaluate it on the test
benchmark (colour-shape pairs no source contains), its tie threshold calibrated on the
validation benchmark:

- each source alone;
- all five merged with VideoCross harmonisation (`clevereward data build`: per-source scales
  normalised to [0, 1], source dimensions mapped to the canonical ones, margins from normalised
  gaps, ties kept);
- all five merged naively: every label read as one `overall` judgment (no dimension mapping) on
  its raw scale (MOS 0-100, ratings 1-4 / 1-5: no normalisation, so gaps and margins are raw);
- the harmonised merge at label budgets of 10 % and 30 % of every source's rows (a seeded
  subsample), and at each budget (100 % too) with the pointwise regression objective instead of
  the pairwise one (`--objective regression`: it can use only the rows that carry scores).

Writes `<out>/results.json` (every run's report), `<out>/table.md` (mean +- spread over seeds)
and `<out>/accuracy.png`; a rerun reuses finished runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from reward.build import build_corpus
from reward.commands import CommandParser
from reward.files import atomic_write, write_json
from reward.graded import ALL_TRAIN, read_simulated, simulate_sources, simulated_pairs
from reward.sources import SourceData

__all__ = [
    "RECIPE",
    "BUDGETS",
    "naive",
    "subsample",
    "training_sets",
    "run_experiment",
    "format_results",
    "main",
]

RECIPE = "configs/reward/graded.yaml"
MERGED, NAIVE = "merged (VideoCross)", "merged (naive)"
RAW_SCALE = (0.0, 1.0)  # normalise(score, (0, 1)) leaves a raw score as it is
METRICS = ("accuracy", "accuracy_with_ties", "srcc")
BUDGETS = (0.1, 0.3, 1.0)  # shares of every source's rows
OBJECTIVES = ("pairwise", "regression")


def naive(data: SourceData) -> SourceData:
    """`data` merged without harmonisation: one `overall` dimension, raw scores, raw margins."""
    return dataclasses.replace(
        data,
        scores=[dataclasses.replace(r, dimension="overall") for r in data.scores],
        pairs=[dataclasses.replace(r, dimension="overall") for r in data.pairs],
        scales=dict.fromkeys(["overall"], RAW_SCALE),
    )


def subsample(data: SourceData, fraction: float, seed: int) -> SourceData:
    """A seeded `fraction` of the source's records (scores and pairs alike, at least one of each kind)."""
    rng = np.random.default_rng(seed)

    def keep(records: list) -> list:
        if not records:
            return records
        count = max(1, round(fraction * len(records)))
        return [records[i] for i in sorted(rng.choice(len(records), size=count, replace=False))]

    return dataclasses.replace(data, scores=keep(data.scores), pairs=keep(data.pairs))


def training_sets(world: Path, seed: int) -> dict[str, tuple[list[SourceData], str]]:
    """{training set name: (its sources, objective)} for a simulated world."""
    manifest = json.loads((world / "manifest.json").read_text())
    sources = {name: read_simulated(world, name) for name in manifest["sources"]}
    sets = {name: ([data], "pairwise") for name, data in sources.items()}
    sets[MERGED] = (list(sources.values()), "pairwise")
    sets[NAIVE] = ([naive(data) for data in sources.values()], "pairwise")
    for budget in BUDGETS:
        subset = (
            [subsample(data, budget, seed) for data in sources.values()]
            if budget < 1
            else list(sources.values())
        )
        for objective in OBJECTIVES:
            if (budget, objective) != (1.0, "pairwise"):  # that one is MERGED
                sets[f"{MERGED} {objective} {budget:.0%}"] = (subset, objective)
    return sets


def _corpus(world: Path, sources: list[SourceData], benchmarks: dict, out: Path) -> Path:
    """A corpus folder: train = `sources`' pairs, validation / test = `benchmarks` (split: pairs)."""
    import datasets

    from reward.pairs import save_corpus

    train, _ = build_corpus(sources, world, ALL_TRAIN)
    splits = {"train": train["train"], **benchmarks}
    save_corpus(out, datasets.DatasetDict(splits), world, meta={"sources": sorted({s.name for s in sources})})
    return out


def _train(corpus: Path, out: Path, seed: int, objective: str, epochs: float | None) -> Path:
    """Train the recipe on `corpus` into `out/model` (`epochs` overrides the recipe's)."""
    from reward import train as reward_train
    from reward.recipes import resolve_config

    argv = ["--config", str(resolve_config(RECIPE)), "--data_dir", str(corpus), "--output_dir", str(out / "model"),
            "--seed", str(seed), "--final_eval_splits", "validation", "--objective", objective]  # fmt: skip
    if epochs is not None:
        argv += ["--num_train_epochs", str(epochs)]
    if reward_train.main(argv) != 0:
        raise RuntimeError(f"training on {corpus} failed")
    return out / "model"


def _evaluate(model: Path, corpus: Path, split: str, out: Path | None = None) -> dict:
    """`evaluate_corpus` of a trained model on a benchmark split (ties calibrated on validation)."""
    from reward.evaluate import evaluate_corpus
    from reward.pairs import load_corpus
    from reward.scoring import load_scorer

    return evaluate_corpus(load_scorer(model), load_corpus(corpus), split, out_dir=out, progress=False)


def _train_and_evaluate(
    corpus: Path, out: Path, seed: int, objective: str, epochs: float | None = None
) -> dict:
    """Train on `corpus`; its test-benchmark report (also written under `out/eval`)."""
    return _evaluate(_train(corpus, out, seed, objective, epochs), corpus, "test", out / "eval")


def _summary(report: dict) -> dict:
    """The figures the table shows: mean over dimensions, and Overall alone."""
    overall = report["dimensions"].get("overall", {})
    return {
        **{f"mean_{m}": report["overall"][m] for m in METRICS},
        **{f"overall_{m}": overall.get(m) for m in METRICS},
        "tie_threshold": report["tie_threshold"],
    }


def _run_folder(out: Path, seed: int, name: str) -> Path:
    return out / f"seed-{seed}" / "".join(c if c.isalnum() else "_" for c in name)


def run_experiment(
    out: str | os.PathLike,
    seeds: list[int],
    sets: list[str] | None = None,
    epochs: float | None = None,
    log=print,
) -> dict:
    """Every (seed, training set) run under `out` (finished runs are reused); the results by set.

    `sets` restricts the training sets (default: all); `epochs` overrides the recipe's (for a sweep
    on the validation benchmark). Each result holds the test report and the validation accuracy.
    """
    out = Path(out)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for seed in seeds:
        world = out / f"seed-{seed}" / "world"
        if not (world / "manifest.json").is_file():
            simulate_sources(world, seed=seed, log=log)
        available = training_sets(world, seed)
        benchmarks = {
            split: simulated_pairs(world, split) for split in ("validation", "test")
        }  # once per world
        unknown = sorted(set(sets or ()) - set(available))
        if unknown:
            raise ValueError(f"unknown training sets {unknown}; expected some of {list(available)}")
        for name, (sources, objective) in available.items():
            if sets is not None and name not in sets:
                continue
            key, folder = f"{name} | seed {seed}", _run_folder(out, seed, name)
            if key not in results:
                corpus = _corpus(world, sources, benchmarks, folder / "corpus")
                report = _train_and_evaluate(corpus, folder, seed, objective, epochs)
                results[key] = {"set": name, "seed": seed, **_summary(report), "report": report}
            if "validation_accuracy" not in results[key]:  # runs measured before it was recorded
                validation = _evaluate(folder / "model", folder / "corpus", "validation")
                results[key]["validation_accuracy"] = validation["overall"]["accuracy"]
            write_json(results_path, results)
            entry = results[key]
            log(f"{key}: test {entry['mean_accuracy']:.3f}, validation {entry['validation_accuracy']:.3f}")
    return results


def format_results(results: dict) -> str:
    """Markdown table: per training set, mean +- spread (std over seeds) of each figure."""
    sets = list(dict.fromkeys(r["set"] for r in results.values()))
    columns = [("validation_accuracy", "validation acc."), ("mean_accuracy", "acc. (no ties)"), ("mean_accuracy_with_ties", "acc. with ties"),
               ("mean_srcc", "SRCC"), ("overall_accuracy", "Overall acc."), ("tie_threshold", "ε")]  # fmt: skip
    lines = ["| training set | seeds | " + " | ".join(c for _, c in columns) + " |",
             "| --- | --- |" + " --- |" * len(columns)]  # fmt: skip
    for name in sets:
        runs = [r for r in results.values() if r["set"] == name]
        cells = []
        for key, _ in columns:
            values = np.array([r[key] for r in runs if r.get(key) is not None], dtype=float)
            scale = 1.0 if key in ("mean_srcc", "tie_threshold") else 100.0
            cells.append(f"{scale * values.mean():.2f} ± {scale * values.std():.2f}" if len(values) else "—")
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["set"] for r in results.values()))
    means = [np.mean([r["mean_accuracy"] for r in results.values() if r["set"] == s]) for s in sets]
    spreads = [np.std([r["mean_accuracy"] for r in results.values() if r["set"] == s]) for s in sets]
    figure, axis = plt.subplots(figsize=(8, 3.5))
    axis.barh(sets, [100 * m for m in means], xerr=[100 * s for s in spreads], color="tab:blue")
    axis.set_xlabel("test-benchmark accuracy without ties (%), mean over dimensions")
    axis.invert_yaxis()
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=120)
    plt.close(figure)


def _parser() -> CommandParser:
    parser = CommandParser("clevereward experiment videocross", __doc__)
    parser.add_argument("--out", required=True, help="experiment folder (a rerun reuses finished runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="world and training seeds")
    parser.add_argument("--sets", nargs="+", default=None, help="only these training sets (default: all)")
    parser.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="training epochs (default: the recipe's); sweep it on validation",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if any(seed < 0 for seed in args.seeds):
        raise ValueError(f"--seeds must be >= 0, got {args.seeds}")
    results = run_experiment(args.out, args.seeds, args.sets, args.epochs)
    table = format_results(results)
    with atomic_write(Path(args.out) / "table.md") as f:
        f.write(table + "\n")
    plot_results(results, Path(args.out) / "accuracy.png")
    print(table)
    return 0
