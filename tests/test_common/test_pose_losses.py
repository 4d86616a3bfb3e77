"""GeodesicRotationLoss, TranslationLoss, VelocityLoss against hand-computed values."""
import math

import pytest
import torch

from projects.common.structures import quat_from_yaw
from projects.registry import MODELS


def _build(cfg):
    return MODELS.build(cfg)


def test_geodesic_hand_values():
    loss = _build(dict(type='GeodesicRotationLoss', reduction='none'))
    ident = torch.tensor([1.0, 0.0, 0.0, 0.0])
    yaw90 = quat_from_yaw(torch.tensor(math.pi / 2))
    x180 = torch.tensor([0.0, 1.0, 0.0, 0.0])
    pred = torch.stack([ident, ident, yaw90, ident, ident * 3.0])
    gt = torch.stack([yaw90, -ident, -yaw90, x180, ident])
    expected = torch.tensor([math.pi / 2, 0.0, 0.0, math.pi, 0.0])
    assert torch.allclose(loss(pred, gt), expected, atol=1e-6)
    deg = _build(dict(type='GeodesicRotationLoss', degrees=True))
    assert deg(ident[None], yaw90[None]).item() == pytest.approx(90.0, abs=1e-4)
    # mean, weight and loss_weight
    mean = _build(dict(type='GeodesicRotationLoss', loss_weight=2.0))
    assert mean(pred, gt).item() == pytest.approx(2.0 * (1.5 * math.pi) / 5, abs=1e-5)
    w = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
    assert mean(pred, gt, weight=w).item() == pytest.approx(2.0 * 0.75 * math.pi, abs=1e-5)


def test_geodesic_gradients_finite_at_zero_and_pi():
    loss = _build(dict(type='GeodesicRotationLoss'))
    pred = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0.7, 0.1, 0.0, 0.7]],
                        requires_grad=True)
    gt = torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 1.0, 0], [0.7, 0.1, 0.0, 0.7]])
    loss(pred, gt).backward()
    assert torch.isfinite(pred.grad).all()
    # near (not at) zero the gradient points towards the target
    near = torch.tensor([[1.0, 0.0, 0.0, 1e-3]], requires_grad=True)
    out = loss(near, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert out.item() == pytest.approx(2e-3, rel=1e-3)
    out.backward()
    assert near.grad[0, 3] > 0


def test_translation_and_velocity_hand_values():
    pred = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.5]])
    gt = torch.zeros(2, 3)
    eu = _build(dict(type='TranslationLoss', loss_type='euclidean', reduction='none'))
    assert torch.allclose(eu(pred, gt), torch.tensor([5.0, 0.5]))
    l2 = _build(dict(type='TranslationLoss', loss_type='l2'))
    assert l2(pred, gt).item() == pytest.approx((25.0 + 0.25) / 2)
    l1 = _build(dict(type='TranslationLoss', loss_type='l1', reduction='sum'))
    assert l1(pred, gt).item() == pytest.approx(7.5)
    sl1 = _build(dict(type='TranslationLoss', beta=1.0, reduction='none'))
    # smoothL1: |d| - 0.5 beta for |d| >= beta, 0.5 d^2 / beta below
    assert torch.allclose(sl1(pred, gt), torch.tensor([2.5 + 3.5, 0.125]))
    same = torch.zeros(1, 3, requires_grad=True)
    eu(same, torch.zeros(1, 3)).sum().backward()
    assert torch.isfinite(same.grad).all()
    vel = _build(dict(type='VelocityLoss', loss_type='euclidean', linear_weight=0.5,
                      angular_weight=2.0))
    v_pred = torch.tensor([[3.0, 4.0, 0.0, 0.0, 0.0, 1.0]])
    assert vel(v_pred, torch.zeros(1, 6)).item() == pytest.approx(0.5 * 5.0 + 2.0 * 1.0)


def test_loss_errors():
    with pytest.raises(ValueError, match='reduction'):
        _build(dict(type='GeodesicRotationLoss', reduction='max'))
    with pytest.raises(ValueError, match='loss_type'):
        _build(dict(type='TranslationLoss', loss_type='huber'))
    with pytest.raises(ValueError, match='same shape'):
        _build(dict(type='GeodesicRotationLoss'))(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match='VelocityLoss'):
        _build(dict(type='VelocityLoss'))(torch.zeros(2, 3), torch.zeros(2, 3))
