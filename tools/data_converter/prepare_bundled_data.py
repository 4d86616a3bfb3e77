#!/usr/bin/env python
"""Generate the bundled AerialWorld datasets from the PLATEAU tiles in ``data/plateau/``.

Called by ``tools/install.sh``. Produces

* ``data/tokyo_local/``: test_local grid (50 x 50 x 30, 0.8 m), 28 sessions x 32 frames with a
  light 16-beam LiDAR: enough for a small CPU model to learn next-frame prediction;
* ``data/tokyo/``: tokyo grid (200 x 200 x 121, 0.4 m), 8 sessions x 20 frames with the full
  32-beam LiDAR;
* ``data/nuscenes_occ/``: Occ3D grid (200 x 200 x 16, 0.4 m) built from the 11 real nuScenes
  keyframes in ``data/nuscenes_seq/`` (``tools/data_converter/nuscenes_to_occ.py``);
* ``data/uavscenes_sample/``: UAVScenes grid (200 x 200 x 120, 0.4 m x 0.5 m), 3 sessions x 14
  key frames converted from the real-survey UAVScenes-layout fixture in ``tests/data/uavscenes``
  (``tools/data_converter/uavscenes_to_occ.py``; ``configs/finetune_uavscenes.py`` uses it).

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

TILES = ('ota_haneda', 'nishi_shinjuku')
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
        seed=0, dataset_name='tokyo_plateau'),
    'tokyo': ConverterConfig(
        grid='tokyo', num_drone_sessions=6, num_rover_sessions=2, frames_per_session=20,
        drone_altitudes=(20.0, 35.0, 50.0, 70.0, 90.0), seed=0, dataset_name='tokyo_plateau'),
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data-root', default=os.path.join(ROOT, 'data'))
    p.add_argument('--only', choices=sorted(DATASETS) + sorted(NUSCENES_DATASETS)
                   + [UAVSCENES_SAMPLE], nargs='+', default=None)
    p.add_argument('--force', action='store_true', help='regenerate even when up to date')
    p.add_argument('--log-level', default='WARNING')
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format='%(levelname)s %(message)s')
    tiles = [os.path.join(args.data_root, 'plateau', t) for t in TILES]
    t_all = time.perf_counter()
    for name in args.only or list(DATASETS) + list(NUSCENES_DATASETS) + [UAVSCENES_SAMPLE]:
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
        s = convert_plateau(tiles, out_dir, cfg, overwrite=True)
        print(f"[prepare_bundled_data] {out_dir}: {s['sessions']} sessions "
              f"({s['train_sessions']} train / {s['val_sessions']} val), {s['frames']} frames, "
              f"{s['bytes'] / 2**20:.1f} MiB in {s['total_seconds']:.1f} s")
    print(f'[prepare_bundled_data] done in {time.perf_counter() - t_all:.1f} s')


if __name__ == '__main__':
    main()
