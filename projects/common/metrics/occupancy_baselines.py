"""No-learning baselines of occupancy forecasting, computed from the observed window.

Three forecasts that use no learned parameter, all built from the last observed (history)
frame of a window:

* **copy-last**: the last history frame repeated for every future step;
* **constant-velocity ego-motion warp** (``warp_cv``): the last history frame resampled at the
  voxel centres of the ego poses reached by continuing the motion between the last two
  history poses at constant velocity (the planar step ``[dx, dy, dz, dyaw]`` of
  :func:`~projects.common.structures.pose.ego_motion_from_poses`, repeated and accumulated with
  :func:`~projects.common.structures.pose.accumulate_ego_motion`) with
  :func:`~projects.common.structures.occupancy_warp.warp_occupancy` (the ego-pose warp of
  static voxels of DFIT-OccWorld, Zhang et al., arXiv:2412.13772, 2024); where the warped
  position falls outside the last frame's grid (no source voxel) the last frame's own voxel
  at that grid position is kept;
* **planned-pose warp** (``warp_plan``): the same warp along the ego poses of a planned path
  (``AerialWorld.predict_with_plan``) instead of constant velocity.

The *visible* region of a future frame is the set of its voxels whose centre, moved by the
true ego motion since the last history frame, falls inside the last history frame's grid
(what the ego had already observed); the rest is *newly revealed*. Grids are ego-centred and
yaw-aligned (``docs/aerialworld_data_and_model_contract.md``), so only the planar part of the
motion (and the height with ``z_reference='ego'``) enters.

The window is read from MMEngine's ``data_batch`` as the data loader collated it (before the
data preprocessor): ``{'inputs': {'occupancy': (T, X, Y, Z) per sample, 'poses': (T, 13) per
sample}, ...}`` with lists (``pseudo_collate``) or stacked tensors (``default_collate``), or a
list of packed samples.
"""
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from projects.common.structures.occupancy_warp import Z_REFERENCES, warp_occupancy
from projects.common.structures.pose import (POSE_DIM, accumulate_ego_motion,
                                             ego_motion_from_poses)
from projects.common.structures.pose6dof import MOTION_6DOF_DIM, planar_from_motion_6dof


def constant_velocity_rel_poses(history_poses: torch.Tensor, num_future: int) -> torch.Tensor:
    """Poses of the future frames under constant-velocity ego motion.

    The planar step between the last two history poses, ``m = [dx, dy, dz, dyaw]`` (frame
    ``H-1`` in frame ``H-2``'s yaw-aligned frame), is repeated ``num_future`` times and
    accumulated from the last history frame: step ``f`` is at
    ``accumulate_ego_motion([m] * f)[-1]``. With one history frame there is no motion to
    continue and every future pose is the origin (the warp is then copy-last).

    Args:
        history_poses (torch.Tensor): ``(H, 13)`` or ``(B, H, 13)`` float 13-D poses
            ``[x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]`` of the history frames
            (session world frame, metres, scalar-first quaternion body-to-world).
        num_future (int): Number of future steps ``F >= 1``.

    Returns:
        torch.Tensor: float32 ``(F, 4)`` (or ``(B, F, 4)``) ``[x, y, z, yaw]`` of the future
        frames in the last history frame's yaw-aligned ego frame (metres, radians).

    Raises:
        ValueError: If ``history_poses`` is not ``(H, 13)`` / ``(B, H, 13)`` with ``H >= 1``
            or ``num_future < 1``.
    """
    poses, squeeze = _batched(history_poses, 'history_poses')
    if poses.shape[1] < 1:
        raise ValueError('constant_velocity_rel_poses: history_poses has no frame')
    if int(num_future) < 1:
        raise ValueError(f'constant_velocity_rel_poses: num_future must be >= 1, got '
                         f'{num_future}')
    b = poses.shape[0]
    if poses.shape[1] >= 2:
        step = ego_motion_from_poses(poses[:, -2:])  # (B, 1, 4)
    else:
        step = poses.new_zeros(b, 1, 4)
    rel = accumulate_ego_motion(step.expand(b, int(num_future), 4).contiguous())
    return rel[0] if squeeze else rel


def rel_poses_from_poses(start_pose: torch.Tensor, future_poses: torch.Tensor) -> torch.Tensor:
    """Poses of future frames (absolute 13-D) in the yaw-aligned frame of a start pose.

    Used for the planned-pose warp (``future_poses`` = the plan) and for the true future
    (the visible / newly revealed split).

    Args:
        start_pose (torch.Tensor): ``(13,)`` or ``(B, 13)`` pose of the last history frame.
        future_poses (torch.Tensor): ``(F, 13)`` or ``(B, F, 13)`` absolute poses in the same
            world frame (metres, unit quaternions).

    Returns:
        torch.Tensor: float32 ``(F, 4)`` (or ``(B, F, 4)``) ``[x, y, z, yaw]`` relative to
        ``start_pose`` (metres, radians).

    Raises:
        ValueError: On shapes other than the above or mismatching batch sizes.
    """
    future, squeeze = _batched(future_poses, 'future_poses')
    start = torch.as_tensor(start_pose, dtype=torch.float32)
    if start.dim() == 1:
        start = start[None]
    if start.shape != (future.shape[0], POSE_DIM):
        raise ValueError(f'rel_poses_from_poses: start_pose must be (13,) or '
                         f'({future.shape[0]}, 13), got {tuple(start_pose.shape)}')
    motion = ego_motion_from_poses(torch.cat([start[:, None], future], dim=1))
    rel = accumulate_ego_motion(motion)
    return rel[0] if squeeze else rel


def rel_poses_from_motion(motion: torch.Tensor) -> torch.Tensor:
    """Poses ``[x, y, z, yaw]`` of per-step ego motion relative to its start frame.

    Args:
        motion (torch.Tensor): ``(F, 4)`` planar ``[dx, dy, dz, dyaw]`` or ``(F, 13)`` 6-DoF
            per-step motion (:mod:`projects.common.structures.pose6dof`; its planar part is
            used), metres and radians.

    Returns:
        torch.Tensor: float32 ``(F, 4)`` accumulated ``[x, y, z, yaw]``.

    Raises:
        ValueError: If ``motion`` is not ``(F, 4)`` or ``(F, 13)``.
    """
    m = torch.as_tensor(motion).detach().cpu().float()
    if m.dim() != 2 or m.shape[-1] not in (4, MOTION_6DOF_DIM):
        raise ValueError(f'rel_poses_from_motion: motion must be (F, 4) or (F, 13), got '
                         f'{tuple(m.shape)}')
    if m.shape[-1] == MOTION_6DOF_DIM:
        m = planar_from_motion_6dof(m)
    return accumulate_ego_motion(m[None])[0]


def warp_last_frame(last_occ: torch.Tensor, rel_poses: torch.Tensor,
                    point_cloud_range: Sequence[float], free_label: int,
                    z_reference: str = 'ground') -> Tuple[torch.Tensor, torch.Tensor]:
    """Warp the last observed frame to each future pose, keeping it where nothing maps.

    ``out[f] = warp(last_occ, rel_poses[f])`` where the warped voxel has a source inside the
    last frame's grid, and ``last_occ`` itself (the copy-last forecast) elsewhere.

    Args:
        last_occ (torch.Tensor): ``(X, Y, Z)`` integer labels of the last history frame.
        rel_poses (torch.Tensor): ``(F, 4)`` ``[x, y, z, yaw]`` of the future frames in the
            last frame's yaw-aligned ego frame (metres, radians).
        point_cloud_range (Sequence[float]): ``[x_min, y_min, z_min, x_max, y_max, z_max]``
            of the grid (metres).
        free_label (int): Free-space label (the warp's fill; those voxels are then replaced
            by the last frame's).
        z_reference (str): ``'ground'`` (planar warp) or ``'ego'``. Defaults to ``'ground'``.

    Returns:
        tuple: ``forecast`` ``(F, X, Y, Z)`` with ``last_occ``'s dtype and ``valid``
        ``(F, X, Y, Z)`` bool, True where the warp had a source voxel.

    Raises:
        ValueError: On bad shapes or arguments (see
            :func:`~projects.common.structures.occupancy_warp.warp_occupancy`).
    """
    if last_occ.dim() != 3:
        raise ValueError(f'warp_last_frame: last_occ must be (X, Y, Z), got '
                         f'{tuple(last_occ.shape)}')
    rel = torch.as_tensor(rel_poses, dtype=torch.float32)
    if rel.dim() != 2 or rel.shape[-1] != 4:
        raise ValueError(f'warp_last_frame: rel_poses must be (F, 4), got {tuple(rel.shape)}')
    f = rel.shape[0]
    nx, ny, nz = last_occ.shape
    stacked = last_occ[None].expand(f, nx, ny, nz)
    if z_reference != 'ground':
        warped, valid = warp_occupancy(stacked.contiguous(), rel, point_cloud_range,
                                       free_label, z_reference)
        return torch.where(valid, warped, stacked), valid
    # Planar warp: every target column (i, j) takes the whole source column it maps to (z is
    # not resampled), so warping the (X, Y) column indices with warp_occupancy and gathering
    # the columns gives the same volume at 1 / Z of the sampling cost.
    columns = torch.arange(nx * ny, dtype=torch.float32).view(1, nx, ny, 1).expand(f, nx, ny, 1)
    src, valid = warp_occupancy(columns.contiguous(), rel, point_cloud_range, 0, 'ground')
    warped = last_occ.reshape(nx * ny, nz)[src[..., 0].long()]  # (F, X, Y, Z)
    valid = valid.expand(f, nx, ny, nz)
    return torch.where(valid, warped, stacked), valid


def visible_mask(grid_size: Sequence[int], rel_poses: torch.Tensor,
                 point_cloud_range: Sequence[float], z_reference: str = 'ground'
                 ) -> torch.Tensor:
    """Voxels of each future frame that lie inside the last observed frame's grid.

    Args:
        grid_size (Sequence[int]): ``(X, Y, Z)``.
        rel_poses (torch.Tensor): ``(F, 4)`` true ``[x, y, z, yaw]`` of the future frames in
            the last history frame's yaw-aligned ego frame (metres, radians).
        point_cloud_range (Sequence[float]): Grid range (metres).
        z_reference (str): ``'ground'`` or ``'ego'``. Defaults to ``'ground'``.

    Returns:
        torch.Tensor: bool ``(F, X, Y, Z)``, True = visible (observed in the last frame),
        False = newly revealed.

    Raises:
        ValueError: On bad shapes or arguments.
    """
    if z_reference not in Z_REFERENCES:
        raise ValueError(f'visible_mask: z_reference must be one of {Z_REFERENCES}, got '
                         f'{z_reference!r}')
    nx, ny, nz = (int(v) for v in grid_size)
    rel = torch.as_tensor(rel_poses, dtype=torch.float32)
    if rel.dim() != 2 or rel.shape[-1] != 4:
        raise ValueError(f'visible_mask: rel_poses must be (F, 4), got {tuple(rel.shape)}')
    if z_reference == 'ground':
        # planar warp: visibility does not depend on z; warp one layer, broadcast
        ones = torch.ones(rel.shape[0], nx, ny, 1, dtype=torch.uint8)
        _, valid = warp_occupancy(ones, rel, point_cloud_range, 0, 'ground')
        return valid.expand(rel.shape[0], nx, ny, nz)
    ones = torch.ones(rel.shape[0], nx, ny, nz, dtype=torch.uint8)
    return warp_occupancy(ones, rel, point_cloud_range, 0, 'ego')[1]


def window_baselines(occupancy: torch.Tensor, poses: torch.Tensor, num_history: int,
                     num_future: int, point_cloud_range: Optional[Sequence[float]],
                     free_label: int, z_reference: str = 'ground',
                     planned_poses: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Every no-learning forecast of one observed window.

    Args:
        occupancy (torch.Tensor): ``(T, X, Y, Z)`` integer labels of the window,
            ``T >= num_history``.
        poses (torch.Tensor): ``(T, 13)`` float poses of the window.
        num_history (int): Number of observed frames ``H >= 1``; frame ``H - 1`` is the
            last observed one.
        num_future (int): Number of forecast steps ``F >= 1``.
        point_cloud_range (Sequence[float], optional): Grid range (metres); None leaves the
            warps out.
        free_label (int): Free-space label.
        z_reference (str): ``'ground'`` or ``'ego'``. Defaults to ``'ground'``.
        planned_poses (torch.Tensor, optional): ``(F, 13)`` absolute poses of a planned
            path in the window's world frame.

    Returns:
        dict[str, torch.Tensor]: ``(F, X, Y, Z)`` forecasts with ``occupancy``'s dtype:
        ``copy_last``, and with ``point_cloud_range`` ``warp_cv`` and (given a plan)
        ``warp_plan``.

    Raises:
        ValueError: On ``num_history`` outside ``[1, T]``, ``num_future < 1`` or a plan
            that is not ``(F, 13)``.
    """
    if not 1 <= int(num_history) <= occupancy.shape[0] or int(num_future) < 1:
        raise ValueError(f'window_baselines: need 1 <= num_history <= T and num_future >= 1, '
                         f'got num_history={num_history}, num_future={num_future}, '
                         f'T={occupancy.shape[0]}')
    hist, fut = int(num_history), int(num_future)
    last = occupancy[hist - 1]
    out = dict(copy_last=last[None].expand(fut, *last.shape))
    if point_cloud_range is None:
        return out
    rel = constant_velocity_rel_poses(poses[:hist], fut)
    out['warp_cv'] = warp_last_frame(last, rel, point_cloud_range, free_label, z_reference)[0]
    if planned_poses is not None:
        plan = torch.as_tensor(planned_poses).detach().cpu().float()
        if plan.shape != (fut, POSE_DIM):
            raise ValueError(f'window_baselines: planned_poses must be ({fut}, 13), got '
                             f'{tuple(plan.shape)}')
        rel = rel_poses_from_poses(poses[hist - 1], plan)
        out['warp_plan'] = warp_last_frame(last, rel, point_cloud_range, free_label,
                                           z_reference)[0]
    return out


def window_from_batch(data_batch: Any, index: int
                      ) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Occupancy and poses of sample ``index`` of a collated batch, if it carries them.

    Args:
        data_batch (Any): MMEngine's ``data_batch`` passed to ``BaseMetric.process``: a dict
            with ``inputs`` (a dict of per-sample lists or stacked batch tensors), a list of
            packed samples (each ``{'inputs': {...}}``), or None / empty.
        index (int): Position of the sample in the batch.

    Returns:
        tuple | None: ``occupancy`` ``(T, X, Y, Z)`` and ``poses`` float32 ``(T, 13)`` CPU
        tensors, or None when the batch has no ``occupancy`` and ``poses`` inputs.

    Raises:
        ValueError: If the batch has those inputs but fewer than ``index + 1`` samples or
            with shapes other than ``(T, X, Y, Z)`` / ``(T, 13)`` per sample.
    """
    inputs = None
    if isinstance(data_batch, dict):
        inputs = data_batch.get('inputs')
    elif isinstance(data_batch, (list, tuple)) and data_batch:
        if index >= len(data_batch):
            raise ValueError(f'data_batch has {len(data_batch)} samples, sample {index} '
                             'requested')
        item = data_batch[index]
        inputs = item.get('inputs') if isinstance(item, dict) else None
        index = None  # the inputs of this item are one sample
    if not isinstance(inputs, dict) or 'occupancy' not in inputs or 'poses' not in inputs:
        return None
    out = []
    for key, dims in (('occupancy', 4), ('poses', 2)):
        value = inputs[key]
        if index is not None:
            if isinstance(value, torch.Tensor) and value.dim() == dims:
                raise ValueError(f"data_batch['inputs']['{key}'] is a single sample "
                                 f'{tuple(value.shape)}, expected a batch')
            if len(value) <= index:
                raise ValueError(f"data_batch['inputs']['{key}'] has {len(value)} samples, "
                                 f'sample {index} requested')
            value = value[index]
        value = torch.as_tensor(value).detach().cpu()
        if value.dim() != dims or (key == 'poses' and value.shape[-1] != POSE_DIM):
            want = '(T, X, Y, Z)' if key == 'occupancy' else '(T, 13)'
            raise ValueError(f"data_batch['inputs']['{key}'] of a sample must be {want}, got "
                             f'{tuple(value.shape)}')
        out.append(value)
    occ, poses = out
    if occ.shape[0] != poses.shape[0]:
        raise ValueError(f'data_batch: occupancy has {occ.shape[0]} frames but poses '
                         f'{poses.shape[0]}')
    return occ, poses.float()


def matched_window(data_batch: Any, index: int, gt_occ: torch.Tensor,
                   num_history: Optional[int] = None
                   ) -> Optional[Tuple[torch.Tensor, torch.Tensor, int]]:
    """The observed window of sample ``index`` of ``data_batch``, checked against its GT.

    Args:
        data_batch (Any): See :func:`window_from_batch`.
        index (int): Position of the sample in the batch.
        gt_occ (torch.Tensor): ``(F, X, Y, Z)`` ground truth the model output carries for
            this sample.
        num_history (int, optional): Observed frames (the sample's metainfo); defaults to
            ``T - F``.

    Returns:
        tuple | None: ``occupancy`` ``(T, X, Y, Z)``, ``poses`` ``(T, 13)`` and
        ``num_history``, or None when the batch does not carry the window.

    Raises:
        ValueError: The window does not fit the sample (grid, length), or its future frames
            differ from ``gt_occ`` (data_batch and data_samples out of order).
    """
    window = window_from_batch(data_batch, index)
    if window is None:
        return None
    occ, poses = window
    fut = gt_occ.shape[0]
    hist = int(num_history) if num_history is not None else occ.shape[0] - fut
    if not 1 <= hist <= occ.shape[0] or occ.shape[1:] != gt_occ.shape[1:]:
        raise ValueError(f'the data_batch window of sample {index} {tuple(occ.shape)} does '
                         f'not fit num_history={hist} and gt_occ {tuple(gt_occ.shape)}')
    if occ.shape[0] >= hist + fut and not torch.equal(occ[hist:hist + fut].to(gt_occ.dtype),
                                                      gt_occ):
        raise ValueError(f'the future frames of data_batch sample {index} differ from its '
                         'gt_occ (are data_batch and data_samples in the same order?)')
    return occ, poses, hist


def true_future_rel_poses(window: Optional[Tuple[torch.Tensor, torch.Tensor, int]],
                          num_future: int, gt_ego_motion: Optional[torch.Tensor] = None
                          ) -> Optional[torch.Tensor]:
    """True ``[x, y, z, yaw]`` of the future frames relative to the last observed one.

    Args:
        window (tuple, optional): :func:`matched_window`'s output; used when it holds the
            future poses.
        num_future (int): ``F``.
        gt_ego_motion (torch.Tensor, optional): ``(F, 4)`` or ``(F, 13)`` true per-step ego
            motion, used otherwise.

    Returns:
        torch.Tensor | None: ``(F, 4)``, or None when neither source is available.
    """
    if window is not None and window[0].shape[0] >= window[2] + num_future:
        _, poses, hist = window
        return rel_poses_from_poses(poses[hist - 1], poses[hist:hist + num_future])
    if gt_ego_motion is not None:
        return rel_poses_from_motion(gt_ego_motion)
    return None


def _batched(poses: torch.Tensor, name: str) -> Tuple[torch.Tensor, bool]:
    p = torch.as_tensor(poses).detach().cpu().float()
    squeeze = p.dim() == 2
    if squeeze:
        p = p[None]
    if p.dim() != 3 or p.shape[-1] != POSE_DIM:
        raise ValueError(f'{name} must be (N, 13) or (B, N, 13), got {tuple(poses.shape)}')
    return p, squeeze
