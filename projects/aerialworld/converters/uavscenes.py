"""UAVScenes LiDAR sequences -> AerialWorld occupancy sessions.

UAVScenes (Wang et al., "UAVScenes: A Multi-Modal Dataset for UAVs", ICCV 2025) adds per-point
LiDAR labels, per-pixel image labels and 6-DoF poses to the MARS-LVIG drone sequences. The
release layout this module reads (see ``docs/aerialworld_uavscenes.md`` for what is certain and
what is assumed)::

    <root>/
      interval5_CAM_LIDAR/[interval5_CAM_LIDAR/]       zip wrapper folder(s), optional
        interval5_<scene>/                             e.g. interval5_AMtown01
          interval5_CAM/<image_ts>.jpg                 optional, not read
          interval5_LIDAR/image<image_ts>_lidar<lidar_ts>.txt   ASCII, one point per row:
                                                       x y z [intensity ...] (metres)
          sampleinfos_interpolated.json                [{"OriginalImageName": "<ts>.jpg",
                                                         "T4x4": 4x4 camera-to-world}, ...]
      interval5_LIDAR_label/[interval5_LIDAR_label/]
        interval5_<scene>/interval5_LIDAR_label_id/<same stem as the scan>.txt
                                                       one UAVScenes class id per row,
                                                       row-aligned with the scan

``interval1_*`` (every frame) works the same way. ``sampleinfos_interpolated.json`` may hold
more poses than there are scans (poses at the camera rate, scans at key frames): scans are
matched to poses by their image timestamp, and the dense pose stream gives the velocities.

Pipeline per sequence (one sequence = one session, split by sequence):

1. read the poses (camera-to-world ``T4x4``), the scans and their labels;
2. put every scan in the world frame, ``p_w = T4x4 @ sensor_to_pose @ p`` (``sensor_to_pose``
   is the LiDAR-to-camera extrinsic, identity when the scans are already in the pose frame);
3. body frame of the drone (x forward, y left, z up) from the pose frame with the fixed
   rotation ``pose_to_body`` (preset ``'nadir_camera'``: image up = forward, optical axis down);
4. session frame: the world frame shifted so that the first key frame is at x = y = 0 and
   z = 0 is the ground datum (a low percentile of all point heights of the sequence);
5. per key frame, aggregate the labelled points of the scans within ``aggregate_window`` key
   frames (static scene, world frame) and voxelise them in the yaw-aligned ego grid (vectorised
   majority vote per voxel; unobserved and empty voxels are ``free``);
6. write the session format of ``DESIGN.md`` §3 (occupancy npz, pose JSON with ``pose_13d``,
   LiDAR ``.npy`` in the ego body frame) with atomic writes, and the index files
   ``aerialworld_infos_{train,val}.pkl``.

UAVScenes class ids are mapped to the AerialWorld classes with
:data:`~projects.aerialworld.datasets.classes.UAVSCENES_TO_AERIALWORLD`.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.spatial.transform import Rotation

from projects.aerialworld.datasets.classes import (PLATEAU_CLASSES, PLATEAU_FREE_LABEL,
                                                   UAVSCENES_CLASSES, UAVSCENES_TO_AERIALWORLD)
from projects.common.utils.io import sha256_file
from .plateau_to_occ import (INDEX_FILES, pose_record, prepare_output_dir, write_frame,
                             write_index)
from .scene import GridSpec
from .trajectories import Trajectory

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 'uavscenes_to_occ/1.0'
POSES_FILE = 'sampleinfos_interpolated.json'
IGNORE_LABEL = 255
SCAN_NAME = re.compile(r'^image(?P<image>\d+(?:\.\d+)?)_lidar(?P<lidar>\d+(?:\.\d+)?)\.txt$')

#: Grid of ``configs/finetune_uavscenes.py`` (DESIGN.md §3): 200 x 200 x 120.
UAVSCENES_GRID = GridSpec((-40.0, -40.0, -10.0, 40.0, 40.0, 50.0), (0.4, 0.4, 0.5))

#: Pose-frame -> body-frame rotations (``p_body = R @ p_pose``). ``nadir_camera``: the pose
#: is an OpenCV camera (x right, y down in the image, z along the optical axis) looking
#: straight down with the top of the image towards the flight direction, so body x (forward)
#: = -camera y, body y (left) = -camera x, body z (up) = -camera z.
POSE_TO_BODY_PRESETS = {
    'identity': np.eye(3),
    'nadir_camera': np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]),
}

#: Sequences of the UAVScenes LiDAR semantic-segmentation test split (the release's
#: benchmark split, by sequence); used as the default val split when present.
UAVSCENES_VAL_SCENES = ('AMtown03', 'AMvalley03', 'HKairport_GNSS_Evening',
                        'HKisland_GNSS_Evening')


class UAVScenesError(ValueError):
    """A malformed or inconsistent UAVScenes file (the message names it)."""


def uavscenes_label_lut() -> np.ndarray:
    """Lookup table UAVScenes class id -> AerialWorld label.

    Returns:
        np.ndarray: (256,) uint8; ids the release does not define map to
        :data:`IGNORE_LABEL` (255), those points are dropped.
    """
    lut = np.full(256, IGNORE_LABEL, np.uint8)
    for cid, name in UAVSCENES_CLASSES.items():
        lut[cid] = PLATEAU_CLASSES.index(UAVSCENES_TO_AERIALWORLD[name])
    return lut


def map_labels(ids: np.ndarray) -> np.ndarray:
    """Map UAVScenes class ids to AerialWorld labels.

    Args:
        ids (np.ndarray): (N,) integer UAVScenes ids.

    Returns:
        np.ndarray: (N,) uint8 AerialWorld labels, 255 for ids outside the release's table
        (negative or > 255 included).
    """
    ids = np.asarray(ids).astype(np.int64)
    out = np.full(ids.shape, IGNORE_LABEL, np.uint8)
    ok = (ids >= 0) & (ids < 256)
    out[ok] = uavscenes_label_lut()[ids[ok]]
    return out


# ----------------------------------------------------------------------------- layout
@dataclass
class UAVScenesScan:
    """One LiDAR key frame of a sequence.

    Attributes:
        image_stamp (str): image timestamp as written in the file name (seconds).
        lidar_stamp (str): LiDAR timestamp as written in the file name (seconds).
        points_path (str): scan ``.txt``.
        label_path (str | None): per-point label ``.txt`` (``None`` when absent).
    """

    image_stamp: str
    lidar_stamp: str
    points_path: str
    label_path: Optional[str]

    @property
    def time(self) -> float:
        """float: image timestamp in seconds."""
        return float(self.image_stamp)


@dataclass
class UAVScenesSequence:
    """A sequence folder of the release.

    Attributes:
        name (str): scene name without the ``interval<N>_`` prefix (e.g. ``AMtown01``).
        folder (str): the sequence folder (holds ``sampleinfos_interpolated.json``).
        interval (int): key-frame interval of the release part (1 or 5).
        poses_path (str): ``sampleinfos_interpolated.json``.
        scans (list[UAVScenesScan]): key frames sorted by image timestamp.
        label_dir (str | None): folder of the per-point label files.
    """

    name: str
    folder: str
    interval: int
    poses_path: str
    scans: List[UAVScenesScan] = field(default_factory=list)
    label_dir: Optional[str] = None


def _scene_name(folder_name: str) -> Tuple[str, int]:
    m = re.match(r'^interval(\d+)_(.+)$', folder_name)
    if m:
        return m.group(2), int(m.group(1))
    return folder_name, 1


def _find_label_dir(root: str, folder_name: str, interval: int) -> Optional[str]:
    """The ``interval<N>_LIDAR_label_id`` folder of a sequence (wrapper folders allowed)."""
    name = f'interval{interval}_LIDAR_label'
    scene, _ = _scene_name(folder_name)
    for base in (os.path.join(root, name), os.path.join(root, name, name), root):
        for seq in (folder_name, scene):
            d = os.path.join(base, seq, f'{name}_id')
            if os.path.isdir(d):
                return d
    return None


def find_sequences(root: str) -> List[UAVScenesSequence]:
    """Discover the sequences of a UAVScenes root.

    A sequence is a folder holding ``sampleinfos_interpolated.json`` and an
    ``interval<N>_LIDAR`` folder, at most three levels below ``root`` (outside the label
    folders). Labels are looked up in the sibling ``interval<N>_LIDAR_label`` tree.

    Args:
        root (str): the folder the release archives were extracted into.

    Returns:
        list[UAVScenesSequence]: sorted by name, scans sorted by image timestamp.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no sequence.
        UAVScenesError: a scan file name does not follow ``image<ts>_lidar<ts>.txt``, or two
            folders give the same sequence name.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f'UAVScenes root not found: {root}')
    found: Dict[str, UAVScenesSequence] = {}
    for depth in ('*', '*/*', '*/*/*'):
        for poses in sorted(glob.glob(os.path.join(root, depth, POSES_FILE))):
            folder = os.path.dirname(poses)
            rel = os.path.relpath(folder, root).replace(os.sep, '/')
            if 'label' in rel.lower():
                continue
            name, interval = _scene_name(os.path.basename(folder))
            lidar_dir = os.path.join(folder, f'interval{interval}_LIDAR')
            if not os.path.isdir(lidar_dir):
                cands = sorted(glob.glob(os.path.join(folder, 'interval*_LIDAR')))
                if not cands:
                    logger.warning('%s: no interval<N>_LIDAR folder, skipped', folder)
                    continue
                lidar_dir = cands[0]
                interval = int(re.match(r'interval(\d+)_', os.path.basename(lidar_dir)).group(1))
            if name in found:
                raise UAVScenesError(f'sequence {name!r} found twice: {found[name].folder} and '
                                     f'{folder}')
            label_dir = _find_label_dir(root, os.path.basename(folder), interval)
            seq = UAVScenesSequence(name, folder, interval, poses, label_dir=label_dir)
            for path in sorted(glob.glob(os.path.join(lidar_dir, '*.txt'))):
                m = SCAN_NAME.match(os.path.basename(path))
                if m is None:
                    raise UAVScenesError(f'{path}: scan file name is not '
                                         "'image<timestamp>_lidar<timestamp>.txt'")
                label = None
                if label_dir is not None:
                    cand = os.path.join(label_dir, os.path.basename(path))
                    label = cand if os.path.isfile(cand) else None
                seq.scans.append(UAVScenesScan(m.group('image'), m.group('lidar'), path, label))
            seq.scans.sort(key=lambda s: s.time)
            found[name] = seq
    if not found:
        raise FileNotFoundError(f'no UAVScenes sequence (folder with {POSES_FILE} and '
                                f'interval<N>_LIDAR/) under {root}')
    return [found[k] for k in sorted(found)]


def read_sampleinfos(path: str) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Read ``sampleinfos_interpolated.json``.

    Args:
        path (str): the file.

    Returns:
        tuple: ``times`` (M,) float64 seconds (from ``OriginalImageName``, sorted),
        ``poses`` (M, 4, 4) float64 camera-to-world, ``stamps`` (M,) str image timestamps.

    Raises:
        FileNotFoundError: missing file.
        UAVScenesError: unreadable JSON, a record without ``OriginalImageName`` / ``T4x4``,
            a non-rigid ``T4x4`` or duplicate timestamps (the message names the file and the
            record).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'UAVScenes poses not found: {path}')
    try:
        with open(path) as f:
            records = json.load(f)
    except (OSError, ValueError) as err:
        raise UAVScenesError(f'{path}: cannot read JSON ({err})') from err
    if isinstance(records, dict):  # tolerate {"<name>": record} as well as a list
        records = list(records.values())
    if not isinstance(records, list) or not records:
        raise UAVScenesError(f'{path}: expected a non-empty list of sample records')
    stamps, poses = [], []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or 'OriginalImageName' not in rec or 'T4x4' not in rec:
            raise UAVScenesError(f'{path}: record {i} lacks OriginalImageName / T4x4')
        stamp = os.path.splitext(os.path.basename(str(rec['OriginalImageName'])))[0]
        try:
            float(stamp)
            T = np.asarray(rec['T4x4'], np.float64).reshape(4, 4)
        except (TypeError, ValueError) as err:
            raise UAVScenesError(f'{path}: record {i} ({rec.get("OriginalImageName")}): '
                                 f'bad timestamp or T4x4 ({err})') from err
        R = T[:3, :3]
        if (not np.all(np.isfinite(T)) or np.abs(R @ R.T - np.eye(3)).max() > 1e-3
                or np.linalg.det(R) < 0):
            raise UAVScenesError(f'{path}: record {i} ({rec["OriginalImageName"]}): T4x4 is '
                                 'not a rigid transform')
        stamps.append(stamp)
        poses.append(T)
    times = np.array([float(s) for s in stamps])
    order = np.argsort(times, kind='stable')
    times = times[order]
    if np.any(np.diff(times) <= 0):
        raise UAVScenesError(f'{path}: duplicate image timestamps')
    return times, np.stack(poses)[order], [stamps[i] for i in order]


def read_scan(path: str, label_path: Optional[str] = None
              ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Read one scan and its per-point labels.

    Args:
        path (str): ASCII scan, one point per row, ``x y z [intensity ...]`` (comma or
            whitespace separated; ``.gz`` is read transparently).
        label_path (str | None): ASCII per-point UAVScenes class ids (one per row).

    Returns:
        tuple: ``xyz`` (N, 3) float64 metres, ``intensity`` (N,) float32 (0 when the scan
        has three columns), ``ids`` (N,) int64 or ``None`` without ``label_path``.

    Raises:
        FileNotFoundError: a missing file.
        UAVScenesError: unparsable rows, fewer than 3 columns, non-finite values, or a label
            count different from the point count (both files named).
    """
    for p in (path, label_path):
        if p is not None and not os.path.isfile(p):
            raise FileNotFoundError(f'UAVScenes file not found: {p}')
    try:
        with open(path) as f:
            first = f.readline()
        delim = ',' if ',' in first else None
        pts = np.loadtxt(path, dtype=np.float64, delimiter=delim, ndmin=2)
    except ValueError as err:
        raise UAVScenesError(f'{path}: cannot parse the scan ({err})') from err
    if pts.size == 0:
        pts = np.zeros((0, 3))
    if pts.shape[1] < 3:
        raise UAVScenesError(f'{path}: expected at least 3 columns (x y z), got {pts.shape[1]}')
    if not np.all(np.isfinite(pts[:, :3])):
        raise UAVScenesError(f'{path}: non-finite coordinates')
    inten = (pts[:, 3] if pts.shape[1] > 3 else np.zeros(len(pts))).astype(np.float32)
    ids = None
    if label_path is not None:
        try:
            ids = np.loadtxt(label_path, dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise UAVScenesError(f'{label_path}: cannot parse the labels ({err})') from err
        if ids.size and ids.shape[1] != 1:
            raise UAVScenesError(f'{label_path}: expected one class id per row, got '
                                 f'{ids.shape[1]} columns (a *_label_color file?)')
        ids = ids.reshape(-1).astype(np.int64)
        if len(ids) != len(pts):
            raise UAVScenesError(f'{label_path}: {len(ids)} labels for {len(pts)} points in '
                                 f'{path}')
    return pts[:, :3], inten, ids


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


def voxelize_labels(ijk: np.ndarray, labels: np.ndarray, grid_size: Sequence[int],
                    free_label: int = PLATEAU_FREE_LABEL) -> np.ndarray:
    """Semantic occupancy from labelled voxel indices by majority vote (vectorised).

    Args:
        ijk (np.ndarray): (N, 3) int voxel indices, all inside ``grid_size``.
        labels (np.ndarray): (N,) uint8 labels (< ``free_label``; no ignore values).
        grid_size (Sequence[int]): (X, Y, Z).
        free_label (int): label of voxels without points.

    Returns:
        np.ndarray: (X, Y, Z) uint8; each voxel holds its most frequent point label (ties:
        the smaller label).
    """
    X, Y, Z = (int(v) for v in grid_size)
    out = np.full(X * Y * Z, free_label, np.uint8)
    if len(ijk):
        flat = (ijk[:, 0] * Y + ijk[:, 1]) * Z + ijk[:, 2]
        n_lab = int(free_label) + 1
        key, counts = np.unique(flat * n_lab + labels.astype(np.int64), return_counts=True)
        vox, lab = key // n_lab, key % n_lab
        # sort by voxel, then count descending, then label ascending; first of each voxel wins
        order = np.lexsort((lab, -counts, vox))
        vox, lab = vox[order], lab[order]
        first = np.ones(len(vox), bool)
        first[1:] = vox[1:] != vox[:-1]
        out[vox[first]] = lab[first].astype(np.uint8)
    return out.reshape(X, Y, Z)


def body_yaw(R_wb: np.ndarray) -> np.ndarray:
    """Heading of body-to-world rotations: angle of the body x axis in the world x-y plane.

    Args:
        R_wb (np.ndarray): (..., 3, 3) body-to-world rotations.

    Returns:
        np.ndarray: (...,) float64 radians, counter-clockwise from the world x axis.
    """
    return np.arctan2(R_wb[..., 1, 0], R_wb[..., 0, 0])


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
    vel = np.gradient(pos, times, axis=0)
    prev = np.clip(key_idx - 1, 0, len(times) - 1)
    nxt = np.clip(key_idx + 1, 0, len(times) - 1)
    ang = (rot[prev].inv() * rot[nxt]).as_rotvec() / (times[nxt] - times[prev])[:, None]
    quat = rot[key_idx].as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar-last
    flip = np.concatenate([[1.0], np.sign(np.sum(quat[1:] * quat[:-1], axis=1))])
    flip[flip == 0] = 1.0
    quat = quat * np.cumprod(flip)[:, None]
    if quat[0, 0] < 0:
        quat = -quat
    t_key = times[key_idx]
    t0 = float(t_key[0]) if t0 is None else float(t0)
    return Trajectory(kind='uavscenes', timestamps=t_key - t0, positions=pos[key_idx],
                      quaternions=quat, linear_velocity=vel[key_idx], angular_velocity=ang,
                      yaw=np.unwrap(body_yaw(T_wb[key_idx, :3, :3])))


# ----------------------------------------------------------------------------- converter
@dataclass
class UAVScenesConfig:
    """Options of the UAVScenes converter (all stored in the index metainfo).

    Attributes:
        point_cloud_range (tuple): (6,) ego grid range (m): x, y relative to the ego (x along
            its heading), z above the session ground datum.
        voxel_size (tuple): (3,) metres.
        pose_to_body (str | list): a key of :data:`POSE_TO_BODY_PRESETS` or a 3x3 rotation
            ``p_body = R @ p_pose``.
        sensor_to_pose (list | None): 4x4 transform of the scan points into the pose frame
            (the LiDAR-to-camera extrinsic of the sequence); ``None`` = identity (scans already
            in the pose frame).
        aggregate_window (int | None): key frames on each side whose scans are merged into a
            frame's occupancy; ``None`` merges the whole sequence.
        ground_percentile (float): percentile of the sequence's point heights used as the
            ground datum (grid z = 0).
        max_pose_gap (float): largest allowed |scan image time - matched pose time| (s).
        min_frames (int): sequences with fewer labelled key frames are skipped (warned).
        val_scenes (tuple | None): sequences of the val split; ``None``: those of
            :data:`UAVSCENES_VAL_SCENES` that are present, else the last sequence (by name)
            when there are two or more.
        lidar (bool): write the per-frame scans (ego body frame).
        dataset_name (str): ``metainfo['dataset']``.
    """

    point_cloud_range: Tuple[float, ...] = UAVSCENES_GRID.point_cloud_range
    voxel_size: Tuple[float, ...] = UAVSCENES_GRID.voxel_size
    pose_to_body: Union[str, list] = 'nadir_camera'
    sensor_to_pose: Optional[list] = None
    aggregate_window: Optional[int] = 10
    ground_percentile: float = 1.0
    max_pose_gap: float = 0.05
    min_frames: int = 2
    val_scenes: Optional[Tuple[str, ...]] = None
    lidar: bool = True
    dataset_name: str = 'uavscenes'

    def grid_spec(self) -> GridSpec:
        """The output :class:`GridSpec`."""
        return GridSpec(tuple(float(v) for v in self.point_cloud_range),
                        tuple(float(v) for v in self.voxel_size))

    def body_rotation(self) -> np.ndarray:
        """(3, 3) pose-to-body rotation."""
        if isinstance(self.pose_to_body, str):
            if self.pose_to_body not in POSE_TO_BODY_PRESETS:
                raise ValueError(f'unknown pose_to_body preset {self.pose_to_body!r}; choose '
                                 f'one of {sorted(POSE_TO_BODY_PRESETS)} or give a 3x3 matrix')
            return POSE_TO_BODY_PRESETS[self.pose_to_body].copy()
        R = np.asarray(self.pose_to_body, np.float64).reshape(3, 3)
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-6 or np.linalg.det(R) < 0:
            raise ValueError(f'pose_to_body is not a rotation: {R.tolist()}')
        return R

    def sensor_transform(self) -> np.ndarray:
        """(4, 4) sensor-to-pose transform."""
        if self.sensor_to_pose is None:
            return np.eye(4)
        T = np.asarray(self.sensor_to_pose, np.float64).reshape(4, 4)
        R = T[:3, :3]
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) < 0:
            raise ValueError(f'sensor_to_pose is not a rigid transform: {T.tolist()}')
        return T

    def validate(self) -> None:
        """Raise ValueError on inconsistent options."""
        self.grid_spec()
        self.body_rotation()
        self.sensor_transform()
        if self.aggregate_window is not None and self.aggregate_window < 0:
            raise ValueError(f'aggregate_window must be >= 0 or None, got '
                             f'{self.aggregate_window}')
        if not 0.0 <= self.ground_percentile <= 100.0:
            raise ValueError(f'ground_percentile must be in [0, 100], got '
                             f'{self.ground_percentile}')
        if self.min_frames < 1:
            raise ValueError(f'min_frames must be >= 1, got {self.min_frames}')

    def to_dict(self) -> dict:
        """JSON-serialisable copy."""
        d = dataclasses.asdict(self)
        for k in ('point_cloud_range', 'voxel_size', 'val_scenes'):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


@dataclass
class SequenceData:
    """A sequence loaded for conversion (all arrays in the session frame).

    Attributes:
        name (str): session name.
        traj (Trajectory): key-frame trajectory (session frame, times from the first key frame).
        T_wb (np.ndarray): (T, 4, 4) body-to-session-world poses of the key frames.
        points (list[np.ndarray]): T arrays (N_t, 3) float64 labelled points (session frame).
        labels (list[np.ndarray]): T arrays (N_t,) uint8 AerialWorld labels.
        raw_points (list[np.ndarray]): T arrays (N_t', 4) float32 scans (session frame,
            x, y, z, intensity), every point including unlabelled ones.
        origin (np.ndarray): (3,) session origin in the release's world frame (m).
        t0 (float): absolute time of the first key frame (s).
        sources (list[str]): scan files, relative to the sequence folder's parent.
    """

    name: str
    traj: Trajectory
    T_wb: np.ndarray
    points: List[np.ndarray]
    labels: List[np.ndarray]
    raw_points: List[np.ndarray]
    origin: np.ndarray
    t0: float
    sources: List[str]


def config_hash(cfg: UAVScenesConfig, sequences: Sequence[UAVScenesSequence]) -> str:
    """Hash of the converter version, the options and the content of every input file."""
    h = hashlib.sha256(CONVERTER_VERSION.encode())
    h.update(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for seq in sequences:
        h.update(f'{seq.name}:{sha256_file(seq.poses_path)}'.encode())
        for s in seq.scans:
            h.update(os.path.basename(s.points_path).encode())
            h.update(sha256_file(s.points_path).encode())
            if s.label_path:
                h.update(sha256_file(s.label_path).encode())
    return h.hexdigest()


class UAVScenesConverter:
    """Converts UAVScenes sequences into AerialWorld occupancy sessions.

    Args:
        root (str): UAVScenes root (see the module docstring).
        cfg (UAVScenesConfig, optional): options.
        scenes (Sequence[str], optional): convert only these sequences (names without the
            ``interval<N>_`` prefix). Defaults to all.

    Raises:
        FileNotFoundError: missing root or requested sequence.
        UAVScenesError / ValueError: malformed files (named) or options.
    """

    def __init__(self, root: str, cfg: Optional[UAVScenesConfig] = None,
                 scenes: Optional[Sequence[str]] = None) -> None:
        self.cfg = cfg or UAVScenesConfig()
        self.cfg.validate()
        self.root = root
        self.spec = self.cfg.grid_spec()
        seqs = find_sequences(root)
        if scenes is not None:
            missing = sorted(set(scenes) - {s.name for s in seqs})
            if missing:
                raise FileNotFoundError(f'sequences {missing} not found under {root} (found '
                                        f'{[s.name for s in seqs]})')
            seqs = [s for s in seqs if s.name in set(scenes)]
        self.sequences = seqs

    # ------------------------------------------------------------------ loading
    def load_sequence(self, seq: UAVScenesSequence) -> Optional[SequenceData]:
        """Read a sequence and bring it into its session frame.

        Args:
            seq (UAVScenesSequence): the sequence.

        Returns:
            SequenceData | None: ``None`` (warned) when fewer than ``min_frames`` key frames
            have labels.

        Raises:
            UAVScenesError: a scan without a pose within ``max_pose_gap`` (named), or a
                malformed file.
        """
        cfg = self.cfg
        scans = [s for s in seq.scans if s.label_path is not None]
        if len(scans) < len(seq.scans):
            logger.warning('%s: %d of %d scans have no label file in %s; they are skipped',
                           seq.name, len(seq.scans) - len(scans), len(seq.scans),
                           seq.label_dir)
        if len(scans) < cfg.min_frames:
            logger.warning('%s: %d labelled key frames (< min_frames=%d), sequence skipped',
                           seq.name, len(scans), cfg.min_frames)
            return None
        times, T_wc, _ = read_sampleinfos(seq.poses_path)
        t_scan = np.array([s.time for s in scans])
        j = np.clip(np.searchsorted(times, t_scan), 1, len(times) - 1)
        j = np.where(np.abs(times[j - 1] - t_scan) <= np.abs(times[j] - t_scan), j - 1, j)
        gap = np.abs(times[j] - t_scan)
        if np.any(gap > cfg.max_pose_gap):
            bad = int(np.argmax(gap))
            raise UAVScenesError(f'{scans[bad].points_path}: no pose within '
                                 f'{cfg.max_pose_gap} s of image time {scans[bad].image_stamp} '
                                 f'in {seq.poses_path} (closest {gap[bad]:.3f} s away)')
        if len(np.unique(j)) != len(j):
            raise UAVScenesError(f'{seq.poses_path}: several scans of {seq.name} match the same '
                                 'pose')
        # body-to-world: R_wb = R_wc @ R_bc^T (p_body = R_bc @ p_cam)
        R_bc = cfg.body_rotation()
        T_wb_all = T_wc.copy()
        T_wb_all[:, :3, :3] = T_wc[:, :3, :3] @ R_bc.T
        T_ws = T_wc @ cfg.sensor_transform()  # sensor-to-world per pose

        pts_w, labs, raw = [], [], []
        for scan, k in zip(scans, j):
            xyz, inten, ids = read_scan(scan.points_path, scan.label_path)
            pw = transform_points(T_ws[k], xyz)
            lab = map_labels(ids)
            ok = lab != IGNORE_LABEL
            if not ok.all():
                logger.debug('%s: %d points with unknown class ids dropped', scan.label_path,
                             int((~ok).sum()))
            pts_w.append(pw[ok])
            labs.append(lab[ok])
            raw.append((pw, inten))
        all_z = np.concatenate([p[:, 2] for p in pts_w]) if pts_w else np.zeros(0)
        if len(all_z) == 0:
            raise UAVScenesError(f'{seq.folder}: no labelled point in any scan')
        datum = float(np.percentile(all_z, cfg.ground_percentile))
        origin = np.array([T_wb_all[j[0], 0, 3], T_wb_all[j[0], 1, 3], datum])
        shift = np.eye(4)
        shift[:3, 3] = -origin
        T_wb_all = shift @ T_wb_all
        traj = trajectory_from_poses(times, T_wb_all, j)
        base = os.path.dirname(seq.folder)
        return SequenceData(
            name=seq.name, traj=traj, T_wb=T_wb_all[j],
            points=[p - origin for p in pts_w], labels=labs,
            raw_points=[np.concatenate([p - origin, i[:, None]], axis=1).astype(np.float32)
                        for p, i in raw],
            origin=origin, t0=float(times[j[0]]),
            sources=[os.path.relpath(s.points_path, base) for s in scans])

    # ------------------------------------------------------------------ frames
    def frame_occupancy(self, data: SequenceData, i: int) -> np.ndarray:
        """Semantic occupancy of key frame ``i`` (aggregated scans, yaw-aligned ego grid).

        Args:
            data (SequenceData): the loaded sequence.
            i (int): key-frame index.

        Returns:
            np.ndarray: (X, Y, Z) uint8 labels, ``free`` where no point falls.
        """
        n = len(data.points)
        w = self.cfg.aggregate_window
        lo, hi = (0, n) if w is None else (max(0, i - w), min(n, i + w + 1))
        pts = np.concatenate(data.points[lo:hi])
        lab = np.concatenate(data.labels[lo:hi])
        ijk, keep = ego_grid_indices(pts, data.traj.positions[i], float(data.traj.yaw[i]),
                                     self.spec, z_datum=0.0)
        return voxelize_labels(ijk, lab[keep], self.spec.grid_size)

    @staticmethod
    def frame_lidar(data: SequenceData, i: int) -> np.ndarray:
        """Scan of key frame ``i`` in its ego body frame: (N, 4) float32 x, y, z, intensity."""
        T = data.T_wb[i]
        p = data.raw_points[i]
        body = (p[:, :3].astype(np.float64) - T[:3, 3]) @ T[:3, :3]
        return np.concatenate([body, p[:, 3:4]], axis=1).astype(np.float32)

    # ------------------------------------------------------------------ splits
    def assign_splits(self, names: Sequence[str]) -> Dict[str, str]:
        """``{session: 'train' | 'val'}``, whole sequences only (see ``val_scenes``)."""
        names = list(names)
        if self.cfg.val_scenes is not None:
            unknown = sorted(set(self.cfg.val_scenes) - set(names))
            if unknown:
                raise ValueError(f'val_scenes {unknown} are not among the converted sequences '
                                 f'{names}')
            val = set(self.cfg.val_scenes)
        else:
            val = set(UAVSCENES_VAL_SCENES) & set(names)
            if not val and len(names) >= 2:
                val = {sorted(names)[-1]}
        return {n: ('val' if n in val else 'train') for n in names}

    # ------------------------------------------------------------------ writing
    def metainfo(self, sessions: dict, h: str, split: str, rate: float) -> dict:
        """Index ``metainfo`` (contract keys plus provenance and the class mapping)."""
        spec = self.spec
        return {
            'dataset': self.cfg.dataset_name, 'classes': PLATEAU_CLASSES,
            'free_label': PLATEAU_FREE_LABEL,
            'point_cloud_range': [float(v) for v in spec.point_cloud_range],
            'voxel_size': [float(v) for v in spec.voxel_size],
            'grid_size': list(spec.grid_size), 'z_reference': 'ground',
            'frame_rate_hz': float(rate), 'version': '1.0', 'split': split,
            'config_hash': h, 'converter': CONVERTER_VERSION,
            'converter_config': self.cfg.to_dict(), 'sessions': sessions,
            'class_mapping': {str(k): dict(uavscenes=v, aerialworld=UAVSCENES_TO_AERIALWORLD[v])
                              for k, v in UAVSCENES_CLASSES.items()},
            'attribution': 'UAVScenes (Wang et al., ICCV 2025), built on MARS-LVIG; '
                           'CC BY-NC-SA 4.0 (check the license of your input data)',
        }

    def convert(self, out_dir: str, overwrite: bool = False) -> dict:
        """Convert every sequence and write the index files.

        Args:
            out_dir (str): output folder (created; must be empty unless ``overwrite``).
            overwrite (bool): remove previous outputs of this converter first.

        Returns:
            dict: summary (sessions per split, frames, seconds, bytes, config hash).

        Raises:
            FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
            UAVScenesError: no sequence could be converted, or a malformed file (named).
        """
        t0 = time.perf_counter()
        names = [s.name for s in self.sequences]
        prepare_output_dir(out_dir, overwrite, names)
        h = config_hash(self.cfg, self.sequences)
        loaded = [d for d in (self.load_sequence(s) for s in self.sequences) if d is not None]
        if not loaded:
            raise UAVScenesError(f'{self.root}: no sequence with at least '
                                 f'{self.cfg.min_frames} labelled key frames')
        splits = self.assign_splits([d.name for d in loaded])
        entries = {'train': [], 'val': []}
        sessions, dts = {}, []
        n_frames = 0
        for data in loaded:
            subs = ('occupancy', 'poses') + (('lidar',) if self.cfg.lidar else ())
            for sub in subs:
                os.makedirs(os.path.join(out_dir, data.name, sub), exist_ok=True)
            for i in range(len(data.points)):
                occ = self.frame_occupancy(data, i)
                lidar = self.frame_lidar(data, i) if self.cfg.lidar else None
                entries[splits[data.name]].append(write_frame(
                    out_dir, data.name, i, occ, lidar, pose_record(data.traj, i)))
                n_frames += 1
            dts.extend(np.diff(data.traj.timestamps).tolist())
            sessions[data.name] = dict(
                split=splits[data.name], frames=len(data.points), t0=data.t0,
                origin=[float(v) for v in data.origin], sources=data.sources)
        rate = 1.0 / float(np.median(dts)) if dts else 1.0
        for split, data_list in entries.items():
            data_list.sort(key=lambda e: (e['session'], e['frame_idx']))
            write_index(os.path.join(out_dir, INDEX_FILES[split]),
                        self.metainfo(sessions, h, split, rate), data_list)
        summary = dict(out_dir=out_dir, sessions=len(loaded),
                       train_sessions=sum(v == 'train' for v in splits.values()),
                       val_sessions=sum(v == 'val' for v in splits.values()),
                       frames=n_frames, frame_rate_hz=round(rate, 3),
                       total_seconds=round(time.perf_counter() - t0, 2),
                       bytes=sum(os.path.getsize(os.path.join(r, f))
                                 for r, _, fs in os.walk(out_dir) for f in fs),
                       config_hash=h)
        logger.info('wrote %s', summary)
        return summary


def convert_uavscenes(root: str, out_dir: str, cfg: Optional[UAVScenesConfig] = None,
                      scenes: Optional[Sequence[str]] = None, overwrite: bool = False) -> dict:
    """Convert UAVScenes sequences into AerialWorld sessions (see :class:`UAVScenesConverter`).

    Args:
        root (str): UAVScenes root.
        out_dir (str): output data root.
        cfg (UAVScenesConfig, optional): options (default: the finetune_uavscenes grid).
        scenes (Sequence[str], optional): sequences to convert (default: all).
        overwrite (bool): replace previous outputs in ``out_dir``.

    Returns:
        dict: summary of what was written.
    """
    return UAVScenesConverter(root, cfg, scenes).convert(out_dir, overwrite)
