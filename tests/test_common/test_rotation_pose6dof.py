"""Quaternion helpers (vs scipy) and the 6-DoF ego motion (round trips on real poses)."""
import glob
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from projects.common.structures import (compose_ego_motion_6dof, ego_motion_6dof_from_poses,
                                        ego_motion_from_poses, frame_motion_6dof,
                                        identity_motion_6dof, matrix_to_quat,
                                        planar_from_motion_6dof, quat_angle, quat_canonical,
                                        quat_from_yaw, quat_geodesic_distance, quat_multiply,
                                        quat_rotate, quat_to_matrix, quat_yaw,
                                        rotation_6d_to_matrix)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _wxyz(rot):
    xyzw = rot.as_quat()
    return torch.tensor(xyzw[..., [3, 0, 1, 2]], dtype=torch.float64)


def test_quaternion_ops_match_scipy():
    r1, r2 = Rotation.random(200, random_state=1), Rotation.random(200, random_state=2)
    q1, q2 = _wxyz(r1), _wxyz(r2)
    assert torch.allclose(quat_canonical(quat_multiply(q1, q2)), quat_canonical(_wxyz(r1 * r2)),
                          atol=1e-12)
    assert torch.allclose(quat_to_matrix(q1), torch.tensor(r1.as_matrix()), atol=1e-12)
    assert torch.allclose(matrix_to_quat(torch.tensor(r1.as_matrix())), quat_canonical(q1),
                          atol=1e-12)
    v = torch.randn(200, 3, dtype=torch.float64)
    assert torch.allclose(quat_rotate(q1, v), torch.tensor(r1.apply(v.numpy())), atol=1e-12)
    ang = torch.tensor((r1.inv() * r2).magnitude())
    assert torch.allclose(quat_geodesic_distance(q1, q2), ang, atol=1e-9)
    assert torch.allclose(quat_yaw(q1), torch.tensor(r1.as_euler('ZYX')[:, 0]), atol=1e-9)


def test_matrix_to_quat_all_branches_and_gradients():
    # identity (w pivot) and 180-degree turns about x, y, z (x, y, z pivots)
    mats = torch.stack([torch.eye(3, dtype=torch.float64),
                        torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)),
                        torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64)),
                        torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64))])
    mats.requires_grad_(True)
    q = matrix_to_quat(mats)
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]],
                            dtype=torch.float64)
    assert torch.allclose(q.detach(), expected, atol=1e-12)
    q.sum().backward()
    assert torch.isfinite(mats.grad).all()


def test_rotation_6d_identity_offset_and_orthonormal():
    eye6 = torch.tensor([1.0, 0, 0, 0, 1.0, 0])
    assert torch.allclose(rotation_6d_to_matrix(eye6), torch.eye(3))
    rot = rotation_6d_to_matrix(torch.randn(50, 6, dtype=torch.float64))
    assert torch.allclose(rot.transpose(-1, -2) @ rot, torch.eye(3, dtype=torch.float64).expand(
        50, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(50, dtype=torch.float64))


def test_quat_angle_safe_at_zero_and_pi():
    q = torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 1.0], [-1.0, 0, 0, 0]], requires_grad=True)
    ang = quat_angle(q)
    assert torch.allclose(ang.detach(), torch.tensor([0.0, math.pi, 0.0]), atol=1e-6)
    ang.sum().backward()
    assert torch.isfinite(q.grad).all()


def _tokyo_poses(session):
    files = sorted(glob.glob(osp.join(ROOT, 'data', 'tokyo', session, 'poses', '*.json')))
    if not files:
        pytest.skip(f'bundled Tokyo session {session} missing')
    return torch.tensor([json.load(open(f))['pose_13d'] for f in files], dtype=torch.float64)


@pytest.mark.parametrize('session', ['drone_orbit_000', 'drone_random_walk_000', 'rover_000'])
def test_6dof_motion_round_trip_on_real_poses(session):
    poses = _tokyo_poses(session)[None]  # (1, T, 13), drones have roll / pitch
    motion = ego_motion_6dof_from_poses(poses)
    assert motion.shape == (1, poses.shape[1] - 1, 13)
    ones = torch.ones(1, motion.shape[1], dtype=torch.float64)
    assert torch.allclose(motion[..., 3:7].norm(dim=-1), ones)
    back = compose_ego_motion_6dof(motion, start=poses[:, 0])
    assert torch.allclose(back[..., :3], poses[:, 1:, :3], atol=1e-9)
    assert torch.allclose(quat_geodesic_distance(back[..., 3:7], poses[:, 1:, 3:7]),
                          torch.zeros(1, motion.shape[1], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(back[..., 7:], poses[:, 1:, 7:], atol=1e-9)
    # the planar part is exactly the 4-D ego motion of the planar mode
    planar = planar_from_motion_6dof(motion)
    assert torch.allclose(planar, ego_motion_from_poses(poses), atol=1e-9)


def test_6dof_motion_hand_computed_and_frame_zero():
    # frame 0 at the origin facing +y (yaw 90 deg), pitched by 10 deg; frame 1 at (0, 2, 1)
    # facing -x (yaw 180 deg), level, flying at 3 m/s along world -x.
    rot0 = Rotation.from_euler('ZYX', [90, 10, 0], degrees=True)
    q0, q1 = _wxyz(rot0), quat_from_yaw(torch.tensor(math.pi, dtype=torch.float64))
    p0 = torch.cat([torch.zeros(3, dtype=torch.float64), q0, torch.zeros(6, dtype=torch.float64)])
    p1 = torch.cat([torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64), q1,
                    torch.tensor([-3.0, 0, 0, 0, 0, 0.5], dtype=torch.float64)])
    motion = ego_motion_6dof_from_poses(torch.stack([p0, p1])[None])[0, 0]
    # 2 m straight ahead of frame 0's heading, 1 m up; turned by +90 deg; 3 m/s forward.
    assert torch.allclose(motion[:3], torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64),
                          atol=1e-12)
    assert quat_yaw(motion[3:7]).item() == pytest.approx(math.pi / 2)
    assert torch.allclose(motion[7:], torch.tensor([3.0, 0, 0, 0, 0, 0.5], dtype=torch.float64),
                          atol=1e-12)
    frame = frame_motion_6dof(torch.stack([p0, p1])[None])[0]
    # frame 0 relative to itself: no translation, only its 10-degree pitch
    assert torch.allclose(frame[0, :3], torch.zeros(3, dtype=torch.float64))
    assert quat_angle(frame[0, 3:7]).item() == pytest.approx(math.radians(10))
    assert quat_yaw(frame[0, 3:7]).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(frame[1], motion)
    ident = identity_motion_6dof(2, 1)
    assert ident.shape == (2, 1, 13) and torch.all(ident[..., 3] == 1)
    with pytest.raises(ValueError):
        ego_motion_6dof_from_poses(torch.zeros(2, 13))
    with pytest.raises(ValueError):
        compose_ego_motion_6dof(torch.zeros(1, 2, 13), start=torch.zeros(2, 13))
    with pytest.raises(ValueError):
        planar_from_motion_6dof(torch.zeros(4))


def test_compose_differentiable():
    motion = identity_motion_6dof(1, 3).double().requires_grad_(True)
    out = compose_ego_motion_6dof(motion + 0.1)
    out.sum().backward()
    assert torch.isfinite(motion.grad).all()
    assert np.isfinite(out.detach().numpy()).all()
