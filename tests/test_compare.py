"""`clevereward compare` end to end on the tiny generator: every method within the budget, every
evaluation kept as re-measurable samples, a table, a strip grid, and a rerun that skips finished methods."""

import json

import pytest

from align.experiment import METHODS, CompareConfig, format_table, run_comparison


def test_every_method_runs_within_the_budget_and_resumes(tiny_reward_model_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving left\na blue square moving up\n")
    config = CompareConfig(generator="tiny", reward=f"{tiny_reward_model_dir}:text_alignment", out=str(tmp_path / "c"),
                           budget=16, rounds=2, offline_steps=2, train_prompts=str(prompts), test_prompts=str(prompts),
                           eval_seeds=[7, 8], steps=2, guidance=1.0)  # fmt: skip
    results = run_comparison(config, log=lambda *_: None)
    assert list(results["methods"]) == ["base", *METHODS]
    for name, entry in results["methods"].items():
        assert entry["queries"] <= config.budget, name
        for split in ("train_heldout", "test"):
            rows = (tmp_path / "c" / name / f"eval-{split}" / "samples.jsonl").read_text().splitlines()
            assert {(json.loads(r)["prompt"], json.loads(r)["seed"]) for r in rows} == {
                (p, s) for p in prompts.read_text().split("\n") if p for s in (7, 8)
            }, (name, split)
            assert 0 <= entry[split]["check"]["mean"]["prompt_ok"] <= 1
    table = format_table(results)
    assert table.count("\n") == len(METHODS) + 2 and "reward_gradient" in table
    assert (tmp_path / "c" / "strips.png").stat().st_size > 0
    again = []
    run_comparison(config, log=again.append)
    assert again == [f"{m}: done, skipped" for m in METHODS]


def test_a_reward_without_gradients_is_refused_before_any_method_runs(tmp_path):
    config = CompareConfig(generator="tiny", reward="rule:check", out=str(tmp_path / "c"),
                           methods=["dpo", "reward_gradient"])  # fmt: skip
    with pytest.raises(ValueError, match="rule:check' is measured on hard masks and has no gradient"):
        run_comparison(config)
    assert not (tmp_path / "c").exists()


def test_overrides_change_one_methods_recipe_and_bad_ones_are_refused(tmp_path):
    from align.experiment import _align_config

    shipped = _align_config(CompareConfig(generator="tiny", out=str(tmp_path / "c")), "dpo")
    config = CompareConfig(generator="tiny", out=str(tmp_path / "c"),
                           overrides=["dpo.learning_rate=5e-5", "dpo.beta=1000", "grpo.grpo_clip_range=0.001"])  # fmt: skip
    dpo, online = _align_config(config, "dpo"), _align_config(config, "online_dpo")
    assert (dpo.learning_rate, dpo.beta) == (5e-5, 1000) != (shipped.learning_rate, shipped.beta)
    # online DPO reads the same recipe file, but the overrides named dpo only
    assert online.learning_rate == shipped.learning_rate
    assert _align_config(config, "grpo").grpo_clip_range == 0.001
    for bad, message in [("dpo.learning_rate", "expected METHOD.FIELD=VALUE"),
                         ("best_of_n.learning_rate=1", "'best_of_n' has no recipe"),
                         ("dpo.lr=1", "'lr' is not a field"),
                         ("grpo.steps=3", "compare sets steps itself"),
                         ("dpo.steps=3", "compare sets steps itself"),
                         ("dpo.generator=tiny", "compare sets generator itself"),
                         ("grpo.reward=rule:motion", "compare sets reward itself")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            CompareConfig(overrides=[bad])
    with pytest.raises(ValueError, match="dpo.beta given twice"):
        CompareConfig(overrides=["dpo.beta=10", "dpo.beta=20"])
    with pytest.raises(ValueError, match="learning_rate takes a float .* got str 'fast'"):
        CompareConfig(overrides=["dpo.learning_rate=fast"])
    with pytest.raises(ValueError, match="learning_rate takes a float .* got NoneType None"):
        CompareConfig(overrides=["dpo.learning_rate="])  # an empty value is YAML's null
    assert CompareConfig(overrides=["dpo.beta=1000"]).parsed_overrides()["dpo"]["beta"] == 1000.0
    # a value of the right type that the recipe refuses fails before anything runs, not when GRPO's turn comes
    config = CompareConfig(generator="tiny", reward="rule:motion", out=str(tmp_path / "late"),
                           methods=["dpo", "grpo"], overrides=["grpo.grpo_eta=0"])  # fmt: skip
    with pytest.raises(ValueError, match="grpo_eta must be > 0"):
        run_comparison(config)
    assert not (tmp_path / "late").exists()
