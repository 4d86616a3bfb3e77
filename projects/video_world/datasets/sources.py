"""Readers that turn recorded video sources into *sequence records*.

A sequence record is one continuous recording with the motion that produced it::

    dict(sequence=str,                 # unique name (scene / episode[/view])
         source=str,                   # 'bridge' | 'kitti_raw' | 'nuscenes' | 'generic'
         img_paths=list[str],          # N frame files, or
         frames=ndarray (N, H, W, 3),  # N decoded uint8 RGB frames (RLDS)
         actions=ndarray (N - 1, A),   # float32, actions[t] moves frame t to t + 1
         action_names=list[str],       # A names
         timestamps=list[float])       # optional, seconds

Actions always come from the recording (robot commands, OXTS, ego poses), never from a
random generator. :class:`projects.video_world.datasets.VideoSequenceDataset` cuts the records
into clips.
"""
import glob
import json
import math
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['IMAGE_EXTS', 'read_generic_scene', 'find_generic_scenes', 'read_kitti_oxts',
           'kitti_raw_drive_sequence', 'find_kitti_raw_drives', 'bridge_sequences',
           'bridge_episode_key', 'nuscenes_front_sequences', 'yaw_from_quaternion']

IMAGE_EXTS = ('.jpg', '.jpeg', '.png')


def _numbered_frames(folder: str) -> List[str]:
    """Sorted image files of ``folder``; raise on a gap in numeric file names.

    Raises:
        FileNotFoundError: The folder has no images, or numbered frames skip a number (the
            error names the first missing file).
    """
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS)) \
        if osp.isdir(folder) else []
    if not files:
        raise FileNotFoundError(f'no frames (*.jpg / *.png) in {folder}')
    nums = [re.fullmatch(r'(\d+)', osp.splitext(f)[0]) for f in files]
    if all(nums):
        values = [int(m.group(1)) for m in nums]
        width = len(osp.splitext(files[0])[0])
        ext = osp.splitext(files[0])[1]
        for a, b in zip(values[:-1], values[1:]):
            if b != a + 1:
                missing = osp.join(folder, f'{a + 1:0{width}d}{ext}')
                raise FileNotFoundError(f'missing frame {missing}: {folder} jumps from frame '
                                        f'{a} to {b}')
    return [osp.join(folder, f) for f in files]


def read_generic_scene(scene_dir: str) -> dict:
    """Read the seed's generic recording layout (e.g. CARLA)::

        <scene_dir>/images/000000.jpg ...  N frames, consecutive numbers
        <scene_dir>/actions.npy            (N, A) one action per frame (the last is unused)
                                           or (N - 1, A) one per transition
        <scene_dir>/metadata.json          optional: {"fps": .., "action_names": [..], ...}

    Args:
        scene_dir (str): The scene folder.

    Returns:
        dict: A sequence record (``source='generic'``), ``metadata`` added.

    Raises:
        FileNotFoundError: No ``images/`` frames, a missing frame, or no ``actions.npy``
            (named).
        ValueError: ``actions.npy`` is not 2-D with ``N`` or ``N - 1`` rows, or
            ``metadata.json`` is not a JSON object (the message names the file).
    """
    paths = _numbered_frames(osp.join(scene_dir, 'images'))
    act_file = osp.join(scene_dir, 'actions.npy')
    if not osp.isfile(act_file):
        raise FileNotFoundError(f'{act_file} not found (one action row per frame expected)')
    actions = np.load(act_file)
    n = len(paths)
    if actions.ndim == 1:
        actions = actions[:, None]
    if actions.ndim != 2 or actions.shape[0] not in (n, n - 1):
        raise ValueError(f'{act_file}: shape {tuple(actions.shape)} does not fit the {n} frames '
                         f'of {osp.join(scene_dir, "images")}: expected ({n}, A) or '
                         f'({n - 1}, A)')
    meta: dict = {}
    meta_file = osp.join(scene_dir, 'metadata.json')
    if osp.isfile(meta_file):
        with open(meta_file, encoding='utf-8') as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError(f'{meta_file}: expected a JSON object, got {type(meta).__name__}')
    names = meta.get('action_names') or [f'a{i}' for i in range(actions.shape[1])]
    if len(names) != actions.shape[1]:
        raise ValueError(f'{meta_file}: {len(names)} action_names for {actions.shape[1]} '
                         f'action columns in {act_file}')
    fps = meta.get('fps')
    rec = dict(sequence=osp.basename(osp.normpath(scene_dir)), source='generic',
               img_paths=paths, actions=actions[:n - 1].astype(np.float32),
               action_names=list(names), metadata=meta)
    if fps:
        rec['timestamps'] = [i / float(fps) for i in range(n)]
    return rec


def find_generic_scenes(root: str) -> List[str]:
    """Scene folders (those with an ``images/`` sub-folder) directly under ``root``, sorted.

    Raises:
        FileNotFoundError: ``root`` has no scene folder.
    """
    scenes = sorted(d for d in glob.glob(osp.join(root, '*')) if osp.isdir(osp.join(d, 'images')))
    if not scenes:
        raise FileNotFoundError(f'no scene folders (<scene>/images/) under {root}')
    return scenes


# KITTI raw OXTS fields (dataformat.txt of the raw data development kit).
_OXTS_FIELDS = ('lat', 'lon', 'alt', 'roll', 'pitch', 'yaw', 'vn', 've', 'vf', 'vl', 'vu',
                'ax', 'ay', 'az', 'af', 'al', 'au', 'wx', 'wy', 'wz', 'wf', 'wl', 'wu',
                'pos_accuracy', 'vel_accuracy', 'navstat', 'numsats', 'posmode', 'velmode',
                'orimode')


def read_kitti_oxts(path: str) -> Dict[str, float]:
    """Read one KITTI raw OXTS packet (30 space-separated values).

    Returns:
        dict[str, float]: Field name -> value (``vf`` forward speed m/s, ``wu`` yaw rate
        rad/s about the up axis, ...).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: It does not hold 30 numbers (names the file).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'OXTS packet {path} not found')
    with open(path) as f:
        values = f.read().split()
    if len(values) != len(_OXTS_FIELDS):
        raise ValueError(f'{path}: {len(values)} values, an OXTS packet has '
                         f'{len(_OXTS_FIELDS)}')
    return dict(zip(_OXTS_FIELDS, map(float, values)))


def _kitti_timestamps(path: str) -> List[float]:
    """Seconds (relative to the first line) of a KITTI ``timestamps.txt``."""
    from datetime import datetime
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            day, clock = line.split(' ')
            sec, frac = (clock.split('.') + ['0'])[:2]
            t = datetime.strptime(f'{day} {sec}', '%Y-%m-%d %H:%M:%S').timestamp()
            out.append(t + float('0.' + frac))
    return [t - out[0] for t in out] if out else out


def kitti_raw_drive_sequence(drive_dir: str, camera: str = 'image_02') -> dict:
    """A KITTI raw drive (``<date>/<date>_drive_XXXX_sync``) as a sequence record.

    Frames: ``<camera>/data/*.png``; actions per transition ``t -> t+1``: the mean of the two
    OXTS packets' forward speed ``vf`` (m/s) and yaw rate ``wu`` (rad/s, positive = left
    turn), i.e. the trapezoidal average over the interval.

    Args:
        drive_dir (str): The ``*_sync`` folder.
        camera (str): ``'image_02'`` (left colour) or ``'image_03'``. Defaults to
            ``'image_02'``.

    Returns:
        dict: Sequence record, ``action_names=['forward_speed', 'yaw_rate']``.

    Raises:
        FileNotFoundError: Missing frames / OXTS packets (the missing file is named).
    """
    paths = _numbered_frames(osp.join(drive_dir, camera, 'data'))
    packets = []
    for p in paths:
        stem = osp.splitext(osp.basename(p))[0]
        packets.append(read_kitti_oxts(osp.join(drive_dir, 'oxts', 'data', f'{stem}.txt')))
    speed = np.array([o['vf'] for o in packets], dtype=np.float64)
    yaw_rate = np.array([o['wu'] for o in packets], dtype=np.float64)
    actions = np.stack([(speed[:-1] + speed[1:]) / 2, (yaw_rate[:-1] + yaw_rate[1:]) / 2], 1)
    rec = dict(sequence=f'{osp.basename(osp.normpath(drive_dir))}/{camera}', source='kitti_raw',
               img_paths=paths, actions=actions.astype(np.float32),
               action_names=['forward_speed', 'yaw_rate'])
    ts = osp.join(drive_dir, camera, 'timestamps.txt')
    if osp.isfile(ts):
        stamps = _kitti_timestamps(ts)
        first = int(osp.splitext(osp.basename(paths[0]))[0])
        rec['timestamps'] = stamps[first:first + len(paths)]
    return rec


def find_kitti_raw_drives(root: str) -> List[str]:
    """Every ``<date>/<date>_drive_*_sync`` folder under ``root`` (a KITTI raw tree), sorted.

    Raises:
        FileNotFoundError: None found.
    """
    drives = sorted(glob.glob(osp.join(root, '*', '*_drive_*_sync')))
    if not drives:
        raise FileNotFoundError(f'no KITTI raw drives (<date>/<date>_drive_*_sync) under {root}')
    return drives


def bridge_episode_key(ep: dict) -> str:
    """Stable name of an RLDS episode: its source file path and episode id (the record's
    position when the metadata has neither)."""
    if ep.get('file_path'):
        parts = ep['file_path'].strip('/').split('/')
        base = '/'.join(parts[-4:-1]) if len(parts) >= 4 else ep['file_path']
        return f'{base}#{ep.get("episode_id")}'
    return f'{osp.basename(ep["source"])}#{ep["index"]}'


def bridge_sequences(tfrecord_files: Sequence[str], views: Sequence[str] = ('image_0',),
                     skip_blank_views: bool = True) -> Tuple[List[dict], Dict[str, List[str]]]:
    """Read BridgeData RLDS episodes (``projects.common.utils.rlds``, ``tfrecord`` package)
    into one sequence record per (episode, camera view).

    Actions: the recorded 7-D robot action (Cartesian end-effector deltas x, y, z, roll,
    pitch, yaw, and the gripper command) of steps ``0 .. N-2`` (step ``t``'s action leads to
    observation ``t + 1``). Episodes present in several files (the bundled train and val
    files hold the same 25 episodes) are kept once.

    Args:
        tfrecord_files (Sequence[str]): RLDS TFRecord files.
        views (Sequence[str]): Camera features to use. Defaults to ``('image_0',)``.
        skip_blank_views (bool): Drop a view whose frames are all zero (unrecorded cameras
            are stored as black images). Defaults to True.

    Returns:
        tuple: (records sorted by episode key then view, ``{episode key: [files it is in]}``).

    Raises:
        FileNotFoundError: A file does not exist.
    """
    from projects.common.utils.rlds import iter_rlds_episodes
    by_key: Dict[str, dict] = {}
    where: Dict[str, List[str]] = {}
    for path in tfrecord_files:
        for ep in iter_rlds_episodes(path, image_keys=list(views)):
            key = bridge_episode_key(ep)
            where.setdefault(key, []).append(path)
            by_key.setdefault(key, ep)
    records = []
    for key in sorted(by_key):
        ep = by_key[key]
        for view in views:
            frames = ep['images'][view]
            if skip_blank_views and not frames.any():
                continue
            records.append(dict(
                sequence=f'{key}/{view}', episode=key, source='bridge', frames=frames,
                actions=ep['action'][:-1].astype(np.float32),
                action_names=['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper'],
                language_instruction=ep['language_instruction']))
    return records, where


def yaw_from_quaternion(q: Sequence[float]) -> float:
    """Yaw (rad, about +z) of a scalar-first quaternion ``[w, x, y, z]``."""
    w, x, y, z = q
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def nuscenes_front_sequences(dataroot: str, version: str, camera: str = 'CAM_FRONT',
                             use_sweeps: bool = False, scenes: Optional[Sequence[str]] = None,
                             min_distance: float = 0.05) -> List[dict]:
    """Camera sequences of nuScenes scenes through ``nuscenes-devkit``, with (speed,
    curvature) actions from the ego poses.

    For consecutive frames ``t, t+1`` with ego poses ``(p_t, ψ_t)``, ``(p_{t+1}, ψ_{t+1})``
    and timestamps (µs): ``speed = |p_{t+1} - p_t| / Δt`` (m/s) and ``curvature =
    wrap(ψ_{t+1} - ψ_t) / |p_{t+1} - p_t|`` (1/m, positive = left; 0 when the ego moved
    less than ``min_distance`` m).

    Args:
        dataroot (str): nuScenes root (with ``samples/``, ``sweeps/`` and ``<version>/``).
        version (str): Table set, e.g. ``'v1.0-mini'``.
        camera (str): Camera channel. Defaults to ``'CAM_FRONT'``.
        use_sweeps (bool): Every camera frame (~12 Hz) instead of keyframes (2 Hz).
        scenes (Sequence[str], optional): Scene names to keep (all when None).
        min_distance (float): Below this displacement the curvature is 0.

    Returns:
        list[dict]: One record per scene (``source='nuscenes'``), ``action_names=['speed',
        'curvature']``, ``timestamps`` in seconds from the first frame.

    Raises:
        FileNotFoundError: A camera image listed in ``sample_data`` does not exist (named).
    """
    from nuscenes.nuscenes import NuScenes
    nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    records = []
    for scene in nusc.scene:
        if scenes is not None and scene['name'] not in scenes:
            continue
        sample = nusc.get('sample', scene['first_sample_token'])
        sd = nusc.get('sample_data', sample['data'][camera])
        chain = []
        while sd is not None:
            if use_sweeps or sd['is_key_frame']:
                chain.append(sd)
            sd = nusc.get('sample_data', sd['next']) if sd['next'] else None
        paths, poses, stamps = [], [], []
        for sd in chain:
            path = osp.join(dataroot, sd['filename'])
            if not osp.isfile(path):
                raise FileNotFoundError(f'nuScenes image {path} (sample_data {sd["token"]}, '
                                        f'scene {scene["name"]}) not found')
            pose = nusc.get('ego_pose', sd['ego_pose_token'])
            paths.append(path)
            poses.append((np.asarray(pose['translation'][:2], dtype=np.float64),
                          yaw_from_quaternion(pose['rotation'])))
            stamps.append(sd['timestamp'] * 1e-6)
        acts = []
        for (p0, y0), (p1, y1), t0, t1 in zip(poses[:-1], poses[1:], stamps[:-1], stamps[1:]):
            dist = float(np.linalg.norm(p1 - p0))
            dyaw = (y1 - y0 + math.pi) % (2 * math.pi) - math.pi
            acts.append([dist / max(t1 - t0, 1e-6),
                         dyaw / dist if dist >= min_distance else 0.0])
        records.append(dict(sequence=scene['name'], source='nuscenes', img_paths=paths,
                            actions=np.asarray(acts, dtype=np.float32).reshape(-1, 2),
                            action_names=['speed', 'curvature'],
                            timestamps=[t - stamps[0] for t in stamps]))
    return records
