"""OccWorldTransformer(pose_envelope=k): the pose correction lives inside a kinematic envelope.

Per dimension the residual correction is ``k * |a_t| * tanh(head)``, ``a_t = m_t - m_{t-1}``
(zero for frames 0 and 1), so a constant-velocity history is continued exactly as the
constant-velocity baseline, whatever the weights.
"""
import copy

import pytest
import torch

from aerialworld_model_helpers import TINY_TRANSFORMER
from projects.registry import MODELS

torch.set_num_threads(1)


def _net(**overrides):
    cfg = copy.deepcopy(TINY_TRANSFORMER)
    cfg.update(num_codes=32, token_grid=(5, 5), code_dim=16, token_embed='table',
               pose_residual=True, pose_envelope=1.0)
    cfg.update(overrides)
    return MODELS.build(cfg)


def _randomise_pose_head(net):
    torch.manual_seed(1)
    for p in net.pose_decoder.parameters():
        torch.nn.init.normal_(p, std=1.0)


def test_constant_velocity_history_is_continued_exactly_whatever_the_weights():
    net = _net().eval()
    _randomise_pose_head(net)  # a trained-looking head with large outputs
    tokens = torch.randint(0, 32, (2, 5, 5, 5))
    step = torch.tensor([[1.5, -0.3, 0.2, 0.05], [0.0, 2.0, 0.0, -0.1]])
    motion = step[:, None].repeat(1, 5, 1)
    motion[:, 0] = 0  # the first frame has no motion
    _, pred = net(tokens, motion)
    assert torch.equal(pred[:, 1:], motion[:, 1:])  # exactly constant velocity
    # the unbounded residual head with the same weights moves away from it
    free = _net(pose_envelope=None).eval()
    free.load_state_dict(net.state_dict())
    _, pred_free = free(tokens, motion)
    assert (pred_free[:, 1:] - motion[:, 1:]).abs().max() > 0.1


def test_correction_is_bounded_by_the_observed_acceleration_hand_computed():
    net = _net(pose_envelope=0.5).eval()
    _randomise_pose_head(net)
    tokens = torch.randint(0, 32, (1, 4, 5, 5))
    motion = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0],
                            [1.4, 0.0, -0.2, 0.1], [1.4, 0.1, -0.2, 0.1]]])
    accel = net.observed_acceleration(motion)
    expected = torch.tensor([[[0.0] * 4, [0.0] * 4, [0.4, 0.0, -0.2, 0.1],
                              [0.0, 0.1, 0.0, 0.0]]])
    assert torch.allclose(accel, expected)
    with torch.no_grad():
        _, pred = net(tokens, motion)
    corr = pred - motion
    assert torch.all(corr.abs() <= 0.5 * expected.abs() + 1e-7)
    # the value is k * |a| * tanh(raw) of the head's output
    x_raw = corr[0, 2, 0] / (0.5 * 0.4)
    assert -1 < float(x_raw) < 1 and float(corr[0, 2, 0]) != 0.0


def test_rollout_correction_never_grows_and_cv_start_stays_cv():
    net = _net().eval()
    _randomise_pose_head(net)
    tokens = torch.randint(0, 32, (1, 4, 5, 5))
    cv = torch.tensor([0.0, 1.0, 1.0, 1.0])[None, :, None] * torch.tensor([2.0, 0, 0, 0.1])
    _, motion = net.generate(tokens, cv, None, num_future=6)
    assert torch.equal(motion, cv[:, -1:].expand(1, 6, 4))  # the constant-velocity rollout
    turning = cv.clone()
    turning[0, 3] = torch.tensor([2.0, 0.3, 0.0, 0.2])  # a manoeuvre in the last step
    _, motion = net.generate(tokens, turning, None, num_future=6)
    steps = torch.cat([turning[:, -1:], motion], 1)
    acc = (steps[:, 1:] - steps[:, :-1]).abs()
    first = (turning[:, 3] - turning[:, 2]).abs()
    assert torch.all(acc[:, 0] <= first + 1e-6)
    assert torch.all(acc[:, 1:] <= acc[:, :-1] + 1e-6)  # |correction| non-increasing


def test_the_envelope_learns_constant_acceleration():
    torch.manual_seed(0)
    net = _net().train()
    tokens = torch.randint(0, 32, (4, 5, 5, 5))
    a = torch.rand(4, 1) * 0.5 + 0.2
    dx = torch.cat([torch.zeros(4, 1), 1.0 + a * torch.arange(4)], 1)  # speeds up by a
    motion = torch.zeros(4, 5, 4)
    motion[..., 0] = dx
    target = motion[:, 2:, 0] + a  # next motion under constant acceleration
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(80):
        _, out = net(tokens, motion)
        loss = (out[:, 2:, 0] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, out = net(tokens, motion)
    assert (out[:, 2:, 0] - target).abs().mean() < 0.05 * a.mean()
    # ... and keeps the other (unaccelerated) dimensions at constant velocity
    assert torch.equal(out[:, 2:, 1:], motion[:, 2:, 1:])


def test_envelope_arguments_are_validated():
    with pytest.raises(ValueError, match='pose_residual'):
        _net(pose_residual=False)
    with pytest.raises(ValueError, match='pose_dims=4'):
        _net(pose_dims=13)
    with pytest.raises(ValueError, match='> 0'):
        _net(pose_envelope=0.0)
