"""ScenarioNet (nuScenes) scenarios → drive-distill scene files and window indices.

A ScenarioNet scenario is a plain pickled dict with ``tracks`` (ego under
``metadata['sdc_id']``; ``state.position`` (T, 3), ``heading`` (T,), ``velocity`` (T, 2),
``valid`` (T,), ``length``/``width`` (T, 1)), ``map_features`` (``polyline`` and, for lanes,
``polygon``) and ``metadata`` (``scenario_id``, ``ts``, ``sample_rate``). One scene file
(compressed ``.npz``, world frame, 10 Hz) is written per scenario:

=================  =================  =====================================================
key                shape / dtype      meaning
=================  =================  =====================================================
ego_xy             (T, 2) float64     ego position (m, world)
ego_yaw            (T,) float64       ego heading (rad, world)
agent_xy           (A, T, 2) float32  agent positions (m)
agent_yaw          (A, T) float32     agent headings (rad)
agent_valid        (A, T) bool        observed
agent_type         (A,) int8          0 vehicle, 1 pedestrian, 2 cyclist, 3 static/other
agent_size         (A, 2) float32     length, width (m)
map_points         (P, 2) float32     all polyline points, concatenated
map_offsets        (L + 1,) int64     polyline ``i`` is ``map_points[o[i]:o[i+1]]``
map_type           (L,) int8          0 lane centre, 1 road line, 2 road edge, 3 crosswalk, 4 other
area_points        (Q, 2) float32     drivable-area polygons (lane surfaces), concatenated
area_offsets       (M + 1,) int64
=================  =================  =====================================================

Windows (``num_history`` past poses including t0, ``num_future`` future poses) start every
``stride`` steps; the index ``.pkl`` holds ``metainfo`` and ``data_list`` entries
``{scene_file, scene, t0, sample_id}`` (``scene_file`` relative to the data root).
Splits are by scene, never by window.
"""
import os
import os.path as osp
import pickle

import numpy as np

__all__ = ['repair_track_outliers', 'NUSCENES_MINI_SPLITS', 'SELECTION_SCENE', 'AGENT_TYPES',
           'MAP_TYPES', 'map_type_id', 'convert_scenario', 'build_windows',
           'convert_scenarionet']

#: Official nuScenes v1.0-mini splits (nuscenes-devkit ``splits.mini_train`` / ``mini_val``).
NUSCENES_MINI_SPLITS = dict(
    train=['scene-0061', 'scene-0553', 'scene-0655', 'scene-0757', 'scene-0796', 'scene-1077',
           'scene-1094', 'scene-1100'],
    val=['scene-0103', 'scene-0916'])
#: Scene carved out of ``mini_train`` for checkpoint selection / early stopping, so that the
#: official ``mini_val`` scenes stay a held-out *test* split that no training decision sees.
#: Chosen a priori on the training data only: a scene whose ego brakes from 5 m/s to a stop
#: (constant velocity is wrong there, so selecting on it rewards anticipation, not inertia),
#: which keeps all three turning scenes (0061, 1077, 1094) for fitting.
SELECTION_SCENE = 'scene-0757'
NUSCENES_MINI_SPLITS.update(
    train_fit=[s for s in NUSCENES_MINI_SPLITS['train'] if s != SELECTION_SCENE],
    train_holdout=[SELECTION_SCENE])
AGENT_TYPES = {'VEHICLE': 0, 'PEDESTRIAN': 1, 'CYCLIST': 2}
MAP_TYPES = ('lane', 'road_line', 'road_edge', 'crosswalk', 'other')


def map_type_id(name):
    """Map a ScenarioNet / AV2 map-feature type string to an index of :data:`MAP_TYPES`."""
    name = name.upper()
    if name.startswith('LANE'):
        return 0
    if name.startswith('ROAD_LINE'):
        return 1
    if name.startswith('ROAD_EDGE') or 'BOUNDARY' in name:
        return 2
    if 'CROSSWALK' in name or 'PED_CROSSING' in name:
        return 3
    return 4


def repair_track_outliers(xy, threshold=0.5):
    """Replace isolated out-of-sequence poses of a 10 Hz track by interpolation.

    The ScenarioNet nuScenes ego tracks contain single poses that jump ahead by one step and
    back (e.g. scene-1077 near its end: +1.5 m, -1.47 m, +1.52 m at 15 m/s), i.e. physically
    impossible accelerations. A pose whose distance to the midpoint of its neighbours exceeds
    ``threshold`` metres (≥ 100 m/s² at 10 Hz) is replaced by that midpoint (end poses: by the
    linear extrapolation of the two previous / next poses). Repeats until none is left.

    Args:
        xy (ndarray): (T, 2) float positions (metres).
        threshold (float): outlier distance (metres).

    Returns:
        tuple[ndarray, list[int]]: repaired copy and the repaired indices.
    """
    xy = np.array(xy, dtype=np.float64, copy=True)
    repaired = []
    for _ in range(len(xy)):
        if len(xy) < 3:
            break
        pred = np.empty_like(xy)
        pred[1:-1] = 0.5 * (xy[:-2] + xy[2:])
        pred[0] = 2 * xy[1] - xy[2]
        pred[-1] = 2 * xy[-2] - xy[-3]
        dev = np.linalg.norm(xy - pred, axis=1)
        worst = int(np.argmax(dev))
        if dev[worst] <= threshold:
            break
        xy[worst] = pred[worst]
        repaired.append(worst)
    return xy, sorted(repaired)


def _concat(polys):
    polys = [np.asarray(p, dtype=np.float64)[:, :2] for p in polys if len(p) >= 2]
    offsets = np.zeros(len(polys) + 1, dtype=np.int64)
    if polys:
        offsets[1:] = np.cumsum([len(p) for p in polys])
        return np.concatenate(polys).astype(np.float32), offsets, len(polys)
    return np.zeros((0, 2), np.float32), offsets, 0


def convert_scenario(path):
    """Read one ScenarioNet pickle and return the scene arrays (see the module docstring).

    Args:
        path (str): the ``.pkl`` file.

    Returns:
        tuple[str, dict[str, ndarray]]: scenario id and the arrays.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: on a missing key, a sample rate other than 0.1 s, or non-finite /
            invalid ego poses (the message names the file).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'ScenarioNet scenario not found: {path}')
    with open(path, 'rb') as f:
        scen = pickle.load(f)
    try:
        meta = scen['metadata']
        ego = scen['tracks'][meta['sdc_id']]['state']
    except KeyError as err:
        raise ValueError(f'{path}: not a ScenarioNet scenario (missing key {err})') from err
    rate = float(meta.get('sample_rate', 0.1))
    if abs(rate - 0.1) > 1e-6:
        raise ValueError(f'{path}: sample_rate {rate} s, expected 0.1 s (10 Hz)')
    ego_xy = np.asarray(ego['position'], np.float64)[:, :2]
    ego_yaw = np.asarray(ego['heading'], np.float64).reshape(-1)
    if not (np.isfinite(ego_xy).all() and np.isfinite(ego_yaw).all()):
        raise ValueError(f'{path}: ego track has NaN/inf poses')
    if not np.asarray(ego['valid']).astype(bool).all():
        raise ValueError(f'{path}: ego track has invalid steps')
    ego_xy, repaired = repair_track_outliers(ego_xy)
    num_steps = len(ego_xy)
    tail = [i for i in repaired if i >= num_steps - 10]
    if tail:  # the last poses of these scenes are unreliable: cut the scene before them
        num_steps = min(tail) - 1
        ego_xy, ego_yaw = ego_xy[:num_steps], ego_yaw[:num_steps]
    if repaired:
        print(f'{path}: repaired out-of-sequence ego poses at steps {sorted(set(repaired))}'
              + (f'; scene cut to {num_steps} steps' if tail else ''))
    agents = [(k, v) for k, v in scen['tracks'].items() if k != meta['sdc_id']]
    agent_xy = np.zeros((len(agents), num_steps, 2), np.float32)
    agent_yaw = np.zeros((len(agents), num_steps), np.float32)
    agent_valid = np.zeros((len(agents), num_steps), bool)
    agent_type = np.zeros(len(agents), np.int8)
    agent_size = np.zeros((len(agents), 2), np.float32)
    for i, (_, trk) in enumerate(agents):
        st = trk['state']
        valid = np.asarray(st['valid']).astype(bool)[:num_steps]
        pos = np.asarray(st['position'], np.float64)[:num_steps, :2]
        valid &= np.isfinite(pos).all(-1)
        agent_xy[i] = np.where(valid[:, None], pos, 0.0)
        heading = np.asarray(st['heading']).reshape(-1)[:num_steps]
        agent_yaw[i] = np.where(valid, np.nan_to_num(heading), 0)
        agent_valid[i] = valid
        agent_type[i] = AGENT_TYPES.get(trk['type'], 3)
        if valid.any():
            agent_size[i] = [np.asarray(st['length']).reshape(-1)[:num_steps][valid].max(),
                             np.asarray(st['width']).reshape(-1)[:num_steps][valid].max()]
    feats = list(scen['map_features'].values())
    map_points, map_offsets, _ = _concat([f['polyline'] for f in feats if 'polyline' in f])
    map_type = np.array([map_type_id(f['type']) for f in feats
                         if 'polyline' in f and len(f['polyline']) >= 2], np.int8)
    area_points, area_offsets, _ = _concat([f['polygon'] for f in feats
                                            if f['type'].startswith('LANE') and 'polygon' in f])
    arrays = dict(ego_xy=ego_xy, ego_yaw=ego_yaw, agent_xy=agent_xy, agent_yaw=agent_yaw,
                  agent_valid=agent_valid, agent_type=agent_type, agent_size=agent_size,
                  map_points=map_points, map_offsets=map_offsets, map_type=map_type,
                  area_points=area_points, area_offsets=area_offsets)
    return str(meta.get('scenario_id', meta.get('id'))), arrays


def build_windows(num_steps, num_history=16, num_future=64, stride=5):
    """Start indices ``t0`` of the windows that fit in a track of ``num_steps`` poses.

    Args:
        num_steps (int): track length.
        num_history (int): history poses including t0.
        num_future (int): future poses after t0.
        stride (int): step between consecutive t0.

    Returns:
        list[int]: the t0 indices (may be empty).
    """
    return list(range(num_history - 1, num_steps - num_future, stride))


def convert_scenarionet(src_dir, out_dir, splits=None, num_history=16, num_future=64,
                        stride=5, val_stride=None, fit_splits=('train', 'train_fit')):
    """Convert every scenario of ``src_dir`` and write ``scenes/*.npz`` + one index per split.

    Args:
        src_dir (str): folder with ScenarioNet ``.pkl`` files.
        out_dir (str): output data root (``scenes/`` and ``infos_<split>.pkl`` are written).
        splits (dict[str, list[str]] | None): split name → scenario ids
            (default :data:`NUSCENES_MINI_SPLITS`: ``train`` / ``val`` = the official mini
            splits, ``train_fit`` / ``train_holdout`` = ``train`` minus / only
            :data:`SELECTION_SCENE`); scenarios in no split are skipped.
        num_history (int): history poses including t0 (16).
        num_future (int): future poses (64 = 6.4 s at 10 Hz).
        stride (int): window stride for the splits in ``fit_splits`` (steps).
        val_stride (int | None): stride for the other splits (default ``stride``).
        fit_splits (tuple[str]): names of the splits that are trained on.

    Returns:
        dict[str, int]: number of windows per split.

    Raises:
        FileNotFoundError: if ``src_dir`` has no ``.pkl`` file.
        ValueError: if a split names a scenario that is not in ``src_dir``.
    """
    splits = splits or NUSCENES_MINI_SPLITS
    files = sorted(f for f in os.listdir(src_dir) if f.endswith('.pkl')) if osp.isdir(
        src_dir) else []
    if not files:
        raise FileNotFoundError(f'no ScenarioNet .pkl files in {src_dir}')
    os.makedirs(osp.join(out_dir, 'scenes'), exist_ok=True)
    scenes = {}
    for fname in files:
        sid, arrays = convert_scenario(osp.join(src_dir, fname))
        rel = osp.join('scenes', f'{sid}.npz')
        np.savez_compressed(osp.join(out_dir, rel), **arrays)
        scenes[sid] = (rel, len(arrays['ego_xy']))
    counts = {}
    for split, ids in splits.items():
        missing = [s for s in ids if s not in scenes]
        if missing:
            raise ValueError(f'split {split!r} names scenarios not found in {src_dir}: {missing}')
        step = stride if split in fit_splits else (val_stride or stride)
        data_list = [dict(scene_file=scenes[s][0], scene=s, t0=t0, sample_id=f'{s}@{t0}')
                     for s in ids
                     for t0 in build_windows(scenes[s][1], num_history, num_future, step)]
        info = dict(metainfo=dict(dataset='scenarionet_nuscenes', dt=0.1,
                                  num_history=num_history, num_future=num_future,
                                  scenes=list(ids), split=split),
                    data_list=data_list)
        with open(osp.join(out_dir, f'infos_{split}.pkl'), 'wb') as f:
            pickle.dump(info, f, protocol=4)
        counts[split] = len(data_list)
    return counts
