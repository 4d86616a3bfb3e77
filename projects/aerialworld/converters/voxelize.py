"""Majority-vote voxelisation of labelled points: the one implementation of the converters.

Used by the UAVScenes converter (points already mapped to voxel indices of a yaw-aligned ego
grid) and by the nuScenes converter (points in an axis-aligned grid given by its range).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ['voxelize_labels', 'voxelize_majority']


def voxelize_labels(ijk: np.ndarray, labels: np.ndarray, grid_size: Sequence[int],
                    free_label: int) -> np.ndarray:
    """Semantic occupancy from labelled voxel indices by majority vote (vectorised).

    One ``np.unique`` over ``voxel * (free_label + 1) + label`` codes, a lexsort by
    (voxel, -count, label) and the first entry per voxel: each voxel holds its most frequent
    point label, ties go to the smaller label.

    Args:
        ijk (np.ndarray): (N, 3) int voxel indices, all inside ``grid_size``.
        labels (np.ndarray): (N,) int labels in ``[0, free_label)``.
        grid_size (Sequence[int]): (X, Y, Z).
        free_label (int): label of voxels without points.

    Returns:
        np.ndarray: (X, Y, Z) uint8 labels.
    """
    X, Y, Z = (int(v) for v in grid_size)
    out = np.full(X * Y * Z, free_label, np.uint8)
    if len(ijk):
        ijk = np.asarray(ijk, np.int64)
        flat = (ijk[:, 0] * Y + ijk[:, 1]) * Z + ijk[:, 2]
        n_lab = int(free_label) + 1
        key, counts = np.unique(flat * n_lab + np.asarray(labels).astype(np.int64),
                                return_counts=True)
        vox, lab = key // n_lab, key % n_lab
        order = np.lexsort((lab, -counts, vox))
        vox, lab = vox[order], lab[order]
        first = np.ones(len(vox), bool)
        first[1:] = vox[1:] != vox[:-1]
        out[vox[first]] = lab[first].astype(np.uint8)
    return out.reshape(X, Y, Z)


def voxelize_majority(xyz: np.ndarray, labels: np.ndarray, point_cloud_range: Sequence[float],
                      voxel_size: Sequence[float], free_label: int) -> np.ndarray:
    """Majority-vote occupancy of points in an axis-aligned grid (:func:`voxelize_labels`).

    Args:
        xyz (np.ndarray): (N, 3) points (m) in the grid's frame.
        labels (np.ndarray): (N,) int labels in ``[0, free_label)``.
        point_cloud_range (Sequence[float]): ``(x0, y0, z0, x1, y1, z1)`` (m).
        voxel_size (Sequence[float]): (3,) metres.
        free_label (int): label of voxels without points.

    Returns:
        np.ndarray: uint8 (X, Y, Z) with ``(X, Y, Z) = round((max - min) / voxel)``; points
        outside the range are ignored.
    """
    r = np.asarray(point_cloud_range, dtype=np.float64)
    v = np.asarray(voxel_size, dtype=np.float64)
    shape = np.round((r[3:] - r[:3]) / v).astype(np.int64)
    ijk = np.floor((np.asarray(xyz, dtype=np.float64) - r[:3]) / v).astype(np.int64)
    keep = ((ijk >= 0) & (ijk < shape)).all(axis=1)
    return voxelize_labels(ijk[keep], np.asarray(labels)[keep], shape, free_label)
