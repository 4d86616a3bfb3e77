"""Reading the UAVScenes release: sequence layout, poses, scans and labels.

The layout is described in :mod:`.uavscenes`; every reader names the file in its errors.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from projects.aerialworld.datasets.classes import (PLATEAU_CLASSES, UAVSCENES_CLASSES,
                                                   UAVSCENES_TO_AERIALWORLD)

logger = logging.getLogger(__name__)

POSES_FILE = 'sampleinfos_interpolated.json'
IGNORE_LABEL = 255
SCAN_NAME = re.compile(r'^image(?P<image>\d+(?:\.\d+)?)_lidar(?P<lidar>\d+(?:\.\d+)?)\.txt$')


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
