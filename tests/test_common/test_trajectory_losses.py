"""Trajectory losses against hand-computed values."""
import math

import pytest
import torch

from projects.common.losses.trajectory_losses import (ActionLoss, DiscreteActionLoss,
                                                      InfoNCELoss, MixtureNLLLoss,
                                                      TrajectoryLoss, WTALoss)


def test_trajectory_loss_l2_and_yaw():
    pred = torch.tensor([[[3.0, 4.0, 0.5], [0.0, 0.0, 0.0]]])
    gt = torch.zeros(1, 2, 3)
    # step errors 5 m and 0 m; yaw 0.5 rad and 0 → (5 + 0.3*0.5 + 0) / 2
    assert TrajectoryLoss()(pred, gt).item() == pytest.approx((5 + 0.15) / 2, abs=1e-4)
    # yaw wraps: 2π - 0.1 is 0.1 away from 0
    pred2 = torch.tensor([[[0.0, 0.0, 2 * math.pi - 0.1]]])
    assert TrajectoryLoss()(pred2, torch.zeros(1, 1, 3)).item() == pytest.approx(0.03, abs=1e-4)
    assert TrajectoryLoss(position_loss='l1', yaw_weight=0)(pred, gt).item() == pytest.approx(3.5)


def test_infonce_hand_computed_and_warmup():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = InfoNCELoss(temperature=0.5, symmetric=False)
    # logits [[2, 0], [0, 2]]: -log(e^2 / (e^2 + 1)) for both rows
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert loss(z, z).item() == pytest.approx(expected, rel=1e-5)
    warm = InfoNCELoss(temperature=0.07, loss_weight=2.0, warmup_iters=4)
    warm.train()
    weights = []
    for _ in range(6):
        weights.append(warm.current_weight())
        warm(z, z)
    assert weights == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0])


def test_action_loss_with_smoothness():
    pred = torch.tensor([[[1.0, 0.0], [2.0, 0.05]]])
    target = torch.zeros(1, 2, 2)
    loss = ActionLoss(action_scale=(1.0, 0.05), smooth_weight=0.5)
    # |err|/s: step0 1, step1 2 + 1 → mean 2; diff (1, 0.05)/s → 1 + 1 = 2 → 0.5 * 2
    assert loss(pred, target).item() == pytest.approx(2.0 + 1.0)


def test_discrete_ce_label_smoothing():
    logits = torch.zeros(1, 1, 1, 4)
    logits[..., 2] = math.log(3.0)  # probs [1, 1, 3, 1] / 6
    target = torch.tensor([[[2]]])
    eps = 0.2
    logp = torch.log(torch.tensor([1 / 6, 1 / 6, 0.5, 1 / 6]))
    q = torch.full((4,), eps / 4)
    q[2] += 1 - eps
    expected = -(q * logp).sum().item()
    assert DiscreteActionLoss(label_smoothing=eps)(logits, target).item() == pytest.approx(
        expected, rel=1e-5)


def test_wta_picks_best_mode():
    gt = torch.zeros(1, 2, 3)
    modes = torch.stack([torch.full((2, 3), 1.0), torch.tensor([[0.3, 0.4, 0.0]] * 2)])[None]
    logits = torch.zeros(1, 2)
    loss = WTALoss(regression=dict(type='TrajectoryLoss', yaw_weight=0.3), mode_weight=1.0)
    # best mode 1 (0.5 m error, yaw 0) + CE(uniform, 1) = log 2
    assert loss(modes, logits, gt).item() == pytest.approx(0.5 + math.log(2), abs=1e-4)


def test_mixture_nll_laplace_hand_computed():
    gt = torch.zeros(1, 1, 2)
    pred = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # (B=1, K=2, T=1, 2)
    logits = torch.log(torch.tensor([[0.25, 0.75]]))
    log_sigma = torch.zeros(1, 2, 1, 2)
    # Laplace b=1: density e^{-|d|}/2 per dim
    p1 = 0.25 * math.exp(-1) / 4
    p2 = 0.75 * 1 / 4
    expected = -math.log(p1 + p2)
    assert MixtureNLLLoss()(pred, logits, log_sigma, gt).item() == pytest.approx(expected,
                                                                                 rel=1e-5)
