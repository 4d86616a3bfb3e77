"""13-D pose helpers: yaw extraction, ego motion and its inverse."""
import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from projects.common.structures import (accumulate_ego_motion, ego_motion_from_poses,
                                        yaw_from_quaternion, yaw_to_quaternion)


def _pose(x, y, z, yaw):
    q = yaw_to_quaternion(torch.tensor(yaw))
    return torch.cat([torch.tensor([x, y, z]), q, torch.zeros(6)])


def test_yaw_from_quaternion_with_roll_pitch():
    xyzw = Rotation.from_euler('ZYX', [0.3, 0.2, 0.1]).as_quat()
    wxyz = torch.tensor([xyzw[3], xyzw[0], xyzw[1], xyzw[2]], dtype=torch.float64)
    assert yaw_from_quaternion(wxyz).item() == pytest.approx(0.3, abs=1e-9)
    with pytest.raises(ValueError):
        yaw_from_quaternion(torch.zeros(3))


def test_ego_motion_hand_computed():
    # frame 0 at (1, 1, 0) facing +y (yaw 90 deg); frame 1 at (1, 3, 0.5) facing -x.
    poses = torch.stack([_pose(1, 1, 0, math.pi / 2), _pose(1, 3, 0.5, math.pi)])[None]
    motion = ego_motion_from_poses(poses)
    # world displacement (0, 2) seen from a frame rotated by 90 deg: 2 m straight ahead.
    assert torch.allclose(motion, torch.tensor([[[2.0, 0.0, 0.5, math.pi / 2]]]), atol=1e-6)
    acc = accumulate_ego_motion(motion)
    assert torch.allclose(acc, torch.tensor([[[2.0, 0.0, 0.5, math.pi / 2]]]), atol=1e-6)


def test_yaw_wraps():
    poses = torch.stack([_pose(0, 0, 0, 3.1), _pose(0, 0, 0, -3.1)])[None]
    dyaw = ego_motion_from_poses(poses)[0, 0, 3].item()
    assert dyaw == pytest.approx(2 * math.pi - 6.2, abs=1e-5)


def test_round_trip_random_trajectory():
    torch.manual_seed(0)
    b, t = 3, 7
    yaw = torch.cumsum(torch.randn(b, t) * 0.3, 1).double()
    pos = torch.cumsum(torch.randn(b, t, 3), 1).double()
    poses = torch.cat([pos, yaw_to_quaternion(yaw), torch.zeros(b, t, 6, dtype=torch.float64)],
                      -1)
    motion = ego_motion_from_poses(poses)
    assert motion.shape == (b, t - 1, 4)
    rel = accumulate_ego_motion(motion)
    # expected: positions of frames 1.. in frame 0's yaw-aligned frame
    d = pos[:, 1:] - pos[:, :1]
    c, s = torch.cos(yaw[:, :1]), torch.sin(yaw[:, :1])
    exp_x = c * d[..., 0] + s * d[..., 1]
    exp_y = -s * d[..., 0] + c * d[..., 1]
    assert torch.allclose(rel[..., 0], exp_x, atol=1e-9)
    assert torch.allclose(rel[..., 1], exp_y, atol=1e-9)
    assert torch.allclose(rel[..., 2], d[..., 2], atol=1e-9)
    dyaw = torch.remainder(yaw[:, 1:] - yaw[:, :1] - rel[..., 3] + math.pi, 2 * math.pi)
    assert torch.allclose(dyaw, torch.full_like(dyaw, math.pi), atol=1e-9)


def test_differentiable_and_errors():
    poses = torch.stack([_pose(0, 0, 0, 0.1), _pose(1, 0, 0, 0.2)])[None].requires_grad_()
    ego_motion_from_poses(poses).sum().backward()
    assert poses.grad is not None and torch.isfinite(poses.grad).all()
    with pytest.raises(ValueError):
        ego_motion_from_poses(torch.zeros(2, 13))
    with pytest.raises(ValueError):
        accumulate_ego_motion(torch.zeros(1, 2, 4), start=torch.zeros(2, 4))
