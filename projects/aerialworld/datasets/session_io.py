"""The AerialWorld session format: one module that writes and reads it.

Layout (``docs/aerialworld_data_and_model_contract.md``)::

    <root>/<session>/occupancy/<frame:06d>_occupancy.npz   key 'occupancy', (X, Y, Z) uint8
    <root>/<session>/poses/<frame:06d>.json                pose JSON (:func:`pose_json`)
    <root>/<session>/lidar/<frame:06d>_LIDAR.npy           (N, 4) float32 x, y, z, intensity
    <root>/<session>/annotations/<frame:06d>.json          moving-agent boxes (with traffic)
    <root>/aerialworld_infos_{train,val}.pkl               {'metainfo': ..., 'data_list': [...]}

Every converter (PLATEAU, UAVScenes, nuScenes) and tool that writes sessions goes through the
functions here; every file is written atomically with :mod:`projects.common.utils.io` (a
temporary file in the destination folder renamed into place), so a crash never leaves a
truncated file under a final name. ``metainfo['config_hash']`` (:func:`config_hash`) lets a
build script skip a dataset whose options and inputs have not changed
(:func:`index_is_current`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np
from mmengine.fileio import dump, load

from projects.common.utils.io import atomic_write, save_json_atomic, save_npy_atomic, \
    save_npz_atomic

logger = logging.getLogger(__name__)

__all__ = [
    'INDEX_FILES', 'SESSION_SUBDIRS', 'FORMAT_VERSION', 'frame_paths', 'pose_json',
    'pose_from_json', 'read_pose_file', 'make_session_dirs', 'write_frame', 'write_index',
    'write_split_indexes', 'index_metainfo', 'config_hash', 'index_is_current',
    'prepare_output_dir', 'remove_on_failure', 'dir_size'
]

#: Index file of each split.
INDEX_FILES = {'train': 'aerialworld_infos_train.pkl', 'val': 'aerialworld_infos_val.pkl'}
#: Folders of a session.
SESSION_SUBDIRS = ('occupancy', 'poses', 'lidar')
#: ``metainfo['version']`` of the format.
FORMAT_VERSION = '1.0'


def frame_paths(i: int) -> Dict[str, str]:
    """File names of frame ``i`` relative to its session folder.

    Args:
        i (int): frame index (>= 0).

    Returns:
        dict: ``occ``, ``pose``, ``lidar`` and ``ann`` (agent annotations) relative paths.
    """
    return {'occ': f'occupancy/{i:06d}_occupancy.npz', 'pose': f'poses/{i:06d}.json',
            'lidar': f'lidar/{i:06d}_LIDAR.npy', 'ann': f'annotations/{i:06d}.json'}


def pose_json(pose13: Sequence[float], timestamp: float, extra: Optional[dict] = None) -> dict:
    """The pose JSON record of a 13-D pose.

    Args:
        pose13 (Sequence[float]): ``[x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]``
            (m, unit quaternion scalar first, m/s in the world frame, rad/s in the body frame).
        timestamp (float): seconds from the session start.
        extra (dict, optional): further keys (provenance) appended to the record.

    Returns:
        dict: ``pose_13d`` (13 floats), ``timestamp``, ``position`` {x, y, z},
        ``orientation`` {x, y, z, w}, ``velocity`` {linear {x, y, z}, angular {x, y, z}}, then
        ``extra``.

    Raises:
        ValueError: ``pose13`` does not hold 13 values.
    """
    p = [float(x) for x in pose13]
    if len(p) != 13:
        raise ValueError(f'pose_json needs 13 values, got {len(p)}')
    rec = {'pose_13d': p, 'timestamp': float(timestamp),
           'position': {'x': p[0], 'y': p[1], 'z': p[2]},
           'orientation': {'x': p[4], 'y': p[5], 'z': p[6], 'w': p[3]},
           'velocity': {'linear': {'x': p[7], 'y': p[8], 'z': p[9]},
                        'angular': {'x': p[10], 'y': p[11], 'z': p[12]}}}
    rec.update(extra or {})
    return rec


def pose_from_json(record, where: str = '<pose>') -> np.ndarray:
    """The 13-D pose of a pose JSON record (inverse of :func:`pose_json`).

    Uses ``pose_13d`` when present, else ``position`` / ``orientation`` (``{x, y, z, w}``,
    returned scalar first) and ``velocity`` (missing velocities are zeros). A bare list of
    13 numbers is accepted too (plan files).

    Args:
        record (dict | Sequence[float]): the parsed JSON.
        where (str): file (and entry) named in errors.

    Returns:
        np.ndarray: (13,) float64 ``[x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]``.

    Raises:
        ValueError: missing keys, not 13 values, non-finite values or a zero quaternion; the
            message names ``where``.
    """
    if isinstance(record, dict):
        if record.get('pose_13d') is not None:
            record = record['pose_13d']
        else:
            try:
                p, o = record['position'], record['orientation']
                vel = record.get('velocity') or {}
                lin = vel.get('linear') or {}
                ang = vel.get('angular') or {}
                record = [p['x'], p['y'], p['z'], o['w'], o['x'], o['y'], o['z'],
                          lin.get('x', 0.0), lin.get('y', 0.0), lin.get('z', 0.0),
                          ang.get('x', 0.0), ang.get('y', 0.0), ang.get('z', 0.0)]
            except (KeyError, TypeError, AttributeError) as err:
                raise ValueError(f'{where}: a pose needs "pose_13d" or "position" + '
                                 f'"orientation" ({type(err).__name__}: {err})') from err
    try:
        pose = np.asarray([float(v) for v in record], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f'{where}: expected 13 numbers, got {record!r}') from err
    if pose.shape != (13,):
        raise ValueError(f'{where}: expected 13 values [x, y, z, qw, qx, qy, qz, vx, vy, vz, '
                         f'wx, wy, wz], got {pose.size}')
    if not np.all(np.isfinite(pose)):
        raise ValueError(f'{where}: non-finite pose values {pose.tolist()}')
    if np.linalg.norm(pose[3:7]) < 1e-6:
        raise ValueError(f'{where}: the quaternion (entries 3..6, [qw, qx, qy, qz]) is zero')
    return pose


def read_pose_file(path: str) -> np.ndarray:
    """Read a pose JSON file (see :func:`pose_from_json`).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: not JSON or malformed (the message names the file).
    """
    with open(path, encoding='utf-8') as f:
        try:
            record = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path}: not valid JSON ({err})') from err
    return pose_from_json(record, path)


def make_session_dirs(session_dir: str, lidar: bool = True, annotations: bool = False) -> None:
    """Create the folders of a session (``lidar/`` only when ``lidar``, ``annotations/`` only
    when ``annotations``)."""
    for sub in SESSION_SUBDIRS if lidar else SESSION_SUBDIRS[:2]:
        os.makedirs(os.path.join(session_dir, sub), exist_ok=True)
    if annotations:
        os.makedirs(os.path.join(session_dir, 'annotations'), exist_ok=True)


def write_frame(out_dir: str, session: str, i: int, occ: np.ndarray,
                lidar: Optional[np.ndarray], pose: dict,
                session_dir: Optional[str] = None,
                annotations: Optional[dict] = None) -> dict:
    """Write one frame's files atomically; return its index entry.

    Args:
        out_dir (str): data root (index paths are relative to it).
        session (str): session name.
        i (int): frame index.
        occ (np.ndarray): (X, Y, Z) occupancy labels (stored as uint8).
        lidar (np.ndarray | None): (N, 4) sweep (stored as float32), or None.
        pose (dict): pose JSON (:func:`pose_json`).
        session_dir (str, optional): folder the files go to when it is not
            ``out_dir/session`` (a staging folder renamed into place later).
        annotations (dict, optional): moving-agent boxes of the frame
            (:func:`projects.aerialworld.converters.traffic_boxes.annotation_record`), written
            to ``annotations/<frame>.json``.

    Returns:
        dict: ``session, frame_idx, timestamp, occ_path, pose_path[, lidar_path][,
        ann_path]``.
    """
    folder = session_dir or os.path.join(out_dir, session)
    rel = frame_paths(i)
    save_npz_atomic(os.path.join(folder, rel['occ']), occupancy=np.asarray(occ, np.uint8))
    save_json_atomic(os.path.join(folder, rel['pose']), pose)
    entry = {'session': session, 'frame_idx': i, 'timestamp': pose['timestamp'],
             'occ_path': f'{session}/{rel["occ"]}', 'pose_path': f'{session}/{rel["pose"]}'}
    if lidar is not None:
        save_npy_atomic(os.path.join(folder, rel['lidar']), np.asarray(lidar, np.float32))
        entry['lidar_path'] = f'{session}/{rel["lidar"]}'
    if annotations is not None:
        save_json_atomic(os.path.join(folder, rel['ann']), annotations)
        entry['ann_path'] = f'{session}/{rel["ann"]}'
    return entry


def write_index(path: str, metainfo: dict, data_list: list) -> None:
    """Write an index file (``{'metainfo', 'data_list'}``, pickle) atomically with mmengine."""
    atomic_write(path, lambda tmp: dump({'metainfo': metainfo, 'data_list': data_list}, tmp,
                                        file_format='pkl'))


def write_split_indexes(out_dir: str, entries: Dict[str, List[dict]], metainfo_of) -> None:
    """Write ``aerialworld_infos_{train,val}.pkl``, entries sorted by (session, frame).

    Args:
        out_dir (str): data root.
        entries (dict): ``{'train': [...], 'val': [...]}`` index entries (sorted in place).
        metainfo_of (Callable[[str], dict]): metainfo of a split.
    """
    for split, name in INDEX_FILES.items():
        data_list = entries.get(split, [])
        data_list.sort(key=lambda e: (e['session'], e['frame_idx']))
        write_index(os.path.join(out_dir, name), metainfo_of(split), data_list)


def index_metainfo(dataset: str, classes: Sequence[str], free_label: int,
                   point_cloud_range: Sequence[float], voxel_size: Sequence[float],
                   grid_size: Sequence[int], z_reference: str, frame_rate_hz: float, split: str,
                   config_hash: str, converter: str, converter_config: dict,
                   **extra) -> dict:
    """The ``metainfo`` of an index: the contract keys, then provenance.

    Args:
        dataset (str): dataset name.
        classes (Sequence[str]): class names (label = position).
        free_label (int): label of free space.
        point_cloud_range (Sequence[float]): (6,) metres.
        voxel_size (Sequence[float]): (3,) metres.
        grid_size (Sequence[int]): (3,) voxels.
        z_reference (str): ``'ground'`` or ``'ego'``.
        frame_rate_hz (float): frames per second.
        split (str): ``'train'`` or ``'val'``.
        config_hash (str): :func:`config_hash` of the conversion.
        converter (str): converter name and version.
        converter_config (dict): the converter's options.
        **extra: further keys (sites, sessions, attribution, ...), in order.

    Returns:
        dict: the metainfo.
    """
    meta = {
        'dataset': dataset, 'classes': classes, 'free_label': free_label,
        'point_cloud_range': [float(v) for v in point_cloud_range],
        'voxel_size': [float(v) for v in voxel_size], 'grid_size': list(grid_size),
        'z_reference': z_reference, 'frame_rate_hz': float(frame_rate_hz),
        'version': FORMAT_VERSION, 'split': split, 'config_hash': config_hash,
        'converter': converter, 'converter_config': converter_config,
    }
    meta.update(extra)
    return meta


def config_hash(version: str, options: dict, inputs: Iterable[str]) -> str:
    """sha256 of a converter version, its options and descriptions of its inputs.

    Args:
        version (str): converter name and version (bump it when the output changes).
        options (dict): JSON-serialisable options (hashed with sorted keys).
        inputs (Iterable[str]): strings describing every input, typically
            ``'<name>:<sha256 of the file>'``, in a deterministic order.

    Returns:
        str: hex digest (stored as ``metainfo['config_hash']``).
    """
    h = hashlib.sha256(version.encode())
    h.update(json.dumps(options, sort_keys=True).encode())
    for item in inputs:
        h.update(item.encode())
    return h.hexdigest()


def index_is_current(out_dir: str, expected_hash: str) -> bool:
    """True when both index files of ``out_dir`` exist and store ``expected_hash``.

    An unreadable index counts as out of date.
    """
    for name in INDEX_FILES.values():
        path = os.path.join(out_dir, name)
        if not os.path.isfile(path):
            return False
        try:
            if load(path)['metainfo'].get('config_hash') != expected_hash:
                return False
        except Exception:  # unreadable or malformed index: rebuild it
            return False
    return True


def prepare_output_dir(out_dir: str, overwrite: bool,
                       sessions: Optional[Sequence[str]] = None,
                       prefixes: Sequence[str] = ('drone_', 'rover_')) -> None:
    """Create ``out_dir``; refuse a non-empty one unless ``overwrite``.

    With ``overwrite`` only previous converter outputs are removed (the index files, their
    temporary files and the session folders: those named in ``sessions``, or by default the
    folders starting with one of ``prefixes``); other entries are kept and listed.

    Args:
        out_dir (str): output folder.
        overwrite (bool): allow replacing previous converter outputs.
        sessions (Sequence[str], optional): names of the session folders the converter writes.
        prefixes (Sequence[str]): session-folder prefixes used when ``sessions`` is None
            (default: the PLATEAU converter's ``drone_`` / ``rover_``).

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False, or is a file.
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f'output path {out_dir} exists and is not a folder')
    os.makedirs(out_dir, exist_ok=True)
    entries = sorted(os.listdir(out_dir))
    if not entries:
        return
    if not overwrite:
        raise FileExistsError(f'output folder {out_dir} is not empty ({len(entries)} entries, '
                              f'e.g. {entries[:3]}); pass --overwrite to replace it')
    kept = []
    index_tmp = tuple(f'.{n}.' for n in INDEX_FILES.values())
    for e in entries:
        p = os.path.join(out_dir, e)
        if e in INDEX_FILES.values() or e.startswith(index_tmp):
            os.remove(p)
        elif os.path.isdir(p) and (e in set(sessions) if sessions is not None
                                   else e.startswith(tuple(prefixes))):
            shutil.rmtree(p)
        else:
            kept.append(e)
    if kept:
        logger.warning('overwrite: kept entries of %s that the converter did not write: %s',
                       out_dir, kept)


@contextlib.contextmanager
def remove_on_failure(out_dir: str) -> Iterator[None]:
    """Remove ``out_dir`` when the block fails and the folder did not exist before it.

    A converter run that stops with an error then leaves no (empty or half-written) output
    folder behind; a folder that existed before is left in place.
    """
    existed = os.path.exists(out_dir)
    try:
        yield
    except BaseException:
        if not existed and os.path.isdir(out_dir):
            shutil.rmtree(out_dir, ignore_errors=True)
            logger.warning('conversion failed: removed the partial output folder %s', out_dir)
        raise


def dir_size(path: str) -> int:
    """Bytes of all files below ``path``."""
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
