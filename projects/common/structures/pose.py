"""13-D pose helpers (torch, batched, differentiable).

13-D pose layout (AerialWorld session format, see ``docs/aerialworld_data_and_model_contract.md``)::

    [x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]

position in metres in the session world frame, scalar-first unit quaternion rotating body to
world, linear velocity (world frame, m/s), angular velocity (body frame, rad/s).

Per-step *ego motion* is ``[dx, dy, dz, dyaw]`` of frame ``t`` relative to frame ``t - 1``,
expressed in frame ``t - 1``'s yaw-aligned (gravity-aligned) ego frame: the world
displacement rotated by ``-yaw_{t-1}`` about z (roll and pitch are not applied, matching the
yaw-aligned occupancy grids), ``dz`` the height change and ``dyaw`` the wrapped yaw change.
"""
import math
from typing import Optional

import torch

from .rotation import quat_from_yaw, quat_yaw

POSE_DIM = 13
EGO_MOTION_DIM = 4


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Wrap angles to ``[-pi, pi)``.

    Args:
        angle (torch.Tensor): Angles in radians, any shape.

    Returns:
        torch.Tensor: Wrapped angles, same shape and dtype.
    """
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


#: Yaw of scalar-first quaternions ``(..., 4)`` -> ``(...)`` radians in ``(-pi, pi]``
#: (``atan2(2 (qw qz + qx qy), 1 - 2 (qy^2 + qz^2))`` after normalising); the name kept for
#: the pose code, the implementation is :func:`.rotation.quat_yaw`.
yaw_from_quaternion = quat_yaw


def _check_poses(poses: torch.Tensor, name: str) -> None:
    """Raise a ``ValueError`` unless ``poses`` is ``(B, T, 13)`` with ``T >= 1``."""
    if poses.dim() != 3 or poses.shape[-1] != POSE_DIM:
        raise ValueError(f'{name}: expected poses (B, T, 13), got {tuple(poses.shape)}')


def ego_motion_from_poses(poses: torch.Tensor) -> torch.Tensor:
    """Per-step ego motion ``[dx, dy, dz, dyaw]`` from absolute 13-D poses.

    Args:
        poses (torch.Tensor): ``(B, T, 13)`` float poses (see module docstring).

    Returns:
        torch.Tensor: ``(B, T - 1, 4)`` motion of frame ``t`` relative to ``t - 1`` in frame
        ``t - 1``'s yaw-aligned ego frame: metres for ``dx, dy, dz``, radians for ``dyaw``
        (wrapped to ``[-pi, pi)``). ``T = 1`` gives ``(B, 0, 4)``.

    Raises:
        ValueError: If ``poses`` is not ``(B, T, 13)``.
    """
    _check_poses(poses, 'ego_motion_from_poses')
    pos = poses[..., 0:3]
    yaw = yaw_from_quaternion(poses[..., 3:7])
    d = pos[:, 1:] - pos[:, :-1]
    yaw_prev = yaw[:, :-1]
    c, s = torch.cos(yaw_prev), torch.sin(yaw_prev)
    dx = c * d[..., 0] + s * d[..., 1]
    dy = -s * d[..., 0] + c * d[..., 1]
    dyaw = wrap_angle(yaw[:, 1:] - yaw_prev)
    return torch.stack([dx, dy, d[..., 2], dyaw], dim=-1)


def accumulate_ego_motion(motion: torch.Tensor,
                          start: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Integrate per-step ego motion into poses relative to a reference frame.

    Inverse of :func:`ego_motion_from_poses`: with the reference (last history) frame at the
    origin with zero yaw (or at ``start``), step ``f`` is rotated by the accumulated yaw of
    step ``f - 1`` and added up.

    Args:
        motion (torch.Tensor): ``(B, F, 4)`` per-step ``[dx, dy, dz, dyaw]`` (m, rad).
        start (torch.Tensor, optional): ``(B, 4)`` initial ``[x, y, z, yaw]`` of the
            reference frame. Defaults to zeros.

    Returns:
        torch.Tensor: ``(B, F, 4)`` ``[x, y, z, yaw]`` of every step in the reference frame
        (metres, yaw wrapped to ``[-pi, pi)``).

    Raises:
        ValueError: If ``motion`` is not ``(B, F, 4)`` or ``start`` is not ``(B, 4)``.
    """
    if motion.dim() != 3 or motion.shape[-1] != EGO_MOTION_DIM:
        raise ValueError(f'accumulate_ego_motion: expected motion (B, F, 4), got '
                         f'{tuple(motion.shape)}')
    b = motion.shape[0]
    if start is None:
        start = motion.new_zeros(b, 4)
    if start.shape != (b, 4):
        raise ValueError(f'accumulate_ego_motion: expected start ({b}, 4), got '
                         f'{tuple(start.shape)}')
    yaw_after = start[:, 3:4] + torch.cumsum(motion[..., 3], dim=1)
    yaw_before = torch.cat([start[:, 3:4], yaw_after[:, :-1]], dim=1)
    c, s = torch.cos(yaw_before), torch.sin(yaw_before)
    dx = c * motion[..., 0] - s * motion[..., 1]
    dy = s * motion[..., 0] + c * motion[..., 1]
    x = start[:, 0:1] + torch.cumsum(dx, dim=1)
    y = start[:, 1:2] + torch.cumsum(dy, dim=1)
    z = start[:, 2:3] + torch.cumsum(motion[..., 2], dim=1)
    return torch.stack([x, y, z, wrap_angle(yaw_after)], dim=-1)


#: Scalar-first quaternions ``[cos(yaw/2), 0, 0, sin(yaw/2)]`` ``(..., 4)`` of yaw angles
#: ``(...)``; the implementation is :func:`.rotation.quat_from_yaw`.
yaw_to_quaternion = quat_from_yaw
