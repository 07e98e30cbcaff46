"""Diffusion-DPO / RWR training of the tiny CogVideoX with LoRA: real diffusers, peft and accelerate on CPU."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from align import cogvideox
from align.config import AlignConfig
from align.data import batch_indices, example_noise, load_training_data, micro_batch
from align.preference import save_sample_pairs
from align.rerank import rerank
from align.rewards import Reward
from align.train import LOSSES, DenoisingObjective, build_pipeline, main, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "align"
PROMPTS = ["a red circle moving left", "a blue square moving up"]


def _brightness(videos, prompts, dimension=None):
    return videos.mean(dim=(1, 2, 3, 4))  # [B, F, C, H, W] -> [B]


BRIGHTNESS = Reward(name="brightness", fn=_brightness)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """A samples folder (2 prompts x 4 candidates of the tiny generator) that is also a DPO pair corpus."""
    out = tmp_path_factory.mktemp("samples")
    pipe = cogvideox.load_pipeline("tiny", device="cpu")
    rerank(
        pipe,
        PROMPTS,
        [BRIGHTNESS],
        out,
        n=4,
        num_inference_steps=2,
        guidance_scale=1.0,
        generator_name="tiny",
    )
    save_sample_pairs(out, strategy="all")  # 6 pairs per prompt
    return out


def _config(samples, tmp_path, **kw) -> AlignConfig:
    base = dict(
        data=str(samples),
        output_dir=str(tmp_path / "run"),
        steps=3,
        train_batch_size=2,
        learning_rate=1e-2,
        beta=100.0,
        checkpointing_steps=0,
        lora_rank=4,
        lora_alpha=4.0,
        seed=0,
    )
    return AlignConfig(**{**base, **kw})


def _lora(transformer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in transformer.named_parameters() if "lora_" in n}


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _loss(objective, batch, config, transformer):
    """The loss of one micro-batch, as train() computes it for the config's algorithm."""
    return LOSSES[config.algorithm](objective, batch, config, transformer)


def _batch(config, pipe, data):
    """The micro-batch of step 0 as train() builds it (through the same helpers)."""
    prompts = sorted(set(data.prompts))
    embeds = cogvideox.encode_prompts(pipe, prompts)[0]
    return micro_batch(data, config, embeds, {p: i for i, p in enumerate(prompts)}, 0, 0, 1, 1000, "cpu")


def test_step0_dpo_loss_is_exactly_log2(samples, tmp_path):
    config = _config(samples, tmp_path)
    pipe = build_pipeline(config, "cpu")
    data, _ = load_training_data(config)
    loss, metrics = _loss(
        DenoisingObjective(pipe.transformer, pipe.scheduler),
        _batch(config, pipe, data),
        config,
        pipe.transformer,
    )
    # LoRA B = 0: policy errors equal reference errors bit for bit, so inside = 0 and loss = log 2
    assert torch.equal(loss, torch.full_like(loss, math.log(2)))
    assert metrics["policy_err_w"] == metrics["ref_err_w"] and metrics["policy_err_w"] > 0


def test_exception_in_reference_pass_leaves_adapters_enabled(samples, tmp_path):
    config = _config(samples, tmp_path)
    pipe = build_pipeline(config, "cpu")
    data, _ = load_training_data(config)
    objective = DenoisingObjective(pipe.transformer, pipe.scheduler)
    batch = _batch(config, pipe, data)
    for p in pipe.transformer.parameters():
        if p.requires_grad:  # make the adapter matter, so "enabled" is observable in the outputs
            torch.nn.init.normal_(p, std=0.5)
    with torch.no_grad():
        tuned = objective(batch["latents"], batch["embeds"], batch["noise"], batch["timesteps"])
    bad = dict(
        batch, timesteps=batch["timesteps"] + 10**6
    )  # out of the scheduler's range: the reference pass raises
    with pytest.raises(IndexError):
        _loss(objective, bad, config, pipe.transformer)
    with torch.no_grad():
        after = objective(batch["latents"], batch["embeds"], batch["noise"], batch["timesteps"])
        with cogvideox.adapters_disabled(pipe.transformer):
            base = objective(batch["latents"], batch["embeds"], batch["noise"], batch["timesteps"])
    assert torch.equal(after, tuned)
    assert not torch.allclose(base, tuned)


def test_dpo_training_updates_every_lora_parameter_and_saves_a_loadable_lora(samples, tmp_path):
    config = _config(samples, tmp_path)
    pipe = build_pipeline(config, "cpu")
    before = _lora(pipe.transformer)
    summary = train(config, pipe)
    after = _lora(pipe.transformer)
    assert before.keys() == after.keys() and len(after) > 0
    unchanged = [n for n in after if torch.equal(before[n], after[n])]
    assert not unchanged, f"LoRA parameters not trained: {unchanged}"
    log = _log(Path(config.output_dir))
    assert [r["step"] for r in log] == [1, 2, 3]
    assert log[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert summary["data"] == {"examples": 12, "skipped": 0, "skipped_rows": []}
    # the saved LoRA, loaded into a fresh pipeline by diffusers, reproduces the trained transformer
    fresh = cogvideox.load_pipeline("tiny", device="cpu", lora_weights=str(Path(config.output_dir) / "lora"))
    x = torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    emb = torch.randn(1, 16, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([500])
    with torch.no_grad():
        ours = cogvideox.denoising_error(pipe.transformer, pipe.scheduler, x, emb, x * 0.5, t)
        theirs = cogvideox.denoising_error(fresh.transformer, fresh.scheduler, x, emb, x * 0.5, t)
    torch.testing.assert_close(ours, theirs)


def test_bf16_with_8bit_adam_trains_lora_in_float32(samples, tmp_path):
    # bf16 autocast and bitsandbytes' AdamW8bit both run on CPU: the GPU recipe's path, end to end.
    config = _config(samples, tmp_path, mixed_precision="bf16", use_8bit_adam=True, checkpointing_steps=3)
    pipe = build_pipeline(config, "cpu", config.mixed_precision)
    frozen = {p.dtype for n, p in pipe.transformer.named_parameters() if "lora_" not in n}
    assert frozen == {torch.bfloat16}
    before = _lora(pipe.transformer)
    assert {p.dtype for p in before.values()} == {torch.float32}
    train(config, pipe)
    after = _lora(pipe.transformer)
    assert all(not torch.equal(before[n], after[n]) for n in after)
    log = _log(Path(config.output_dir))
    # B = 0: policy and reference run the same bf16 ops, so the loss is log 2 (as float32) exactly
    assert log[0]["loss"] == torch.tensor(math.log(2)).item()
    assert all(math.isfinite(r["loss"]) for r in log)
    # The checkpointed optimizer state is bitsandbytes' (its quant-state entry), not torch AdamW's.
    # bitsandbytes keeps tensors under 4096 elements (all of this tiny LoRA) in 32-bit state.
    state = torch.load(Path(config.output_dir) / "checkpoint-3" / "optimizer.bin", weights_only=False)
    assert state["state"] and all("__bnb_optimizer_quant_state__" in s for s in state["state"].values())


def test_rwr_training_weights_errors_by_reward(samples, tmp_path):
    config = _config(samples, tmp_path, algorithm="rwr", temperature=0.5, rwr_weighting="exp")
    pipe = build_pipeline(config, "cpu")
    data, report = load_training_data(config)
    assert report["examples"] == 8
    # per-prompt z-scores: each prompt's 4 candidates have mean 0
    z = torch.tensor(data.rewards).view(2, 4)  # [prompts, candidates] (manifest order)
    torch.testing.assert_close(z.mean(dim=1), torch.zeros(2), atol=1e-4, rtol=0)
    objective = DenoisingObjective(pipe.transformer, pipe.scheduler)
    batch = _batch(config, pipe, data)
    loss, metrics = _loss(objective, batch, config, pipe.transformer)
    with torch.no_grad():
        err = objective(batch["latents"], batch["embeds"], batch["noise"], batch["timesteps"])
    zb = batch["rewards"]
    weights = torch.exp((zb - zb.mean()) / zb.std(unbiased=False) / 0.5)
    torch.testing.assert_close(loss.detach(), weights * err)
    before = _lora(pipe.transformer)
    train(config, pipe)
    after = _lora(pipe.transformer)
    assert all(not torch.equal(before[n], after[n]) for n in after)


def test_batches_and_noise_are_functions_of_seed_and_position():
    # every example once per epoch, epochs reshuffled, batches crossing epoch boundaries
    seen = [i for step in range(5) for i in batch_indices(10, 4, step, seed=3)]  # 20 positions = 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert seen[:10] != seen[10:]
    assert batch_indices(10, 4, 2, seed=3) == seen[8:12]
    assert batch_indices(10, 4, 0, seed=4) != seen[:4]
    a, ta = example_noise(torch.Size([3, 4, 4, 4]), 1000, seed=0, position=7)
    b, tb = example_noise(torch.Size([3, 4, 4, 4]), 1000, seed=0, position=7)
    c, _ = example_noise(torch.Size([3, 4, 4, 4]), 1000, seed=0, position=8)
    assert torch.equal(a, b) and ta == tb and not torch.equal(a, c)


def test_bad_rows_are_reported_or_skipped(samples, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(samples, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["prompts"][0]["candidates"][0]["latents"] = None  # a candidate without latents: skipped, counted
    (broken / "manifest.json").write_text(json.dumps(manifest))
    data, report = load_training_data(_config(broken, tmp_path, algorithm="rwr"))
    assert report["examples"] == 7 and report["skipped"] == 1
    assert report["skipped_rows"][0]["reason"] == "no latents"
    missing = next((broken / "latents").glob("*.safetensors"))
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=missing.name):
        for i in range(len(data)):
            data.load(i)
    with pytest.raises(ValueError, match="algorithm"):
        AlignConfig(algorithm="ppo")


def test_main_reads_the_yaml_config_and_evaluates_during_training(samples, tmp_path):
    out = tmp_path / "cli"
    argv = f"--config {CONFIGS / 'tiny-dpo.yaml'} --data {samples} --output_dir {out} --steps 2"
    argv += " --checkpointing_steps 0 --eval_steps 2 --eval_seeds 0 --eval_num_inference_steps 2"
    assert main([*argv.split(), "--eval_prompts", PROMPTS[0]]) == 0
    log = _log(out)
    assert [r["step"] for r in log] == [1, 2, 2] and "eval/color_match" in log[-1]
    assert 0 < log[-1]["eval/color_match"] <= 1
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["algorithm"] == "dpo" and saved["steps"] == 2
    assert (out / "lora" / cogvideox.LORA_WEIGHTS_NAME).is_file()


def test_resume_continues_with_the_next_loss_of_an_uninterrupted_run(samples, tmp_path):
    full = _config(samples, tmp_path, steps=4, output_dir=str(tmp_path / "full"))
    train(full, build_pipeline(full, "cpu"))
    part = replace(full, output_dir=str(tmp_path / "part"), checkpointing_steps=2, steps=2)
    train(part, build_pipeline(part, "cpu"))
    assert sorted(p.name for p in Path(part.output_dir).iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint-2"
    ]
    # The checkpoint holds the LoRA weights alone: the frozen base is rebuilt from the generator.
    saved = load_file(Path(part.output_dir) / "checkpoint-2" / "model.safetensors")
    assert saved and all("lora_" in name for name in saved)
    resumed = replace(part, steps=4, resume=True)
    summary = train(resumed, build_pipeline(resumed, "cpu"))
    assert summary["resumed_from"] == 2
    losses = {r["step"]: r["loss"] for r in _log(Path(full.output_dir))}
    again = {r["step"]: r["loss"] for r in _log(Path(part.output_dir))}
    assert sorted(again) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert again[step] == pytest.approx(losses[step], rel=1e-5), step


# The learning claims. Recipe (measured on 2 CPU cores): 8 samples of each of the 32 train-split
# captions from the tiny generator, scored by rule:color_match; LoRA on attention, feed-forward and
# adaLN modulation layers. DPO trains on all same-prompt pairs; RWR on the scored samples, and needs
# five times DPO's steps (its "fit every sample" term dominates the reward-dependent part; figures
# in the README, "Measured on the tiny generator").
# Evaluated on the 16 test-split captions (unseen color-shape pairs) with seeds never sampled in
# training, under color_match and the independent motion rule.
LEARN_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
    "norm1.linear",
    "norm2.linear",
    "norm_out.linear",
    "proj_out",
]
SAMPLE_STEPS = 10  # denoising steps of the tiny generator, in training data and evaluation alike
EVAL_SEEDS = [0, 1, 2, 3]
DPO_STEPS, DPO_LEARNING_RATE = 800, 5e-3
RWR_LEARNING_RATE = 1e-2
RWR_STEPS = 4000
RWR_UNIFORM_TEMPERATURE = 1e3  # softmax weights all ~1: a plain fine-tune on the same samples


@pytest.fixture(scope="module")
def color_samples(tmp_path_factory):
    from align.rewards import resolve_reward
    from reward.synthetic import CAPTIONS, caption_split

    out = tmp_path_factory.mktemp("color_samples")
    pipe = cogvideox.load_pipeline("tiny", device="cpu")
    prompts = [c for c in CAPTIONS if caption_split(c) == "train"]
    rerank(
        pipe,
        prompts,
        [resolve_reward("rule:color_match")],
        out,
        n=8,
        seed=1000,
        num_inference_steps=SAMPLE_STEPS,
        guidance_scale=1.0,
        generator_name="tiny",
    )
    save_sample_pairs(out, strategy="all")
    return out


def _gain_and_spread(samples: Path, out: Path, **overrides) -> tuple[float, float, dict]:
    """Train the tiny generator on `samples` with the learning recipe and `overrides`, compare base vs
    tuned on held-out prompts; return color_match's gain, its seed spread (larger of base and tuned),
    and the comparison."""
    from align.evaluation import compare_base_tuned, format_comparison
    from align.rewards import resolve_reward
    from reward.synthetic import CAPTIONS, caption_split

    config = AlignConfig(
        data=str(samples),
        output_dir=str(out),
        train_batch_size=16,
        lora_rank=8,
        lora_alpha=8.0,
        lora_target_modules=LEARN_TARGETS,
        checkpointing_steps=0,
        seed=0,
        **overrides,
    )
    pipe = build_pipeline(config, "cpu")
    train(config, pipe)
    held_out = [c for c in CAPTIONS if caption_split(c) == "test"]
    rewards = [resolve_reward("rule:color_match"), resolve_reward("rule:motion")]
    result = compare_base_tuned(
        pipe,
        held_out,
        EVAL_SEEDS,
        rewards,
        "color_match",
        num_inference_steps=SAMPLE_STEPS,
        guidance_scale=1.0,
    )
    print(format_comparison(result))
    color = result["rewards"]["color_match"]
    return color["gain"], max(color["base"]["seed_std"], color["tuned"]["seed_std"]), result


def test_dpo_raises_the_reward_on_held_out_prompts_and_seeds(color_samples, tmp_path):
    dpo = dict(algorithm="dpo", beta=100.0, steps=DPO_STEPS, learning_rate=DPO_LEARNING_RATE)
    gain, spread, result = _gain_and_spread(color_samples, tmp_path / "dpo", **dpo)
    assert gain > spread > 0, result
    assert "hacking_suspected" in result["rewards"]["motion"]


def test_rwr_raises_the_reward_on_held_out_prompts_and_seeds(color_samples, tmp_path):
    rwr = dict(algorithm="rwr", steps=RWR_STEPS, learning_rate=RWR_LEARNING_RATE)
    gain, spread, result = _gain_and_spread(color_samples, tmp_path / "rwr", temperature=0.25, **rwr)
    assert gain > spread > 0, result
    # The control: the same fine-tune with uniform weights. The gain comes from the reward's weights.
    uniform_gain, _, _ = _gain_and_spread(
        color_samples, tmp_path / "uniform", temperature=RWR_UNIFORM_TEMPERATURE, **rwr
    )
    assert gain > uniform_gain + spread, (gain, uniform_gain, spread)


def test_online_rounds_keep_every_evaluation_and_resume(tmp_path):
    from align.commands.align import main as align_main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "rounds"
    common = [
        "--reward",
        "rule:color_match",
        "--prompts",
        str(prompts),
        "--eval-prompts",
        str(prompts),
        "--eval-reward",
        "rule:motion",
        "--eval-seeds",
        "0",
        "1",
        "--n",
        "2",
        "--steps",
        "2",
        "--sample-steps",
        "2",
        "--config",
        str(CONFIGS / "tiny-dpo.yaml"),
        "--out",
        str(out),
    ]
    assert align_main(["--rounds", "1", *common]) == 0
    first = json.loads((out / "rounds.json").read_text())["rounds"]
    assert align_main(["--rounds", "2", *common]) == 0  # resumes: round 1 is not redone
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2] and rounds[0] == first[0]
    assert set(rounds[1]["rewards"]) == {"color_match", "motion"}
    assert (
        rounds[1]["rewards"]["color_match"]["trained_on"] and not rounds[1]["rewards"]["motion"]["trained_on"]
    )
    assert (
        rounds[0]["rewards"]["color_match"]["base"] == rounds[1]["rewards"]["color_match"]["base"]
    )  # same base samples
    for r in (1, 2):
        evaluation = json.loads((out / f"round-{r}" / "evaluation.json").read_text())
        assert evaluation["seeds"] == [0, 1] and "hacking_suspected" in evaluation["rewards"]["motion"]
        # both sample sets kept for re-measuring, and judged by the independent pixel check
        kept = out / f"round-{r}" / "evaluation"
        assert len((kept / "base" / "samples.jsonl").read_text().splitlines()) == len(PROMPTS) * 2
        assert len(list((kept / "tuned").glob("*.mp4"))) == len(PROMPTS) * 2
        assert (
            set(evaluation["check"]) >= {"prompt_ok", "noise", "frozen"} and (kept / "strips.png").is_file()
        )
    assert (out / "rounds.png").stat().st_size > 0


def test_8bit_adam_quantises_the_state_of_a_lora_large_enough(samples, tmp_path):
    # Rank 128 on the tiny transformer's 32-wide attention: A and B hold 32 x 128 = 4096 elements, the
    # size from which bitsandbytes keeps 8-bit state (smaller tensors stay 32-bit, as above).
    config = _config(samples, tmp_path, use_8bit_adam=True, lora_rank=128, lora_alpha=128.0,
                     lora_target_modules=["to_q", "to_k", "to_v", "to_out.0"], checkpointing_steps=2)  # fmt: skip
    train(config, build_pipeline(config, "cpu"))
    state = torch.load(Path(config.output_dir) / "checkpoint-2" / "optimizer.bin", weights_only=False)[
        "state"
    ]
    quantised = [s["__bnb_optimizer_quant_state__"] for s in state.values()]
    assert len(quantised) == 2 * 4 * 2  # A and B of 4 targets in each of the 2 blocks
    for q in quantised:  # Adam's two moments in uint8 with their per-block scales
        assert q["state1"].dtype == q["state2"].dtype == torch.uint8 and q["state1"].numel() == 4096
        assert q["absmax1"].dtype == torch.float32
