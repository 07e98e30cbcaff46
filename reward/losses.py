"""Preference losses on rewards: pure tensor functions returning one value per pair.

`chosen` / `rejected` are the rewards r_c, r_r of each pair's two videos (shape `[B]`), d = r_c − r_r.
Rewards live on the scale of the model's logits (CleveReward: temperature × cosine, so |d| can
reach 2 × temperature); margins are in the same units.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bradley_terry_loss", "rao_kupper_loss", "score_regression_loss", "center_rewards_penalty"]


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None
) -> torch.Tensor:
    """Bradley–Terry with margin: ℓ = −log σ(r_c − r_r − m), per pair → `[B]`.

    m ≥ 0 asks the chosen reward to win by at least m (TRL's `margin`; Touvron et al. 2023,
    Llama 2, Eq. 2). m = 0 gives the plain Bradley–Terry negative log-likelihood.
    """
    d = chosen - rejected
    if margin is not None:
        d = d - margin
    return -F.logsigmoid(d)


def rao_kupper_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    tie: torch.Tensor,
    nu: torch.Tensor | float,
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bradley–Terry with ties (Rao & Kupper 1967): negative log-likelihood per pair → `[B]`.

    With ν = log θ > 0 (θ ≥ 1 widens the band of rewards read as a tie) and d = r_c − r_r:

        P(c ≻ r) = σ(d − ν),   P(r ≻ c) = σ(−d − ν),   P(tie) = 1 − P(c ≻ r) − P(r ≻ c).

    Strict pairs (`tie` False) pay −log σ(d − m − ν); tied pairs pay −log P(tie), computed stably as

        log P(tie) = log(e^{2ν} − 1) + r_c + r_r − logaddexp(r_c, r_r + ν) − logaddexp(r_r, r_c + ν),

    whose gradient pulls the two rewards together (P(tie) peaks at d = 0). ν is fixed or learned
    (keep it > 0: at ν = 0 a tie has probability 0); a typical start is ν = 1 on logits whose
    gaps are a few units. `margin` shifts strict pairs only, as in `bradley_terry_loss`.
    """
    nu = torch.as_tensor(nu, dtype=chosen.dtype, device=chosen.device)
    d = chosen - rejected
    if margin is not None:
        d = d - margin
    strict = -F.logsigmoid(d - nu)
    # log(e^{2ν} − 1) = 2ν + log(1 − e^{−2ν}), finite and accurate for every ν > 0.
    log_tie_scale = 2 * nu + torch.log(-torch.expm1(-2 * nu))
    log_tie = (
        log_tie_scale
        + chosen
        + rejected
        - torch.logaddexp(chosen, rejected + nu)
        - torch.logaddexp(rejected, chosen + nu)
    )
    return torch.where(tie.bool(), -log_tie, strict)


def score_regression_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    chosen_score: torch.Tensor,
    rejected_score: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Pointwise regression on normalised scores (the supervised baseline), per pair → `[B]`:

        ℓ = ½ [(r_c − s · (y_c − ½))² + (r_r − s · (y_r − ½))²]

    y_c, y_r in [0, 1] are the two videos' per-source normalised scores (`chosen_score`,
    `rejected_score`), s (`scale`) maps a unit of score to reward units, centred on 0. Each video
    is fitted on its own; the pairing only says which videos share a prompt. A pair without scores
    (NaN: a vote, or an A / B label) gives NaN: keep only scored pairs.
    """
    target_chosen = scale * (chosen_score - 0.5)
    target_rejected = scale * (rejected_score - 0.5)
    return 0.5 * ((chosen - target_chosen) ** 2 + (rejected - target_rejected) ** 2)


def center_rewards_penalty(chosen: torch.Tensor, rejected: torch.Tensor, coefficient: float) -> torch.Tensor:
    """TRL's reward-centering term, per pair: c · (r_c + r_r)², c ≈ 0.01 (Eisenstein et al. 2023, Eq. 2).

    TRL adds c · mean((r_c + r_r)²) to the batch loss; the mean of this per-pair value is the same.
    """
    return coefficient * (chosen + rejected) ** 2
