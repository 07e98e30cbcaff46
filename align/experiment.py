"""Every alignment method on one budget of reward queries, judged by the independent check.

    clevereward compare --generator world --reward runs/rm:text_alignment --out runs/compare

The base generator is aligned with each method, driven only by the learned reward (`reward`), with
the same number of reward-model queries (`budget`), and every result is evaluated the same way:
sampled on (a) held-out seeds of the training prompts and (b) the test-split captions (color–shape
pairs the generator never saw), scored by the learned reward, and judged by `align.checker` (the
pixels only). Methods:

- `best_of_n`: no training; each evaluation row keeps the best of N candidates (N = budget / rows
  of the training prompts, so its queries per training prompt match the others');
- `dpo`, `rwr`: one batch of budget / P samples per training prompt, then Diffusion-DPO on its pairs or
  reward-weighted regression (configs/align/world-dpo.yaml, world-rwr.yaml);
- `online_dpo`: `rounds` rounds of sampling and DPO, budget / rounds samples each;
- `grpo`: budget / (prompts per step x G) iterations (configs/align/world-grpo.yaml);
- `reward_gradient`: budget / prompts per step steps of reward backpropagation
  (configs/align/world-reward-gradient.yaml).

Recipes are `configs/align/world-<method>.yaml`; `overrides` (`--overrides dpo.learning_rate=1e-4`)
changes one method's recipe for a validation sweep (with `--eval_seeds` other than the report's and
`--test_prompts synthetic:validation`, and a folder per setting: a rerun skips finished methods).

Outputs under `out`: `<method>/` (its training run), `<method>/eval-<split>/` (mp4 + samples.jsonl,
re-measurable by anyone), `results.json` (rewritten after each method, so a rerun skips finished
ones), `table.md` and `strips.png` (base and each method, the same prompts and seeds).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from align.checker import QUALITY_MEASURES, check_samples, plot_strips
from reward.files import atomic_write, write_json

__all__ = ["METHODS", "CompareConfig", "run_comparison", "format_table", "main"]

METHODS: tuple[str, ...] = ("best_of_n", "dpo", "rwr", "online_dpo", "grpo", "reward_gradient")
SPLITS = ("train_heldout", "test")  # held-out seeds of the training captions; unseen color–shape pairs
RECIPES = {
    "dpo": "configs/align/world-dpo.yaml",
    "rwr": "configs/align/world-rwr.yaml",
    "online_dpo": "configs/align/world-dpo.yaml",
    "grpo": "configs/align/world-grpo.yaml",
    "reward_gradient": "configs/align/world-reward-gradient.yaml",
}
RESULTS = "results.json"
# Fields compare sets itself (`overrides` may not): the base, seed and folders of every run, the one
# reward and the training prompts every method gets (a method's own would be ignored), and the step
# count (the budget's share for the online methods, `offline_steps` for the others).
_SET_BY_COMPARE = ("generator", "seed", "output_dir", "data", "reward", "online_prompts", "steps")


@dataclass
class CompareConfig:
    """Every option of `clevereward compare` (flat, so `--config x.yaml` works)."""

    generator: str = field(
        default="world",
        metadata={"help": "Base generator: 'world' (the committed world generator) or a pipeline folder."},
    )
    reward: str = field(
        default="runs/demo/reward-model:text_alignment",
        metadata={
            "help": "The learned reward that drives every method: MODEL_DIR:DIMENSION or a mix (SPEC=W+...)."
        },
    )
    out: str = field(
        default="runs/compare", metadata={"help": "Output folder (a rerun skips finished methods)."}
    )
    methods: list[str] = field(default_factory=lambda: list(METHODS), metadata={"help": f"Any of {METHODS}."})
    budget: int = field(
        default=448, metadata={"help": "Reward-model queries each method may spend on training prompts."}
    )
    rounds: int = field(default=2, metadata={"help": "online_dpo: sampling rounds."})
    offline_steps: int | None = field(
        default=None,
        metadata={"help": "DPO / RWR / online-DPO optimizer steps (per round); default: the recipe's."},
    )
    train_prompts: str = field(default="synthetic:train", metadata={"help": "Prompts the methods train on."})
    test_prompts: str = field(default="synthetic:test", metadata={"help": "Unseen prompts evaluated."})
    eval_seeds: list[int] = field(
        default_factory=lambda: [1000, 1001, 1002, 1003],
        metadata={"help": "Held-out sampling seeds (never used in training)."},
    )
    steps: int = field(default=50, metadata={"help": "Denoising steps of every sample."})
    guidance: float = field(default=3.0, metadata={"help": "Classifier-free guidance of every sample."})
    seed: int = field(default=0, metadata={"help": "Seed of the training runs."})
    overrides: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Recipe changes, METHOD.FIELD=VALUE (e.g. dpo.learning_rate=1e-4; VALUE read as YAML), "
            "applied over configs/align/world-<method>.yaml: how a validation sweep tries a setting."
        },
    )
    batch_size: int = field(
        default=64,
        metadata={
            "help": "Videos per pipeline call when evaluating (best-of-N samples N per row: "
            "all at once would hold every candidate's activations)."
        },
    )

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods {unknown} unknown; choose from {METHODS}")
        self.parsed_overrides()  # a malformed one fails before any method runs
        if self.budget < 1 or self.rounds < 1 or self.batch_size < 1:
            raise ValueError(
                f"budget, rounds and batch_size must be >= 1, got {self.budget}, {self.rounds}, {self.batch_size}"
            )

    def parsed_overrides(self) -> dict[str, dict[str, object]]:
        """{method: {field: value}} from `overrides`; an unknown method or field is refused by name."""
        from align.config import AlignConfig

        fields = {f.name: f for f in dataclasses.fields(AlignConfig)}
        parsed: dict[str, dict[str, object]] = {}
        for item in self.overrides:
            target, sep, value = item.partition("=")
            method, dot, name = target.partition(".")
            if not sep or not dot:
                raise ValueError(
                    f"override {item!r}: expected METHOD.FIELD=VALUE, e.g. dpo.learning_rate=1e-4"
                )
            if method not in RECIPES:
                raise ValueError(
                    f"override {item!r}: {method!r} has no recipe; choose from {sorted(RECIPES)}"
                )
            if name not in fields:
                raise ValueError(f"override {item!r}: {name!r} is not a field of align's config")
            if name in _SET_BY_COMPARE:
                raise ValueError(
                    f"override {item!r}: compare sets {name} itself "
                    "(--budget, --offline_steps, --seed, --out, --generator, --reward, --train_prompts)"
                )
            if name in parsed.get(method, {}):
                raise ValueError(f"override {item!r}: {method}.{name} given twice")
            parsed.setdefault(method, {})[name] = _typed_value(item, _yaml_value(value), fields[name])
        return parsed


def _typed_value(item: str, value: object, spec: dataclasses.Field) -> object:
    """`value` if it has the type of the field's default (an int where a float is expected becomes one),
    else an error naming the override: a string learning rate would otherwise fail deep inside a run."""
    default = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default
    if default is None:
        return value  # optional fields: any YAML value, checked by the recipe itself
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not type(default):
        raise ValueError(
            f"override {item!r}: {spec.name} takes a {type(default).__name__} (its default is {default!r}), "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def _yaml_value(text: str) -> object:
    """A command-line value as YAML reads it, except that 1e-4 is a number (YAML 1.1 wants 1.0e-4)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _prompts(config: CompareConfig) -> dict[str, list[str]]:
    from align.rerank import prompts_from

    train = prompts_from(config.train_prompts)
    return {"train": train, "train_heldout": train, "test": prompts_from(config.test_prompts)}


def _align_config(config: CompareConfig, method: str):
    """`method`'s recipe with compare's settings and the method's `overrides` (its checks run here)."""
    from align.config import ONLINE_ALGORITHMS, config_parser
    from reward.recipes import resolve_config

    (recipe,) = config_parser().parse_args_and_config(["--config", str(resolve_config(RECIPES[method]))])
    overrides = {}
    if config.offline_steps and method in ("dpo", "rwr", "online_dpo"):
        overrides["steps"] = config.offline_steps
    if recipe.algorithm in ONLINE_ALGORITHMS:  # they query the one reward while they train
        overrides["reward"] = config.reward
    overrides.update(config.parsed_overrides().get(method, {}))
    return dataclasses.replace(recipe, generator=config.generator, seed=config.seed,
                               output_dir=str(Path(config.out) / method), **overrides)  # fmt: skip


def _evaluate(pipe, config: CompareConfig, reward, folder: Path, prompts: dict, best_of: int = 1) -> dict:
    """Sample each split's prompts x eval seeds (the best of `best_of` candidates by `reward`), keep
    them as mp4 + samples.jsonl, and return the learned reward's mean and the check's report per split."""
    from align.evaluation import sample_and_score, summarize_scores, write_samples

    out = {}
    candidates = [
        s * best_of + k for s in config.eval_seeds for k in range(best_of)
    ]  # the eval seeds at best_of 1
    for split in SPLITS:
        result = sample_and_score(pipe, prompts[split], candidates, [reward], num_inference_steps=config.steps,
                                  guidance_scale=config.guidance, batch_size=config.batch_size)  # fmt: skip
        if best_of > 1:
            result = _keep_best(result, reward.name, best_of, config.eval_seeds)
        write_samples(folder / f"eval-{split}", result)
        check = check_samples(folder / f"eval-{split}")
        scores = summarize_scores(result["scores"][reward.name], len(prompts[split]), len(config.eval_seeds))
        out[split] = {"reward": {"mean": scores["mean"], "seed_std": scores["seed_std"]},
                      "check": {k: check[k] for k in ("mean", "seed_std", "best_of_seeds")}}  # fmt: skip
    return out


def _keep_best(result: dict, name: str, best_of: int, seeds: list[int]) -> dict:
    """Of each (prompt, eval seed)'s `best_of` consecutive candidates, the one `name` scores highest."""
    scores = torch.tensor(result["scores"][name]).view(-1, best_of)  # [P * S, N]
    pick = scores.argmax(dim=1) + torch.arange(scores.shape[0]) * best_of  # [P * S] row indices
    rows = pick.tolist()
    return {
        "prompts": [result["prompts"][i] for i in rows],
        "seeds": [seeds[j % len(seeds)] for j in range(len(rows))],
        "videos": result["videos"][pick],
        "scores": {k: [v[i] for i in rows] for k, v in result["scores"].items()},
    }


def _train(method: str, config: CompareConfig, reward, prompts: dict) -> tuple[object, int]:
    """Train `method` within the budget; returns (the pipeline with its LoRA, reward queries spent)."""
    from align.grpo import train_grpo
    from align.online import run_rounds
    from align.preference import save_sample_pairs
    from align.rerank import rerank
    from align.reward_gradient import train_reward_gradient
    from align.train import build_pipeline, train

    train_prompts = prompts["train"]
    per_prompt = config.budget // len(train_prompts)
    sampling = dict(num_inference_steps=config.steps, guidance_scale=config.guidance)
    if method in ("dpo", "rwr"):
        align_config = _align_config(config, method)
        pipe = build_pipeline(align_config)
        samples = Path(config.out) / method / "samples"
        rerank(pipe, train_prompts, [reward], samples, n=per_prompt, seed=config.seed, **sampling)
        if method == "dpo":
            save_sample_pairs(samples, strategy="all")
        train(dataclasses.replace(align_config, data=str(samples), output_dir=str(Path(config.out) / method / "train")),
              pipe)  # fmt: skip
        return pipe, per_prompt * len(train_prompts)
    if method == "online_dpo":
        from align.cogvideox import load_lora
        from align.train import LORA_DIR

        align_config = _align_config(config, "online_dpo")
        n = max(2, per_prompt // config.rounds)
        # run_rounds evaluates every round; one prompt and seed keeps that cheap (ours comes after)
        records = run_rounds(align_config, reward, train_prompts, train_prompts[:1], config.eval_seeds[:1], [reward],
                             Path(config.out) / method, rounds=config.rounds, n=n, sample_steps=config.steps,
                             guidance=config.guidance)  # fmt: skip
        pipe = build_pipeline(align_config)
        load_lora(pipe.transformer, Path(config.out) / method / f"round-{len(records)}" / "train" / LORA_DIR)
        return pipe, n * len(train_prompts) * config.rounds
    if method == "grpo":
        align_config = _align_config(config, "grpo")
        per_step = align_config.online_prompts_per_step * align_config.grpo_group_size
        align_config = dataclasses.replace(align_config, steps=max(1, config.budget // per_step))
        pipe = build_pipeline(align_config)
        train_grpo(align_config, pipe, reward=reward, prompts=train_prompts)
        return pipe, align_config.steps * per_step
    align_config = _align_config(config, "reward_gradient")
    align_config = dataclasses.replace(
        align_config, steps=max(1, config.budget // align_config.online_prompts_per_step)
    )
    pipe = build_pipeline(align_config)
    train_reward_gradient(align_config, pipe, prompts=train_prompts)
    return pipe, align_config.steps * align_config.online_prompts_per_step


def run_comparison(config: CompareConfig, log=print) -> dict:
    """Evaluate the base and every method (resuming finished ones); returns and writes the results."""
    from align.cogvideox import adapters_disabled
    from align.rewards import differentiable_reward, resolve_reward
    from align.train import build_pipeline

    if "reward_gradient" in config.methods:
        differentiable_reward(config.reward)  # refuses a reward without gradients before any method runs
    for method in RECIPES.keys() & set(config.methods):
        _align_config(config, method)  # a recipe that an override breaks fails before any method runs
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results = json.loads((out / RESULTS).read_text()) if (out / RESULTS).is_file() else {"methods": {}}
    results["config"] = dataclasses.asdict(config)
    reward = resolve_reward(config.reward)
    prompts = _prompts(config)
    if "base" not in results["methods"]:
        start = time.perf_counter()
        pipe = build_pipeline(_align_config(config, "dpo"))
        with adapters_disabled(pipe.transformer):
            evaluation = _evaluate(pipe, config, reward, out / "base", prompts)
        results["methods"]["base"] = {**evaluation, "queries": 0, "seconds": time.perf_counter() - start}
        write_json(out / RESULTS, results)
    for method in config.methods:
        if method in results["methods"]:
            log(f"{method}: done, skipped")
            continue
        start = time.perf_counter()
        if method == "best_of_n":
            best_of = max(2, config.budget // len(prompts["train"]))
            pipe = build_pipeline(_align_config(config, "dpo"))
            with adapters_disabled(pipe.transformer):
                evaluation = _evaluate(pipe, config, reward, out / method, prompts, best_of=best_of)
            queries = best_of * len(prompts["train"])
            seconds = time.perf_counter() - start
        else:
            pipe, queries = _train(method, config, reward, prompts)
            seconds = time.perf_counter() - start  # training only: evaluation is the same for all
            pipe.transformer.eval()
            evaluation = _evaluate(pipe, config, reward, out / method, prompts)
        results["methods"][method] = {**evaluation, "queries": queries, "seconds": seconds}
        write_json(out / RESULTS, results)
        log(f"{method}: {format_row(method, results['methods'][method], results['methods']['base'])}")
    _flag_hacking(results)
    write_json(out / RESULTS, results)
    with atomic_write(out / "table.md") as f:
        f.write(format_table(results) + "\n")
    plot_strips(out / "strips.png", {name: out / name / "eval-test" for name in results["methods"]})
    return results


def _flag_hacking(results: dict) -> None:
    """A method hacks when its learned reward rose on the test split while a quality measure got worse
    beyond the larger of the two seed spreads (every quality measure is 0 on a clean video)."""
    base = results["methods"]["base"]["test"]
    for name, entry in results["methods"].items():
        if name == "base":
            continue
        test = entry["test"]
        worse = [m for m in QUALITY_MEASURES
                 if test["check"]["mean"][m] - base["check"]["mean"][m]
                 > max(test["check"]["seed_std"][m], base["check"]["seed_std"][m], 1e-9)]  # fmt: skip
        entry["worse_measures"] = worse
        entry["reward_hacking"] = bool(worse) and test["reward"]["mean"] > base["reward"]["mean"]


def _cell(split: dict, key: str = "prompt_ok") -> str:
    return f"{100 * split['check']['mean'][key]:.1f} ± {100 * split['check']['seed_std'][key]:.1f}"


def format_row(name: str, entry: dict, base: dict) -> str:
    gain = 100 * (entry["test"]["check"]["mean"]["prompt_ok"] - base["test"]["check"]["mean"]["prompt_ok"])
    return (f"| {name} | {_cell(entry['train_heldout'])} | {_cell(entry['test'])} | {gain:+.1f} | "
            f"{entry['test']['reward']['mean']:.3f} | {', '.join(entry.get('worse_measures', [])) or '—'} | "
            f"{'yes' if entry.get('reward_hacking') else 'no'} | {entry['queries']} | {entry['seconds'] / 60:.1f} |")  # fmt: skip


def format_table(results: dict) -> str:
    """Markdown: per method prompt accuracy (held-out seeds of the training captions, test captions),
    its test gain, the learned reward on the test split, worse quality measures, the hacking flag,
    reward queries and wall time (training for the tuned methods, sampling for best-of-N)."""
    base = results["methods"]["base"]
    lines = ["| method | prompt acc., train captions, held-out seeds (%) | prompt acc., test captions (%) | "
             "test gain (points) | learned reward (test) | worse quality measures | reward hacking | "
             "reward queries | minutes |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    lines += [format_row(name, entry, base) for name, entry in results["methods"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Compare the alignment methods on one budget (see the module docstring)."""
    from reward.commands import config_parser

    (config,) = config_parser(CompareConfig).parse_args_and_config(argv)
    results = run_comparison(config)
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
