"""Preference losses against hand-computed values (reward/losses.py)."""

import math

import pytest
import torch

from reward.losses import bradley_terry_loss, center_rewards_penalty, rao_kupper_loss, score_regression_loss


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_bradley_terry_with_and_without_margin():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.0, 1.0])
    # d = 1, 0, -2: -log σ(d)
    expected = [math.log1p(math.exp(-1)), math.log(2), math.log1p(math.exp(2))]
    assert bradley_terry_loss(chosen, rejected).tolist() == pytest.approx(expected, rel=1e-6)
    # margin 0.5 on the first pair: -log σ(1 - 0.5) = log(1 + e^-0.5) = 0.474077
    margin = torch.tensor([0.5, 0.0, 0.0])
    assert bradley_terry_loss(chosen, rejected, margin)[0].item() == pytest.approx(0.474077, abs=1e-6)


def test_rao_kupper_strict_and_tie_values():
    chosen, rejected = torch.tensor([3.0, 1.0, 1.5]), torch.tensor([1.0, 1.0, 0.5])
    tie = torch.tensor([False, True, True])
    loss = rao_kupper_loss(chosen, rejected, tie, nu=1.0)
    # strict: -log σ(d - ν) = -log σ(1) = 0.313262
    assert loss[0].item() == pytest.approx(0.313262, abs=1e-6)
    # tie at d = 0: -log(1 - 2 σ(-1)) = -log(0.462117) = 0.771937
    assert loss[1].item() == pytest.approx(0.771937, abs=1e-6)
    # tie at d = 1: -log(1 - σ(0) - σ(-2))
    assert loss[2].item() == pytest.approx(-math.log(1 - sigmoid(0) - sigmoid(-2)), rel=1e-6)


def test_rao_kupper_tie_probability_matches_its_definition_and_is_finite():
    torch.manual_seed(0)
    chosen, rejected = torch.randn(64, dtype=torch.float64) * 5, torch.randn(64, dtype=torch.float64) * 5
    for nu in (0.01, 0.5, 3.0):
        d = chosen - rejected
        p_tie = 1 - torch.sigmoid(d - nu) - torch.sigmoid(-d - nu)
        loss = rao_kupper_loss(chosen, rejected, torch.ones(64, dtype=torch.bool), nu=nu)
        assert torch.allclose(loss, -torch.log(p_tie), rtol=1e-6)
    far = rao_kupper_loss(torch.tensor([200.0]), torch.tensor([-200.0]), torch.tensor([True]), nu=1.0)
    assert torch.isfinite(far).all()


def test_rao_kupper_margin_shifts_strict_pairs_only():
    chosen, rejected = torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0])
    tie, margin = torch.tensor([False, True]), torch.tensor([0.5, 0.5])
    with_margin = rao_kupper_loss(chosen, rejected, tie, nu=1.0, margin=margin)
    without = rao_kupper_loss(chosen, rejected, tie, nu=1.0)
    assert with_margin[0].item() == pytest.approx(-math.log(sigmoid(1 - 0.5 - 1)), rel=1e-6)
    assert with_margin[1].item() == pytest.approx(without[1].item())


def test_tie_gradient_pulls_rewards_together():
    chosen = torch.tensor([2.0], requires_grad=True)
    rejected = torch.tensor([0.0], requires_grad=True)
    rao_kupper_loss(chosen, rejected, torch.tensor([True]), nu=1.0).sum().backward()
    # Gradient descent lowers the higher reward and raises the lower one.
    assert chosen.grad.item() > 0 > rejected.grad.item()
    assert chosen.grad.item() == pytest.approx(-rejected.grad.item())


def test_rao_kupper_nu_gradient_flows_for_a_learned_threshold():
    nu = torch.tensor(1.0, requires_grad=True)
    tie = torch.tensor([True])
    rao_kupper_loss(torch.tensor([0.0]), torch.tensor([0.0]), tie, nu).sum().backward()
    assert nu.grad.item() < 0  # a tie at d = 0 asks for a wider tie band


def test_center_rewards_penalty():
    penalty = center_rewards_penalty(torch.tensor([1.0, -2.0]), torch.tensor([2.0, 2.0]), coefficient=0.01)
    assert penalty.tolist() == pytest.approx([0.09, 0.0])


def test_score_regression_by_hand():
    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.5])
    scores_c, scores_r = torch.tensor([1.0, 0.5]), torch.tensor([0.0, float("nan")])
    loss = score_regression_loss(chosen, rejected, scores_c, scores_r, scale=4.0)
    # targets 4 (1 - 0.5) = 2 and 4 (0 - 0.5) = -2: ½ [(1 - 2)² + (-1 + 2)²] = 1
    assert loss[0].item() == pytest.approx(1.0)
    assert math.isnan(loss[1].item())  # a missing score is not silently a zero target
