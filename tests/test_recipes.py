"""Every recipe under configs/ parses into its dataclasses, and recipes resolve from the installed package."""

from pathlib import Path

import pytest
import yaml

from align.config import ONLINE_ALGORITHMS, AlignConfig, config_parser
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


# -- every recipe trains one step on tiny stand-ins -------------------------------------------------
# What a recipe names that cannot load here (hub checkpoints, GPUs) is swapped for a stand-in; every
# other field is the recipe's own.
# what the tests turn off: trackers, background data workers, evaluation and checkpoints between steps
OFF = ["--report_to", "none", "--dataloader_num_workers", "0", "--dataloader_persistent_workers", "false",
       "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Tiny local backbones in hub layout: CLIP vision (+ its processor), a T5 encoder (+ a word
    tokenizer), Qwen2-VL and Qwen3-VL checkpoints; and a small synthetic corpus."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, T5Config, T5EncoderModel

    from reward.synthetic import CAPTIONS, build_synthetic_corpus
    from reward.text import build_word_tokenizer
    from reward.vlm import build_tiny_qwen2_vl, build_tiny_qwen3_vl

    root = tmp_path_factory.mktemp("stand_ins")
    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 37}
    CLIPVisionModel(CLIPVisionConfig(**tiny, image_size=32, patch_size=8)).save_pretrained(root / "clip")
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(root / "clip")
    tokenizer = build_word_tokenizer(CAPTIONS)
    t5 = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4)
    T5EncoderModel(t5).save_pretrained(root / "t5")
    tokenizer.save_pretrained(root / "t5")
    build_tiny_qwen2_vl(root / "qwen2-vl")
    build_tiny_qwen3_vl(root / "qwen3-vl")
    build_synthetic_corpus(root / "data", pairs_per_dimension=3, seed=0, num_workers=1)
    return root


REWARD_STAND_INS = {
    "synthetic.yaml": [],
    "graded.yaml": [],  # its corpus is the experiment's; the synthetic stand-in has the same columns
    "clip-t5-videocross.yaml": ["--video_tower", "{root}/clip", "--text_tower", "{root}/t5", "--frame_size", "32",
                                "32", "--num_frames", "2", "--bf16", "false",
                                "--embedding_cache_dir", "{tmp}/cache"],
    "qwen2vl-2b-lora.yaml": ["--vlm_name_or_path", "{root}/qwen2-vl", "--num_frames", "4", "--frame_size", "32", "32",
                             "--bf16", "false", "--vlm_dtype", "float32", "--attn_implementation", "eager"],
    "qwen3vl-2b-lora.yaml": ["--vlm_name_or_path", "{root}/qwen3-vl", "--num_frames", "4", "--frame_size", "32", "32",
                             "--bf16", "false", "--vlm_dtype", "float32", "--attn_implementation", "eager"],
    # 4-bit NF4 runs on CPU with bitsandbytes >= 0.50; bf16 stays, on the CPU (use_cpu)
    "qwen2vl-7b-qlora.yaml": ["--vlm_name_or_path", "{root}/qwen2-vl", "--num_frames", "4", "--frame_size", "32", "32",
                              "--use_cpu", "true", "--attn_implementation", "eager"],
}  # fmt: skip


def test_every_reward_recipe_has_a_stand_in():
    assert set(REWARD_STAND_INS) == {p.name for p in (CONFIGS / "reward").glob("*.yaml")}


@pytest.mark.parametrize("recipe", sorted(REWARD_STAND_INS))
def test_reward_recipe_trains_one_step(recipe, stand_ins, tmp_path):
    from reward import train as reward_train

    overrides = [arg.format(root=stand_ins, tmp=tmp_path) for arg in REWARD_STAND_INS[recipe]]
    argv = ["--config", str(CONFIGS / "reward" / recipe), "--data_dir", str(stand_ins / "data"), "--synthetic", "false",
            "--max_steps", "1", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--final_eval_splits", "validation", "--output_dir", str(tmp_path / "model"), *OFF, *overrides]  # fmt: skip
    assert reward_train.main(argv) == 0
    # a merged model folder; a 4-bit run keeps its adapter instead (a 4-bit merge is lossy)
    saved = "adapter/adapter_config.json" if "qlora" in recipe else "config.json"
    assert (tmp_path / "model" / saved).is_file()


@pytest.fixture(scope="module")
def tiny_samples(tmp_path_factory):
    from align.cogvideox import tiny_pipeline
    from align.preference import save_sample_pairs
    from align.rerank import rerank
    from align.rewards import color_match

    out = tmp_path_factory.mktemp("samples")
    rerank(tiny_pipeline(), ["a red circle moving left", "a blue square moving up"], [color_match], out, n=2, top_k=1,
           seed=0, num_inference_steps=2, guidance_scale=1.0, generator_name="tiny")  # fmt: skip
    save_sample_pairs(out, strategy="all")
    return out


@pytest.mark.parametrize("recipe", sorted(p.name for p in (CONFIGS / "align").glob("*.yaml")))
def test_align_recipe_trains_one_step(recipe, tiny_samples, tmp_path):
    from align.train import main as align_main

    (config,) = config_parser().parse_args_and_config(["--config", str(CONFIGS / "align" / recipe)])
    # fp16 autocast has no CPU kernels; bf16 (the 5b recipe, with 8-bit Adam) runs as written
    precision = ["--mixed_precision", "no"] if config.mixed_precision == "fp16" else []
    if config.algorithm in ONLINE_ALGORITHMS:  # the real reward model and prompt file are the user's
        precision += ["--reward", "rule:color_match", "--online_prompts", "synthetic:train", "--online_prompts_per_step",
                      "2", "--grpo_group_size", "2", "--online_sampling_steps", "4", "--gradient_steps", "1"]  # fmt: skip
    argv = ["--config", str(CONFIGS / "align" / recipe), "--generator", "tiny", "--data", str(tiny_samples),
            "--output_dir", str(tmp_path / "run"), "--steps", "1", "--gradient_accumulation_steps", "1",
            "--train_batch_size", "1", "--checkpointing_steps", "1", "--eval_steps", "0", "--report_to", "none",
            *precision]  # fmt: skip
    assert align_main(argv) == 0
    assert (tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoint-1").is_dir()
