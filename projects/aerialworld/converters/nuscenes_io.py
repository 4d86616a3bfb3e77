"""Reading a folder of consecutive nuScenes keyframes (SurroundOcc "own data" layout).

The layout and the box convention are described in :mod:`.nuscenes_occ`; every reader checks
shapes and fields and names the file in its error.
"""
from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
from pyquaternion import Quaternion

from projects.aerialworld.datasets.classes import OCC3D_FREE_LABEL

#: Number of semantic classes before ``free`` (Occ3D ids 0..16).
NUM_SEMANTIC = OCC3D_FREE_LABEL


class NuScenesSequenceError(ValueError):
    """A sequence file is missing a field, has a wrong shape or inconsistent content.
    The message names the file."""


# --------------------------------------------------------------------------- reading
@dataclass
class SequenceFrame:
    """One keyframe of the input sequence.

    Attributes:
        index (int): frame number in the folder (``pc{index}.npy``).
        points (np.ndarray): float32 (N, 4) x, y, z (m), intensity in the LIDAR_TOP frame.
        labels (np.ndarray): uint8 (N,) class 0..16 (Occ3D order).
        lidar2ego (np.ndarray): float64 (4, 4) LIDAR_TOP -> ego transform.
        ego2global (np.ndarray): float64 (4, 4) ego -> global transform.
        ego_pose (dict): the nuScenes ``ego_pose`` record (token, timestamp in µs, rotation
            w, x, y, z, translation m).
        calib (dict): the nuScenes ``calibrated_sensor`` record of LIDAR_TOP.
        boxes (np.ndarray): float64 (M, 7) ``x, y, z_bottom, w, l, h, yaw`` (LiDAR frame).
        box_tokens (np.ndarray): (M,) str instance tokens.
        box_labels (np.ndarray): (M,) int64 classes.
    """

    index: int
    points: np.ndarray
    labels: np.ndarray
    lidar2ego: np.ndarray
    ego2global: np.ndarray
    ego_pose: dict
    calib: dict
    boxes: np.ndarray
    box_tokens: np.ndarray
    box_labels: np.ndarray

    @property
    def timestamp_us(self) -> int:
        """int: ego-pose timestamp (µs)."""
        return int(self.ego_pose['timestamp'])


def transform_matrix(translation: Sequence[float], rotation_wxyz: Sequence[float]) -> np.ndarray:
    """4 x 4 rigid transform from a nuScenes ``translation`` and ``rotation`` (w, x, y, z).

    Args:
        translation (Sequence[float]): (3,) metres.
        rotation_wxyz (Sequence[float]): (4,) scalar-first quaternion (normalised here).

    Returns:
        np.ndarray: float64 (4, 4) homogeneous matrix ``[[R, t], [0, 1]]``.
    """
    mat = np.eye(4)
    mat[:3, :3] = Quaternion(np.asarray(rotation_wxyz, dtype=np.float64)).normalised.rotation_matrix
    mat[:3, 3] = np.asarray(translation, dtype=np.float64)
    return mat


def apply_transform(mat: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) transform to (N, 3) points; returns float64 (N, 3)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz @ mat[:3, :3].T + mat[:3, 3]


def _load_npy(path: str, pickled: bool = False):
    if not os.path.isfile(path):
        raise FileNotFoundError(f'nuScenes sequence file not found: {path}')
    try:
        arr = np.load(path, allow_pickle=pickled)
        return arr.item() if pickled else arr
    except Exception as err:  # corrupt / not a numpy file / not a pickled dict
        raise NuScenesSequenceError(f'{path} is unreadable: {type(err).__name__}: {err}') \
            from err


def _record(path: str, keys: Sequence[str]) -> dict:
    rec = _load_npy(path, pickled=True)
    if not isinstance(rec, dict):
        raise NuScenesSequenceError(f'{path}: expected a pickled dict (nuScenes record), got '
                                    f'{type(rec).__name__}')
    missing = [k for k in keys if k not in rec]
    if missing:
        raise NuScenesSequenceError(f'{path}: record lacks keys {missing} (has {sorted(rec)})')
    if len(rec['translation']) != 3 or len(rec['rotation']) != 4:
        raise NuScenesSequenceError(f'{path}: translation must have 3 values and rotation 4 '
                                    '(w, x, y, z)')
    return rec


def find_frame_indices(seq_dir: str) -> List[int]:
    """Frame numbers of ``<seq_dir>/pc/pc{i}.npy``, sorted and checked to be consecutive.

    Raises:
        FileNotFoundError: the folder or its ``pc/`` files are missing.
        NuScenesSequenceError: frame numbers have gaps.
    """
    if not os.path.isdir(seq_dir):
        raise FileNotFoundError(f'nuScenes sequence folder not found: {seq_dir}')
    idx = sorted(int(m.group(1)) for f in glob.glob(os.path.join(seq_dir, 'pc', 'pc*.npy'))
                 if (m := re.fullmatch(r'pc(\d+)\.npy', os.path.basename(f))))
    if not idx:
        raise FileNotFoundError(f'no pc/pc<i>.npy file in nuScenes sequence folder {seq_dir}')
    if idx != list(range(idx[0], idx[0] + len(idx))):
        raise NuScenesSequenceError(f'{seq_dir}/pc: frame numbers are not consecutive: {idx}')
    return idx


def load_sequence_frame(seq_dir: str, i: int) -> SequenceFrame:
    """Read and validate frame ``i`` of a sequence folder (see the module docstring).

    Raises:
        FileNotFoundError: a file is missing (named).
        NuScenesSequenceError: wrong shape, non-finite values, mismatching point / label
            files, labels outside 0..16 (the file is named).
    """
    p = lambda *a: os.path.join(seq_dir, *a)  # noqa: E731
    pc_path, sem_path = p('pc', f'pc{i}.npy'), p('pc_seman', f'pc_seman_{i}.npy')
    pc = _load_npy(pc_path)
    if pc.ndim != 2 or pc.shape[1] < 4:
        raise NuScenesSequenceError(f'{pc_path}: expected (N, 4) points, got {pc.shape}')
    if not np.isfinite(pc[:, :4]).all():
        raise NuScenesSequenceError(f'{pc_path}: non-finite coordinates')
    sem = _load_npy(sem_path)
    if sem.ndim != 2 or sem.shape[1] != 4 or len(sem) != len(pc):
        raise NuScenesSequenceError(f'{sem_path}: expected ({len(pc)}, 4) (one label per point '
                                    f'of {pc_path}), got {sem.shape}')
    if np.abs(sem[:, :3] - pc[:, :3]).max(initial=0.0) > 1e-3:
        raise NuScenesSequenceError(f'{sem_path}: coordinates differ from {pc_path}')
    lab = sem[:, 3]
    if (lab < 0).any() or (lab > NUM_SEMANTIC - 1).any() or (lab != np.round(lab)).any():
        raise NuScenesSequenceError(f'{sem_path}: labels must be integers 0..{NUM_SEMANTIC - 1}')
    pose_path, calib_path = p('pose', f'lidar_ego_pose{i}.npy'), \
        p('calib', f'lidar_calibrated_sensor{i}.npy')
    pose = _record(pose_path, ('timestamp', 'rotation', 'translation'))
    calib = _record(calib_path, ('rotation', 'translation'))
    box_path = p('bbox', f'bbox{i}.npy')
    boxes = np.asarray(_load_npy(box_path), dtype=np.float64)
    if boxes.size % 7:
        raise NuScenesSequenceError(f'{box_path}: expected (M, 7) boxes, got {boxes.shape}')
    boxes = boxes.reshape(-1, 7)
    if not np.isfinite(boxes).all() or (boxes[:, 3:6] <= 0).any():
        raise NuScenesSequenceError(f'{box_path}: non-finite values or non-positive sizes')
    tok_path, cat_path = p('bbox', f'boxes_token{i}.npy'), p('bbox', f'object_category{i}.npy')
    tokens = np.asarray(_load_npy(tok_path)).astype(str)
    cats = np.asarray(_load_npy(cat_path)).astype(np.int64)
    for path, arr in ((tok_path, tokens), (cat_path, cats)):
        if arr.shape != (len(boxes),):
            raise NuScenesSequenceError(f'{path}: expected ({len(boxes)},) (one per box of '
                                        f'{box_path}), got {arr.shape}')
    if len(set(tokens.tolist())) != len(tokens):
        raise NuScenesSequenceError(f'{tok_path}: duplicate instance tokens')
    return SequenceFrame(
        index=i, points=pc[:, :4].astype(np.float32), labels=lab.astype(np.uint8),
        lidar2ego=transform_matrix(calib['translation'], calib['rotation']),
        ego2global=transform_matrix(pose['translation'], pose['rotation']),
        ego_pose=pose, calib=calib, boxes=boxes, box_tokens=tokens, box_labels=cats)


def reconstruct_ego_height(ego2global: Sequence[np.ndarray]) -> np.ndarray:
    """Heights of the ego along a sequence whose ``ego_pose`` records have ``z = 0``.

    nuScenes localises in 2-D: the ``ego_pose`` translation's z is always 0 (schema), while
    the rotation keeps roll and pitch. On a slope, aggregating sweeps with these poses tilts
    and smears the ground (3 degrees of pitch over 50 m put the road 2.6 m off). The car
    drives along its body x axis, so each step climbs ``dz = s * f_z / |f_xy|`` where ``s``
    is the horizontal displacement along ``f_xy`` and ``f`` the mean body x axis (in the
    global frame) of the two frames; heights are the cumulative sum, starting at the first
    record's z.

    Args:
        ego2global (Sequence[np.ndarray]): T (4, 4) ego -> global transforms.

    Returns:
        np.ndarray: float64 (T,) ego heights (m).
    """
    mats = np.asarray(ego2global, dtype=np.float64)
    z = np.full(len(mats), mats[0, 2, 3] if len(mats) else 0.0)
    if len(mats) < 2:
        return z
    f = (mats[1:, :3, 0] + mats[:-1, :3, 0]) / 2.0
    fxy = np.linalg.norm(f[:, :2], axis=1).clip(min=1e-9)
    step = np.einsum('ij,ij->i', mats[1:, :2, 3] - mats[:-1, :2, 3], f[:, :2]) / fxy
    z[1:] += np.cumsum(step * f[:, 2] / fxy)
    return z


def load_sequence(seq_dir: str) -> List[SequenceFrame]:
    """All frames of a sequence folder, in order, with increasing timestamps.

    Raises:
        FileNotFoundError / NuScenesSequenceError: see :func:`load_sequence_frame`; also
        when timestamps do not increase (the pose file is named).
    """
    frames = [load_sequence_frame(seq_dir, i) for i in find_frame_indices(seq_dir)]
    ts = np.array([f.timestamp_us for f in frames])
    if len(ts) > 1 and (np.diff(ts) <= 0).any():
        bad = frames[int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 1].index
        raise NuScenesSequenceError(f'{seq_dir}/pose/lidar_ego_pose{bad}.npy: timestamp does '
                                    'not increase')
    return frames


def input_files(seq_dir: str) -> List[str]:
    """All input files of a sequence folder, sorted (relative paths).

    Raises:
        FileNotFoundError: the folder is missing.
    """
    if not os.path.isdir(seq_dir):
        raise FileNotFoundError(f'nuScenes sequence folder not found: {seq_dir}')
    out = []
    for sub in ('pc', 'pc_seman', 'pose', 'calib', 'bbox'):
        out += sorted(os.path.relpath(f, seq_dir)
                      for f in glob.glob(os.path.join(seq_dir, sub, '*.npy')))
    return out
