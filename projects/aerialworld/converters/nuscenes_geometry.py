"""Geometry of the nuScenes occupancy converter: boxes, gap filling, 13-D poses, aggregation.

See :mod:`.nuscenes_occ` for the pipeline. The majority-vote voxeliser is shared with the
UAVScenes converter (:mod:`.voxelize`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Sequence, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from projects.aerialworld.datasets.classes import OCC3D_FREE_LABEL as OCCWORLD_FREE_LABEL
from .nuscenes_io import SequenceFrame, apply_transform
from .trajectories import finite_difference_rates

if TYPE_CHECKING:
    from .nuscenes_occ import NuScenesOccConfig


# --------------------------------------------------------------------------- geometry
def points_in_boxes(xyz: np.ndarray, boxes: np.ndarray, scale: float = 1.0,
                    z_margin: float = 0.0) -> np.ndarray:
    """Which points lie inside which boxes (vectorised over points x boxes).

    Args:
        xyz (np.ndarray): (N, 3) points (m), same frame as the boxes.
        boxes (np.ndarray): (M, 7) ``x, y, z_bottom, w, l, h, yaw`` (``w`` along the local x
            axis, ``l`` along the local y axis, rotation ``yaw`` about z, rad).
        scale (float): size factor applied to w, l, h (about the box centre).
        z_margin (float): extra metres below the (scaled) box bottom.

    Returns:
        np.ndarray: bool (N, M).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if len(boxes) == 0:
        return np.zeros((len(xyz), 0), dtype=bool)
    local = box_local_coords(xyz[:, None, :], boxes[None])
    w, l, h = (boxes[:, 3:6] * scale).T
    zc = boxes[:, 5] / 2.0  # local z is measured from the box bottom
    return ((np.abs(local[..., 0]) <= w / 2) & (np.abs(local[..., 1]) <= l / 2) &
            (local[..., 2] >= zc - h / 2 - z_margin) & (local[..., 2] <= zc + h / 2))


def box_local_coords(xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Coordinates in the boxes' own frames (origin at the bottom centre, x along ``w``).

    Args:
        xyz (np.ndarray): (..., 3) points, broadcastable against ``boxes[..., :3]``.
        boxes (np.ndarray): (..., 7) boxes.

    Returns:
        np.ndarray: float64 (..., 3).
    """
    d = xyz - boxes[..., :3]
    c, s = np.cos(boxes[..., 6]), np.sin(boxes[..., 6])
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1],
                     d[..., 2]], axis=-1)


def box_to_frame_coords(local: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`box_local_coords`: box-frame points to the boxes' frame.

    Args:
        local (np.ndarray): (N, 3) points in their boxes' frames.
        boxes (np.ndarray): (N, 7) the box of every point.

    Returns:
        np.ndarray: float64 (N, 3).
    """
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    return np.stack([c * local[:, 0] - s * local[:, 1] + boxes[:, 0],
                     s * local[:, 0] + c * local[:, 1] + boxes[:, 1],
                     local[:, 2] + boxes[:, 2]], axis=-1)


def fill_gaps(occ: np.ndarray, free_label: int = OCCWORLD_FREE_LABEL, min_neighbors: int = 5,
              iterations: int = 1) -> np.ndarray:
    """Planar gap filling: a free voxel with many occupied horizontal neighbours is filled.

    A free voxel whose 8 neighbours in the same z layer hold at least ``min_neighbors``
    occupied voxels takes their most frequent label (ties: lower id). This closes the gaps
    between LiDAR rings on the ground and on walls without growing thin structures
    (a voxel at the end of a line has at most 3 occupied neighbours). Repeated
    ``iterations`` times; vectorised with one ``scipy.ndimage`` correlation per class.

    Args:
        occ (np.ndarray): uint8 (X, Y, Z) labels.
        free_label (int): free label.
        min_neighbors (int): 0..8 (0 disables filling).
        iterations (int): passes.

    Returns:
        np.ndarray: uint8 (X, Y, Z), a new array.
    """
    out = np.array(occ, dtype=np.uint8, copy=True)
    if min_neighbors <= 0 or iterations <= 0:
        return out
    kernel = np.ones((3, 3, 1), dtype=np.int32)
    kernel[1, 1, 0] = 0
    classes = [c for c in range(int(out.max()) + 1) if c != free_label]
    for _ in range(iterations):
        best = np.zeros(out.shape, dtype=np.int32)
        best_lab = np.full(out.shape, free_label, dtype=np.uint8)
        total = np.zeros(out.shape, dtype=np.int32)
        for c in classes:
            cnt = ndimage.correlate((out == c).astype(np.int32), kernel, mode='constant')
            total += cnt
            better = cnt > best
            best[better] = cnt[better]
            best_lab[better] = c
        grow = (out == free_label) & (total >= min_neighbors)
        if not grow.any():
            break
        out[grow] = best_lab[grow]
    return out


def ego_poses_13d(translations: np.ndarray, quaternions_wxyz: np.ndarray,
                  timestamps_s: np.ndarray) -> np.ndarray:
    """13-D poses ``[x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]`` from ego poses.

    Linear velocity: ``np.gradient`` of the positions over the (non-uniform) timestamps
    (second-order central differences inside, one-sided at the ends), global frame, m/s.
    Angular velocity: body frame, ``rotvec(R_{i-1}^T R_{i+1}) / (t_{i+1} - t_{i-1})``
    (one-sided at the ends), rad/s (``scipy.spatial.transform.Rotation``).

    Args:
        translations (np.ndarray): (T, 3) metres.
        quaternions_wxyz (np.ndarray): (T, 4) scalar-first body-to-global rotations.
        timestamps_s (np.ndarray): (T,) strictly increasing seconds.

    Returns:
        np.ndarray: float64 (T, 13); velocities are zero when T == 1.

    Raises:
        ValueError: shapes disagree or timestamps do not increase.
    """
    pos = np.asarray(translations, dtype=np.float64)
    q = np.asarray(quaternions_wxyz, dtype=np.float64)
    t = np.asarray(timestamps_s, dtype=np.float64)
    if pos.shape != (len(t), 3) or q.shape != (len(t), 4):
        raise ValueError(f'ego_poses_13d: shapes {pos.shape}, {q.shape}, {t.shape} disagree')
    if len(t) > 1 and (np.diff(t) <= 0).any():
        raise ValueError('ego_poses_13d: timestamps must increase strictly')
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)  # qw >= 0
    vel, ang = finite_difference_rates(t, pos, Rotation.from_quat(q[:, [1, 2, 3, 0]]))
    return np.concatenate([pos, q, vel, ang], axis=1)


# --------------------------------------------------------------------------- aggregation
@dataclass
class AggregatedScene:
    """Points of a sequence split into static (global frame) and object (box frame) parts.

    Attributes:
        static_xyz (np.ndarray): float64 (S, 3) global frame.
        static_labels (np.ndarray): uint8 (S,).
        object_xyz (np.ndarray): float64 (K, 3) in the frame of their instance's box.
        object_labels (np.ndarray): uint8 (K,).
        object_ids (np.ndarray): int64 (K,) index into ``instance_tokens``.
        instance_tokens (np.ndarray): (I,) str, sorted.
        stats (dict): counts of dropped / static / object points.
    """

    static_xyz: np.ndarray
    static_labels: np.ndarray
    object_xyz: np.ndarray
    object_labels: np.ndarray
    object_ids: np.ndarray
    instance_tokens: np.ndarray
    stats: Dict[str, int] = field(default_factory=dict)


def aggregate_sequence(frames: Sequence[SequenceFrame], cfg: NuScenesOccConfig) -> AggregatedScene:
    """Split every frame's points into static and per-object points and accumulate them.

    Args:
        frames (Sequence[SequenceFrame]): the sequence.
        cfg (NuScenesOccConfig): options (ego box, box scale / margin, noise handling).

    Returns:
        AggregatedScene: static points in the global frame, object points in box frames.
    """
    tokens = np.unique(np.concatenate([f.box_tokens for f in frames] + [np.array([], str)]))
    eb = np.asarray(cfg.ego_box, dtype=np.float64)
    s_xyz, s_lab, o_xyz, o_lab, o_id = [], [], [], [], []
    stats = dict(points=0, ego_dropped=0, noise_dropped=0, static=0, object=0)
    for f in frames:
        xyz = f.points[:, :3].astype(np.float64)
        ego = apply_transform(f.lidar2ego, xyz)
        in_ego = ((ego >= eb[:3]) & (ego <= eb[3:])).all(axis=1)
        keep = ~in_ego
        if cfg.drop_noise_far:
            keep &= f.labels != 0
        stats['points'] += len(xyz)
        stats['ego_dropped'] += int(in_ego.sum())
        stats['noise_dropped'] += int((~in_ego & ~keep).sum())
        xyz, ego, lab = xyz[keep], ego[keep], f.labels[keep]
        inside = points_in_boxes(xyz, f.boxes, cfg.box_scale, cfg.box_z_margin)
        has_box = inside.any(axis=1)
        # a point inside overlapping boxes goes to the box whose centre is nearest
        if inside.shape[1]:
            centre = f.boxes[:, :3] + np.array([0.0, 0.0, 1.0]) * f.boxes[:, 5:6] / 2
            dist = np.linalg.norm(xyz[:, None, :] - centre[None], axis=-1)
            which = np.where(inside, dist, np.inf).argmin(axis=1)[has_box]
            o_xyz.append(box_local_coords(xyz[has_box], f.boxes[which]))
            o_lab.append(lab[has_box])
            o_id.append(np.searchsorted(tokens, f.box_tokens[which]))
        s_xyz.append(apply_transform(f.ego2global, ego[~has_box]))
        s_lab.append(lab[~has_box])
        stats['static'] += int((~has_box).sum())
        stats['object'] += int(has_box.sum())
    cat = lambda xs, shape, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(shape, dt)  # noqa
    return AggregatedScene(
        static_xyz=cat(s_xyz, (0, 3), np.float64), static_labels=cat(s_lab, (0,), np.uint8),
        object_xyz=cat(o_xyz, (0, 3), np.float64), object_labels=cat(o_lab, (0,), np.uint8),
        object_ids=cat(o_id, (0,), np.int64), instance_tokens=tokens, stats=stats)


def frame_points(scene: AggregatedScene, frame: SequenceFrame) -> Tuple[np.ndarray, np.ndarray]:
    """All aggregated points in the ego frame of ``frame``.

    Static points: global -> ego(t). Object points of every instance annotated in ``frame``:
    box frame -> LiDAR(t) at that instance's box of ``frame`` -> ego(t).

    Returns:
        tuple: float64 (P, 3) ego-frame points and uint8 (P,) labels.
    """
    static = apply_transform(np.linalg.inv(frame.ego2global), scene.static_xyz)
    slot = np.full(len(scene.instance_tokens), -1, dtype=np.int64)
    ids = np.searchsorted(scene.instance_tokens, frame.box_tokens)
    if len(ids):
        slot[ids] = np.arange(len(ids))
    s = slot[scene.object_ids] if len(scene.object_ids) else np.zeros(0, np.int64)
    present = s >= 0
    obj = box_to_frame_coords(scene.object_xyz[present], frame.boxes[s[present]])
    obj = apply_transform(frame.lidar2ego, obj)
    return (np.concatenate([static, obj]),
            np.concatenate([scene.static_labels, scene.object_labels[present]]))
