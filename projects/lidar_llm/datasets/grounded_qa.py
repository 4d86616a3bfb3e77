"""Grounded LiDAR QA from real nuScenes boxes (NuScenes-QA style + LiDAR-LLM grounding).

Question families (``template_type``), generated from the scene graph of one keyframe in the
ego frame (x forward, y left; sectors as :data:`VIEW_NAMES`, 60° each):

* ``exist``: "Is there a {class} to the {view} of the ego car within {r} m?" → yes / no.
* ``count``: "How many {classes} are to the {view} of the ego car within {r} m?" → integer.
* ``object``: "What is the closest object to the {view} of the ego car?" → class name or
  ``none`` (NuScenes-QA's *object* question).
* ``status``: "Is the closest {class} to the {view} of the ego car moving or stopped?" →
  moving / stopped, from the box motion between consecutive keyframes (> 0.5 m/s).
* ``comparison``: "Are there more {a} than {b} to the {view} of the ego car within {r} m?"
* ``grounding``: "Where is the closest object to the {view} of the ego car?" → ``<class>
  [x, y, l, w, yaw]`` (metres, degrees; LiDAR-LLM's grounding output: class + BEV box).

Each keyframe is also used rotated about the ego z axis by ``rot_deg`` (points and boxes
alike; the mmdet3d ``GlobalRotScaleTrans`` augmentation, applied before the questions are
generated), so the same question has different answers in different samples and only the
sensor can tell them apart. Sample token of a rotated view: ``<token>@r<deg>``.
"""
import math
import os.path as osp
import pickle
from typing import Dict, List, Sequence

import numpy as np

from projects.common.metrics.text_metric import parse_box_answer

__all__ = ['OCC3D_CLASS_NAMES', 'MMDET3D_NUSCENES_CLASSES', 'QA_CLASSES', 'load_seq_frames',
           'load_info_frames', 'rotate_boxes', 'LIDARSEG_CLASS_NAMES', 'points_in_boxes_bev', 'generate_frame_qa', 'format_box_answer',
           'parse_box_answer', 'VIEW_NAMES', 'view_of']

VIEW_NAMES = ('front', 'front-left', 'back-left', 'back', 'back-right', 'front-right')
#: Occ3D / SurroundOcc class order of ``object_category{i}.npy`` (0..10 are objects).
OCC3D_CLASS_NAMES = ('others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle',
                     'motorcycle', 'pedestrian', 'traffic_cone', 'trailer', 'truck')
#: Class ids of SurroundOcc's ``pc_seman/pc_seman_{i}.npy`` (column 3; lidarseg classes in the
#: Occ3D order, 0 = noise / other).
LIDARSEG_CLASS_NAMES = OCC3D_CLASS_NAMES + (
    'driveable_surface', 'other_flat', 'sidewalk', 'terrain', 'manmade', 'vegetation')
#: mmdet3d nuScenes info class order (metainfo['categories']).
MMDET3D_NUSCENES_CLASSES = ('car', 'truck', 'trailer', 'bus', 'construction_vehicle',
                            'bicycle', 'motorcycle', 'pedestrian', 'traffic_cone', 'barrier')
#: Classes asked about, with their plural.
QA_CLASSES = {'car': 'cars', 'pedestrian': 'pedestrians', 'barrier': 'barriers',
              'traffic_cone': 'traffic cones', 'truck': 'trucks'}
MOVING_SPEED = 0.5  # m/s


def _quat_to_mat(q: Sequence[float]) -> np.ndarray:
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _pose(rec: Dict) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = _quat_to_mat(rec['rotation'])
    m[:3, 3] = rec['translation']
    return m


def _boxes_to_ego(boxes: np.ndarray, lidar2ego: np.ndarray) -> np.ndarray:
    """LiDAR-frame boxes ``(M, 7)`` x, y, z_bottom, dx, dy, dz, yaw → ego frame."""
    out = boxes.astype(np.float64).copy()
    out[:, :3] = boxes[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    out[:, 6] = boxes[:, 6] + math.atan2(lidar2ego[1, 0], lidar2ego[0, 0])
    return out


def rotate_boxes(boxes: np.ndarray, rot_deg: float) -> np.ndarray:
    """Rotate ego-frame boxes ``(M, 7)`` about z by ``rot_deg`` degrees (counter-clockwise)."""
    a = math.radians(rot_deg)
    c, s = math.cos(a), math.sin(a)
    out = boxes.copy()
    out[:, 0] = c * boxes[:, 0] - s * boxes[:, 1]
    out[:, 1] = s * boxes[:, 0] + c * boxes[:, 1]
    out[:, 6] = np.remainder(boxes[:, 6] + a + math.pi, 2 * math.pi) - math.pi
    return out


def points_in_boxes_bev(xyz: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Index of the box holding each point (-1: none), from the boxes' BEV footprint and
    height.

    Args:
        xyz (np.ndarray): (N, >=3) points (m), the boxes' frame.
        boxes (np.ndarray): (M, 7) ``x, y, z_bottom, l, w, h, yaw`` (m, rad; ``l`` along
            the heading ``yaw``).

    Returns:
        np.ndarray: int64 (N,); a point inside several boxes takes the last one.
    """
    out = np.full(len(xyz), -1, np.int64)
    for j, b in enumerate(np.asarray(boxes, np.float64).reshape(-1, 7)):
        c, s = math.cos(b[6]), math.sin(b[6])
        dx, dy = xyz[:, 0] - b[0], xyz[:, 1] - b[1]
        u, v = c * dx + s * dy, -s * dx + c * dy
        inside = ((np.abs(u) <= b[3] / 2) & (np.abs(v) <= b[4] / 2) &
                  (xyz[:, 2] >= b[2]) & (xyz[:, 2] <= b[2] + b[5]))
        out[inside] = j
    return out


def view_of(xy: np.ndarray, num_views: int = 6) -> np.ndarray:
    """Sector index of ego-frame positions ``(M, 2)``: ``num_views`` equal azimuth sectors,
    sector 0 centred on +x, counter-clockwise (6: the 60° sectors of :data:`VIEW_NAMES`)."""
    width = 2 * math.pi / num_views
    theta = np.arctan2(xy[:, 1], xy[:, 0])
    return (np.floor(np.remainder(theta + width / 2, 2 * math.pi) / width)
            .astype(int).clip(0, num_views - 1))


def load_seq_frames(seq_dir: str, rel_to: str) -> List[Dict]:
    """Keyframes of a SurroundOcc-layout folder (``pc/``, ``bbox/``, ``calib/``, ``pose/``).

    Args:
        seq_dir (str): the folder (e.g. ``data/nuscenes_seq``).
        rel_to (str): paths in the result are relative to this folder (the data root).

    Returns:
        list[dict]: per frame ``token`` (the LiDAR ego-pose token), ``timestamp`` (s),
        ``lidar_path``, ``lidar2ego`` (4, 4), ``boxes`` (M, 7) ego frame, ``names`` (M,),
        ``moving`` (M,) bool and, when ``pc_seman/pc_seman_{i}.npy`` exists, ``seman_path``
        (per-point lidarseg classes, row-aligned with the sweep; see
        :data:`LIDARSEG_CLASS_NAMES`).

    Raises:
        FileNotFoundError: a frame file is missing (named).
    """
    frames, i = [], 0
    while osp.isfile(osp.join(seq_dir, 'pc', f'pc{i}.npy')):
        i += 1
    if i == 0:
        raise FileNotFoundError(f'{seq_dir}/pc/pc0.npy not found (SurroundOcc layout expected)')
    for k in range(i):
        def p(*parts):
            path = osp.join(seq_dir, *parts)
            if not osp.isfile(path):
                raise FileNotFoundError(f'{path}: missing file of keyframe {k}')
            return path
        pose = np.load(p('pose', f'lidar_ego_pose{k}.npy'), allow_pickle=True).item()
        calib = np.load(p('calib', f'lidar_calibrated_sensor{k}.npy'), allow_pickle=True).item()
        boxes = np.load(p('bbox', f'bbox{k}.npy')).astype(np.float64)
        cats = np.load(p('bbox', f'object_category{k}.npy'), allow_pickle=True).astype(int)
        inst = np.load(p('bbox', f'boxes_token{k}.npy'), allow_pickle=True)
        lidar2ego = _pose(calib)
        seman = osp.join(seq_dir, 'pc_seman', f'pc_seman_{k}.npy')
        frames.append(dict(seman_path=osp.relpath(seman, rel_to) if osp.isfile(seman) else None,
                           token=pose['token'], timestamp=pose['timestamp'] * 1e-6,
                           lidar_path=osp.relpath(p('pc', f'pc{k}.npy'), rel_to),
                           lidar2ego=lidar2ego, ego2global=_pose(pose),
                           boxes=_boxes_to_ego(boxes, lidar2ego),
                           names=np.array([OCC3D_CLASS_NAMES[c] for c in cats]),
                           instances=np.array([str(t) for t in inst]), scene=osp.basename(
                               osp.normpath(seq_dir))))
    # status from box motion between consecutive keyframes (global frame)
    for k, f in enumerate(frames):
        other = frames[k - 1] if k > 0 else frames[k + 1] if len(frames) > 1 else None
        moving = np.zeros(len(f['boxes']), bool)
        if other is not None:
            def glob(fr):
                c = fr['boxes'][:, :3]
                return {t: c[j] @ fr['ego2global'][:3, :3].T + fr['ego2global'][:3, 3]
                        for j, t in enumerate(fr['instances'])}
            g0, g1 = glob(f), glob(other)
            dt = abs(f['timestamp'] - other['timestamp'])
            for j, t in enumerate(f['instances']):
                if t in g1 and dt > 0:
                    moving[j] = np.linalg.norm((g0[t] - g1[t])[:2]) / dt > MOVING_SPEED
        f['moving'] = moving
    return frames


def load_info_frames(info_pkl: str, rel_to: str) -> List[Dict]:
    """Keyframes of an mmdet3d nuScenes info file (v1.1: ``metainfo`` + ``data_list``).

    Boxes ``bbox_3d`` (LiDAR frame, x, y, z_bottom, dx, dy, dz, yaw), moving from the
    annotated ``velocity`` (> 0.5 m/s). Points ``lidar_points.lidar_path`` beside the pkl.
    """
    with open(info_pkl, 'rb') as f:
        info = pickle.load(f)
    if not isinstance(info, dict) or 'data_list' not in info:
        raise ValueError(f'{info_pkl}: expected an mmdet3d info dict with data_list')
    cats = info.get('metainfo', {}).get('categories')
    names_by_id = {v: k for k, v in cats.items()} if cats else dict(
        enumerate(MMDET3D_NUSCENES_CLASSES))
    root = osp.dirname(info_pkl)
    frames = []
    for d in info['data_list']:
        inst = [i for i in d.get('instances', []) if i.get('bbox_3d_isvalid', True)
                and i.get('bbox_label_3d', -1) in names_by_id]  # -1: ignored class
        boxes = np.array([i['bbox_3d'] for i in inst], np.float64).reshape(-1, 7)
        vel = np.nan_to_num(np.array([i.get('velocity', [0, 0]) for i in inst],
                                     np.float64).reshape(-1, 2))
        lidar2ego = np.array(d['lidar_points']['lidar2ego'], np.float64)
        path = osp.join(root, d['lidar_points']['lidar_path'])
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path}: LiDAR file of {info_pkl} sample {d["token"]}')
        cams = {c: osp.relpath(osp.join(root, v['img_path']), rel_to)
                for c, v in d.get('images', {}).items() if v.get('img_path')}
        frames.append(dict(token=d['token'], timestamp=float(d['timestamp']),
                           lidar_path=osp.relpath(path, rel_to), lidar2ego=lidar2ego,
                           boxes=_boxes_to_ego(boxes, lidar2ego),
                           names=np.array([names_by_id[i['bbox_label_3d']] for i in inst]),
                           moving=np.linalg.norm(vel, axis=1) > MOVING_SPEED, cams=cams,
                           scene=osp.splitext(osp.basename(info_pkl))[0]))
    return frames


def format_box_answer(name: str, box: np.ndarray) -> str:
    """``'car [12.3, -4.1, 4.6, 1.9, 87]'``: class + BEV box x, y, l, w (m, 0.1 m), yaw (°)."""
    yaw = int(round(math.degrees(float(box[6])))) % 360
    return (f'{name.replace("_", " ")} [{box[0]:.1f}, {box[1]:.1f}, {box[3]:.1f}, '
            f'{box[4]:.1f}, {yaw}]')


def generate_frame_qa(frame: Dict, rot_deg: float, ranges: Sequence[float] = (15.0, 30.0),
                      max_range: float = 40.0) -> List[Dict]:
    """All questions of one keyframe seen rotated by ``rot_deg``.

    Args:
        frame (dict): from :func:`load_seq_frames` / :func:`load_info_frames`.
        rot_deg (float): rotation about the ego z axis (degrees).
        ranges (Sequence[float]): radii (m) of the exist / count / comparison questions.
        max_range (float): objects farther than this (m) are ignored by object / status /
            grounding questions (beyond the BEV map).

    Returns:
        list[dict]: rows with ``question``, ``answer``, ``template_type``, ``template``
        (question text with the answer-independent slots, for the answer prior), optional
        ``gt_count`` / ``gt_box`` (x, y, z, l, w, h, yaw) / ``gt_name``.
    """
    boxes = rotate_boxes(frame['boxes'], rot_deg)
    names, moving = frame['names'], frame['moving']
    dist = np.linalg.norm(boxes[:, :2], axis=1)
    views = view_of(boxes[:, :2]) if len(boxes) else np.zeros(0, int)
    rows = []

    def add(ttype, q, a, **extra):
        rows.append(dict(template_type=ttype, template=q, question=q, answer=a, **extra))

    for v, vname in enumerate(VIEW_NAMES):
        in_view = views == v
        for r in ranges:
            sel = in_view & (dist <= r)
            counts = {c: int(((names == c) & sel).sum()) for c in QA_CLASSES}
            for c in ('car', 'pedestrian', 'barrier'):
                cname = c.replace('_', ' ')
                add('exist', f'Is there a {cname} to the {vname} of the ego car within '
                    f'{r:g} m?', 'yes' if counts[c] else 'no')
                add('count', f'How many {QA_CLASSES[c]} are to the {vname} of the ego car '
                    f'within {r:g} m?', str(counts[c]), gt_count=counts[c])
            add('count', f'How many objects are to the {vname} of the ego car within {r:g} m?',
                str(int(sel.sum())), gt_count=int(sel.sum()))
            a, b = ('pedestrian', 'car') if v % 2 else ('barrier', 'car')
            add('comparison', f'Are there more {QA_CLASSES[a]} than {QA_CLASSES[b]} to the '
                f'{vname} of the ego car within {r:g} m?',
                'yes' if counts[a] > counts[b] else 'no')
        near = np.where(in_view & (dist <= max_range))[0]
        if len(near):
            j = near[np.argmin(dist[near])]
            add('object', f'What is the closest object to the {vname} of the ego car?',
                names[j].replace('_', ' '))
            add('grounding', f'Where is the closest object to the {vname} of the ego car?',
                format_box_answer(names[j], boxes[j]), gt_box=[round(float(x), 3)
                                                               for x in boxes[j]],
                gt_name=str(names[j]))
        else:
            add('object', f'What is the closest object to the {vname} of the ego car?', 'none')
        for c in ('car', 'pedestrian'):
            cand = np.where(in_view & (names == c) & (dist <= max_range))[0]
            if len(cand):
                j = cand[np.argmin(dist[cand])]
                add('status', f'Is the closest {c} to the {vname} of the ego car moving or '
                    'stopped?', 'moving' if moving[j] else 'stopped')
    return rows
