"""Argoverse 2 motion-forecasting scenarios → drive-distill scene files and window indices.

An AV2 scenario folder ``<scenario_id>/`` holds ``scenario_<scenario_id>.parquet`` (110 steps
at 10 Hz: 50 observed + 60 future, every track in the city frame) and
``log_map_archive_<scenario_id>.json`` (the local vector map). Both are read with the
official ``av2`` package (``load_argoverse_scenario_parquet``,
``ArgoverseStaticMap.from_json``). The output scene file has the layout of
:mod:`projects.drive_distill.converters.scenarionet` (world = AV2 city frame, metres):

* ego: the focal track (``ego='focal'``, the agent the benchmark scores) or the
  autonomous vehicle (``ego='av'``, track id ``'AV'``); it must be observed at every step.
* agents: every other track; ``agent_valid`` marks the steps with a state; AV2 has no object
  sizes, so ``agent_size`` holds typical sizes per type (:data:`AV2_TYPE_SIZES`).
* map polylines: lane centre lines (type 0), lane boundaries (1, painted marks; 2 when the
  boundary has no mark, i.e. a kerb / road edge), drivable-area outlines (2), pedestrian
  crossing edges (3); ``area_points`` holds the drivable-area polygons.

Windows: ``num_history`` (50) poses up to and including t0 = step 49 and ``num_future`` (60)
poses after it, i.e. the AV2 protocol (5 s observed, 6 s predicted); one window per scenario.
"""
import os
import os.path as osp
import pickle

import numpy as np

from .scenarionet import build_windows

__all__ = ['AV2_TYPE_IDS', 'AV2_TYPE_SIZES', 'find_scenario_files', 'convert_av2_scenario',
           'convert_av2']

#: AV2 ``ObjectType`` value → agent type (0 vehicle, 1 pedestrian, 2 cyclist, 3 other).
AV2_TYPE_IDS = dict(vehicle=0, bus=0, pedestrian=1, cyclist=2, motorcyclist=2,
                    riderless_bicycle=2)
#: Typical (length, width) in metres per agent type (AV2 gives no sizes).
AV2_TYPE_SIZES = {0: (4.5, 2.0), 1: (0.7, 0.7), 2: (2.0, 0.8), 3: (1.0, 1.0)}
_BUS_SIZE = (12.0, 2.6)


def _import_av2():
    try:
        from av2.datasets.motion_forecasting.scenario_serialization import \
            load_argoverse_scenario_parquet
        from av2.map.map_api import ArgoverseStaticMap
    except ImportError as err:
        raise ImportError('Argoverse 2 conversion needs `pip install av2==0.3.6` and a pyarrow '
                          'that matches the installed numpy (pyarrow<22 for numpy 1.26): '
                          f'{err}') from err
    return load_argoverse_scenario_parquet, ArgoverseStaticMap


def find_scenario_files(scenario_dir):
    """The parquet and map files of one AV2 scenario folder.

    Args:
        scenario_dir (str): ``<scenario_id>/`` folder.

    Returns:
        tuple[str, str]: (``scenario_<id>.parquet``, ``log_map_archive_<id>.json``).

    Raises:
        FileNotFoundError: if either file is missing (names the folder and the file).
    """
    sid = osp.basename(osp.normpath(scenario_dir))
    parquet = osp.join(scenario_dir, f'scenario_{sid}.parquet')
    map_json = osp.join(scenario_dir, f'log_map_archive_{sid}.json')
    for path, what in ((parquet, 'scenario parquet'), (map_json, 'static map json')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'AV2 {what} not found: {path}')
    return parquet, map_json


def _map_arrays(static_map):
    polys, types = [], []
    for seg in static_map.vector_lane_segments.values():
        polys.append(static_map.get_lane_segment_centerline(seg.id)[:, :2])
        types.append(0)
        for bound, mark in ((seg.left_lane_boundary, seg.left_mark_type),
                            (seg.right_lane_boundary, seg.right_mark_type)):
            polys.append(bound.xyz[:, :2])
            types.append(2 if str(getattr(mark, 'value', mark)).upper() == 'NONE' else 1)
    areas = []
    for area in static_map.vector_drivable_areas.values():
        ring = area.xyz[:, :2]
        areas.append(ring)
        polys.append(np.concatenate([ring, ring[:1]]))
        types.append(2)
    for cross in static_map.vector_pedestrian_crossings.values():
        for edge in (cross.edge1, cross.edge2):
            polys.append(edge.xyz[:, :2])
            types.append(3)
    return polys, types, areas


def _concat(polys):
    polys = [np.asarray(p, np.float64) for p in polys]
    offsets = np.zeros(len(polys) + 1, np.int64)
    if not polys:
        return np.zeros((0, 2), np.float32), offsets
    offsets[1:] = np.cumsum([len(p) for p in polys])
    return np.concatenate(polys).astype(np.float32), offsets


def convert_av2_scenario(scenario_dir, ego='focal', dt=0.1):
    """Read one AV2 scenario folder and return its scene arrays.

    Args:
        scenario_dir (str): folder with ``scenario_<id>.parquet`` and
            ``log_map_archive_<id>.json``.
        ego (str): ``'focal'`` (focal track) or ``'av'`` (the autonomous vehicle).
        dt (float): expected step (s); the parquet timestamps must match it within 1 ms.

    Returns:
        tuple[str, dict[str, ndarray]]: scenario id and the arrays (keys of
        :mod:`projects.drive_distill.converters.scenarionet`, plus ``timestamps_ns`` (T,)
        int64).

    Raises:
        FileNotFoundError: a file is missing (named).
        ValueError: wrong ``ego``, timestamps not at ``dt``, an ego track that is missing,
            not observed at every step or has NaN poses (the message names the parquet).
    """
    if ego not in ('focal', 'av'):
        raise ValueError(f"convert_av2_scenario: ego must be 'focal' or 'av', got {ego!r}")
    load_parquet, static_map_cls = _import_av2()
    parquet, map_json = find_scenario_files(scenario_dir)
    from pathlib import Path
    scen = load_parquet(Path(parquet))
    stamps = np.asarray(scen.timestamps_ns, np.int64)
    steps = np.diff(stamps) * 1e-9
    if len(stamps) < 2 or np.abs(steps - dt).max() > 1e-3:
        raise ValueError(f'{parquet}: timestamps are not {dt} s apart (steps '
                         f'{np.unique(np.round(steps, 4))[:5].tolist()} s)')
    num_steps = len(stamps)
    ego_id = scen.focal_track_id if ego == 'focal' else 'AV'
    tracks = {t.track_id: t for t in scen.tracks}
    if ego_id not in tracks:
        raise ValueError(f'{parquet}: no {ego} track {ego_id!r}')

    def states(track):
        xy = np.full((num_steps, 2), np.nan)
        yaw = np.full(num_steps, np.nan)
        for st in track.object_states:
            if 0 <= st.timestep < num_steps:
                xy[st.timestep] = st.position
                yaw[st.timestep] = st.heading
        return xy, yaw

    ego_xy, ego_yaw = states(tracks[ego_id])
    if not (np.isfinite(ego_xy).all() and np.isfinite(ego_yaw).all()):
        bad = np.nonzero(~(np.isfinite(ego_xy).all(1) & np.isfinite(ego_yaw)))[0]
        raise ValueError(f'{parquet}: {ego} track {ego_id!r} has no finite pose at steps '
                         f'{bad[:10].tolist()} (needs all {num_steps})')
    others = [t for tid, t in tracks.items() if tid != ego_id]
    agent_xy = np.zeros((len(others), num_steps, 2), np.float32)
    agent_yaw = np.zeros((len(others), num_steps), np.float32)
    agent_valid = np.zeros((len(others), num_steps), bool)
    agent_type = np.zeros(len(others), np.int8)
    agent_size = np.zeros((len(others), 2), np.float32)
    for i, trk in enumerate(others):
        xy, yaw = states(trk)
        valid = np.isfinite(xy).all(1) & np.isfinite(yaw)
        agent_xy[i] = np.where(valid[:, None], xy, 0.0)
        agent_yaw[i] = np.where(valid, yaw, 0.0)
        agent_valid[i] = valid
        name = str(getattr(trk.object_type, 'value', trk.object_type)).lower()
        agent_type[i] = AV2_TYPE_IDS.get(name, 3)
        agent_size[i] = _BUS_SIZE if name == 'bus' else AV2_TYPE_SIZES[int(agent_type[i])]
    static_map = static_map_cls.from_json(Path(map_json))
    polys, types, areas = _map_arrays(static_map)
    map_points, map_offsets = _concat(polys)
    area_points, area_offsets = _concat(areas)
    arrays = dict(ego_xy=ego_xy, ego_yaw=ego_yaw, agent_xy=agent_xy, agent_yaw=agent_yaw,
                  agent_valid=agent_valid, agent_type=agent_type, agent_size=agent_size,
                  map_points=map_points, map_offsets=map_offsets,
                  map_type=np.asarray(types, np.int8), area_points=area_points,
                  area_offsets=area_offsets, timestamps_ns=stamps)
    return str(scen.scenario_id), arrays


def convert_av2(src_dir, out_dir, split='val', ego='focal', num_history=50, num_future=60,
                stride=10):
    """Convert every scenario folder under ``src_dir`` into one split of ``out_dir``.

    AV2 ships its splits as folders (``train/``, ``val/``, ``test/``), so one call converts
    one of them. The ``test`` split of AV2 has no future and cannot be converted.

    Args:
        src_dir (str): folder whose sub-folders are AV2 scenario folders.
        out_dir (str): output data root (``scenes/<id>.npz`` and ``infos_<split>.pkl``).
        split (str): split name of the index.
        ego (str): ``'focal'`` or ``'av'``.
        num_history (int): history poses including t0 (50).
        num_future (int): future poses (60).
        stride (int): window stride (steps); 110-step scenarios give one window.

    Returns:
        int: number of windows written.

    Raises:
        FileNotFoundError: if ``src_dir`` holds no scenario folder.
    """
    dirs = sorted(osp.join(src_dir, d) for d in os.listdir(src_dir)
                  if osp.isdir(osp.join(src_dir, d))) if osp.isdir(src_dir) else []
    dirs = [d for d in dirs
            if any(f.startswith('scenario_') and f.endswith('.parquet') for f in os.listdir(d))]
    if not dirs:
        raise FileNotFoundError(f'no AV2 scenario folders (with scenario_*.parquet) in {src_dir}')
    os.makedirs(osp.join(out_dir, 'scenes'), exist_ok=True)
    data_list, scene_ids = [], []
    for path in dirs:
        sid, arrays = convert_av2_scenario(path, ego=ego)
        rel = osp.join('scenes', f'{sid}.npz')
        np.savez_compressed(osp.join(out_dir, rel), **arrays)
        scene_ids.append(sid)
        for t0 in build_windows(len(arrays['ego_xy']), num_history, num_future, stride):
            data_list.append(dict(scene_file=rel, scene=sid, t0=t0, sample_id=f'{sid}@{t0}'))
    info = dict(metainfo=dict(dataset='argoverse2_motion_forecasting', dt=0.1,
                              num_history=num_history, num_future=num_future, ego=ego,
                              scenes=scene_ids, split=split),
                data_list=data_list)
    with open(osp.join(out_dir, f'infos_{split}.pkl'), 'wb') as f:
        pickle.dump(info, f, protocol=4)
    return len(data_list)
