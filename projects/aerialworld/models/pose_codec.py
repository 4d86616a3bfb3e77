"""Pose codec of AerialWorld: how 13-D poses become the world model's ego-motion vectors.

Two encodings (``mode``) are supported:

* ``'planar4'``: the per-step motion ``[dx, dy, dz, dyaw]`` (metres, radians) of frame t
  relative to frame t-1, in frame t-1's yaw-aligned ego frame
  (:func:`~projects.common.structures.ego_motion_from_poses`);
* ``'6dof'``: the 13-D 6-DoF motion ``[dx, dy, dz, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]``
  of :mod:`projects.common.structures.pose6dof` (translation and orientation in the previous
  frame's gravity-aligned frame, velocities), composed back into absolute poses with
  :func:`~projects.common.structures.compose_ego_motion_6dof`.

Every mode-specific rule of the model lives in the tables of this module, so the model itself
never branches on the mode.
"""
from typing import Callable, Dict, NamedTuple

import torch

from projects.common.structures import (MOTION_6DOF_DIM, accumulate_ego_motion,
                                        compose_ego_motion_6dof, ego_motion_6dof_from_poses,
                                        ego_motion_from_poses, frame_motion_6dof,
                                        identity_motion_6dof, planar_from_motion_6dof,
                                        quat_geodesic_distance)
from projects.registry import MODELS


def _planar_frame_motion(poses: torch.Tensor) -> torch.Tensor:
    """``(B, T, 4)`` per-frame motion: zeros for frame 0, then the per-step motion."""
    motion = ego_motion_from_poses(poses)
    return torch.cat([motion.new_zeros(motion.shape[0], 1, 4), motion], dim=1)


def _planar_compose(motion: torch.Tensor, start_pose: torch.Tensor) -> torch.Tensor:
    """Reject composing planar motion into 13-D poses (it has no roll / pitch / velocity)."""
    raise ValueError("PoseCodec.compose needs mode='6dof': the planar 4-D motion does not "
                     'determine roll, pitch or velocities of a 13-D pose')


def _planar_parts(motion: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Loss parts of a 4-D motion: the pose loss sees the whole vector."""
    return dict(pose=motion)


def _sixdof_parts(motion: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Loss parts of a 13-D motion: translation (m), quaternion, velocities (m/s, rad/s)."""
    return dict(pose=motion[..., :3], rot=motion[..., 3:7], vel=motion[..., 7:13])


def _planar_stats(pred: torch.Tensor, gt: torch.Tensor) -> Dict[str, torch.Tensor]:
    """No extra logging scalars for planar motion."""
    return {}


def _sixdof_stats(pred: torch.Tensor, gt: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Mean geodesic rotation error in degrees (logging only)."""
    return dict(rot_err_deg=torch.rad2deg(
        quat_geodesic_distance(pred[..., 3:7], gt[..., 3:7])).mean())


class _Mode(NamedTuple):
    """The functions of one pose encoding."""
    dims: int
    step_motion: Callable[[torch.Tensor], torch.Tensor]
    frame_motion: Callable[[torch.Tensor], torch.Tensor]
    no_motion: Callable[[int, torch.Tensor], torch.Tensor]
    to_planar: Callable[[torch.Tensor], torch.Tensor]
    compose: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loss_parts: Callable[[torch.Tensor], Dict[str, torch.Tensor]]
    stats: Callable[[torch.Tensor, torch.Tensor], Dict[str, torch.Tensor]]


_MODES = {
    'planar4': _Mode(
        dims=4,
        step_motion=ego_motion_from_poses,
        frame_motion=_planar_frame_motion,
        no_motion=lambda b, like: like.new_zeros(b, 1, 4),
        to_planar=lambda motion: motion.float(),
        compose=_planar_compose,
        loss_parts=_planar_parts,
        stats=_planar_stats),
    '6dof': _Mode(
        dims=MOTION_6DOF_DIM,
        step_motion=ego_motion_6dof_from_poses,
        frame_motion=frame_motion_6dof,
        no_motion=lambda b, like: identity_motion_6dof(b, 1, like=like),
        to_planar=lambda motion: planar_from_motion_6dof(motion.float()),
        compose=lambda motion, start: compose_ego_motion_6dof(motion.float(), start.float()),
        loss_parts=_sixdof_parts,
        stats=_sixdof_stats),
}

#: Pose modes and the dimension ``D`` of their motion vectors.
POSE_MODES = {name: mode.dims for name, mode in _MODES.items()}


@MODELS.register_module()
class PoseCodec:
    """Encode 13-D poses into the ego-motion vectors of one ``pose_mode`` and back.

    Args:
        mode (str): ``'planar4'`` (``D = 4``) or ``'6dof'`` (``D = 13``); see the module
            docstring.

    Raises:
        ValueError: On an unknown ``mode``.

    Example:
        >>> codec = PoseCodec('planar4')
        >>> motion = codec.step_motion(poses)          # (B, T - 1, 4)
        >>> rel = codec.accumulate(motion)             # (B, T - 1, 4) [x, y, z, yaw]
    """

    def __init__(self, mode: str = 'planar4') -> None:
        if mode not in _MODES:
            raise ValueError(f'pose_mode must be one of {tuple(_MODES)}, got {mode!r}')
        self.mode = mode
        self._fn = _MODES[mode]

    def __repr__(self) -> str:
        return f'PoseCodec(mode={self.mode!r})'

    @property
    def dims(self) -> int:
        """int: Dimension ``D`` of a motion vector (4 or 13)."""
        return self._fn.dims

    @property
    def loss_parts_available(self) -> tuple:
        """tuple[str]: Names of the motion parts pose losses can apply to."""
        probe = torch.zeros(1, self.dims)
        return tuple(self._fn.loss_parts(probe))

    def step_motion(self, poses: torch.Tensor) -> torch.Tensor:
        """Per-step motion of frame t relative to frame t-1.

        Args:
            poses (torch.Tensor): ``(B, T, 13)`` float poses (metres, scalar-first unit
                quaternions, m/s, rad/s).

        Returns:
            torch.Tensor: ``(B, T - 1, D)`` float motion.
        """
        return self._fn.step_motion(poses)

    def frame_motion(self, poses: torch.Tensor) -> torch.Tensor:
        """Per-frame motion input of the world transformer.

        Frame 0 gets zeros in ``'planar4'`` mode and its motion relative to its own
        gravity-aligned frame (its roll / pitch and velocities) in ``'6dof'`` mode.

        Args:
            poses (torch.Tensor): ``(B, T, 13)`` float poses.

        Returns:
            torch.Tensor: ``(B, T, D)`` float motion.
        """
        return self._fn.frame_motion(poses)

    def no_motion(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """"No motion" of one step: zeros (4-D) or the identity 6-DoF motion.

        Args:
            batch (int): ``B``.
            like (torch.Tensor): Tensor whose dtype / device the result takes.

        Returns:
            torch.Tensor: ``(B, 1, D)``.
        """
        return self._fn.no_motion(batch, like)

    def to_planar(self, motion: torch.Tensor) -> torch.Tensor:
        """Planar part ``[dx, dy, dz, dyaw]`` ``(..., 4)`` of motion ``(..., D)``."""
        return self._fn.to_planar(motion)

    def accumulate(self, motion: torch.Tensor) -> torch.Tensor:
        """Pose of every step relative to the start, ``[x, y, z, yaw]`` ``(B, F, 4)``.

        Args:
            motion (torch.Tensor): ``(B, F, D)`` per-step motion.

        Returns:
            torch.Tensor: ``(B, F, 4)`` float (metres, radians).
        """
        return accumulate_ego_motion(self.to_planar(motion))

    def compose(self, motion: torch.Tensor, start_pose: torch.Tensor) -> torch.Tensor:
        """Absolute 13-D poses of a 6-DoF motion sequence.

        Args:
            motion (torch.Tensor): ``(B, F, 13)`` per-step 6-DoF motion.
            start_pose (torch.Tensor): ``(B, 13)`` pose of the frame before the first step.

        Returns:
            torch.Tensor: ``(B, F, 13)`` poses in the world frame of ``start_pose``.

        Raises:
            ValueError: In ``'planar4'`` mode or on bad shapes.
        """
        return self._fn.compose(motion, start_pose)

    def check_plan(self, planned_poses, poses: torch.Tensor, caller: str) -> torch.Tensor:
        """Validate planned absolute poses and broadcast them over the batch.

        Args:
            planned_poses (array-like): ``(B, F, 13)`` or ``(F, 13)`` poses (metres, unit
                quaternions ``[qw, qx, qy, qz]``, m/s, rad/s).
            poses (torch.Tensor): ``(B, T, 13)`` poses of the window (dtype, device, ``B``).
            caller (str): Named in error messages.

        Returns:
            torch.Tensor: ``(B, F, 13)`` plan.

        Raises:
            ValueError: If the plan is not ``(B, F, 13)`` with ``F >= 1``, has non-finite
                values or a zero quaternion.
        """
        b = poses.shape[0]
        plan = torch.as_tensor(planned_poses, dtype=poses.dtype, device=poses.device)
        if plan.dim() == 2:
            plan = plan[None].expand(b, *plan.shape)
        if plan.dim() != 3 or plan.shape[0] != b or plan.shape[1] < 1 or plan.shape[2] != 13:
            raise ValueError(f'{caller}: planned_poses must be ({b}, F, 13) with F >= 1, got '
                             f'{tuple(plan.shape)}')
        if not torch.isfinite(plan).all():
            raise ValueError(f'{caller}: planned_poses has non-finite values')
        if (plan[..., 3:7].norm(dim=-1) < 1e-6).any():
            raise ValueError(f'{caller}: planned_poses has a zero quaternion (columns 3:7 '
                             'must be [qw, qx, qy, qz])')
        return plan

    def loss_parts(self, motion: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Slices of a motion tensor that pose losses apply to.

        Args:
            motion (torch.Tensor): ``(..., D)``.

        Returns:
            dict[str, torch.Tensor]: ``'planar4'``: ``pose`` (the whole 4-D vector);
            ``'6dof'``: ``pose`` (translation ``[dx, dy, dz]``, m), ``rot`` (quaternion
            ``[qw, qx, qy, qz]``), ``vel`` (``[v (m/s), w (rad/s)]``).
        """
        return self._fn.loss_parts(motion)

    @torch.no_grad()
    def stats(self, pred: torch.Tensor, gt: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Logging scalars of predicted vs true motion ``(..., D)`` (no gradient).

        Returns:
            dict[str, torch.Tensor]: ``pose_l2`` (mean L2 translation error, m) and, for
            ``'6dof'``, ``rot_err_deg`` (mean geodesic rotation error, degrees).
        """
        out = self._fn.stats(pred, gt)
        out['pose_l2'] = (pred[..., :3] - gt[..., :3]).norm(dim=-1).mean()
        return out
