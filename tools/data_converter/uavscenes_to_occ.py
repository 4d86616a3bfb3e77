#!/usr/bin/env python
"""Convert UAVScenes LiDAR sequences into AerialWorld semantic-occupancy sessions.

Example::

    python tools/data_converter/uavscenes_to_occ.py data/UAVScenes --out-dir data/uavscenes \
        --val-scenes AMtown03 AMvalley03

``data/UAVScenes`` holds the extracted release archives (``interval5_CAM_LIDAR/``,
``interval5_LIDAR_label/``; see ``docs/aerialworld_uavscenes.md``). Writes
``<out-dir>/<sequence>/{occupancy,poses,lidar}/...`` and
``<out-dir>/aerialworld_infos_{train,val}.pkl`` on the ``configs/finetune_uavscenes.py`` grid
(200 x 200 x 120, 0.4 m x 0.4 m x 0.5 m) unless told otherwise. The logic lives in
``projects.aerialworld.converters.uavscenes``.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from projects.aerialworld.converters.uavscenes import (  # noqa: E402
    POSE_TO_BODY_PRESETS, UAVSCENES_GRID, UAVScenesConfig, UAVScenesError, convert_uavscenes)


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('root', help='UAVScenes root (extracted release archives)')
    p.add_argument('--out-dir', required=True, help='output data root')
    p.add_argument('--scenes', nargs='+', default=None,
                   help='sequences to convert, e.g. AMtown01 (default: all found)')
    p.add_argument('--val-scenes', nargs='+', default=None,
                   help='sequences of the val split (default: the release benchmark test '
                        'sequences that are present, else the last sequence)')
    p.add_argument('--point-cloud-range', type=float, nargs=6,
                   default=list(UAVSCENES_GRID.point_cloud_range))
    p.add_argument('--voxel-size', type=float, nargs=3, default=list(UAVSCENES_GRID.voxel_size))
    p.add_argument('--pose-to-body', default='nadir_camera', choices=sorted(POSE_TO_BODY_PRESETS),
                   help='rotation from the pose (camera) frame to the body frame')
    p.add_argument('--lidar-to-camera', type=float, nargs=12, default=None,
                   metavar=('R00', 'R01', 'R02', 'R10', 'R11', 'R12', 'R20', 'R21', 'R22', 'TX',
                            'TY', 'TZ'),
                   help='extrinsic p_cam = R p_lidar + t of the sequences (row-major R, then t); '
                        'default: scans are already in the pose frame')
    p.add_argument('--aggregate-window', type=int, default=10,
                   help='key frames on each side merged into a frame (-1: whole sequence)')
    p.add_argument('--ground-percentile', type=float, default=1.0)
    p.add_argument('--max-pose-gap', type=float, default=0.05, help='seconds')
    p.add_argument('--no-lidar', action='store_true', help='do not write the LiDAR scans')
    p.add_argument('--overwrite', action='store_true',
                   help='replace previous converter outputs in --out-dir')
    p.add_argument('--log-level', default='INFO')
    return p.parse_args(argv)


def build_config(args) -> UAVScenesConfig:
    """UAVScenesConfig from parsed arguments."""
    sensor = None
    if args.lidar_to_camera is not None:
        v = args.lidar_to_camera
        sensor = [v[0:3] + [v[9]], v[3:6] + [v[10]], v[6:9] + [v[11]], [0.0, 0.0, 0.0, 1.0]]
    return UAVScenesConfig(
        point_cloud_range=tuple(args.point_cloud_range), voxel_size=tuple(args.voxel_size),
        pose_to_body=args.pose_to_body, sensor_to_pose=sensor,
        aggregate_window=None if args.aggregate_window < 0 else args.aggregate_window,
        ground_percentile=args.ground_percentile, max_pose_gap=args.max_pose_gap,
        val_scenes=None if args.val_scenes is None else tuple(args.val_scenes),
        lidar=not args.no_lidar)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format='%(levelname)s %(message)s')
    try:
        s = convert_uavscenes(args.root, args.out_dir, build_config(args), scenes=args.scenes,
                              overwrite=args.overwrite)
    except (UAVScenesError, FileNotFoundError, FileExistsError, ValueError) as exc:
        raise SystemExit(f'error: {exc}')
    print(f"wrote {s['sessions']} sessions ({s['train_sessions']} train, {s['val_sessions']} "
          f"val), {s['frames']} frames at {s['frame_rate_hz']} Hz, "
          f"{s['bytes'] / 2**20:.1f} MiB to {s['out_dir']} in {s['total_seconds']:.1f} s")


if __name__ == '__main__':
    main()
