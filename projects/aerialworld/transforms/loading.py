"""Loading transforms of AerialWorld: occupancy, pose and LiDAR sequences.

Each transform reads the per-frame files named by the window produced by
:class:`~projects.aerialworld.datasets.AerialWorldDataset` (``occ_paths``,
``pose_paths``, ``lidar_paths``) and stacks them along a leading time axis.
Every problem with a file (missing, unreadable, corrupt, wrong key / dtype /
shape / value range, NaN) raises an error whose message names the file, so a
bad record in a large dataset can be found directly.

Errors raised:
    * :class:`FileNotFoundError` for a missing file;
    * :class:`InvalidSampleError` (a :class:`ValueError`) for anything wrong
      with the content of an existing file.

``AerialWorldDataset(skip_invalid=True)`` catches both (they are
:class:`OSError` / :class:`ValueError`), skips the window and counts it.
"""
import json
import math
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from projects.registry import TRANSFORMS


class InvalidSampleError(ValueError):
    """A data file exists but its content is invalid (corrupt, wrong key,
    dtype, shape or value range, NaN). The message names the file."""


def _check_exists(path: str, what: str) -> None:
    """Raise :class:`FileNotFoundError` naming ``path`` if it is missing."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file not found: {path}')


def _get_paths(results: dict, key: str, transform: str) -> List[str]:
    """Return ``results[key]`` as a list of paths, with a clear error."""
    if key not in results:
        raise KeyError(f'{transform} needs `{key}` in the results dict '
                       f'(produced by AerialWorldDataset); got keys '
                       f'{sorted(results)}')
    paths = results[key]
    if isinstance(paths, str):
        paths = [paths]
    return list(paths)


@TRANSFORMS.register_module()
class LoadOccupancySequence(BaseTransform):
    """Load the semantic occupancy grids of every frame of a window.

    Reads ``results['occ_paths']`` (T paths to ``.npz`` files, each holding
    an integer ``(X, Y, Z)`` label array under ``npz_key``) into one
    preallocated ``uint8`` array. The labels stay integer (uint8) until the
    data preprocessor moves them to the device.

    Required keys: ``occ_paths``. Optional keys used for validation when the
    arguments are ``None``: ``grid_size`` (expected ``(X, Y, Z)``) and
    ``num_classes``.

    Added keys: ``key`` (default ``'occupancy'``): ``np.uint8 (T, X, Y, Z)``.

    Args:
        key (str): Results key to write. Defaults to ``'occupancy'``.
        npz_key (str): Array name inside the ``.npz``. Defaults to
            ``'occupancy'``.
        expected_shape (Sequence[int], optional): Required ``(X, Y, Z)``
            shape of every frame. ``None`` uses ``results['grid_size']`` when
            present, else the first frame's shape (all frames must agree).
        num_classes (int, optional): Labels must be in ``[0, num_classes)``
            (or equal ``ignore_label``). ``None`` uses
            ``results['num_classes']`` when present, else only checks that
            labels fit in uint8.
        ignore_label (int, optional): A label allowed in addition to
            ``[0, num_classes)`` (unobserved voxels). Defaults to 255.

    Raises:
        FileNotFoundError: A file is missing (message names it).
        InvalidSampleError: A file is unreadable / corrupt, lacks
            ``npz_key``, holds a non-integer array, has the wrong shape or
            labels outside the valid range (message names the file).
    """

    def __init__(self,
                 key: str = 'occupancy',
                 npz_key: str = 'occupancy',
                 expected_shape: Optional[Sequence[int]] = None,
                 num_classes: Optional[int] = None,
                 ignore_label: Optional[int] = 255) -> None:
        self.key = key
        self.npz_key = npz_key
        self.expected_shape = (tuple(int(s) for s in expected_shape)
                               if expected_shape is not None else None)
        self.num_classes = num_classes
        self.ignore_label = ignore_label

    def _read(self, path: str) -> np.ndarray:
        """Read one npz frame; returns the raw integer array."""
        _check_exists(path, 'Occupancy')
        try:
            npz = np.load(path, allow_pickle=False)
        except Exception as err:  # any reader failure means a corrupt file
            raise InvalidSampleError(
                f'Occupancy file {path} is unreadable or corrupt: '
                f'{type(err).__name__}: {err}') from err
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise InvalidSampleError(
                f'Occupancy file {path} is not an .npz archive')
        with npz:
            if self.npz_key not in npz.files:
                raise InvalidSampleError(
                    f'Occupancy file {path} has no key '
                    f"'{self.npz_key}' (keys: {npz.files})")
            try:
                arr = npz[self.npz_key]
            except Exception as err:  # zlib / zipfile / format errors
                raise InvalidSampleError(
                    f'Occupancy file {path} is unreadable or corrupt: '
                    f'{type(err).__name__}: {err}') from err
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise InvalidSampleError(
                f'Occupancy file {path}: expected integer labels, got dtype '
                f'{arr.dtype}')
        return arr

    def _check_range(self, arr: np.ndarray, path: str,
                     num_classes: Optional[int]) -> None:
        """Vectorised label range check (no per-voxel Python)."""
        if arr.size == 0:
            raise InvalidSampleError(f'Occupancy file {path} is empty')
        if arr.dtype != np.uint8 and arr.min() < 0:
            raise InvalidSampleError(
                f'Occupancy file {path} has negative labels '
                f'(min {int(arr.min())})')
        vmax = int(arr.max())
        upper = num_classes if num_classes is not None else 256
        if vmax < upper:
            return
        bad = arr >= upper
        if self.ignore_label is not None:
            bad &= arr != self.ignore_label
        if bad.any():
            raise InvalidSampleError(
                f'Occupancy file {path} has labels outside [0, {upper})'
                + (f' (other than ignore_label={self.ignore_label})'
                   if self.ignore_label is not None else '')
                + f': max label {int(arr[bad].max())}')

    def transform(self, results: dict) -> dict:
        """Load the window's occupancy.

        Args:
            results (dict): Must contain ``occ_paths`` (list[str], T paths).

        Returns:
            dict: ``results`` with ``results[self.key]`` = ``np.uint8``
            array of shape ``(T, X, Y, Z)``.
        """
        paths = _get_paths(results, 'occ_paths', type(self).__name__)
        if not paths:
            raise ValueError('LoadOccupancySequence: `occ_paths` is empty')
        num_classes = self.num_classes
        if num_classes is None:
            num_classes = results.get('num_classes')
        shape = self.expected_shape
        if shape is None and results.get('grid_size') is not None:
            shape = tuple(int(s) for s in results['grid_size'])
        out = None
        for t, path in enumerate(paths):
            arr = self._read(path)
            if shape is None:
                shape = tuple(arr.shape)
            if tuple(arr.shape) != shape:
                raise InvalidSampleError(
                    f'Occupancy file {path} has shape {tuple(arr.shape)}, '
                    f'expected {shape}')
            self._check_range(arr, path, num_classes)
            if out is None:
                out = np.empty((len(paths), ) + shape, dtype=np.uint8)
            out[t] = arr  # casts to uint8; range already checked
        results[self.key] = out
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(key={self.key!r}, '
                f'npz_key={self.npz_key!r}, '
                f'expected_shape={self.expected_shape}, '
                f'num_classes={self.num_classes}, '
                f'ignore_label={self.ignore_label})')


def pose_from_json_dict(record: dict, path: str = '<dict>') -> np.ndarray:
    """Convert one pose JSON record to the 13-D pose vector.

    Reads the record with the session-format reader
    (:func:`projects.aerialworld.datasets.session_io.pose_from_json`): ``record['pose_13d']``
    when present, else the nested dictionaries ``position {x,y,z}``, ``orientation
    {x,y,z,w}`` (converted to the scalar-first order) and ``velocity {linear {x,y,z},
    angular {x,y,z}}`` (missing velocity is filled with zeros). The quaternion is normalised.

    Args:
        record (dict): The parsed JSON object.
        path (str): File name used in error messages.

    Returns:
        np.ndarray: float32 ``(13,)``: ``[x, y, z, qw, qx, qy, qz, vx, vy,
        vz, wx, wy, wz]`` (metres, unit quaternion, m/s, rad/s).

    Raises:
        InvalidSampleError: Not a JSON object, wrong length, missing fields, non-finite
            values or a zero quaternion (message names ``path``).
    """
    from projects.aerialworld.datasets.session_io import pose_from_json
    if not isinstance(record, dict):
        raise InvalidSampleError(
            f'Pose file {path}: expected a JSON object, got '
            f'{type(record).__name__}')
    try:
        pose = pose_from_json(record, f'Pose file {path}')
    except ValueError as err:
        raise InvalidSampleError(str(err)) from err
    pose[3:7] /= float(np.linalg.norm(pose[3:7]))
    return pose.astype(np.float32)


@TRANSFORMS.register_module()
class LoadPoseSequence(BaseTransform):
    """Load the 13-D poses of every frame of a window.

    Required keys: ``pose_paths`` (T JSON paths).

    Added keys: ``poses``: ``np.float32 (T, pose_dim)``:
    ``[x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]`` in the session
    world frame (metres, unit scalar-first quaternion body-to-world, world
    linear velocity in m/s, body angular velocity in rad/s). With
    ``pose_dim=7`` only position and quaternion are kept.

    Args:
        pose_dim (int): 13 (full pose) or 7 (position + quaternion).
            Defaults to 13.
        key (str): Results key to write. Defaults to ``'poses'``.

    Raises:
        FileNotFoundError: A pose file is missing (message names it).
        InvalidSampleError: Bad JSON, wrong length, missing fields,
            NaN/inf or a zero quaternion (message names the file).
    """

    def __init__(self, pose_dim: int = 13, key: str = 'poses') -> None:
        if pose_dim not in (7, 13):
            raise ValueError(f'LoadPoseSequence: pose_dim must be 7 or 13, '
                             f'got {pose_dim}')
        self.pose_dim = pose_dim
        self.key = key

    @staticmethod
    def _read(path: str) -> np.ndarray:
        _check_exists(path, 'Pose')
        try:
            with open(path, 'r', encoding='utf-8') as f:
                record = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InvalidSampleError(
                f'Pose file {path} is not valid JSON: {err}') from err
        return pose_from_json_dict(record, path)

    def transform(self, results: dict) -> dict:
        """Load the window's poses.

        Args:
            results (dict): Must contain ``pose_paths`` (list[str]).

        Returns:
            dict: ``results`` with ``results[self.key]`` float32
            ``(T, pose_dim)``.
        """
        paths = _get_paths(results, 'pose_paths', type(self).__name__)
        poses = np.empty((len(paths), 13), dtype=np.float32)
        for t, path in enumerate(paths):
            poses[t] = self._read(path)
        results[self.key] = np.ascontiguousarray(poses[:, :self.pose_dim])
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(pose_dim={self.pose_dim}, key={self.key!r})'


@TRANSFORMS.register_module()
class LoadLidarSequence(BaseTransform):
    """Load the LiDAR sweeps of every frame of a window.

    Required keys: ``lidar_paths`` (T ``.npy`` paths; ``None`` entries are
    not allowed).

    Added keys: ``lidar``: list of T ``np.float32 (N_t, load_dim)`` arrays
    (``x, y, z, intensity`` in the ego frame, metres).

    Args:
        load_dim (int): Number of columns per point. Defaults to 4.
        max_points (int, optional): Keep at most this many points per sweep
            (evenly strided subsample, deterministic). Defaults to ``None``.
        key (str): Results key to write. Defaults to ``'lidar'``.

    Raises:
        FileNotFoundError: A sweep is missing (message names it).
        InvalidSampleError: Unreadable file, wrong shape or non-finite
            coordinates (message names the file).
    """

    def __init__(self,
                 load_dim: int = 4,
                 max_points: Optional[int] = None,
                 key: str = 'lidar') -> None:
        self.load_dim = load_dim
        self.max_points = max_points
        self.key = key

    def _read(self, path: Optional[str]) -> np.ndarray:
        if path is None:
            raise FileNotFoundError(
                'LoadLidarSequence: the index has no lidar_path for this '
                'frame')
        _check_exists(path, 'LiDAR')
        try:
            pts = np.load(path, allow_pickle=False)
        except Exception as err:  # any reader failure means a corrupt file
            raise InvalidSampleError(
                f'LiDAR file {path} is unreadable or corrupt: {err}') from err
        if not isinstance(pts, np.ndarray):
            raise InvalidSampleError(
                f'LiDAR file {path} is not a single .npy array')
        if pts.ndim != 2 or pts.shape[1] < self.load_dim:
            raise InvalidSampleError(
                f'LiDAR file {path} has shape {pts.shape}, expected '
                f'(N, >={self.load_dim})')
        pts = np.ascontiguousarray(pts[:, :self.load_dim], dtype=np.float32)
        if not np.all(np.isfinite(pts[:, :3])):
            raise InvalidSampleError(
                f'LiDAR file {path} contains NaN/inf coordinates')
        if self.max_points is not None and len(pts) > self.max_points:
            step = int(math.ceil(len(pts) / self.max_points))
            pts = pts[::step][:self.max_points]
        return pts

    def transform(self, results: dict) -> dict:
        """Load the window's LiDAR sweeps.

        Args:
            results (dict): Must contain ``lidar_paths``.

        Returns:
            dict: ``results`` with ``results[self.key]`` = list of float32
            ``(N_t, load_dim)`` arrays.
        """
        paths = _get_paths(results, 'lidar_paths', type(self).__name__)
        results[self.key] = [self._read(p) for p in paths]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(load_dim={self.load_dim}, '
                f'max_points={self.max_points}, key={self.key!r})')
