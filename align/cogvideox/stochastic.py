"""Stochastic DDIM sampling of CogVideoX that records each transition's log-probability (for GRPO).

CogVideoX's schedulers step deterministically (η = 0): x_{t-1} = a_t x_t + b_t x0_hat. With
η > 0 DDIM (Song et al., 2021, eq. 12) makes every step a Gaussian transition

    x0_hat  = sqrt(ab_t) x_t - sqrt(1 - ab_t) v             (v-prediction)
    eps_hat = sqrt(ab_t) v + sqrt(1 - ab_t) x_t
    sigma_t = eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev)
    mean_t  = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma_t^2) eps_hat
    x_{t-1} ~ N(mean_t, sigma_t^2 I)

with ab = the scheduler's `alphas_cumprod` (its SNR shift and zero-terminal-SNR rescaling
included) and prev = t - T / n as CogVideoXDDIMScheduler.step computes it. At η = 0 the mean
is exactly that step's output (tested), so the policy being optimised is the sampler users run.

Design decisions:
- The log-probability of a transition is the Gaussian log-density averaged (not summed) over
  the latent's elements, as DDPO does: a ratio exp(log p - log p_old) then stays O(1) for latents
  of any size, and the PPO clip range is per element (DDPO's 1e-4 scale).
- Classifier-free guidance is part of the policy: v = v_u + g (v_c - v_u) at sampling and when
  the log-probability is recomputed for training.
- Initial noise is drawn per row from `torch.Generator(seed)` (CPU), the step noise per row and
  step from the same generator, so a row's trajectory does not depend on its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from align.cogvideox.sampling import _check_size, default_video_size, encode_prompts, latent_frame_count
from align.cogvideox.training import _unwrap, rotary_embeddings

__all__ = [
    "Trajectories",
    "ddim_transition",
    "gaussian_log_prob",
    "ddim_step_with_log_prob",
    "step_std",
    "stochastic_steps",
    "initial_noise",
    "latent_shape",
    "guided_velocity",
    "sample_trajectories",
]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _timesteps(timestep: int | torch.Tensor, batch: int, device) -> torch.Tensor:
    """One timestep per row, long [B], from an int or a [B] tensor."""
    t = torch.as_tensor(timestep, device=device).long()
    return t.expand(batch) if t.dim() == 0 else t


def _rows(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row [B] tensor shaped to broadcast over `like` [B, ...]."""
    return x.view(-1, *([1] * (like.dim() - 1)))


def _alpha_bars(scheduler, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ab_t, ab_prev) [B] of DDIM steps from `timesteps` [B], as CogVideoXDDIMScheduler.step picks them."""
    prev = timesteps - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas = scheduler.alphas_cumprod.to(timesteps.device).float()
    final = torch.as_tensor(float(scheduler.final_alpha_cumprod), device=timesteps.device)
    return alphas[timesteps], torch.where(prev >= 0, alphas[prev.clamp_min(0)], final)


def _std(ab_t: torch.Tensor, ab_prev: torch.Tensor, eta: float) -> torch.Tensor:
    """sigma_t of the module docstring, per row."""
    return eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).clamp_min(0).sqrt()


def step_std(scheduler, timesteps: torch.Tensor, eta: float) -> torch.Tensor:
    """sigma_t [K] of the DDIM steps starting at `timesteps` [K] (0 for a deterministic step)."""
    return _std(*_alpha_bars(scheduler, timesteps.long()), eta)


def ddim_transition(
    scheduler, v: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor, eta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean `[B, ...]` and standard deviation `[B]` of the DDIM transition from `sample` at `timestep`.

    `timestep` is one int for the batch or a long `[B]` (each row at its own step); `v` is the
    (guided) v-prediction there. The formula is the module docstring's.
    """
    if scheduler.num_inference_steps is None:
        raise ValueError("call scheduler.set_timesteps(num_inference_steps) before stepping")
    ab_t, ab_prev = _alpha_bars(scheduler, _timesteps(timestep, sample.shape[0], sample.device))
    std = _std(ab_t, ab_prev, eta)  # [B]
    x_t, v = sample.float(), v.float()
    a, b = _rows(ab_t, x_t), _rows(ab_prev, x_t)
    x0_hat = a.sqrt() * x_t - (1 - a).sqrt() * v
    eps_hat = a.sqrt() * v + (1 - a).sqrt() * x_t
    mean = b.sqrt() * x0_hat + (1 - b - _rows(std, x_t) ** 2).clamp_min(0).sqrt() * eps_hat
    return mean, std


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, std^2 I) averaged over every non-batch element: float `[B]` (`std` [B]).

    log p = mean_j [ -(x_j - mean_j)^2 / (2 std^2) - log std - log sqrt(2 pi) ]
    """
    if bool((std <= 0).any()):
        raise ValueError("a transition is deterministic (std = 0): sample with eta > 0")
    sigma = _rows(std, mean)
    density = -((x.float() - mean) ** 2) / (2 * sigma**2) - torch.log(sigma) - _LOG_SQRT_2PI
    return density.flatten(1).mean(dim=1)


def ddim_step_with_log_prob(
    scheduler,
    v: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    eta: float,
    generators: list[torch.Generator] | None = None,
    prev_sample: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One stochastic DDIM step: (x_{t-1} `[B, ...]`, its log-probability `[B]`).

    Draws x_{t-1} with one CPU generator per row, or scores a given `prev_sample` (training). The
    last step of a schedule with `set_alpha_to_one` (ab_prev = 1) has std 0: it is deterministic,
    x_{t-1} is its mean and its log-probability is recorded as 0 (it has no density and is never
    trained; `stochastic_steps` leaves it out).
    """
    mean, std = ddim_transition(scheduler, v, timestep, sample, eta)
    if prev_sample is None:
        noise = torch.stack([torch.randn(mean.shape[1:], generator=g) for g in generators]).to(mean.device)
        prev_sample = mean + _rows(std, mean) * noise
    random = std > 0
    log_prob = torch.zeros(mean.shape[0], device=mean.device)
    if bool(random.any()):
        log_prob[random] = gaussian_log_prob(prev_sample[random], mean[random], std[random])
    return prev_sample, log_prob


def stochastic_steps(scheduler, timesteps: torch.Tensor, eta: float) -> list[int]:
    """Indices of the steps of `timesteps` whose DDIM transition has std > 0 (the ones a policy gradient trains)."""
    std = step_std(scheduler, timesteps, eta)
    return [k for k in range(len(timesteps)) if float(std[k]) > 0]


def latent_shape(
    pipe, height: int | None = None, width: int | None = None, num_frames: int | None = None
) -> tuple[tuple[int, int, int, int], int]:
    """The latent shape [F_lat, C, h, w] a video of this size starts from, and its padding frames.

    Sizes default to `default_video_size(pipe)` and are checked as `generate` checks them;
    CogVideoX 1.5 (patch_size_t) gets leading padding frames, as its pipeline adds.
    """
    default_height, default_width, default_frames = default_video_size(pipe)
    height, width, num_frames = height or default_height, width or default_width, num_frames or default_frames
    _check_size(pipe, height, width)
    latent_frames = latent_frame_count(pipe, num_frames)
    config = _unwrap(pipe.transformer).config
    padding = -latent_frames % config.patch_size_t if config.patch_size_t else 0
    factor = pipe.vae_scale_factor_spatial
    return (latent_frames + padding, config.in_channels, height // factor, width // factor), padding


def initial_noise(
    pipe, seeds: list[int], shape: tuple[int, ...], device
) -> tuple[torch.Tensor, list[torch.Generator]]:
    """(x_T [B, *shape] on `device`, the row generators): row i from `torch.Generator("cpu").manual_seed(seeds[i])`,
    times the scheduler's initial sigma; stochastic steps go on drawing from the same generators."""
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)  # [B, F, C, h, w]
    return x * pipe.scheduler.init_noise_sigma, generators


def guided_velocity(
    transformer,
    sample: torch.Tensor,
    timestep: int | torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_embeds: torch.Tensor | None,
    guidance_scale: float,
    image_rotary_emb=None,
) -> torch.Tensor:
    """v = v_u + g (v_c - v_u) at `sample` [B, F, C, h, w] (just v_c without guidance): float `[B, F, C, h, w]`.

    `timestep`: one int, or long [B] (each row at its own step). One transformer call.
    """
    base = _unwrap(transformer)
    guided = guidance_scale > 1 and negative_embeds is not None
    t = _timesteps(timestep, sample.shape[0], sample.device)
    x = torch.cat([sample, sample]) if guided else sample
    embeds = torch.cat([negative_embeds, prompt_embeds]) if guided else prompt_embeds
    t = torch.cat([t, t]) if guided else t
    v = transformer(
        hidden_states=x.to(base.dtype),
        encoder_hidden_states=embeds.to(base.dtype),
        timestep=t,
        image_rotary_emb=image_rotary_emb,
        return_dict=False,
    )[0].float()
    if not guided:
        return v
    v_uncond, v_cond = v.chunk(2)
    return v_uncond + guidance_scale * (v_cond - v_uncond)


@dataclass
class Trajectories:
    """B sampled denoising trajectories of K steps.

    latents    float [B, K + 1, F_lat, C, h, w]: x_T, ..., x_0 (scaled latents, transformer layout)
    log_probs  float [B, K]: log p(x_{k+1} | x_k) under the sampling policy
    timesteps  long [K]: the timestep of each transition's start
    prompt_embeds, negative_embeds  [B, L, D] (negative None without guidance)
    padding_frames  leading latent frames CogVideoX 1.5 adds (patch_size_t) and decoding drops
    """

    latents: torch.Tensor
    log_probs: torch.Tensor
    timesteps: torch.Tensor
    prompt_embeds: torch.Tensor
    negative_embeds: torch.Tensor | None
    padding_frames: int = 0

    @property
    def final_latents(self) -> torch.Tensor:
        """x_0 without padding frames, [B, F_lat, C, h, w]: what `decode_latents` takes."""
        return self.latents[:, -1, self.padding_frames :]


def sample_trajectories(
    pipe,
    prompts: list[str],
    seeds: list[int],
    num_inference_steps: int,
    guidance_scale: float,
    eta: float,
    height: int | None = None,
    width: int | None = None,
    num_frames: int | None = None,
) -> Trajectories:
    """Sample one trajectory per (prompt, seed) with stochastic DDIM, recording every step's log-probability.

    Sizes default to `default_video_size(pipe)`; decode `.final_latents` with `decode_latents`.
    Runs under no_grad (the recorded log-probabilities are the behaviour policy's).
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: expected one seed per prompt")
    if eta <= 0:
        raise ValueError(f"eta must be > 0 for a stochastic policy, got {eta}")
    shape, padding = latent_shape(pipe, height, width, num_frames)
    transformer, scheduler = pipe.transformer, pipe.scheduler
    device = pipe._execution_device
    guided = guidance_scale > 1
    with torch.no_grad():
        embeds, negative = encode_prompts(pipe, prompts, do_classifier_free_guidance=guided)
    x, generators = initial_noise(pipe, seeds, shape, device)  # [B, F, C, h, w]
    scheduler.set_timesteps(num_inference_steps, device=device)
    rotary = rotary_embeddings(_unwrap(transformer), shape[0], shape[2], shape[3])
    latents, log_probs = [x], []
    with torch.no_grad():
        for t in scheduler.timesteps:
            v = guided_velocity(transformer, x, int(t), embeds, negative, guidance_scale, rotary)
            x, log_prob = ddim_step_with_log_prob(scheduler, v, int(t), x, eta, generators)
            latents.append(x)
            log_probs.append(log_prob)
    return Trajectories(
        latents=torch.stack(latents, dim=1),  # [B, K + 1, F, C, h, w]
        log_probs=torch.stack(log_probs, dim=1),  # [B, K]
        timesteps=scheduler.timesteps.clone(),
        prompt_embeds=embeds,
        negative_embeds=negative if guided else None,
        padding_frames=padding,
    )
