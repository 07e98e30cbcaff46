"""Diffusion-DPO and reward-weighted losses against numbers computed by hand."""

import math

import pytest
import torch

from align.losses import diffusion_dpo_loss, reward_weighted_loss


def _t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_dpo_loss_matches_hand_computed_values():
    # pair 0: (0.10 - 0.12) - (0.20 - 0.18) = -0.04 -> inside = -10 / 2 * -0.04 = 0.2
    # pair 1: (0.30 - 0.30) - (0.10 - 0.20) = 0.10 -> inside = -0.5
    loss, metrics = diffusion_dpo_loss(
        _t(0.10, 0.30), _t(0.20, 0.10), _t(0.12, 0.30), _t(0.18, 0.20), beta=10.0
    )
    expected = [math.log1p(math.exp(-0.2)), math.log1p(math.exp(0.5))]  # -log sigmoid(x) = log(1 + e^-x)
    torch.testing.assert_close(loss, _t(*expected))
    assert loss.tolist() == pytest.approx([0.598138869, 0.974076984], abs=1e-8)
    assert metrics["implicit_acc"].item() == 0.5
    assert metrics["reward_margin"].item() == pytest.approx(-0.15)
    assert metrics["reward_chosen"].item() == pytest.approx(0.05)  # mean(-5 * -0.02, -5 * 0)
    assert metrics["reward_rejected"].item() == pytest.approx(0.2)  # mean(-5 * 0.02, -5 * -0.1)
    assert metrics["policy_err_w"].item() == pytest.approx(0.2)


def test_dpo_loss_is_log2_when_policy_equals_reference():
    err_w, err_l = _t(0.3, 1.7, 0.01), _t(0.5, 0.2, 9.0)
    loss, metrics = diffusion_dpo_loss(err_w, err_l, err_w.clone(), err_l.clone(), beta=5000.0)
    torch.testing.assert_close(loss, torch.full_like(loss, math.log(2)))
    assert metrics["implicit_acc"].item() == 0.0


def test_dpo_gradient_pushes_winner_error_down_and_loser_error_up():
    err_w = _t(0.10, 0.30).requires_grad_()
    err_l = _t(0.20, 0.10).requires_grad_()
    loss, _ = diffusion_dpo_loss(err_w, err_l, _t(0.12, 0.30), _t(0.18, 0.20), beta=10.0)
    loss.sum().backward()
    # dL/de_w = beta / 2 * (1 - sigmoid(inside)); dL/de_l is its negative
    sig = torch.sigmoid(_t(0.2, -0.5))
    torch.testing.assert_close(err_w.grad, 5.0 * (1 - sig))
    torch.testing.assert_close(err_l.grad, -5.0 * (1 - sig))


def test_dpo_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        diffusion_dpo_loss(_t(1.0, 2.0), _t(1.0), _t(1.0, 2.0), _t(1.0, 2.0), beta=1.0)


def test_rwr_softmax_weights_sum_to_batch_size():
    # softmax([0, ln 3]) = [1/4, 3/4]; times B = 2 -> [0.5, 1.5]
    loss, metrics = reward_weighted_loss(_t(2.0, 4.0), _t(0.0, math.log(3)), temperature=1.0)
    torch.testing.assert_close(loss, _t(1.0, 6.0))
    assert metrics["weight_mean"].item() == pytest.approx(1.0)
    assert metrics["weight_max"].item() == pytest.approx(1.5)


def test_rwr_softmax_temperature_scales_rewards():
    # r / T = [0, ln 3] again
    loss, _ = reward_weighted_loss(_t(2.0, 4.0), _t(0.0, 0.1 * math.log(3)), temperature=0.1)
    torch.testing.assert_close(loss, _t(1.0, 6.0))


def test_rwr_clips_weights():
    loss, metrics = reward_weighted_loss(_t(2.0, 4.0), _t(0.0, math.log(3)), temperature=1.0, max_weight=1.2)
    torch.testing.assert_close(loss, _t(1.0, 4.8))
    assert metrics["weight_max"].item() == pytest.approx(1.2)


def test_rwr_exp_standardises_rewards():
    # r = [1, 3]: mean 2, population std 1 -> z = [-1, 1]; T = 2 -> w = [e^-0.5, e^0.5]
    loss, _ = reward_weighted_loss(_t(1.0, 1.0), _t(1.0, 3.0), temperature=2.0, weighting="exp")
    torch.testing.assert_close(loss, _t(math.exp(-0.5), math.exp(0.5)))
    # equal rewards carry no preference: weight 1
    loss, _ = reward_weighted_loss(_t(0.7, 0.2), _t(0.4, 0.4), temperature=2.0, weighting="exp")
    torch.testing.assert_close(loss, _t(0.7, 0.2))


def test_rwr_weights_are_detached():
    err = _t(2.0, 4.0).requires_grad_()
    rewards = _t(0.0, math.log(3)).requires_grad_()
    loss, _ = reward_weighted_loss(err, rewards, temperature=1.0)
    loss.sum().backward()
    torch.testing.assert_close(err.grad, _t(0.5, 1.5))
    assert rewards.grad is None


def test_rwr_rejects_bad_arguments():
    with pytest.raises(ValueError, match="weighting"):
        reward_weighted_loss(_t(1.0), _t(1.0), temperature=1.0, weighting="linear")
    with pytest.raises(ValueError, match="temperature"):
        reward_weighted_loss(_t(1.0), _t(1.0), temperature=0.0)
    with pytest.raises(ValueError, match="one shape"):
        reward_weighted_loss(_t(1.0, 2.0), _t(1.0), temperature=1.0)


def test_rwr_slices_of_a_batch_weight_like_the_whole_batch():
    err, rewards = _t(1.0, 2.0, 3.0, 4.0), _t(0.1, 0.5, 0.2, 0.9)
    for weighting in ("softmax", "exp"):
        whole, _ = reward_weighted_loss(err, rewards, temperature=0.3, weighting=weighting)
        halves = [
            reward_weighted_loss(
                err[s], rewards[s], temperature=0.3, weighting=weighting, batch_rewards=rewards
            )[0]
            for s in (slice(0, 2), slice(2, 4))
        ]
        torch.testing.assert_close(torch.cat(halves), whole)
