"""Per-sample reduction of :class:`~projects.common.metrics.OccupancyMetric`.

What :meth:`OccupancyMetric.process` keeps of one sample is small: per-step ``C x C``
confusion matrices (:func:`confusion_counts`, over all evaluated voxels and, optionally, the
visible ones) and per-step pose errors (:func:`pose_errors`). This module holds those
reductions and the readers of a sample's fields (a dict or a ``BaseDataElement``); the
dataset-level values and the table are in :mod:`.occupancy_report`.
"""
from typing import Any, Optional, Tuple

import numpy as np
import torch

from projects.common.structures.pose6dof import MOTION_6DOF_DIM, compose_ego_motion_6dof
from projects.common.structures.rotation import quat_geodesic_distance


def accumulate_ego_motion(motions: np.ndarray) -> np.ndarray:
    """Integrate per-step ego motions into poses relative to the start frame.

    Step t moves by ``(dx, dy)`` expressed in frame t-1's yaw-aligned frame,
    then turns by ``dyaw``; height adds ``dz``. With ``yaw_0 = 0`` and
    ``p_0 = 0`` (the last history frame)::

        yaw_t = sum_{s<=t} dyaw_s
        p_t   = p_{t-1} + Rz(yaw_{t-1}) @ [dx_t, dy_t]      (2-D)
        z_t   = z_{t-1} + dz_t

    Vectorised over any leading batch dimensions (exclusive cumulative sum
    of yaw, one rotation, one cumulative sum of positions).

    Args:
        motions (np.ndarray): ``(..., F, 4)`` ``[dx, dy, dz, dyaw]``
            (metres, radians). ``(..., F, 3)`` (no yaw) is also accepted.

    Returns:
        np.ndarray: float64 ``(..., F, 4)`` accumulated ``[x, y, z, yaw]``
        of frames 1..F in the start frame (metres, radians).

    Raises:
        ValueError: The last dimension is not 3 or 4.
    """
    m = np.asarray(motions, dtype=np.float64)
    if m.shape[-1] not in (3, 4):
        raise ValueError('accumulate_ego_motion expects (..., F, 4) '
                         f'[dx, dy, dz, dyaw], got shape {m.shape}')
    dyaw = m[..., 3] if m.shape[-1] == 4 else np.zeros(m.shape[:-1])
    yaw = np.cumsum(dyaw, axis=-1)
    yaw_before = yaw - dyaw  # heading of frame t-1
    cos, sin = np.cos(yaw_before), np.sin(yaw_before)
    dx, dy = m[..., 0], m[..., 1]
    x = np.cumsum(cos * dx - sin * dy, axis=-1)
    y = np.cumsum(sin * dx + cos * dy, axis=-1)
    z = np.cumsum(m[..., 2], axis=-1)
    return np.stack([x, y, z, yaw], axis=-1)


def to_numpy(value: Any) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a numpy array.

    Args:
        value (Any): ``torch.Tensor``, ``np.ndarray`` or anything ``np.asarray`` takes.

    Returns:
        np.ndarray: The values, same shape and dtype.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_cpu_tensor(value: Any) -> torch.Tensor:
    """A tensor (detached, on the CPU) of a tensor or array-like, without a copy of a tensor.

    Args:
        value (Any): ``torch.Tensor``, ``np.ndarray`` or anything ``np.asarray`` takes.

    Returns:
        torch.Tensor: The values, same shape and dtype.
    """
    return torch.as_tensor(to_numpy(value) if not isinstance(
        value, torch.Tensor) else value).detach().cpu()


def sample_field(sample: Any, key: str) -> Any:
    """Read field ``key`` of a sample.

    Args:
        sample (dict | BaseDataElement): A model output.
        key (str): Field name.

    Returns:
        Any: The value, None when the sample has no such field.
    """
    if isinstance(sample, dict):
        return sample.get(key)
    return getattr(sample, key, None)


def sample_meta(sample: Any, key: str) -> Any:
    """Read metainfo ``key`` of a sample.

    Args:
        sample (dict | BaseDataElement): A model output; a dict may hold the key at its top
            level or in its ``metainfo`` dict.
        key (str): Metainfo key (e.g. ``'num_history'``).

    Returns:
        Any: The value, None when the sample has no such key.
    """
    if isinstance(sample, dict):
        if key in sample:
            return sample[key]
        meta = sample.get('metainfo')
        return meta.get(key) if isinstance(meta, dict) else None
    return getattr(sample, key, None)


def confusion_counts(pred: Any, gt: torch.Tensor, valid: Optional[torch.Tensor],
                     num_classes: int, name: str,
                     visible: Optional[torch.Tensor] = None
                     ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Per-step confusion matrices ``(F, C, C)`` int64 indexed ``[gt, pred]``.

    Voxel codes ``gt * C + pred`` (plus ``C * C`` for visible voxels) are counted with one
    ``bincount`` per step, in the narrowest integer type that holds every code (uint8 for up
    to 11 classes without the visible split: a tenth of the int32 time on a 200 x 200 x 121
    grid). Ignored ground-truth voxels may wrap around in that type but are dropped by
    ``valid`` before counting.

    Args:
        pred (Any): ``(F, X, Y, Z)`` integer labels (tensor or array).
        gt (torch.Tensor): ``(F, X, Y, Z)`` integer ground-truth labels.
        valid (torch.Tensor, optional): ``(F, X, Y, Z)`` bool, the evaluated voxels; None
            evaluates all.
        num_classes (int): ``C``, labels of ``pred`` must lie in ``[0, C)``.
        name (str): Name of ``pred`` for error messages (e.g. ``'pred_occ'``).
        visible (torch.Tensor, optional): ``(F, X, Y, Z)`` bool visible-region mask.

    Returns:
        tuple: The ``(F, C, C)`` int64 matrices over all evaluated voxels and, when
        ``visible`` is given, over the visible ones (None otherwise).

    Raises:
        ValueError: ``pred`` does not have the shape of ``gt`` or has labels outside
            ``[0, C)``.
    """
    pred = as_cpu_tensor(pred)
    if pred.shape != gt.shape:
        raise ValueError(f'OccupancyMetric: {name} shape '
                         f'{tuple(pred.shape)} != gt_occ shape '
                         f'{tuple(gt.shape)}')
    C = num_classes
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= C):
        raise ValueError(f'OccupancyMetric: {name} has labels outside '
                         f'[0, {C}) (min {int(pred.min())}, max '
                         f'{int(pred.max())})')
    regions = 1 if visible is None else 2
    n = regions * C * C
    dtype = torch.uint8 if n <= 256 else torch.int16 if n <= 32767 else torch.int32
    out = np.zeros((gt.shape[0], regions, C, C), dtype=np.int64)
    for t in range(gt.shape[0]):
        code = gt[t].to(dtype) * C + pred[t].to(dtype)
        if visible is not None:
            code = code + visible[t].to(dtype) * (C * C)
        if valid is not None:
            code = code[valid[t]]
        out[t] = torch.bincount(code.reshape(-1), minlength=regions * C *
                                C).reshape(regions, C, C).numpy()
    if visible is None:
        return out[:, 0], None
    return out.sum(axis=1), out[:, 1]


def combine_eval_mask(sample: Any, gt: torch.Tensor, valid: Optional[torch.Tensor],
                      mask_key: Optional[str]) -> Optional[torch.Tensor]:
    """Combine ``valid`` with the sample's evaluation mask, if it has one.

    Args:
        sample (dict | BaseDataElement): A model output.
        gt (torch.Tensor): ``(F, X, Y, Z)`` ground-truth labels.
        valid (torch.Tensor, optional): ``(F, X, Y, Z)`` bool evaluated voxels so far.
        mask_key (str, optional): Field holding the mask (nonzero = evaluated),
            ``(F, X, Y, Z)`` or a whole window ``(T, X, Y, Z)`` with ``T > F`` whose last
            ``F`` frames are used. None disables masks.

    Returns:
        torch.Tensor | None: ``(F, X, Y, Z)`` bool evaluated voxels (None: all).

    Raises:
        ValueError: The mask's shape does not match ``gt``.
    """
    if mask_key is None:
        return valid
    mask = sample_field(sample, mask_key)
    if mask is None:
        return valid
    mask = torch.as_tensor(to_numpy(mask)).detach().cpu() != 0
    if mask.dim() == gt.dim() and mask.shape[0] > gt.shape[0]:
        mask = mask[-gt.shape[0]:]  # a whole window: keep the future frames
    if mask.shape != gt.shape:
        raise ValueError(f'OccupancyMetric: {mask_key} shape '
                         f'{tuple(mask.shape)} does not match gt_occ '
                         f'{tuple(gt.shape)}')
    return mask if valid is None else valid & mask


def pose_errors(pred: Any, gt: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Per-step translation error (m) and, for 6-DoF motion, rotation error (deg).

    Planar motion ``(F, 4)`` is integrated with :func:`accumulate_ego_motion`; 6-DoF motion
    ``(F, 13)`` is composed with :func:`~projects.common.structures.pose6dof.
    compose_ego_motion_6dof` and the rotation error is the geodesic angle between the
    composed orientations.

    Args:
        pred (Any): Predicted per-step ego motion, ``(F, 4)`` or ``(F, 13)``.
        gt (np.ndarray): float64 ground-truth motion of the same shape.

    Returns:
        tuple: ``(F,)`` float64 translation L2 of the accumulated motion (m) and ``(F,)``
        rotation error in degrees (None for planar motion).

    Raises:
        ValueError: The shapes differ.
    """
    pred = to_numpy(pred).astype(np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f'OccupancyMetric: ego motion shape {pred.shape} '
                         f'!= gt_ego_motion shape {gt.shape}')
    if gt.ndim == 2 and gt.shape[-1] == MOTION_6DOF_DIM:
        poses_p = compose_ego_motion_6dof(torch.from_numpy(pred)[None])[0]
        poses_g = compose_ego_motion_6dof(torch.from_numpy(gt)[None])[0]
        trans = (poses_p[:, :3] - poses_g[:, :3]).norm(dim=-1)
        rot = torch.rad2deg(
            quat_geodesic_distance(poses_p[:, 3:7], poses_g[:, 3:7]))
        return trans.numpy(), rot.numpy()
    diff = accumulate_ego_motion(pred)[..., :3] - \
        accumulate_ego_motion(gt)[..., :3]
    return np.linalg.norm(diff, axis=-1), None
