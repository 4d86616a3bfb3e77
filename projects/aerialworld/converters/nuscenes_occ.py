"""Real nuScenes LiDAR keyframes -> Occ3D-style semantic occupancy (AerialWorld sessions).

Input: a folder of consecutive nuScenes keyframes in the layout of SurroundOcc's
"own data" tool (``data/nuscenes_seq/``, see ``data/LICENSES.md``)::

    pc/pc{i}.npy                         float32 (N, 4) x, y, z, intensity, LIDAR_TOP frame
    pc_seman/pc_seman_{i}.npy            float64 (N, 4) x, y, z, class 0..16 (Occ3D order,
                                         0 = noise / other, includes the ego vehicle's returns)
    pose/lidar_ego_pose{i}.npy           pickled nuScenes ``ego_pose`` record (ego -> global)
    calib/lidar_calibrated_sensor{i}.npy pickled ``calibrated_sensor`` record (lidar -> ego)
    bbox/bbox{i}.npy                     float32 (M, 7) boxes in the LIDAR_TOP frame
    bbox/boxes_token{i}.npy              (M,) instance tokens
    bbox/object_category{i}.npy          (M,) int class of each box (Occ3D order)

Box layout, verified against the labelled points (see :func:`points_in_boxes` and the tests):
``(x, y, z_bottom, w, l, h, yaw)`` with ``w`` along the box's local x axis and ``l`` along its
local y axis, the box rotated by ``yaw`` about z (92 % of the points inside the boxes of
frame 0 carry the box's class with this reading; the next best reading reaches 74 %).

Pipeline (:class:`NuScenesOccConverter`):

1. every frame: points and boxes in the LiDAR frame; points of the ego vehicle are dropped
   (an ego-frame box); points inside a (slightly enlarged) box become *object* points,
   stored in that box's own frame under its instance id; all others are *static* points,
   moved LiDAR -> ego -> global with the ``calibrated_sensor`` and ``ego_pose`` records
   (``pyquaternion``);
2. every target frame t: the static points of all frames go global -> ego(t); the object
   points of every instance annotated at t (from all frames where it was seen) are placed
   at its box pose of frame t; instances absent at t are not drawn;
3. voxelisation into the Occ3D grid by majority vote of the point labels (vectorised; ties
   go to the lower class id), optionally a planar gap filling (:func:`fill_gaps`); empty
   voxels are ``free`` (17);
4. writing the AerialWorld session format (DESIGN.md section 3): occupancy ``.npz`` (key
   ``occupancy``, uint8 (200, 200, 16) in the ego frame of the keyframe, Occ3D convention),
   pose JSON with ``pose_13d`` from the ``ego_pose`` records (finite-difference linear
   velocity in the global frame and body angular velocity), LiDAR ``.npy`` (N, 4) float32 in
   the ego frame, and the index files ``aerialworld_infos_{train,val}.pkl``.

Split: the input is one real scene of 11 keyframes, and a 4 + 6 frame window needs 10 of
them, so the one session goes to both index files (``metainfo['split_note']`` says so; the
val numbers measure fit, not generalisation). Every output file is written to a temporary
name and renamed; a session is assembled in a temporary folder and renamed into place.

Not done (documented limitations): no ray-casting visibility masks (``mask_lidar`` /
``mask_camera`` of Occ3D), no mesh reconstruction (Occ3D / SurroundOcc use Poisson meshing
or dense accumulation over all sweeps; here only the 11 keyframes are accumulated).
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pyquaternion import Quaternion
from scipy import ndimage
from scipy.spatial.transform import Rotation

from projects.aerialworld.datasets.classes import OCC3D_FREE_LABEL as OCCWORLD_FREE_LABEL
from projects.aerialworld.datasets.classes import OCC3D_NUSCENES_CLASSES
from projects.common.utils.io import (save_json_atomic, save_npy_atomic, save_npz_atomic,
                                      sha256_file)
from .plateau_to_occ import write_index

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 'nuscenes_occ/1.0'
INDEX_FILES = {'train': 'aerialworld_infos_train.pkl', 'val': 'aerialworld_infos_val.pkl'}
#: Occ3D-nuScenes grid: range (m), voxel size (m), shape.
OCC3D_POINT_CLOUD_RANGE = (-40.0, -40.0, -1.0, 40.0, 40.0, 5.4)
OCC3D_VOXEL_SIZE = (0.4, 0.4, 0.4)
OCC3D_GRID_SIZE = (200, 200, 16)
#: Number of semantic classes before ``free`` (Occ3D ids 0..16).
NUM_SEMANTIC = OCCWORLD_FREE_LABEL
NUSCENES_ATTRIBUTION = ('nuScenes and nuScenes-lidarseg (Motional), CC BY-NC-SA 4.0 '
                        '(non-commercial); keyframes via weiyithu/SurroundOcc @ bacc9803')


class NuScenesSequenceError(ValueError):
    """A sequence file is missing a field, has a wrong shape or inconsistent content.
    The message names the file."""


# --------------------------------------------------------------------------- configuration
@dataclass
class NuScenesOccConfig:
    """Options of the nuScenes-sequence converter (all stored in the index metainfo).

    Attributes:
        point_cloud_range (tuple): grid range ``(x0, y0, z0, x1, y1, z1)`` in the ego frame (m).
        voxel_size (tuple): voxel size (m).
        box_scale (float): boxes are enlarged by this factor (w, l, h) to catch object points
            on their surface (1.1 as in SurroundOcc).
        box_z_margin (float): the box bottom is lowered by this many metres (m) before the
            inside test, so points on the box's lower face are not left as static points.
        ego_box (tuple): ``(x0, y0, z0, x1, y1, z1)`` in the ego frame (m); points inside are
            returns from the ego vehicle and are dropped. Default: the Renault Zoe of nuScenes
            (rear-axle origin) with a margin.
        drop_noise_far (bool): also drop label-0 (noise / other) points outside the ego box.
            Default False: they are kept as Occ3D ``others``.
        reconstruct_height (bool): replace the ``z = 0`` of the nuScenes ego poses by the
            height integrated along the trajectory (:func:`reconstruct_ego_height`) for the
            aggregation and the written poses. Default True.
        fill (bool): run :func:`fill_gaps` on every grid.
        fill_min_neighbors (int): see :func:`fill_gaps`.
        fill_iterations (int): see :func:`fill_gaps`.
        session (str | None): session name (default: the input folder's name).
        log_name (str): nuScenes log of the sequence (provenance only).
        frame_rate_hz (float): keyframe rate (nuScenes keyframes: 2 Hz).
        dataset_name (str): ``metainfo['dataset']``.
    """

    point_cloud_range: Tuple[float, ...] = OCC3D_POINT_CLOUD_RANGE
    voxel_size: Tuple[float, ...] = OCC3D_VOXEL_SIZE
    box_scale: float = 1.1
    box_z_margin: float = 0.1
    ego_box: Tuple[float, ...] = (-1.2, -1.1, -0.5, 3.6, 1.1, 2.2)
    drop_noise_far: bool = False
    reconstruct_height: bool = True
    fill: bool = True
    fill_min_neighbors: int = 5
    fill_iterations: int = 1
    session: Optional[str] = None
    log_name: str = ''
    frame_rate_hz: float = 2.0
    dataset_name: str = 'nuscenes_seq_occ'

    @property
    def grid_size(self) -> Tuple[int, int, int]:
        """``(X, Y, Z)`` voxels of the grid."""
        r, v = self.point_cloud_range, self.voxel_size
        return tuple(int(round((r[i + 3] - r[i]) / v[i])) for i in range(3))

    def validate(self) -> None:
        """Raise ValueError on inconsistent options."""
        r, v = self.point_cloud_range, self.voxel_size
        if len(r) != 6 or len(v) != 3:
            raise ValueError(f'point_cloud_range needs 6 values and voxel_size 3, got {r}, {v}')
        for i in range(3):
            n = (r[i + 3] - r[i]) / v[i]
            if v[i] <= 0 or r[i + 3] <= r[i] or abs(n - round(n)) > 1e-6:
                raise ValueError(f'axis {i}: range {r[i]}..{r[i + 3]} is not a positive '
                                 f'multiple of the voxel size {v[i]}')
        if len(self.ego_box) != 6:
            raise ValueError(f'ego_box needs 6 values, got {self.ego_box}')
        if self.box_scale < 1.0:
            raise ValueError(f'box_scale must be >= 1, got {self.box_scale}')
        if not 0 <= self.fill_min_neighbors <= 8:
            raise ValueError(f'fill_min_neighbors must be in 0..8, got {self.fill_min_neighbors}')
        if self.frame_rate_hz <= 0:
            raise ValueError(f'frame_rate_hz must be > 0, got {self.frame_rate_hz}')

    def to_dict(self) -> dict:
        """JSON-serialisable copy."""
        d = dataclasses.asdict(self)
        for k in ('point_cloud_range', 'voxel_size', 'ego_box'):
            d[k] = [float(x) for x in d[k]]
        return d


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


def voxelize_majority(xyz: np.ndarray, labels: np.ndarray, point_cloud_range: Sequence[float],
                      voxel_size: Sequence[float], num_classes: int = NUM_SEMANTIC,
                      free_label: int = OCCWORLD_FREE_LABEL) -> np.ndarray:
    """Semantic occupancy by majority vote of the labels of the points in each voxel.

    Vectorised: one ``np.unique`` over ``voxel * num_classes + label`` codes, a lexsort by
    (voxel, -count) and the first entry per voxel. Ties go to the lower class id.

    Args:
        xyz (np.ndarray): (N, 3) points (m) in the grid's frame.
        labels (np.ndarray): (N,) integer classes in ``[0, num_classes)``.
        point_cloud_range (Sequence[float]): ``(x0, y0, z0, x1, y1, z1)`` (m).
        voxel_size (Sequence[float]): (3,) metres.
        num_classes (int): semantic classes (free excluded).
        free_label (int): label of voxels without points.

    Returns:
        np.ndarray: uint8 (X, Y, Z); points outside the range are ignored.
    """
    r = np.asarray(point_cloud_range, dtype=np.float64)
    v = np.asarray(voxel_size, dtype=np.float64)
    shape = np.round((r[3:] - r[:3]) / v).astype(np.int64)
    occ = np.full(tuple(shape), free_label, dtype=np.uint8)
    ijk = np.floor((np.asarray(xyz, dtype=np.float64) - r[:3]) / v).astype(np.int64)
    keep = ((ijk >= 0) & (ijk < shape)).all(axis=1)
    if not keep.any():
        return occ
    flat = np.ravel_multi_index(tuple(ijk[keep].T), tuple(shape))
    code = flat * num_classes + np.asarray(labels)[keep].astype(np.int64)
    uniq, counts = np.unique(code, return_counts=True)
    vox, lab = uniq // num_classes, uniq % num_classes
    order = np.lexsort((-counts, vox))
    first = np.unique(vox[order], return_index=True)[1]
    win = order[first]
    occ.reshape(-1)[vox[win]] = lab[win].astype(np.uint8)
    return occ


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
    vel = np.zeros_like(pos)
    ang = np.zeros_like(pos)
    if len(t) > 1:
        vel = np.gradient(pos, t, axis=0)
        rot = Rotation.from_quat(q[:, [1, 2, 3, 0]])
        lo = np.maximum(np.arange(len(t)) - 1, 0)
        hi = np.minimum(np.arange(len(t)) + 1, len(t) - 1)
        ang = (rot[lo].inv() * rot[hi]).as_rotvec() / (t[hi] - t[lo])[:, None]
    return np.concatenate([pos, q, vel, ang], axis=1)


def pose_json(pose13: np.ndarray, timestamp: float, extra: Optional[dict] = None) -> dict:
    """Pose JSON of the session format from a 13-D pose (see DESIGN.md section 3)."""
    p = [float(x) for x in pose13]
    rec = {'pose_13d': p, 'timestamp': float(timestamp),
           'position': {'x': p[0], 'y': p[1], 'z': p[2]},
           'orientation': {'x': p[4], 'y': p[5], 'z': p[6], 'w': p[3]},
           'velocity': {'linear': {'x': p[7], 'y': p[8], 'z': p[9]},
                        'angular': {'x': p[10], 'y': p[11], 'z': p[12]}}}
    rec.update(extra or {})
    return rec


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


# --------------------------------------------------------------------------- writing
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


def config_hash(cfg: NuScenesOccConfig, seq_dir: str) -> str:
    """sha256 of the converter version, the options and the input file contents."""
    h = hashlib.sha256(CONVERTER_VERSION.encode())
    h.update(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for rel in input_files(seq_dir):
        h.update(f'{rel}:{sha256_file(os.path.join(seq_dir, rel))}'.encode())
    return h.hexdigest()


class NuScenesOccConverter:
    """Converts a folder of consecutive nuScenes keyframes into one occupancy session.

    Args:
        seq_dir (str): the sequence folder (module docstring).
        cfg (NuScenesOccConfig, optional): options.

    Raises:
        FileNotFoundError / NuScenesSequenceError: missing or invalid input (file named).
        ValueError: invalid options.
    """

    def __init__(self, seq_dir: str, cfg: Optional[NuScenesOccConfig] = None) -> None:
        self.cfg = cfg or NuScenesOccConfig()
        self.cfg.validate()
        self.seq_dir = seq_dir
        self.frames = load_sequence(seq_dir)
        if self.cfg.reconstruct_height:
            z = reconstruct_ego_height([f.ego2global for f in self.frames])
            for f, zi in zip(self.frames, z):
                f.ego2global[2, 3] = zi
        self.session = self.cfg.session or os.path.basename(os.path.normpath(seq_dir))
        if not re.fullmatch(r'[A-Za-z0-9_.\-]+', self.session):
            raise ValueError(f'session name {self.session!r} must be a plain folder name')

    def poses_13d(self) -> np.ndarray:
        """float64 (T, 13) ego poses of the frames (see :func:`ego_poses_13d`)."""
        f = self.frames
        return ego_poses_13d(np.array([x.ego2global[:3, 3] for x in f]),
                             np.array([x.ego_pose['rotation'] for x in f]),
                             np.array([x.timestamp_us for x in f]) * 1e-6)

    def build_occupancy(self, scene: Optional[AggregatedScene] = None) -> np.ndarray:
        """uint8 (T, X, Y, Z) occupancy of every frame (ego frame of that frame)."""
        cfg = self.cfg
        scene = scene or aggregate_sequence(self.frames, cfg)
        out = np.empty((len(self.frames),) + cfg.grid_size, dtype=np.uint8)
        for t, frame in enumerate(self.frames):
            xyz, lab = frame_points(scene, frame)
            occ = voxelize_majority(xyz, lab, cfg.point_cloud_range, cfg.voxel_size)
            if cfg.fill:
                occ = fill_gaps(occ, OCCWORLD_FREE_LABEL, cfg.fill_min_neighbors,
                                cfg.fill_iterations)
            out[t] = occ
        return out

    def metainfo(self, h: str, split: str, stats: dict) -> dict:
        """Index ``metainfo`` (the keys of the PLATEAU converter plus provenance)."""
        cfg = self.cfg
        return {
            'dataset': cfg.dataset_name, 'classes': tuple(OCC3D_NUSCENES_CLASSES),
            'free_label': OCCWORLD_FREE_LABEL,
            'point_cloud_range': [float(v) for v in cfg.point_cloud_range],
            'voxel_size': [float(v) for v in cfg.voxel_size],
            'grid_size': list(cfg.grid_size), 'z_reference': 'ego',
            'frame_rate_hz': float(cfg.frame_rate_hz), 'version': '1.0', 'split': split,
            'config_hash': h, 'converter': CONVERTER_VERSION,
            'converter_config': cfg.to_dict(),
            'sessions': {self.session: dict(split='train+val', frames=len(self.frames),
                                            log=cfg.log_name, kind='nuscenes_keyframes')},
            'split_note': ('one real scene of %d keyframes: the same session is in the train '
                           'and the val index (a 4 + 6 frame window needs 10 of them), so val '
                           'measures fit, not generalisation' % len(self.frames)),
            'aggregation_stats': stats,
            'attribution': NUSCENES_ATTRIBUTION,
        }

    def convert(self, out_dir: str, overwrite: bool = False) -> dict:
        """Build and write the session and the two index files.

        Args:
            out_dir (str): output data root.
            overwrite (bool): replace an existing session folder / index files of this
                converter (other entries of ``out_dir`` are left alone).

        Returns:
            dict: summary (``out_dir``, ``session``, ``frames``, ``seconds``, ``bytes``,
            ``config_hash``, aggregation stats, occupied voxels per frame).

        Raises:
            FileExistsError: outputs exist and ``overwrite`` is False (paths named).
        """
        t0 = time.perf_counter()
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise FileExistsError(f'output path {out_dir} exists and is not a folder')
        os.makedirs(out_dir, exist_ok=True)
        session_dir = os.path.join(out_dir, self.session)
        existing = [p for p in [session_dir] + [os.path.join(out_dir, n)
                                                for n in INDEX_FILES.values()]
                    if os.path.exists(p)]
        if existing and not overwrite:
            raise FileExistsError(f'outputs exist: {existing}; pass --overwrite to replace them')
        scene = aggregate_sequence(self.frames, self.cfg)
        occ = self.build_occupancy(scene)
        poses = self.poses_13d()
        t_first = self.frames[0].timestamp_us
        tmp_dir = tempfile.mkdtemp(prefix=f'.{self.session}.', dir=out_dir)
        entries = []
        try:
            for sub in ('occupancy', 'poses', 'lidar'):
                os.makedirs(os.path.join(tmp_dir, sub))
            for i, frame in enumerate(self.frames):
                ts = (frame.timestamp_us - t_first) * 1e-6
                occ_rel = f'occupancy/{i:06d}_occupancy.npz'
                pose_rel = f'poses/{i:06d}.json'
                lidar_rel = f'lidar/{i:06d}_LIDAR.npy'
                save_npz_atomic(os.path.join(tmp_dir, occ_rel), occupancy=occ[i])
                save_json_atomic(os.path.join(tmp_dir, pose_rel), pose_json(poses[i], ts, dict(
                    timestamp_us=frame.timestamp_us, ego_pose_token=frame.ego_pose.get('token'),
                    frame='nuScenes global (map) frame, ego = rear-axle centre')))
                lidar = np.concatenate([apply_transform(frame.lidar2ego, frame.points[:, :3]),
                                        frame.points[:, 3:4]], axis=1).astype(np.float32)
                save_npy_atomic(os.path.join(tmp_dir, lidar_rel), lidar)
                entries.append({'session': self.session, 'frame_idx': i, 'timestamp': ts,
                                'occ_path': f'{self.session}/{occ_rel}',
                                'pose_path': f'{self.session}/{pose_rel}',
                                'lidar_path': f'{self.session}/{lidar_rel}',
                                'token': frame.ego_pose.get('token'),
                                'source_frame': frame.index})
            if os.path.exists(session_dir):
                shutil.rmtree(session_dir)
            os.replace(tmp_dir, session_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        h = config_hash(self.cfg, self.seq_dir)
        for split, name in INDEX_FILES.items():
            write_index(os.path.join(out_dir, name), self.metainfo(h, split, scene.stats),
                        entries)
        occupied = (occ != OCCWORLD_FREE_LABEL).reshape(len(occ), -1).sum(1)
        summary = dict(out_dir=out_dir, session=self.session, frames=len(self.frames),
                       seconds=round(time.perf_counter() - t0, 2),
                       bytes=sum(os.path.getsize(os.path.join(r, f))
                                 for r, _, fs in os.walk(session_dir) for f in fs),
                       config_hash=h, stats=scene.stats,
                       occupied_voxels=[int(x) for x in occupied])
        logger.info('wrote %s', summary)
        return summary


def convert_nuscenes_sequence(seq_dir: str, out_dir: str,
                              cfg: Optional[NuScenesOccConfig] = None,
                              overwrite: bool = False) -> dict:
    """Convert a nuScenes keyframe folder (see :class:`NuScenesOccConverter`).

    Args:
        seq_dir (str): input folder.
        out_dir (str): output data root.
        cfg (NuScenesOccConfig | None): options (default: the Occ3D grid).
        overwrite (bool): replace previous outputs of this converter.

    Returns:
        dict: summary of what was written.
    """
    return NuScenesOccConverter(seq_dir, cfg).convert(out_dir, overwrite)
