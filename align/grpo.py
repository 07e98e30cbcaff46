"""GRPO for CogVideoX: a policy gradient over denoising steps with group-normalised advantages.

    accelerate launch -m align.train --config configs/align/world-grpo.yaml
    torchrun --nproc_per_node 2 -m align.train --config configs/align/tiny-grpo.yaml       # CPU, gloo
    clevereward align-train --algorithm grpo --reward runs/rm:text_alignment --generator tiny

Each iteration (`steps` of them):
1. sample G trajectories per prompt for `online_prompts_per_step` prompts with stochastic DDIM
   (`align.cogvideox.sample_trajectories`, η = `grpo_eta`), recording every step's log-probability;
2. decode and score each final video once with the reward (`reward`: any spec of
   `align.rewards.resolve_reward`, a weighted mix of a learned model's dimensions included);
3. standardise rewards within each prompt's group (`group_advantages`), after gathering the
   samples of every process, so a group split across processes is normalised as a whole;
4. for `grpo_inner_epochs` passes, for a `grpo_timestep_fraction` of each trajectory's steps,
   recompute the step's log-probability under the current policy and take PPO's clipped
   surrogate (`grpo_clipped_loss`), plus `grpo_kl_coef` x the exact Gaussian KL to the reference
   (the same transformer with its adapters disabled); one optimizer step per micro-batch of
   `train_batch_size` samples.

Design decisions:
- Seeds of sample i of iteration k are (seed, k, i): the global sample list does not depend on
  the number of processes, each process takes an equal slice of it, and gradients are averaged
  across processes, so two processes train like one with the same global batch (tested).
- The behaviour log-probabilities are recomputed before the first update with the training
  forward (same micro-batches, under no_grad), so the first ratio is exactly 1; the sampler's own
  record is logged next to them (`sampling_log_prob_gap`) as a check of the transition arithmetic.
- Checkpoints (`checkpoint-<iteration>`) hold the LoRA, optimizer and RNG states; sampling and
  timestep choices are functions of (seed, iteration), so `--resume` continues with the same next
  loss (tested).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from align import cogvideox
from align.config import AlignConfig
from align.losses import gaussian_kl, group_advantages, grpo_clipped_loss
from align.online_training import OnlineRun, online_rows

__all__ = ["train_grpo"]


def _timestep_choice(config: AlignConfig, iteration: int, row: int, steps: list[int]) -> list[int]:
    """Which of a trajectory's (stochastic) `steps` train: a `grpo_timestep_fraction` share, drawn per (seed, iteration, row)."""
    count = max(1, round(config.grpo_timestep_fraction * len(steps)))
    rng = np.random.default_rng([config.seed, iteration, row, 1])
    return [steps[i] for i in rng.permutation(len(steps))[:count]]


def _step_terms(model, scheduler, traj, rows: list[int], steps: list[int], config: AlignConfig, rotary):
    """(mean, std, recorded x_{t-1}) of trajectory row rows[i] at its step steps[i], one forward of `model`."""
    index, at = torch.tensor(rows), torch.tensor(steps)
    t = traj.timesteps.cpu()[at].to(traj.latents.device)  # [b]
    x_t, x_prev = traj.latents[index, at], traj.latents[index, at + 1]  # [b, F, C, h, w] each
    negative = None if traj.negative_embeds is None else traj.negative_embeds[index]
    v = cogvideox.guided_velocity(model, x_t, t, traj.prompt_embeds[index], negative, config.online_guidance_scale,
                                  rotary)  # fmt: skip
    mean, std = cogvideox.ddim_transition(scheduler, v, t, x_t, config.grpo_eta)
    return mean, std, x_prev


def train_grpo(config: AlignConfig, pipe=None, reward=None, prompts: list[str] | None = None) -> dict:
    """Run (or resume) GRPO on `pipe.transformer`'s LoRA; returns a summary (and writes lora/, log.jsonl)."""
    from align.rerank import prompts_from
    from align.rewards import resolve_reward

    reward = reward or resolve_reward(config.reward)
    prompts = prompts or prompts_from(config.online_prompts)
    total = config.online_prompts_per_step * config.grpo_group_size
    run = OnlineRun.setup(config, pipe, total, config.train_batch_size)
    accelerator, pipe, wrapped, mine = run.accelerator, run.pipe, run.wrapped, run.mine
    transformer, scheduler = pipe.transformer, pipe.scheduler
    share = mine.stop - mine.start
    sample_kwargs = dict(num_inference_steps=config.online_sampling_steps, guidance_scale=config.online_guidance_scale,
                         eta=config.grpo_eta, height=config.eval_height, width=config.eval_width,
                         num_frames=config.eval_num_frames)  # fmt: skip
    progress = tqdm(
        range(run.start, config.steps), desc="align grpo", disable=not accelerator.is_main_process
    )
    last: dict = {}
    for iteration in progress:
        row_prompts, seeds, groups = online_rows(config, prompts, iteration, config.grpo_group_size)
        wrapped.eval()
        traj = cogvideox.sample_trajectories(pipe, row_prompts[mine], seeds[mine], **sample_kwargs)
        videos = cogvideox.decode_latents(pipe, traj.final_latents)  # [b, F, C, H, W]
        rewards = reward(videos, row_prompts[mine])  # [b], once per sample
        all_rewards = accelerator.gather(rewards.to(accelerator.device)).cpu()  # [total], process order
        advantages = group_advantages(all_rewards, torch.tensor(groups), clip=config.grpo_advantage_clip)[
            mine
        ]
        trainable = cogvideox.stochastic_steps(scheduler, traj.timesteps, config.grpo_eta)
        frames, _, height, width = traj.latents.shape[2:]  # [b, K + 1, F, C, h, w]
        rotary = cogvideox.rotary_embeddings(transformer, frames, height, width)
        chosen = [_timestep_choice(config, iteration, mine.start + r, trainable) for r in range(share)]
        batches = [
            list(range(b, b + config.train_batch_size)) for b in range(0, share, config.train_batch_size)
        ]
        # behaviour log-probs with the training forward and batches: the first ratio is exactly 1
        with torch.no_grad():
            old = torch.stack(
                [
                    torch.cat(
                        [
                            _step_log_prob(wrapped, scheduler, traj, rows, chosen, k, config, rotary)
                            for rows in batches
                        ]
                    )
                    for k in range(len(chosen[0]))
                ],
                dim=1,
            )  # [b, n]
        recorded = torch.stack([traj.log_probs[r, chosen[r]] for r in range(share)])  # [b, n]
        gap = float((old - recorded.to(old.device)).abs().mean())
        sums: dict[str, float] = {}
        wrapped.train()
        updates = config.grpo_inner_epochs * len(batches)
        for _ in range(config.grpo_inner_epochs):
            for rows in batches:
                metrics = _update(accelerator, wrapped, transformer, scheduler, traj, rows, chosen, old,
                                  advantages, config, rotary, run.params, run.optimizer)  # fmt: skip
                values = accelerator.reduce(torch.stack(list(metrics.values())), reduction="mean")
                for name, value in zip(metrics, values.tolist()):
                    sums[name] = sums.get(name, 0.0) + value / updates
        last = {"step": iteration + 1, **sums, "reward_mean": float(all_rewards.mean()),
                "reward_std": float(all_rewards.std()), "step_noise_entropy": _noise_entropy(scheduler, traj, config),
                "sampling_log_prob_gap": gap}  # fmt: skip
        run.end_step(config, last)
        progress.set_postfix(reward=f"{last['reward_mean']:.3f}")
    return run.finish({"algorithm": "grpo", "steps": config.steps, "resumed_from": run.start, "last": last,
                       "reward": reward.name, "prompts": len(prompts)})  # fmt: skip


def _step_log_prob(model, scheduler, traj, rows, chosen, k, config, rotary) -> torch.Tensor:
    """log p(x_{t-1} | x_t) [len(rows)] of each row's k-th chosen step, under `model`."""
    mean, std, x_prev = _step_terms(
        model, scheduler, traj, rows, [chosen[r][k] for r in rows], config, rotary
    )
    return cogvideox.gaussian_log_prob(x_prev, mean, std)


def _update(accelerator, wrapped, transformer, scheduler, traj, rows, chosen, old, advantages, config, rotary,
            params, optimizer) -> dict[str, torch.Tensor]:  # fmt: skip
    """One optimizer step on a micro-batch: one forward and backward per chosen-step index, gradients
    synchronised across processes at the last; returns the metrics averaged over the steps."""
    count = len(chosen[rows[0]])
    sums: dict[str, torch.Tensor] = {}
    for k in range(count):
        sync = k == count - 1
        with nullcontext() if sync else accelerator.no_sync(wrapped):
            steps = [chosen[r][k] for r in rows]
            mean, std, x_prev = _step_terms(wrapped, scheduler, traj, rows, steps, config, rotary)
            log_prob = cogvideox.gaussian_log_prob(x_prev, mean, std)  # [b]
            kl = None
            if config.grpo_kl_coef:
                with torch.no_grad(), cogvideox.adapters_disabled(transformer):
                    ref_mean, _, _ = _step_terms(wrapped, scheduler, traj, rows, steps, config, rotary)
                kl = gaussian_kl(mean, ref_mean, std)
            loss, metrics = grpo_clipped_loss(log_prob, old[rows, k], advantages[rows].to(log_prob.device),
                                              config.grpo_clip_range, kl, config.grpo_kl_coef)  # fmt: skip
            accelerator.backward(loss.mean() / count)
        for name, value in {"loss": loss.detach().mean(), **metrics}.items():
            sums[name] = sums.get(name, 0.0) + value / count
    accelerator.clip_grad_norm_(params, config.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad()
    return sums


def _noise_entropy(scheduler, traj, config) -> float:
    """Mean differential entropy per latent element of the step noise, 0.5 log(2 pi e sigma^2), over the steps."""
    sigmas = cogvideox.step_std(scheduler, traj.timesteps, config.grpo_eta)  # [K]
    return float(np.mean([0.5 * np.log(2 * np.pi * np.e * float(s) ** 2) for s in sigmas if float(s) > 0]))
