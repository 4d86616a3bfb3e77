"""Occupancy / token / VQ losses against hand-computed values."""
import math

import pytest
import torch

from projects.common.losses import (MeanMatchingLoss, OccupancyDiceLoss, OccupancyFocalLoss,
                                    TokenCrossEntropyLoss, VQCodebookLoss)
from projects.registry import MODELS

LN3 = math.log(3.0)
LN2 = math.log(2.0)


def _two_voxels():
    """Voxel 0: probs [0.25, 0.75], label 1 (free); voxel 1: same probs, label 0."""
    pred = torch.tensor([[[0.0, 0.0], [LN3, LN3]]])  # (N=1, C=2, 2 voxels)
    target = torch.tensor([[1, 0]], dtype=torch.uint8)
    return pred, target


def test_focal_fixed_alpha():
    pred, target = _two_voxels()
    # free voxel: -(1-0.99) * 0.25^2 * ln(0.75) = 1.798013e-4
    # occupied voxel: -0.99 * 0.75^2 * ln(0.25) = 0.7719902
    loss = OccupancyFocalLoss(alpha=0.99, gamma=2.0)(pred, target)
    assert loss.item() == pytest.approx((1.798013e-4 + 0.7719902) / 2, rel=1e-5)


def test_focal_ignore_and_weight():
    pred, target = _two_voxels()
    pred = torch.cat([pred, torch.zeros(1, 2, 1)], dim=2)
    target = torch.tensor([[1, 0, 255]])
    loss = OccupancyFocalLoss(alpha=0.99, gamma=2.0, loss_weight=2.0)(pred, target)
    assert loss.item() == pytest.approx(0.7721702, rel=1e-5)


def test_focal_adaptive_alpha():
    pred, target = _two_voxels()
    # half the voxels are free -> alpha = 0.5:
    # 0.5 * 0.0625 * 0.2876821 = 0.0089901 ; 0.5 * 0.5625 * 1.3862944 = 0.3898953
    loss = OccupancyFocalLoss(alpha='adaptive')(pred, target)
    assert loss.item() == pytest.approx((0.0089901 + 0.3898953) / 2, rel=1e-5)
    # all free -> free fraction 1.0 clamped to 0.999
    loss = OccupancyFocalLoss(alpha='adaptive')(pred, torch.tensor([[1, 1]]))
    assert loss.item() == pytest.approx(0.001 * 0.0625 * 0.2876821, rel=1e-4)


def test_focal_gamma0_is_weighted_ce():
    pred, target = _two_voxels()
    loss = OccupancyFocalLoss(alpha=0.5, gamma=0.0)(pred, target)
    ce = torch.nn.functional.cross_entropy(pred, target.long())
    assert loss.item() == pytest.approx(0.5 * ce.item(), rel=1e-6)


def test_focal_bad_config():
    with pytest.raises(ValueError, match='alpha'):
        OccupancyFocalLoss(alpha='auto')
    with pytest.raises(ValueError, match='alpha'):
        OccupancyFocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match='target shape'):
        OccupancyFocalLoss()(torch.zeros(1, 2, 3), torch.zeros(1, 4, dtype=torch.long))


def test_dice_binary():
    # voxel 0: p_occ = 0.75, occupied; voxel 1: p_occ = 0.25, free.
    pred = torch.tensor([[[LN3, 0.0], [0.0, LN3]]])
    target = torch.tensor([[0, 1]])
    # smooth=1: 1 - (2*0.75 + 1) / (1.0 + 1 + 1) = 1/6
    assert OccupancyDiceLoss()(pred, target).item() == pytest.approx(1 / 6, rel=1e-6)
    # smooth=0: 1 - 1.5 / 2 = 0.25
    assert OccupancyDiceLoss(smooth=0.0)(pred, target).item() == pytest.approx(0.25, rel=1e-6)


def test_dice_per_class():
    # 3 classes, free = 2. voxel 0: probs [1/3, 1/3, 1/3], label 0;
    # voxel 1: probs [0.5, 0.25, 0.25], label 1.
    pred = torch.tensor([[[0.0, LN2], [0.0, 0.0], [0.0, 0.0]]])
    target = torch.tensor([[0, 1]])
    # class 0: 1 - (2/3) / (5/6 + 1) = 7/11 ; class 1: 1 - 0.5 / (7/12 + 1) = 13/19
    loss = OccupancyDiceLoss(per_class=True, smooth=0.0)(pred, target)
    assert loss.item() == pytest.approx((7 / 11 + 13 / 19) / 2, rel=1e-6)


def test_mean_matching():
    pred = torch.tensor([[[LN3, 0.0], [0.0, LN3]]]).repeat(2, 1, 1)
    target = torch.tensor([[0, 1], [1, 1]])
    # sample 0: mean p_occ 0.5 vs 0.5 -> 0; sample 1: 0.5 vs 0 -> 0.25; mean 0.125, x10
    assert MeanMatchingLoss()(pred, target).item() == pytest.approx(1.25, rel=1e-6)
    assert MeanMatchingLoss(loss_weight=1.0)(pred, target).item() == pytest.approx(0.125)


def test_token_cross_entropy():
    logits = torch.tensor([0.0, 0.0, LN2]).reshape(1, 3, 1, 1).repeat(1, 1, 1, 2)
    target = torch.tensor([[[2, 0]]])
    # probs [0.25, 0.25, 0.5]: (-ln 0.5 - ln 0.25) / 2 = 1.0397208
    assert TokenCrossEntropyLoss()(logits, target).item() == pytest.approx(1.0397208, rel=1e-6)
    # label smoothing 0.1 at target 2: 0.9 * ln2 + 0.1 * (2 ln4 + ln2) / 3 = 0.7393569
    loss = TokenCrossEntropyLoss(label_smoothing=0.1)(logits[..., :1], target[..., :1])
    assert loss.item() == pytest.approx(0.7393569, rel=1e-6)


def test_vq_codebook_loss_value_and_gradients():
    z_e = torch.tensor([1.0, 2.0], requires_grad=True)
    z_q = torch.tensor([0.0, 0.0], requires_grad=True)
    loss = VQCodebookLoss(beta=0.25)(z_e, z_q)
    # mse = (1 + 4) / 2 = 2.5 ; 2.5 + 0.25 * 2.5 = 3.125
    assert loss.item() == pytest.approx(3.125)
    loss.backward()
    # codebook term moves z_q only: d/dz_q = (z_q - z_e) = [-1, -2]
    assert torch.allclose(z_q.grad, torch.tensor([-1.0, -2.0]))
    # commitment moves z_e only: beta * (z_e - z_q) = [0.25, 0.5]
    assert torch.allclose(z_e.grad, torch.tensor([0.25, 0.5]))


def test_registered_and_mmdet_pose_loss():
    for name in ('OccupancyFocalLoss', 'OccupancyDiceLoss', 'MeanMatchingLoss',
                 'TokenCrossEntropyLoss', 'VQCodebookLoss'):
        assert MODELS.build(dict(type=name)) is not None
    smooth_l1 = MODELS.build(dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0))
    pred = torch.tensor([[0.5, 3.0]])
    # 0.5 * 0.5^2 / 1 = 0.125 ; 3 - 0.5 = 2.5 -> mean 1.3125
    assert smooth_l1(pred, torch.zeros(1, 2)).item() == pytest.approx(1.3125)


@pytest.mark.parametrize('cfg', [
    dict(type='OccupancyFocalLoss', alpha=0.9, gamma=2.0),
    dict(type='OccupancyFocalLoss', alpha='adaptive', gamma=1.0),
    dict(type='OccupancyDiceLoss'),
    dict(type='MeanMatchingLoss'),
    dict(type='TokenCrossEntropyLoss', label_smoothing=0.1, ignore_index=255),
])
def test_chunked_reduction_same_value_and_gradient(cfg):
    """Chunks of samples under checkpointing (full aerial grids) = one pass, with ignored voxels."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 4, 6, 5, 3, generator=g)
    target = torch.randint(0, 4, (5, 6, 5, 3), generator=g).to(torch.uint8)
    target[1, :2] = 255  # ignored voxels (ignore_index of every loss here)
    target[3] = 3  # an all-free sample
    results = []
    for max_chunk in (0, 2 * logits[0].numel()):  # one pass; chunks of 2 samples
        loss_fn = MODELS.build(dict(cfg, max_chunk_elements=max_chunk))
        x = logits.clone().requires_grad_(True)
        loss = loss_fn(x, target)
        loss.backward()
        results.append((loss.detach(), x.grad))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-7)
    assert results[0][1].abs().sum() > 0
