"""Transforms of the Occ3D-nuScenes layout: inline index poses and per-voxel evaluation masks.

Used with :class:`~projects.aerialworld.datasets.Occ3DDataset` (see its module for the
layout of ``gts/<scene>/<token>/labels.npz``).
"""
import os.path as osp

import numpy as np
from mmcv.transforms import BaseTransform

from projects.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadIndexPoses(BaseTransform):
    """Copy the inline index poses of a window into ``results['poses']``.

    Required keys: ``index_poses`` ((T, 13) float, from :class:`Occ3DDataset`).
    Added keys: ``poses``: float32 (T, 13).

    Raises:
        KeyError: ``index_poses`` is missing.
    """

    def transform(self, results: dict) -> dict:
        if 'index_poses' not in results:
            raise KeyError('LoadIndexPoses needs `index_poses` (from Occ3DDataset); got keys '
                           f'{sorted(results)}')
        results['poses'] = np.asarray(results['index_poses'], dtype=np.float32)
        return results


@TRANSFORMS.register_module()
class LoadOccupancyMaskSequence(BaseTransform):
    """Load a per-voxel evaluation mask of every frame of a window.

    Reads ``npz_key`` (e.g. Occ3D's ``mask_camera`` or ``mask_lidar``) from the files of
    ``results['occ_paths']``. Nonzero = evaluated, zero = ignored by the metric.

    Added keys: ``key`` (default ``'occ_mask'``): bool (T, X, Y, Z).

    Args:
        npz_key (str): array name in the ``.npz``. Defaults to ``'mask_camera'``.
        key (str): results key. Defaults to ``'occ_mask'``.

    Raises:
        FileNotFoundError: a file is missing (named).
        ValueError: the key is absent or shapes differ between frames (file named).
    """

    def __init__(self, npz_key: str = 'mask_camera', key: str = 'occ_mask') -> None:
        self.npz_key = npz_key
        self.key = key

    def transform(self, results: dict) -> dict:
        masks = []
        for path in results['occ_paths']:
            if not osp.isfile(path):
                raise FileNotFoundError(f'Occupancy mask file not found: {path}')
            with np.load(path, allow_pickle=False) as npz:
                if self.npz_key not in npz.files:
                    raise ValueError(f'Occupancy file {path} has no mask '
                                     f"'{self.npz_key}' (keys: {npz.files})")
                m = npz[self.npz_key] != 0
            if masks and m.shape != masks[0].shape:
                raise ValueError(f'Occupancy file {path}: mask shape {m.shape} differs from '
                                 f'{masks[0].shape}')
            masks.append(m)
        results[self.key] = np.stack(masks)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(npz_key={self.npz_key!r}, key={self.key!r})'
