"""Reward backpropagation for CogVideoX (DRaFT-K / ReFL style): the learned reward's gradient, through
the last denoising steps and the VAE decoder, into the LoRA weights.

    accelerate launch -m align.train --config configs/align/world-reward-gradient.yaml
    clevereward align-train --algorithm reward_gradient --reward runs/rm:text_alignment --generator tiny

Each step samples one video per prompt for `online_prompts_per_step` prompts with CogVideoX's
deterministic DDIM (η = 0): the first `online_sampling_steps - gradient_steps` steps without
gradients, the last `gradient_steps` (K) with them; decodes (optionally only the first
`decode_latent_frames` latent frames, optionally with the decoder checkpointed) and maximises

    loss = -mean_b r(decode(x_0^b), prompt_b) + anchor_coef * mean_k ||v_theta(x_k) - v_ref(x_k)||^2

where v_ref is the same transformer with its adapters disabled (an anchor against reward hacking).
The reward is `align.rewards.differentiable_reward(reward)`: a dual-encoder reward model's dimension
(its frame sampling, resize and normalisation are tensor arithmetic), rule rewards, or a mix.

Design decisions:
- Only LoRA parameters have `requires_grad`; the reward model, the VAE and the base transformer
  are frozen, so the optimizer can change nothing else (tested), and a reward that does not
  depend on the video gives exactly zero gradient (tested).
- Rows, seeds and the initial noise are functions of (seed, step) (`online_rows`), so two
  processes train like one with the same global batch and `--resume` continues exactly.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from align import cogvideox
from align.config import AlignConfig
from align.online_training import OnlineRun, online_rows

__all__ = ["train_reward_gradient"]


def train_reward_gradient(
    config: AlignConfig, pipe=None, reward=None, prompts: list[str] | None = None
) -> dict:
    """Run (or resume) reward backpropagation on `pipe.transformer`'s LoRA; returns a summary.

    `reward(videos, prompts) -> [B]` must be differentiable in `videos` (default:
    `differentiable_reward(config.reward)`).
    """
    from align.rerank import prompts_from
    from align.rewards import differentiable_reward

    reward = reward or differentiable_reward(config.reward)
    prompts = prompts or prompts_from(config.online_prompts)
    run = OnlineRun.setup(config, pipe, config.online_prompts_per_step, config.train_batch_size)
    accelerator, pipe, wrapped, mine = run.accelerator, run.pipe, run.wrapped, run.mine
    transformer, scheduler = pipe.transformer, pipe.scheduler
    pipe.vae.requires_grad_(False)
    if config.checkpoint_decoder:
        pipe.vae.enable_gradient_checkpointing()
    shape, padding = cogvideox.latent_shape(
        pipe, config.eval_height, config.eval_width, config.eval_num_frames
    )
    rotary = cogvideox.rotary_embeddings(transformer, *shape[:1], *shape[2:])
    guided = config.online_guidance_scale > 1
    progress = tqdm(range(run.start, config.steps), desc="align reward_gradient",
                    disable=not accelerator.is_main_process)  # fmt: skip
    last: dict = {}
    for step in progress:
        row_prompts, seeds, _ = online_rows(config, prompts, step)
        step_prompts = row_prompts[mine]
        embeds, negative = cogvideox.encode_prompts(pipe, step_prompts, do_classifier_free_guidance=guided)
        x, _ = cogvideox.initial_noise(pipe, seeds[mine], shape, accelerator.device)
        scheduler.set_timesteps(config.online_sampling_steps, device=accelerator.device)
        first_grad = len(scheduler.timesteps) - config.gradient_steps
        anchor = torch.zeros((), device=accelerator.device)
        wrapped.train()
        for k, t in enumerate(scheduler.timesteps):
            with torch.set_grad_enabled(k >= first_grad):
                # the bare transformer: K forwards feed one backward, which DDP's reducer does not allow
                v = cogvideox.guided_velocity(transformer, x, int(t), embeds, negative, config.online_guidance_scale,
                                              rotary)  # fmt: skip
                if k >= first_grad and config.anchor_coef:
                    with torch.no_grad(), cogvideox.adapters_disabled(transformer):
                        v_ref = cogvideox.guided_velocity(transformer, x, int(t), embeds, negative,
                                                          config.online_guidance_scale, rotary)  # fmt: skip
                    anchor = anchor + ((v - v_ref) ** 2).mean() / config.gradient_steps
                x, _ = cogvideox.ddim_transition(scheduler, v, int(t), x, eta=0.0)  # the deterministic step
        videos = cogvideox.decode_with_grad(
            pipe, x[:, padding:], config.decode_latent_frames
        )  # [b, F, C, H, W]
        rewards = reward(videos, step_prompts)  # [b]
        loss = -rewards.mean() + config.anchor_coef * anchor
        accelerator.backward(loss)
        run.average_gradients()  # what DDP would have done
        grad_norm = accelerator.clip_grad_norm_(run.params, config.max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad()
        values = torch.stack(
            [loss.detach(), rewards.detach().mean(), anchor.detach(), torch.as_tensor(grad_norm).float()]
        )
        values = accelerator.reduce(values.to(accelerator.device), reduction="mean")
        last = dict(zip(["step", "loss", "reward_mean", "anchor", "grad_norm"], [step + 1, *values.tolist()]))
        run.end_step(config, last)
        progress.set_postfix(reward=f"{last['reward_mean']:.3f}")
    return run.finish({"algorithm": "reward_gradient", "steps": config.steps, "resumed_from": run.start,
                       "last": last, "prompts": len(prompts)})  # fmt: skip
