"""Reward backpropagation: only LoRA changes, a reward blind to the video gives zero gradient, the
learned reward's gradient reaches the videos, and a run resumes to the same adapter."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from align.config import AlignConfig
from align.reward_gradient import train_reward_gradient
from align.train import build_pipeline


def _config(out, **extra):
    options = dict(generator="tiny", algorithm="reward_gradient", reward="rule:color_match", output_dir=str(out),
                   steps=2, online_prompts_per_step=2, online_sampling_steps=4, gradient_steps=2, train_batch_size=2,
                   learning_rate=1e-2, lora_rank=4, lora_alpha=4.0, checkpointing_steps=1, seed=0)  # fmt: skip
    return AlignConfig(**{**options, **extra})


def _lora_grads_after_one_step(reward, tmp_path, **extra):
    """Gradient of every LoRA parameter after one step's backward (the optimizer's lr is 0)."""
    config = _config(tmp_path / "grads", steps=1, learning_rate=0.0, checkpointing_steps=0, **extra)
    pipe = build_pipeline(config, "cpu")
    captured = {}
    for name, param in pipe.transformer.named_parameters():
        if param.requires_grad:
            param.register_hook(
                lambda g, name=name: captured.__setitem__(name, captured.get(name, 0) + g.clone())
            )
    train_reward_gradient(config, pipe, reward=reward)
    return captured


def test_only_lora_parameters_change_and_everything_else_is_frozen(tmp_path):
    config = _config(tmp_path / "run")
    pipe = build_pipeline(config, "cpu")
    before = {n: p.detach().clone() for n, p in pipe.transformer.named_parameters()}
    vae_before = {n: p.detach().clone() for n, p in pipe.vae.named_parameters()}
    train_reward_gradient(config, pipe)
    trainable = {n for n, p in pipe.transformer.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    changed = {n for n, p in pipe.transformer.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= trainable
    assert all(torch.equal(p.detach(), vae_before[n]) for n, p in pipe.vae.named_parameters())
    assert (tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors").is_file()


def test_a_reward_that_ignores_the_video_gives_zero_gradient(tmp_path):
    def blind(videos, prompts):  # depends on the graph, not on the pixels' values
        return videos.sum(dim=(1, 2, 3, 4)) * 0.0 + 1.0

    def color(videos, prompts):
        from align.rewards import color_match

        return color_match.fn(videos, prompts, None)

    blind_grads = _lora_grads_after_one_step(blind, tmp_path)
    assert blind_grads and all(float(g.abs().max()) == 0.0 for g in blind_grads.values())
    color_grads = _lora_grads_after_one_step(color, tmp_path)
    assert max(float(g.abs().max()) for g in color_grads.values()) > 0


def test_learned_reward_scores_with_grad_like_the_scorer(tiny_reward_model_dir):
    from align.rewards import differentiable_reward
    from reward.scoring import load_scorer

    prompts = ["a red circle moving left", "a blue square moving up"]
    videos = torch.rand(2, 9, 3, 32, 32, requires_grad=True)
    reward = differentiable_reward(f"{tiny_reward_model_dir}:text_alignment=1+rule:color_match=0.5")
    scores = reward(videos, prompts)
    scores.sum().backward()
    assert scores.shape == (2,) and videos.grad.abs().sum() > 0
    from align.rewards import color_match

    expected = load_scorer(tiny_reward_model_dir)(videos.detach(), prompts, "text_alignment")
    expected = expected + 0.5 * color_match(videos.detach(), prompts)
    torch.testing.assert_close(scores.detach(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="names its dimension"):
        differentiable_reward(str(tiny_reward_model_dir))


def test_resume_continues_to_the_same_adapter(tmp_path):
    straight = tmp_path / "straight"
    train_reward_gradient(_config(straight), build_pipeline(_config(straight), "cpu"))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(straight / "checkpoint-1", resumed / "checkpoint-1")
    config = _config(resumed, resume=True)
    summary = train_reward_gradient(config, build_pipeline(config, "cpu"))
    assert summary["resumed_from"] == 1
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert again[-1] == pytest.approx(log[-1], rel=1e-5)
    a = load_file(str(straight / "lora" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(resumed / "lora" / "pytorch_lora_weights.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-7)
