"""Geometry of the UAVScenes converter: rigid transforms, the yaw-aligned ego grid, 13-D poses.

The majority vote over the voxels is :func:`.voxelize.voxelize_labels`, shared with the nuScenes
converter.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from scipy.spatial.transform import Rotation

from projects.common.structures.trajectory import yaw_from_rotation
from .grid import GridSpec
from .trajectories import Trajectory, finite_difference_rates


# ----------------------------------------------------------------------------- geometry
def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid transform to (N, 3) points; returns (N, 3) float64."""
    T = np.asarray(T, np.float64)
    return np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3]


def ego_grid_indices(points: np.ndarray, ego_xyz: Sequence[float], yaw: float,
                     spec: GridSpec, z_datum: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Voxel indices of world points in a yaw-aligned ego-centred grid.

    The grid's x axis points along the ego heading ``yaw`` and is centred on the ego x, y;
    z is ``point z - z_datum`` (height above the datum), as in the PLATEAU sessions.

    Args:
        points (np.ndarray): (N, 3) world points (m).
        ego_xyz (Sequence[float]): ego position (3,), same frame (m); z is unused.
        yaw (float): ego heading (rad, counter-clockwise from the world x axis).
        spec (GridSpec): the grid.
        z_datum (float): world height of grid z = 0 (m).

    Returns:
        tuple: ``ijk`` (M, 3) int64 voxel indices of the points inside the grid and
        ``keep`` (N,) bool, which points those are.
    """
    p = np.asarray(points, np.float64)
    dx = p[:, 0] - ego_xyz[0]
    dy = p[:, 1] - ego_xyz[1]
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.stack([c * dx + s * dy, -s * dx + c * dy, p[:, 2] - z_datum], axis=1)
    lo = np.asarray(spec.point_cloud_range[:3])
    vs = np.asarray(spec.voxel_size)
    ijk = np.floor((local - lo) / vs).astype(np.int64)
    keep = np.all((ijk >= 0) & (ijk < np.asarray(spec.grid_size)), axis=1)
    return ijk[keep], keep


def body_yaw(R_wb: np.ndarray) -> np.ndarray:
    """Heading of body-to-world rotations: angle of the body x axis in the world x-y plane.

    Args:
        R_wb (np.ndarray): (..., 3, 3) body-to-world rotations.

    Returns:
        np.ndarray: (...,) float64 radians, counter-clockwise from the world x axis.
    """
    return yaw_from_rotation(np.asarray(R_wb, np.float64))


def trajectory_from_poses(times: np.ndarray, T_wb: np.ndarray, key_idx: np.ndarray,
                          t0: Optional[float] = None) -> Trajectory:
    """13-D poses of key frames from a (denser) stream of body-to-world poses.

    Velocities are central differences on the dense stream (one-sided at its ends) with the
    actual time steps: linear velocity ``dp/dt`` in the world frame (m/s), body angular
    velocity ``rotvec(R_{k-1}^T R_{k+1}) / (t_{k+1} - t_{k-1})`` (rad/s).

    Args:
        times (np.ndarray): (M,) float64 increasing seconds of the dense stream.
        T_wb (np.ndarray): (M, 4, 4) body-to-world poses of the dense stream.
        key_idx (np.ndarray): (T,) int indices of the key frames in the stream.
        t0 (float, optional): time origin of the returned timestamps (default: first key
            frame).

    Returns:
        Trajectory: ``kind='uavscenes'``, timestamps (T,) from ``t0``, positions (T, 3),
        quaternions (T, 4) ``w, x, y, z`` (sign-continuous, ``qw >= 0`` at the first frame),
        linear velocity (T, 3), angular velocity (T, 3), yaw (T,) unwrapped.

    Raises:
        ValueError: fewer than 2 poses or non-increasing times.
    """
    times = np.asarray(times, np.float64)
    key_idx = np.asarray(key_idx, np.int64)
    if len(times) < 2 or np.any(np.diff(times) <= 0):
        raise ValueError('trajectory_from_poses needs >= 2 poses with increasing times')
    pos = T_wb[:, :3, 3]
    rot = Rotation.from_matrix(T_wb[:, :3, :3])
    vel, ang = finite_difference_rates(times, pos, rot, key_idx)
    quat = rot[key_idx].as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar-last
    flip = np.concatenate([[1.0], np.sign(np.sum(quat[1:] * quat[:-1], axis=1))])
    flip[flip == 0] = 1.0
    quat = quat * np.cumprod(flip)[:, None]
    if quat[0, 0] < 0:
        quat = -quat
    t_key = times[key_idx]
    t0 = float(t_key[0]) if t0 is None else float(t0)
    return Trajectory(kind='uavscenes', timestamps=t_key - t0, positions=pos[key_idx],
                      quaternions=quat, linear_velocity=vel, angular_velocity=ang,
                      yaw=np.unwrap(body_yaw(T_wb[key_idx, :3, :3])))
