#!/usr/bin/env python
"""Generate the bundled AerialWorld datasets from the PLATEAU tiles in ``data/plateau/``.

Called by ``tools/install.sh``. Produces

* ``data/tokyo_local/``: test_local grid (50 x 50 x 30, 0.8 m), 28 sessions x 32 frames with a
  light 16-beam LiDAR on the training tiles (:data:`TILES`; about a fifth of them in the val
  split, ``val_set='heldout_session'``) plus 6 drone sessions on the held-out tile
  (:data:`HELDOUT_TILES`, val split only, ``val_set='heldout_tile'``): enough for a small CPU
  model to learn next-frame prediction;
* ``data/tokyo/``: tokyo grid (200 x 200 x 121, 0.4 m), 8 sessions x 20 frames with the full
  32-beam LiDAR, plus 2 held-out-tile drone sessions;

Both Tokyo datasets have moving traffic (:data:`TRAFFIC`: vehicles, pedestrians and other drones
as the classes ``vehicle``, ``pedestrian``, ``drone``; ``free`` = 9; rover sessions drive in it)
and one val index holding both val sets (each frame record names its ``val_set``).
* ``data/nuscenes_occ/``: Occ3D grid (200 x 200 x 16, 0.4 m) built from the 11 real nuScenes
  keyframes in ``data/nuscenes_seq/`` (``tools/data_converter/nuscenes_to_occ.py``);
* ``data/uavscenes_sample/``: UAVScenes grid (200 x 200 x 120, 0.4 m x 0.5 m), 3 sessions x 14
  key frames converted from the real-survey UAVScenes-layout fixture in ``tests/data/uavscenes``
  (``tools/data_converter/uavscenes_to_occ.py``; ``configs/finetune_uavscenes.py`` uses it).
* ``data/sensor_vla/{bridge,insertion,insertion_uci}/``: the sensor VLA's episodes and action
  statistics (``tools/data_converter/bridge_to_vla.py``, ``make_insertion_episodes.py``,
  ``tools/analysis_tools/compute_action_stats.py``; see ``docs/sensor_vla.md``). Each folder
  holds ``prepare_stamp.json``, the SHA-256 of its input files and generator sources; it is
  skipped when that matches.

A dataset is skipped when its index files exist and the ``config_hash`` stored in their
metainfo matches the current options and input files; otherwise it is regenerated.
"""
import argparse
import logging
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from projects.aerialworld.converters import (ConverterConfig, config_hash,  # noqa: E402
                                             convert_plateau)
from projects.aerialworld.converters import nuscenes_occ  # noqa: E402
from projects.aerialworld.datasets.session_io import index_is_current  # noqa: E402

#: Tiles the training sessions (and the held-out-session val sessions) use.
TILES = ('ota_haneda', 'nishi_shinjuku', 'shinjuku_53394517', 'suginami_53394503')
#: Tile that no training session sees: the held-out-tile val set. Ota-ku 53392633 (9 LOD2
#: buildings, low-rise, 2022 release) is the tile most like the training tiles' buildings
#: (Ota-ku Haneda, 8 LOD2 buildings), so the set measures generalisation to unseen buildings
#: of the same kind of city rather than to another kind of scene (shinjuku_53394517 is one
#: large building, suginami_53394503 only roads).
HELDOUT_TILES = ('ota_53392633',)
#: Moving agents of the Tokyo datasets (projects/aerialworld/converters/traffic.py).
TRAFFIC = dict(num_vehicles=8, num_pedestrians=12, num_drones=2, seed=0)
#: UAVScenes-layout fixture (real Autzen survey, see tests/data/uavscenes/README.md) and the
#: dataset built from it with the UAVScenes converter.
UAVSCENES_FIXTURE = os.path.join(ROOT, 'tests', 'data', 'uavscenes')
UAVSCENES_SAMPLE = 'uavscenes_sample'

DATASETS = {
    'tokyo_local': ConverterConfig(
        grid='test_local', num_drone_sessions=22, num_rover_sessions=6,
        frames_per_session=32, drone_altitudes=(6.0, 10.0, 15.0, 20.0),
        lidar_drone=dict(elevations_deg=(-85.0, -5.0), num_beams=16, azimuth_steps=512,
                         max_range=150.0, mount=(0.0, 0.0, -0.1)),
        lidar_rover=dict(elevations_deg=(-25.0, 15.0), num_beams=16, azimuth_steps=512,
                         max_range=100.0, mount=(0.0, 0.0, 1.8)),
        seed=0, dataset_name='tokyo_plateau', traffic=TRAFFIC, heldout_tiles=HELDOUT_TILES,
        num_heldout_drone_sessions=6),
    'tokyo': ConverterConfig(
        grid='tokyo', num_drone_sessions=6, num_rover_sessions=2, frames_per_session=20,
        drone_altitudes=(20.0, 35.0, 50.0, 70.0, 90.0), seed=0, dataset_name='tokyo_plateau',
        traffic=TRAFFIC, heldout_tiles=HELDOUT_TILES, num_heldout_drone_sessions=2),
}

# Real LiDAR datasets: name -> (input folder under data/, converter options).
NUSCENES_DATASETS = {
    'nuscenes_occ': ('nuscenes_seq', nuscenes_occ.NuScenesOccConfig(
        session='n015-2018-07-18-11-07-57_kf000', log_name='n015-2018-07-18-11-07-57+0800')),
}


def prepare_uavscenes_sample(out_dir: str, force: bool = False) -> None:
    """Build ``out_dir`` from the UAVScenes fixture unless it is up to date."""
    from projects.aerialworld.converters.uavscenes import (UAVScenesConfig, UAVScenesConverter,
                                                           config_hash as uav_hash)
    conv = UAVScenesConverter(UAVSCENES_FIXTURE, UAVScenesConfig(val_scenes=('Autzen03',)))
    h = uav_hash(conv.cfg, conv.sequences)
    if not force and index_is_current(out_dir, h):
        print(f'[prepare_bundled_data] {out_dir}: up to date (config hash {h[:12]}), skipped')
        return
    s = conv.convert(out_dir, overwrite=True)
    print(f"[prepare_bundled_data] {out_dir}: {s['sessions']} sessions "
          f"({s['train_sessions']} train / {s['val_sessions']} val), {s['frames']} frames, "
          f"{s['bytes'] / 2**20:.1f} MiB in {s['total_seconds']:.1f} s")


#: Sensor VLA datasets: name -> (generator kind, options). Sources hashed into the stamp.
SENSOR_VLA_DATASETS = {
    'sensor_vla/bridge': ('bridge', dict(data_root='data/bridge')),
    'sensor_vla/insertion': ('insertion', dict(force_source='screw_driving')),
    'sensor_vla/insertion_uci': ('insertion', dict(force_source='uci')),
}
SENSOR_VLA_SOURCES = (
    'projects/common/utils/rlds.py', 'projects/sensor_vla/episodes.py',
    'projects/sensor_vla/synthetic.py', 'projects/sensor_vla/force_torque.py',
    'projects/sensor_vla/models/action_norm.py', 'tools/data_converter/bridge_to_vla.py',
    'tools/data_converter/make_insertion_episodes.py',
    'tools/analysis_tools/compute_action_stats.py')
SENSOR_VLA_INPUTS = {'bridge': ('data/bridge',),
                     'insertion': ('data/force_torque/screw_driving',
                                   'data/force_torque/uci_robot_failures')}


def _load_tool(rel: str):
    """Import a script under ``tools/`` as a module (they are not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'svla_' + os.path.basename(rel)[:-3], os.path.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sensor_vla_hash(kind: str, opts: dict) -> str:
    """SHA-256 over the generator sources, the input files (relative names + bytes) and the
    options of one sensor VLA dataset."""
    import hashlib
    import json
    h = hashlib.sha256(json.dumps([kind, opts], sort_keys=True).encode())
    files = list(SENSOR_VLA_SOURCES)
    for d in SENSOR_VLA_INPUTS[kind]:
        for base, _, names in sorted(os.walk(os.path.join(ROOT, d))):
            files += sorted(os.path.relpath(os.path.join(base, n), ROOT) for n in names)
    for rel in files:
        h.update(rel.encode())
        with open(os.path.join(ROOT, rel), 'rb') as f:
            h.update(f.read())
    return h.hexdigest()


def prepare_sensor_vla(name: str, data_root: str, force: bool = False) -> None:
    """Generate one sensor VLA dataset (episodes, split indexes, ``action_stats.json``)
    under ``data_root/name`` unless its ``prepare_stamp.json`` matches; deterministic."""
    import json
    from projects.common.utils.io import save_json_atomic
    from projects.sensor_vla.models.action_norm import compute_action_stats
    kind, opts = SENSOR_VLA_DATASETS[name]
    out_dir = os.path.join(data_root, name)
    stamp = os.path.join(out_dir, 'prepare_stamp.json')
    h = sensor_vla_hash(kind, opts)
    if not force and os.path.exists(stamp):
        with open(stamp, encoding='utf-8') as f:
            if json.load(f).get('sha256') == h:
                print(f'[prepare_bundled_data] {out_dir}: up to date (hash {h[:12]}), skipped')
                return
    t0 = time.perf_counter()
    if kind == 'bridge':
        counts = _load_tool('tools/data_converter/bridge_to_vla.py').convert(
            os.path.join(ROOT, opts['data_root']), out_dir, overwrite=True)
    else:
        mie = _load_tool('tools/data_converter/make_insertion_episodes.py')
        src = os.path.join(ROOT, mie.FORCE_SOURCES[opts['force_source']][0])
        counts = mie.make(out_dir, force_csv=src, force_source=opts['force_source'],
                          overwrite=True)
    stats_tool = _load_tool('tools/analysis_tools/compute_action_stats.py')
    stats = compute_action_stats(stats_tool.load_index_actions(
        os.path.join(out_dir, 'train.json')), 'delta')
    stats['source'] = [f'{name}/train.json']
    save_json_atomic(os.path.join(out_dir, 'action_stats.json'), stats, indent=1)
    save_json_atomic(stamp, dict(sha256=h, kind=kind, options=opts), indent=1)
    print(f'[prepare_bundled_data] {out_dir}: {counts} episodes + action_stats.json in '
          f'{time.perf_counter() - t0:.1f} s')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data-root', default=os.path.join(ROOT, 'data'))
    p.add_argument('--only', choices=sorted(DATASETS) + sorted(NUSCENES_DATASETS)
                   + [UAVSCENES_SAMPLE] + sorted(SENSOR_VLA_DATASETS), nargs='+', default=None)
    p.add_argument('--force', action='store_true', help='regenerate even when up to date')
    p.add_argument('--log-level', default='WARNING')
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format='%(levelname)s %(message)s')
    tiles = [os.path.join(args.data_root, 'plateau', t) for t in TILES + HELDOUT_TILES]
    t_all = time.perf_counter()
    for name in args.only or (list(DATASETS) + list(NUSCENES_DATASETS) + [UAVSCENES_SAMPLE]
                              + list(SENSOR_VLA_DATASETS)):
        if name in SENSOR_VLA_DATASETS:
            prepare_sensor_vla(name, args.data_root, args.force)
            continue
        if name == UAVSCENES_SAMPLE:
            prepare_uavscenes_sample(os.path.join(args.data_root, name), args.force)
            continue
        if name in NUSCENES_DATASETS:
            src, cfg = NUSCENES_DATASETS[name]
            src, out_dir = os.path.join(args.data_root, src), os.path.join(args.data_root, name)
            h = nuscenes_occ.config_hash(cfg, src)
            if not args.force and index_is_current(out_dir, h):
                print(f'[prepare_bundled_data] {out_dir}: up to date (config hash {h[:12]}), '
                      'skipped')
                continue
            s = nuscenes_occ.convert_nuscenes_sequence(src, out_dir, cfg, overwrite=True)
            print(f"[prepare_bundled_data] {out_dir}: session {s['session']}, {s['frames']} "
                  f"frames, {s['bytes'] / 2**20:.1f} MiB in {s['seconds']:.1f} s")
            continue
        cfg = DATASETS[name]
        out_dir = os.path.join(args.data_root, name)
        h = config_hash(cfg, tiles)
        if not args.force and index_is_current(out_dir, h):
            print(f'[prepare_bundled_data] {out_dir}: up to date (config hash {h[:12]}), '
                  'skipped')
            continue
        print(f'[prepare_bundled_data] {out_dir}: converting (config hash {h[:12]}; one progress '
              'line per session)', flush=True)
        s = convert_plateau(tiles, out_dir, cfg, overwrite=True)
        print(f"[prepare_bundled_data] {out_dir}: {s['sessions']} sessions "
              f"({s['train_sessions']} train / {s['val_sessions']} val, of which "
              f"{s['heldout_tile_sessions']} on the held-out tile {list(cfg.heldout_tiles)}), "
              f"{s['frames']} frames, {s['bytes'] / 2**20:.1f} MiB in {s['total_seconds']:.1f} s")
    print(f'[prepare_bundled_data] done in {time.perf_counter() - t_all:.1f} s')


if __name__ == '__main__':
    main()
