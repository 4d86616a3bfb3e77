"""6-DoF ego motion between 13-D poses (torch, batched, differentiable).

13-D pose (session world frame, see ``docs/aerialworld_data_and_model_contract.md``)::

    [x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]

position (m), scalar-first unit quaternion body -> world, linear velocity in the world frame
(m/s), angular velocity in the body frame (rad/s).

6-DoF ego motion of frame ``t`` relative to frame ``t - 1`` (same 13-D layout)::

    [dx, dy, dz, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]

everything expressed in ``G_{t-1}``, the *gravity-aligned* ego frame of frame ``t - 1``
(origin at ``p_{t-1}``, rotated by ``yaw_{t-1}`` about world z, no roll / pitch) -- the frame
the occupancy grids live in:

* ``d = Rz(yaw_{t-1})^T (p_t - p_{t-1})``: translation (m); ``dx, dy, dz`` equal the 4-D
  planar motion of :func:`~projects.common.structures.pose.ego_motion_from_poses`;
* ``q = qz(yaw_{t-1})^* (x) q_t``: orientation of body ``t`` in ``G_{t-1}``, canonical
  (``qw >= 0``). Its yaw is exactly the yaw change ``dyaw`` (a left rotation about z only
  shifts the ZYX yaw), its roll / pitch are those of frame ``t`` (observable from gravity);
* ``v = Rz(yaw_t)^T v_t``: linear velocity of frame ``t`` in its own gravity-aligned frame
  ``G_t`` (forward / left / up speed, m/s);
* ``w``: angular velocity of frame ``t`` (body frame, rad/s, frame-independent).

Composition is exact: with ``yaw_{t-1}`` known, ``q_t = qz(yaw_{t-1}) (x) q``,
``p_t = p_{t-1} + Rz(yaw_{t-1}) d``, ``v_t = Rz(yaw_t) v``. The planar part
``[dx, dy, dz, yaw(q)]`` therefore drives yaw-aligned grid warps without knowing the
absolute roll / pitch. (SE(3) composition as in e.g. J. Sola et al., "A micro Lie theory for
state estimation in robotics", arXiv:1812.01537, 2018; the gravity-aligned split is ours.)
"""
from typing import Optional

import torch

from .pose import POSE_DIM, wrap_angle
from .rotation import (quat_canonical, quat_conjugate, quat_from_yaw, quat_multiply,
                       quat_normalize, quat_yaw)

MOTION_6DOF_DIM = 13

__all__ = [
    'MOTION_6DOF_DIM', 'ego_motion_6dof_from_poses', 'frame_motion_6dof',
    'compose_ego_motion_6dof', 'planar_from_motion_6dof', 'identity_motion_6dof'
]


def _rot_z(yaw: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """Rotate ``(..., 3)`` vectors by ``yaw`` ``(...)`` radians about z."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([c * vec[..., 0] - s * vec[..., 1], s * vec[..., 0] + c * vec[..., 1],
                        vec[..., 2]], dim=-1)


def _check(t: torch.Tensor, name: str, what: str) -> None:
    if t.dim() != 3 or t.shape[-1] != POSE_DIM:
        raise ValueError(f'{name}: expected {what} (B, T, 13), got {tuple(t.shape)}')


def ego_motion_6dof_from_poses(poses: torch.Tensor) -> torch.Tensor:
    """Per-step 6-DoF ego motion (module docstring) from absolute 13-D poses.

    Args:
        poses (torch.Tensor): ``(B, T, 13)`` float poses.

    Returns:
        torch.Tensor: ``(B, T - 1, 13)`` motion of frame ``t`` relative to ``t - 1``
        (metres, unit quaternion with ``qw >= 0``, m/s, rad/s). ``T = 1`` gives
        ``(B, 0, 13)``.

    Raises:
        ValueError: If ``poses`` is not ``(B, T, 13)``.
    """
    _check(poses, 'ego_motion_6dof_from_poses', 'poses')
    pos, quat = poses[..., 0:3], quat_normalize(poses[..., 3:7])
    yaw = quat_yaw(quat)
    yaw_prev = yaw[:, :-1]
    d = _rot_z(-yaw_prev, pos[:, 1:] - pos[:, :-1])
    q_rel = quat_canonical(quat_multiply(quat_conjugate(quat_from_yaw(yaw_prev)), quat[:, 1:]))
    vel = _rot_z(-yaw[:, 1:], poses[:, 1:, 7:10])
    return torch.cat([d, q_rel, vel, poses[:, 1:, 10:13]], dim=-1)


def frame_motion_6dof(poses: torch.Tensor) -> torch.Tensor:
    """Per-frame 6-DoF motion ``(B, T, 13)`` with frame 0 taken relative to itself.

    Row 0 is frame 0 seen from its own gravity-aligned frame: zero translation, its roll /
    pitch as the quaternion (zero yaw), its velocities; rows ``1..T-1`` are
    :func:`ego_motion_6dof_from_poses`. This is the input the world transformer gets for the
    first frame (the 4-D mode uses zeros there).

    Args:
        poses (torch.Tensor): ``(B, T, 13)`` float poses, ``T >= 1``.

    Returns:
        torch.Tensor: ``(B, T, 13)``.

    Raises:
        ValueError: If ``poses`` is not ``(B, T, 13)`` with ``T >= 1``.
    """
    _check(poses, 'frame_motion_6dof', 'poses')
    if poses.shape[1] < 1:
        raise ValueError('frame_motion_6dof: needs T >= 1 frames')
    return ego_motion_6dof_from_poses(torch.cat([poses[:, :1], poses], dim=1))


def compose_ego_motion_6dof(motion: torch.Tensor,
                            start: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Integrate per-step 6-DoF motion into absolute 13-D poses (inverse of the above).

    Args:
        motion (torch.Tensor): ``(B, F, 13)`` per-step motion (quaternions are normalised).
        start (torch.Tensor, optional): ``(B, 13)`` pose of the reference frame (only its
            position and yaw matter). Defaults to the origin with identity orientation, i.e.
            poses relative to the reference frame's gravity-aligned frame.

    Returns:
        torch.Tensor: ``(B, F, 13)`` poses of steps ``1..F`` (quaternions with ``qw >= 0``,
        world-frame linear velocity, body-frame angular velocity).

    Raises:
        ValueError: If ``motion`` is not ``(B, F, 13)`` or ``start`` not ``(B, 13)``.
    """
    _check(motion, 'compose_ego_motion_6dof', 'motion')
    b, f = motion.shape[:2]
    if start is None:
        start = motion.new_zeros(b, POSE_DIM)
        start[:, 3] = 1.0
    if start.shape != (b, POSE_DIM):
        raise ValueError(f'compose_ego_motion_6dof: expected start ({b}, 13), got '
                         f'{tuple(start.shape)}')
    pos = start[:, 0:3]
    yaw = quat_yaw(start[:, 3:7])
    out = []
    for k in range(f):  # F is small (6); the recursion on yaw makes it sequential
        step = motion[:, k]
        quat = quat_canonical(quat_multiply(quat_from_yaw(yaw), quat_normalize(step[:, 3:7])))
        pos = pos + _rot_z(yaw, step[:, 0:3])
        yaw = quat_yaw(quat)
        out.append(torch.cat([pos, quat, _rot_z(yaw, step[:, 7:10]), step[:, 10:13]], dim=-1))
    if not out:
        return motion.new_zeros(b, 0, POSE_DIM)
    return torch.stack(out, dim=1)


def planar_from_motion_6dof(motion: torch.Tensor) -> torch.Tensor:
    """The planar part ``[dx, dy, dz, dyaw]`` of 6-DoF motion (metres, radians).

    Args:
        motion (torch.Tensor): ``(..., 13)`` 6-DoF motion.

    Returns:
        torch.Tensor: ``(..., 4)``; ``dyaw`` = yaw of the motion quaternion, wrapped to
        ``[-pi, pi)``.

    Raises:
        ValueError: If the last dimension is not 13.
    """
    if motion.shape[-1] != MOTION_6DOF_DIM:
        raise ValueError(f'planar_from_motion_6dof: expected (..., 13), got '
                         f'{tuple(motion.shape)}')
    return torch.cat([motion[..., 0:3], wrap_angle(quat_yaw(motion[..., 3:7]))[..., None]],
                     dim=-1)


def identity_motion_6dof(*shape: int, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    """No-motion 6-DoF vectors (zero translation and velocities, identity rotation).

    Args:
        *shape (int): Leading shape, e.g. ``(B, 1)``.
        like (torch.Tensor, optional): Tensor whose dtype / device are used.

    Returns:
        torch.Tensor: ``(*shape, 13)``.
    """
    kw = dict(dtype=like.dtype, device=like.device) if like is not None else {}
    out = torch.zeros(*shape, MOTION_6DOF_DIM, **kw)
    out[..., 3] = 1.0
    return out
