"""Alignment losses: Diffusion-DPO, reward-weighted regression, GRPO's clipped policy gradient and
group advantages, as pure tensor functions.

DPO and RWR take per-example denoising errors `err [B]` (from `align.cogvideox.denoising_error`: the
x0-error of CogVideoX's v-prediction weighted by 1 / (1 - alpha_bar_t), averaged over every
non-batch dimension) and return `(loss [B], metrics)`. The caller reduces the loss (mean) and
logs the metrics; nothing here knows about models, schedulers or configs.

Design decisions:
- Per-example losses, so gradient accumulation and multi-process averaging stay the caller's.
- Metrics are detached floats-in-tensors (scalars), cheap to gather and log.
- Reward weights are detached: RWR is a weighted regression, not a policy gradient through r.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "RWR_WEIGHTINGS",
    "diffusion_dpo_loss",
    "reward_weighted_loss",
    "group_advantages",
    "grpo_clipped_loss",
    "gaussian_kl",
]

RWR_WEIGHTINGS: tuple[str, ...] = ("softmax", "exp")
# Keeps the standardised reward finite when every reward in the batch is equal (std = 0).
_STD_EPS = 1e-6


def diffusion_dpo_loss(
    policy_err_w: torch.Tensor,
    policy_err_l: torch.Tensor,
    ref_err_w: torch.Tensor,
    ref_err_l: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Diffusion-DPO (Wallace et al., 2023, eq. 14) on per-example denoising errors.

        inside_i = -beta / 2 * ((e_w - e_w_ref) - (e_l - e_l_ref))
        loss_i   = -log sigmoid(inside_i)

    `e_w`, `e_l` are the policy's errors on the chosen (winner) and rejected (loser) latents,
    `e_*_ref` the frozen reference's, all at the SAME noise and timestep per pair. The loss falls
    when the policy improves on the reference more for the winner than for the loser. With equal
    policy and reference (LoRA B = 0 at step 0) inside = 0 and the loss is exactly log 2.

    Scale of beta. The paper writes -beta * T * w(lambda_t) * (...); the reference code
    (SalesforceAIResearch/DiffusionDPO, diffusers' research example) folds T * w(lambda_t) and
    the 1/2 into one constant on errors averaged over pixels: our `beta` is that code's
    `beta_dpo` (5000 for SD 1.5 / SDXL with epsilon-prediction), i.e. the paper's beta * T = beta / 2
    with w constant. Our errors are CogVideoX's x0-errors weighted by 1 / (1 - alpha_bar), which
    equal the v-prediction MSE = epsilon-MSE / alpha_bar: the paper's scale, so for pretrained
    CogVideoX start in the paper's range (1000-5000; not measured here, no GPU). Measured on the
    tiny random CogVideoX (tests, lr 1e-2): (e - e_ref) is ~1e-3 after a few steps and 4e-2 to
    7e-2 after 400, the pair difference inside the brackets ~2.5e-2, so beta = 100 puts the
    logit near 1 (beta = 1000-5000 saturates the sigmoid there). Rule: choose beta so that the
    logged `reward_margin` stays O(1).

    Returns (loss [B], metrics) with metrics (scalars, detached):
        implicit_acc     fraction of pairs with inside > 0 (the policy prefers the winner more
                         than the reference does)
        reward_margin    mean of inside (the implicit reward margin r_w - r_l)
        reward_chosen    mean of -beta / 2 * (e_w - e_w_ref)
        reward_rejected  mean of -beta / 2 * (e_l - e_l_ref)
        policy_err_w, policy_err_l, ref_err_w, ref_err_l   mean errors
    """
    shapes = {t.shape for t in (policy_err_w, policy_err_l, ref_err_w, ref_err_l)}
    if len(shapes) != 1 or policy_err_w.dim() != 1:
        raise ValueError(f"diffusion_dpo_loss expects four errors of one shape [B], got {sorted(shapes)}")
    scale = -0.5 * beta
    reward_chosen = scale * (policy_err_w - ref_err_w)  # [B]
    reward_rejected = scale * (policy_err_l - ref_err_l)  # [B]
    inside = reward_chosen - reward_rejected  # [B]
    loss = -F.logsigmoid(inside)
    metrics = {
        "implicit_acc": (inside > 0).float().mean(),
        "reward_margin": inside.mean(),
        "reward_chosen": reward_chosen.mean(),
        "reward_rejected": reward_rejected.mean(),
        "policy_err_w": policy_err_w.mean(),
        "policy_err_l": policy_err_l.mean(),
        "ref_err_w": ref_err_w.mean(),
        "ref_err_l": ref_err_l.mean(),
    }
    return loss, {k: v.detach() for k, v in metrics.items()}


def reward_weighted_loss(
    err: torch.Tensor,
    rewards: torch.Tensor,
    temperature: float,
    weighting: str = "softmax",
    max_weight: float = 10.0,
    batch_rewards: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Reward-weighted regression (Peters & Schaal, 2007; Lee et al., 2023 for diffusion).

        loss_i = w_i * err_i,   w detached and clipped to max_weight

    `weighting` picks w from the batch's rewards r [B]:
        "softmax"  w = B * softmax(r / T): weights sum to B (mean 1), so the loss keeps the plain
                   denoising loss's scale; T is in the reward's own units (for rewards in [0, 1],
                   T around 0.05-0.2 favours the best samples strongly, T >> 1 is plain fine-tuning).
        "exp"      w = exp(z / T) with z = (r - mean(r)) / std(r) (advantage-weighted regression,
                   Peng et al., 2019): scale-free in r, T in standard deviations (0.5-2 typical);
                   not renormalised, so a batch of equal rewards trains with weight 1.
    `max_weight` caps any one sample's weight, so one lucky sample cannot dominate a step.
    `batch_rewards` [N]: the rewards of the whole batch the weights are normalised over (B, mean
    and std above become those of `batch_rewards`), e.g. the global batch when each of several
    processes holds a slice; default `rewards`. So N processes weight exactly like one.

    Returns (loss [B], metrics) with metrics (scalars, detached): weight_mean, weight_max,
    reward_mean, err (mean error).
    """
    if err.dim() != 1 or err.shape != rewards.shape:
        raise ValueError(
            f"reward_weighted_loss expects err and rewards of one shape [B], got {err.shape}, {rewards.shape}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rewards = rewards.detach().float()
    pool = rewards if batch_rewards is None else batch_rewards.detach().float().to(rewards.device)
    if weighting == "softmax":
        # B * softmax(r / T) over the pool, for this slice's rewards
        weights = (
            pool.numel()
            * torch.exp((rewards - pool.max()) / temperature)
            / torch.exp((pool - pool.max()) / temperature).sum()
        )
    elif weighting == "exp":
        z = (rewards - pool.mean()) / pool.std(unbiased=False).clamp_min(_STD_EPS)
        weights = torch.exp(z / temperature)
    else:
        raise ValueError(f"weighting must be one of {RWR_WEIGHTINGS}, got {weighting!r}")
    weights = weights.clamp(max=max_weight).to(err.dtype)
    loss = weights * err
    metrics = {
        "weight_mean": weights.mean(),
        "weight_max": weights.max(),
        "reward_mean": rewards.mean(),
        "err": err.detach().mean(),
    }
    return loss, metrics


def group_advantages(rewards: torch.Tensor, groups: torch.Tensor, clip: float | None = None) -> torch.Tensor:
    """GRPO's advantages: each reward standardised within its group (the G samples of one prompt).

        A_i = (r_i - mean_{j in g(i)} r_j) / (std_{j in g(i)} r_j + eps)

    `rewards` float [B], `groups` long [B] (a group id per sample; ids need not be contiguous). A
    group whose rewards are all equal gets advantages 0. Population std (unbiased=False), as DDPO.
    `clip`: advantages are clamped to [-clip, clip] (DDPO's adv_clip_max), None leaves them.
    """
    if rewards.dim() != 1 or rewards.shape != groups.shape:
        raise ValueError(f"rewards and groups must both be [B], got {rewards.shape}, {groups.shape}")
    rewards = rewards.detach().float()
    advantages = torch.zeros_like(rewards)
    for group in groups.unique():
        member = groups == group
        values = rewards[member]
        advantages[member] = (values - values.mean()) / (values.std(unbiased=False) + _STD_EPS)
    return advantages if clip is None else advantages.clamp(-clip, clip)


def gaussian_kl(mean: torch.Tensor, ref_mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2 I) || N(ref_mean, std^2 I)) per element, averaged over non-batch dims: [B].

        KL = mean_j (mean_j - ref_mean_j)^2 / (2 std^2)

    Two DDIM transitions from the same x_t share their std, so this is the exact per-step KL
    between the policy and the reference (averaged per element, like the log-probabilities).
    `std` is one per row, [B].
    """
    sigma = std.view(-1, *([1] * (mean.dim() - 1)))  # [B] -> [B, 1, ...]
    return ((mean.float() - ref_mean.float()) ** 2 / (2 * sigma**2)).flatten(1).mean(dim=1)


def grpo_clipped_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    kl: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate on one denoising step per sample (DDPO, Black et al., 2023; GRPO).

        ratio_i = exp(log p_theta(x_{t-1} | x_t) - log p_old(x_{t-1} | x_t))
        loss_i  = max(-A_i * ratio_i, -A_i * clip(ratio_i, 1 - eps, 1 + eps)) + kl_coef * KL_i

    `log_prob` [B] is the current policy's (with gradient), `old_log_prob` [B] the sampling
    policy's, `advantages` [B] detached, `kl` [B] the step's KL to the reference (or None). At the
    first update of a batch the policy is the sampling policy: ratio = 1 and the clipped loss
    equals the unclipped one (-A_i), and its gradient is -A_i * grad log p.

    Returns (loss [B], metrics) with metrics (scalars, detached): ratio (mean), clip_fraction
    (share with |ratio - 1| > eps), approx_kl (mean of (log p - log p_old)^2 / 2, DDPO's
    estimator), kl (mean KL to the reference, 0 without one), advantage (mean |A|).
    """
    shapes = {t.shape for t in (log_prob, old_log_prob, advantages)}
    if len(shapes) != 1 or log_prob.dim() != 1:
        raise ValueError(
            f"grpo_clipped_loss expects log_prob, old_log_prob, advantages of one shape [B], got {sorted(shapes)}"
        )
    if clip_range <= 0:
        raise ValueError(f"clip_range must be > 0, got {clip_range}")
    advantages = advantages.detach().float()
    log_ratio = log_prob - old_log_prob.detach()
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    loss = torch.maximum(unclipped, clipped)
    kl_value = torch.zeros_like(loss) if kl is None else kl
    loss = loss + kl_coef * kl_value
    metrics = {
        "ratio": ratio.mean(),
        "clip_fraction": ((ratio - 1).abs() > clip_range).float().mean(),
        "approx_kl": 0.5 * (log_ratio**2).mean(),
        "kl": kl_value.mean(),
        "advantage": advantages.abs().mean(),
    }
    return loss, {k: v.detach() for k, v in metrics.items()}
