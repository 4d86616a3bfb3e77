#!/usr/bin/env python
"""Benchmark the PLATEAU -> occupancy converter.

Measures (1) the one-time preparation: CityGML parsing, triangulation and surface models of
every site, then the per-grid voxelisation; (2) the per-frame throughput for the tokyo grid
(200 x 200 x 121) with LiDAR: occupancy gather + LiDAR ray casting + pose + writing the three
files to a temporary folder; (3) the peak resident memory.

Example::

    python tools/analysis_tools/benchmark_plateau_to_occ.py --frames 100
"""
import argparse
import logging
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from projects.aerialworld.converters import (ConverterConfig,  # noqa: E402
                                             PlateauOccupancyConverter, write_frame)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--tiles', nargs='+', default=[os.path.join(ROOT, 'data', 'plateau', t)
                                                  for t in ('ota_haneda', 'nishi_shinjuku')])
    p.add_argument('--grid', default='tokyo')
    p.add_argument('--frames', type=int, default=100, help='frames to time')
    p.add_argument('--no-lidar', action='store_true')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    n_sessions = max(1, int(np.ceil(args.frames / 20)))
    cfg = ConverterConfig(grid=args.grid, num_drone_sessions=max(1, n_sessions - 1),
                          num_rover_sessions=1 if n_sessions > 1 else 0,
                          frames_per_session=20, lidar=not args.no_lidar)
    t0 = time.perf_counter()
    conv = PlateauOccupancyConverter(args.tiles, cfg)
    t_mesh = time.perf_counter() - t0
    plans = conv.plan_sessions()
    trajs = {pl.name: conv.simulate(pl) for pl in plans}
    t1 = time.perf_counter()
    radius = conv.spec.radius + 2.0
    for site in conv.sites:
        pos = [trajs[pl.name].positions[:, :2] for pl in plans if pl.site == site]
        if pos:
            pos = np.concatenate(pos)
            conv.prepare_grid(site, np.concatenate([pos.min(0) - radius, pos.max(0) + radius]))
    t_grid = time.perf_counter() - t1
    print(f'grid {conv.spec.grid_size} voxel {conv.spec.voxel_size}, LiDAR '
          f'{"off" if args.no_lidar else "on"}; sites: {list(conv.sites)}')
    print(f'one-time preparation: meshes {t_mesh:.2f} s + voxel grids {t_grid:.2f} s '
          f'(+ trajectories {t1 - t0 - t_mesh:.2f} s)')
    n_done, n_points = 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        for pl in plans:
            traj = trajs[pl.name]
            for sub in ('occupancy', 'poses', 'lidar'):
                os.makedirs(os.path.join(tmp, pl.name, sub), exist_ok=True)
            for i in range(len(traj)):
                if n_done >= args.frames:
                    break
                occ, lidar, pose, _ = conv.render_frame(pl, traj, i)
                write_frame(tmp, pl.name, i, occ, lidar, pose)
                n_done += 1
                n_points += 0 if lidar is None else len(lidar)
        dt = time.perf_counter() - t2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f'{n_done} frames in {dt:.2f} s: {n_done / dt:.2f} frames/s '
          f'({1000 * dt / n_done:.1f} ms/frame, {n_points / max(n_done, 1):.0f} LiDAR points '
          'per frame)')
    print(f'peak RSS: {peak:.0f} MiB')


if __name__ == '__main__':
    main()
