#!/usr/bin/env python
"""nuScenes -> semantic occupancy: real LiDAR keyframes to AerialWorld sessions, or an
Occ3D-layout index from the nuScenes tables.

Examples::

    # 11 bundled keyframes (data/nuscenes_seq) -> data/nuscenes_occ (Occ3D grid)
    python tools/data_converter/nuscenes_to_occ.py seq data/nuscenes_seq \
        --out-dir data/nuscenes_occ --log-name n015-2018-07-18-11-07-57+0800

    # Occ3D / OccWorld layout (gts/<scene>/<sample token>/labels.npz) + the full nuScenes
    python tools/data_converter/nuscenes_to_occ.py occ3d-index --dataroot data/nuscenes \
        --version v1.0-trainval --out-dir data/nuscenes

The logic lives in ``projects.aerialworld.converters.nuscenes_occ`` and
``projects.aerialworld.datasets.occ3d_dataset``.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from projects.aerialworld.converters.nuscenes_occ import (  # noqa: E402
    NuScenesOccConfig, NuScenesSequenceError, convert_nuscenes_sequence)
from projects.aerialworld.datasets.occ3d_dataset import build_occ3d_index  # noqa: E402


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('seq', help='keyframe folder -> AerialWorld occupancy session')
    s.add_argument('seq_dir', help='folder with pc/, pc_seman/, pose/, calib/, bbox/')
    s.add_argument('--out-dir', required=True, help='output data root')
    s.add_argument('--session', default=None, help='session name (default: folder name)')
    s.add_argument('--log-name', default='', help='nuScenes log name (provenance)')
    s.add_argument('--no-fill', action='store_true', help='skip the planar gap filling')
    s.add_argument('--fill-min-neighbors', type=int, default=5)
    s.add_argument('--no-height', action='store_true',
                   help='keep the z = 0 of the nuScenes ego poses (no height reconstruction)')
    s.add_argument('--drop-noise', action='store_true',
                   help='drop label-0 (noise / other) points instead of keeping them as others')
    s.add_argument('--overwrite', action='store_true', help='replace previous outputs')
    o = sub.add_parser('occ3d-index', help='nuScenes tables (devkit) -> Occ3D-layout index')
    o.add_argument('--dataroot', required=True, help='nuScenes root (holds <version>/)')
    o.add_argument('--version', default='v1.0-trainval')
    o.add_argument('--out-dir', required=True, help='where the index files go')
    o.add_argument('--gts', default='gts', help='Occ3D labels folder, relative to --out-dir')
    o.add_argument('--train-scenes', nargs='*', default=None,
                   help='scene names of the train split (default: nuScenes official splits)')
    o.add_argument('--val-scenes', nargs='*', default=None)
    o.add_argument('--overwrite', action='store_true')
    p.add_argument('--log-level', default='INFO')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format='%(levelname)s %(message)s')
    try:
        if args.cmd == 'seq':
            cfg = NuScenesOccConfig(session=args.session, log_name=args.log_name,
                                    fill=not args.no_fill,
                                    fill_min_neighbors=args.fill_min_neighbors,
                                    reconstruct_height=not args.no_height,
                                    drop_noise_far=args.drop_noise)
            s = convert_nuscenes_sequence(args.seq_dir, args.out_dir, cfg, args.overwrite)
            print(f"wrote session {s['session']} ({s['frames']} frames, "
                  f"{s['bytes'] / 2**20:.1f} MiB) to {s['out_dir']} in {s['seconds']:.1f} s")
        else:
            s = build_occ3d_index(args.dataroot, args.version, args.out_dir, gts=args.gts,
                                  train_scenes=args.train_scenes, val_scenes=args.val_scenes,
                                  overwrite=args.overwrite)
            print(f"wrote {s['files']} ({s['frames']} frames of {s['scenes']} scenes)")
    except (NuScenesSequenceError, FileNotFoundError, FileExistsError, ValueError) as exc:
        raise SystemExit(f'error: {exc}')


if __name__ == '__main__':
    main()
