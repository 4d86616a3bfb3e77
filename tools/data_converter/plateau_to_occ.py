#!/usr/bin/env python
"""Convert PLATEAU CityGML tiles into AerialWorld semantic-occupancy sessions.

Example::

    python tools/data_converter/plateau_to_occ.py \
        data/plateau/ota_haneda data/plateau/nishi_shinjuku \
        --out-dir data/tokyo --grid tokyo --drone-sessions 6 --rover-sessions 2 --frames 20

Writes ``<out-dir>/<session>/{occupancy,poses,lidar}/...`` and
``<out-dir>/aerialworld_infos_{train,val}.pkl`` (see
``docs/aerialworld_data_and_model_contract.md``). The logic lives in
``projects.aerialworld.converters``.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from projects.aerialworld.converters import (CityGMLError, ConverterConfig,  # noqa: E402
                                             convert_plateau)


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('tiles', nargs='+', help='folders holding PLATEAU *.gml files')
    p.add_argument('--out-dir', required=True, help='output data root')
    p.add_argument('--grid', default='tokyo', help='grid preset: tokyo | test_local')
    p.add_argument('--point-cloud-range', type=float, nargs=6, default=None,
                   help='custom grid range (overrides --grid; needs --voxel-size)')
    p.add_argument('--voxel-size', type=float, nargs=3, default=None)
    p.add_argument('--drone-sessions', type=int, default=6)
    p.add_argument('--rover-sessions', type=int, default=2)
    p.add_argument('--frames', type=int, default=20, help='frames per session')
    p.add_argument('--frame-rate', type=float, default=2.0, help='Hz (must divide 20)')
    p.add_argument('--altitudes', type=float, nargs='+', default=None,
                   help='drone altitudes above the ground datum (m)')
    p.add_argument('--no-lidar', action='store_true', help='do not write LiDAR sweeps')
    p.add_argument('--lidar-beams', type=int, default=32)
    p.add_argument('--lidar-azimuth-steps', type=int, default=1024)
    p.add_argument('--val-fraction', type=float, default=0.2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--frame', default='zone',
                   help="metric frame of every site: 'zone' (JGD2011 plane rectangular zone "
                   "from the site's location), 'local' (site-centred transverse Mercator: true "
                   "north, scale 1) or a projected CRS such as EPSG:6677")
    p.add_argument('--overwrite', action='store_true',
                   help='replace previous converter outputs in --out-dir')
    p.add_argument('--log-level', default='INFO')
    return p.parse_args(argv)


def build_config(args) -> ConverterConfig:
    """ConverterConfig from parsed arguments."""
    if (args.point_cloud_range is None) != (args.voxel_size is None):
        raise SystemExit('--point-cloud-range and --voxel-size go together')
    grid = args.grid if args.point_cloud_range is None else dict(
        point_cloud_range=args.point_cloud_range, voxel_size=args.voxel_size)
    kw = {}
    if args.altitudes:
        kw['drone_altitudes'] = tuple(args.altitudes)
    drone = dict(elevations_deg=(-85.0, -5.0), num_beams=args.lidar_beams,
                 azimuth_steps=args.lidar_azimuth_steps, max_range=150.0, mount=(0, 0, -0.1))
    rover = dict(elevations_deg=(-25.0, 15.0), num_beams=args.lidar_beams,
                 azimuth_steps=args.lidar_azimuth_steps, max_range=100.0, mount=(0, 0, 1.8))
    return ConverterConfig(grid=grid, num_drone_sessions=args.drone_sessions,
                           num_rover_sessions=args.rover_sessions,
                           frames_per_session=args.frames, frame_rate_hz=args.frame_rate,
                           lidar=not args.no_lidar, lidar_drone=drone, lidar_rover=rover,
                           val_fraction=args.val_fraction, seed=args.seed, frame=args.frame,
                           **kw)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format='%(levelname)s %(message)s')
    try:
        summary = convert_plateau(args.tiles, args.out_dir, build_config(args),
                                  overwrite=args.overwrite)
    except (CityGMLError, FileNotFoundError, FileExistsError, ValueError) as exc:
        raise SystemExit(f'error: {exc}')
    print(f"wrote {summary['sessions']} sessions ({summary['train_sessions']} train, "
          f"{summary['val_sessions']} val), {summary['frames']} frames, "
          f"{summary['bytes'] / 2**20:.1f} MiB to {summary['out_dir']} in "
          f"{summary['total_seconds']:.1f} s ({summary['frames_per_second']:.1f} frames/s "
          'after preparation)')


if __name__ == '__main__':
    main()
