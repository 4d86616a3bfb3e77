"""Geometric augmentation of AerialWorld windows."""
import numpy as np
from mmcv.transforms import BaseTransform

from projects.registry import TRANSFORMS


def mirror_poses_y(poses: np.ndarray) -> np.ndarray:
    """Mirror 13-D poses across the world x-z plane (``y -> -y``).

    With the reflection ``S = diag(1, -1, 1)``: position ``p' = S p``,
    rotation ``R' = S R S`` (a proper rotation), i.e. quaternion
    ``(w, x, y, z) -> (w, -x, y, -z)`` (yaw and roll negated, pitch kept);
    world linear velocity ``v' = S v``; body angular velocity (an axial
    vector) ``w' = det(S) S w = (-wx, wy, -wz)``.

    Args:
        poses (np.ndarray): ``(..., 13)`` or ``(..., 7)`` poses
            ``[x, y, z, qw, qx, qy, qz, (vx, vy, vz, wx, wy, wz)]``.

    Returns:
        np.ndarray: Mirrored poses, same shape and dtype.
    """
    out = np.array(poses, copy=True)
    out[..., 1] *= -1  # y
    out[..., 4] *= -1  # qx
    out[..., 6] *= -1  # qz
    if out.shape[-1] >= 13:
        out[..., 8] *= -1  # vy
        out[..., 10] *= -1  # wx
        out[..., 12] *= -1  # wz
    return out


@TRANSFORMS.register_module()
class RandomFlipOccupancy(BaseTransform):
    """Randomly mirror a whole window left-right (``y -> -y``).

    The occupancy grid is ego-centred and yaw-aligned (gravity aligned),
    with a y range symmetric about the ego, so mirroring the world across
    its x-z plane mirrors every frame's grid along its Y axis (axis 2 of
    ``(T, X, Y, Z)``). The poses are mirrored consistently with
    :func:`mirror_poses_y`, so ego motions derived from them stay consistent
    with the grids. The same decision applies to every frame of the window.

    Required keys: ``occupancy`` (``(T, X, Y, Z)``), optionally ``poses``
    and ``lidar`` (list of ``(N, >=3)`` ego-frame points, y negated).

    Modified keys: ``occupancy``, ``poses``, ``lidar``. Added keys:
    ``flip_y`` (bool).

    Args:
        prob (float): Flip probability in ``[0, 1]``. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'RandomFlipOccupancy: prob must be in [0, 1], '
                             f'got {prob}')
        self.prob = prob

    def transform(self, results: dict) -> dict:
        """Flip with probability ``prob``.

        Args:
            results (dict): Window with ``occupancy`` (and ``poses``).

        Returns:
            dict: ``results``, possibly mirrored, with ``flip_y`` set.
        """
        flip = bool(np.random.rand() < self.prob)
        results['flip_y'] = flip
        if not flip:
            return results
        occ = results['occupancy']
        if occ.ndim != 4:
            raise ValueError('RandomFlipOccupancy expects occupancy of shape '
                             f'(T, X, Y, Z), got {occ.shape}')
        results['occupancy'] = np.ascontiguousarray(occ[:, :, ::-1, :])
        if 'poses' in results:
            results['poses'] = mirror_poses_y(results['poses'])
        if 'lidar' in results:
            flipped = []
            for pts in results['lidar']:
                pts = pts.copy()
                pts[:, 1] *= -1
                flipped.append(pts)
            results['lidar'] = flipped
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'
