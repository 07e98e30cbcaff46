"""Every recipe under configs/ parses into its dataclasses, and recipes resolve from the installed package."""

from pathlib import Path

import pytest
import yaml

from align.config import AlignConfig, config_parser
from reward.recipes import resolve_config, resolve_config_argv
from reward.train import ModelArguments, make_parser

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("recipe", sorted((CONFIGS / "reward").glob("*.yaml")), ids=lambda p: p.name)
def test_reward_recipes_parse(recipe):
    # bf16 recipes are for GPUs: transformers refuses bf16 on a CPU, so parse them with it off
    script, training, model = make_parser().parse_args_and_config(
        ["--config", str(recipe), "--bf16", "false"]
    )
    assert isinstance(model, ModelArguments) and training.output_dir
    for name, value in yaml.safe_load(recipe.read_text()).items():  # every key reached its field
        if name == "bf16":
            continue
        holder = next(d for d in (script, training, model) if hasattr(d, name))
        actual = getattr(holder, name)
        actual = getattr(actual, "value", actual)  # transformers turns strategies into enums
        if name == "report_to":
            value = [] if value == "none" else [value]  # and report_to into a list of trackers
        assert actual == value, (recipe.name, name, actual, value)


@pytest.mark.parametrize("recipe", sorted((CONFIGS / "align").glob("*.yaml")), ids=lambda p: p.name)
def test_align_recipes_parse(recipe):
    (config,) = config_parser().parse_args_and_config(["--config", str(recipe)])
    assert isinstance(config, AlignConfig)
    for name, value in yaml.safe_load(recipe.read_text()).items():
        assert getattr(config, name) == value, (recipe.name, name)


@pytest.mark.parametrize("recipe", sorted((CONFIGS / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_load(recipe):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(recipe))
    assert config.distributed_type is not None and config.mixed_precision in ("no", "fp16", "bf16")


def test_a_recipe_name_resolves_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the packaged copy answers
    resolved = resolve_config("configs/reward/synthetic.yaml")
    assert resolved.is_file() and resolved.read_text() == (CONFIGS / "reward" / "synthetic.yaml").read_text()
    assert resolve_config_argv(["--config=configs/align/tiny-dpo.yaml", "--steps", "2"])[0].endswith(
        "tiny-dpo.yaml"
    )
    with pytest.raises(FileNotFoundError, match="shipped recipes are"):
        resolve_config("configs/reward/nope.yaml")
    with pytest.raises(FileNotFoundError, match="mine.yaml does not exist"):
        resolve_config("mine.yaml")
