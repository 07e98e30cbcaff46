"""GRPO: the stochastic DDIM transition and its log-probability, the clipped loss and group advantages
(against hand-computed numbers and independent computations), and the trainer's contracts."""

import json
import math
import shutil

import pytest
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file

from align.cogvideox import (
    COGVIDEOX_SCHEDULER,
    ddim_step_with_log_prob,
    ddim_transition,
    gaussian_log_prob,
    stochastic_steps,
)
from align.config import AlignConfig
from align.losses import gaussian_kl, group_advantages, grpo_clipped_loss


def _cogvideox_scheduler(steps: int = 10):
    from diffusers import CogVideoXDDIMScheduler

    scheduler = CogVideoXDDIMScheduler(**COGVIDEOX_SCHEDULER)
    scheduler.set_timesteps(steps)
    return scheduler


def test_eta_zero_mean_is_cogvideox_ddim_step():
    """At eta = 0 the transition's mean is exactly CogVideoXDDIMScheduler.step's output."""
    scheduler = _cogvideox_scheduler()
    torch.manual_seed(0)
    x, v = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    for t in scheduler.timesteps:
        mean, std = ddim_transition(scheduler, v, int(t), x, eta=0.0)
        expected = scheduler.step(v, int(t), x, return_dict=False)[0]
        torch.testing.assert_close(mean, expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(std, torch.zeros(2))


def test_stochastic_step_matches_diffusers_ddim_with_eta():
    """Independent computation: diffusers' DDIMScheduler (which implements eta > 0) given CogVideoX's
    alphas_cumprod and the same variance noise draws the same x_{t-1}."""
    cog = _cogvideox_scheduler()
    ddim = DDIMScheduler(
        **{k: v for k, v in COGVIDEOX_SCHEDULER.items() if k != "snr_shift_scale"}, steps_offset=0
    )
    ddim.alphas_cumprod = cog.alphas_cumprod.clone()  # the SNR-shifted schedule CogVideoX uses
    ddim.set_timesteps(10)
    assert torch.equal(ddim.timesteps, cog.timesteps)
    torch.manual_seed(1)
    x, v = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    for t in cog.timesteps[:-1]:  # the last step has std 0 (set_alpha_to_one)
        z = torch.randn_like(x)
        mean, std = ddim_transition(cog, v, int(t), x, eta=0.7)
        expected = ddim.step(v, int(t), x, eta=0.7, variance_noise=z).prev_sample
        torch.testing.assert_close(mean + std.view(-1, 1, 1, 1, 1) * z, expected, rtol=1e-4, atol=1e-5)


def test_log_prob_is_the_gaussian_density_averaged_over_elements():
    torch.manual_seed(2)
    mean, x = torch.randn(3, 2, 5), torch.randn(3, 2, 5)
    std = torch.tensor([0.5, 1.0, 2.0])
    expected = torch.distributions.Normal(mean, std.view(-1, 1, 1)).log_prob(x).flatten(1).mean(1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, std), expected)
    # by hand, one element: x = mean + std  ->  -1/2 - log(std) - log(sqrt(2 pi))
    one = gaussian_log_prob(torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([1.0]))
    assert float(one) == pytest.approx(-0.5 - 0.5 * math.log(2 * math.pi))


def test_step_records_the_log_prob_of_the_sample_it_draws_and_the_last_step_is_deterministic():
    scheduler = _cogvideox_scheduler(4)
    torch.manual_seed(3)
    x, v = torch.randn(2, 3, 2, 2, 2), torch.randn(2, 3, 2, 2, 2)
    t = int(scheduler.timesteps[0])
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    prev, log_prob = ddim_step_with_log_prob(scheduler, v, t, x, 1.0, gens)
    again, scored = ddim_step_with_log_prob(scheduler, v, t, x, 1.0, prev_sample=prev)
    assert torch.equal(again, prev) and torch.equal(scored, log_prob)
    mean, std = ddim_transition(scheduler, v, t, x, 1.0)
    assert torch.equal(log_prob, gaussian_log_prob(prev, mean, std))
    assert stochastic_steps(scheduler, scheduler.timesteps, 1.0) == [0, 1, 2]  # the last has ab_prev = 1


def test_clipped_loss_by_hand():
    log_prob = torch.tensor([0.0, 0.1, 0.1, -0.1], requires_grad=True)
    old = torch.zeros(4)
    advantages = torch.tensor([1.0, -1.0, 2.0, 2.0])
    loss, metrics = grpo_clipped_loss(log_prob, old, advantages, clip_range=0.05)
    up, down = math.exp(0.1), math.exp(-0.1)
    # loss = max(-A r, -A clip(r)): the pessimistic one. Row 2 (A > 0, r > 1 + eps) is clipped to
    # -A (1 + eps); rows 1 (A < 0, r > 1 + eps) and 3 (A > 0, r < 1 - eps) keep -A r.
    assert loss.tolist() == pytest.approx([-1.0, up, -2.0 * 1.05, -2.0 * down])
    assert float(metrics["clip_fraction"]) == pytest.approx(3 / 4)  # |r - 1| > eps
    assert float(metrics["approx_kl"]) == pytest.approx(0.5 * 3 * 0.01 / 4)
    loss.sum().backward()
    # d/dlogp of -A r is -A r; the clipped row has none
    assert log_prob.grad.tolist() == pytest.approx([-1.0, up, 0.0, -2.0 * down])


def test_at_the_first_update_ratio_is_one_and_clipping_changes_nothing():
    log_prob = torch.tensor([-1.3, 0.4, 2.0], requires_grad=True)
    advantages = torch.tensor([0.5, -2.0, 1.0])
    loss, metrics = grpo_clipped_loss(log_prob, log_prob.detach().clone(), advantages, clip_range=1e-4)
    assert loss.tolist() == pytest.approx((-advantages).tolist())
    assert float(metrics["ratio"]) == 1.0 and float(metrics["clip_fraction"]) == 0.0
    loss.sum().backward()
    assert log_prob.grad.tolist() == pytest.approx((-advantages).tolist())  # -A grad log p


def test_group_advantages_and_kl_by_hand():
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 7.0, 9.0])
    groups = torch.tensor([0, 0, 0, 4, 4, 2, 2])
    a = group_advantages(rewards, groups)
    s = math.sqrt(2 / 3)  # population std of 1, 2, 3
    assert a.tolist() == pytest.approx([-1 / s, 0.0, 1 / s, 0.0, 0.0, -1.0, 1.0], abs=1e-4)
    assert group_advantages(rewards, groups, clip=1.0).max() == pytest.approx(1.0)
    kl = gaussian_kl(torch.tensor([[1.0, 3.0], [1.0, 1.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]]),
                     torch.tensor([2.0, 1.0]))  # fmt: skip
    assert kl.tolist() == pytest.approx([(1 / 8 + 4 / 8) / 2, 0.5])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="reward"):
        AlignConfig(algorithm="grpo")
    with pytest.raises(ValueError, match="grpo_eta"):
        AlignConfig(algorithm="grpo", reward="rule:color_match", grpo_eta=0.0)
    with pytest.raises(ValueError, match="grpo_timestep_fraction"):
        AlignConfig(algorithm="grpo", reward="rule:color_match", grpo_timestep_fraction=0.0)


def _grpo_args(out, steps, **extra):
    options = dict(output_dir=str(out), steps=steps, online_prompts_per_step=2,
                   grpo_group_size=2, online_sampling_steps=4, train_batch_size=4, learning_rate=1e-2,
                   checkpointing_steps=1, grpo_kl_coef=0.1, **extra)  # fmt: skip
    return ["--config", "configs/align/tiny-grpo.yaml", *[f"--{k}={v}" for k, v in options.items()]]


def test_trainer_logs_ratio_one_checkpoints_and_resumes_to_the_same_adapter(tmp_path):
    """2 iterations straight vs 1, a kill, and --resume: the same log and the same LoRA after iteration 2."""
    from align.train import main

    straight = tmp_path / "straight"
    assert main(_grpo_args(straight, 2)) == 0
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    for record in log:  # one inner epoch, one micro-batch: every update starts on-policy
        assert record["ratio"] == 1.0 and record["clip_fraction"] == 0.0
        assert record["sampling_log_prob_gap"] < 1e-5
        assert record["step_noise_entropy"] < 10 and record["reward_std"] > 0
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(straight / "checkpoint-1", resumed / "checkpoint-1")
    assert main(_grpo_args(resumed, 2, resume="true")) == 0
    again = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert again[-1] == pytest.approx(log[-1], rel=1e-5)
    a = load_file(str(straight / "lora" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(resumed / "lora" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-7)
    changed = [n for n in a if "lora_B" in n and a[n].abs().sum() > 0]
    assert changed, "GRPO left every LoRA B at zero"
