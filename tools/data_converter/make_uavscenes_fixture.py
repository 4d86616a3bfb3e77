#!/usr/bin/env python
"""Build the UAVScenes-layout test fixture from a real airborne LiDAR survey (LAS/LAZ).

The fixture in ``tests/data/uavscenes/`` was made with::

    pip download --no-binary :all: --no-deps laspy==2.7.0 -d /tmp/laspy_sdist
    tar xzf /tmp/laspy_sdist/laspy-2.7.0.tar.gz -C /tmp
    python tools/data_converter/make_uavscenes_fixture.py \
        /tmp/laspy-2.7.0/tests/data/autzen_trim.laz --out-dir tests/data/uavscenes --overwrite

What it does: reads the survey with ``laspy`` (LAZ needs the ``lazrs`` backend), converts the
coordinates to metres (the CRS unit of the file: Autzen is in international feet), flies
simulated drone sequences over it (smooth paths at a constant height above the ground, 10 Hz
poses with roll / pitch / yaw, key frames every 5th pose as in UAVScenes ``interval5``) and cuts
one "scan" per key frame: the survey points inside a nadir Livox-Avia-like field of view
(70.4 deg x 77.2 deg), randomly subsampled, expressed in the camera frame of the pose. Labels
are the LAS classification codes mapped to UAVScenes class ids (:data:`LAS_TO_UAVSCENES`).
Everything is written in the UAVScenes release layout (see
``projects/aerialworld/converters/uavscenes.py``). Deterministic for a given seed.

Limits (documented in ``tests/data/uavscenes/README.md``): the survey is a merged airborne
point cloud, so a scan has no occlusion and its density is the survey's, not a Livox's.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
from scipy.spatial.transform import Rotation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from projects.aerialworld.converters.uavscenes import POSE_TO_BODY_PRESETS  # noqa: E402

#: ASPRS LAS classification code -> UAVScenes class id (``None``: point dropped). Codes
#: 1 (unclassified: buildings, trees, vehicles mixed) and 3-5 (vegetation, no UAVScenes
#: class) become 0 background; 2 (ground) becomes 14 wild_field.
LAS_TO_UAVSCENES = {0: 0, 1: 0, 2: 14, 3: 0, 4: 0, 5: 0, 6: 1, 7: None, 9: 4, 10: 0, 11: 3,
                    17: 6, 18: None}

FEET = {'foot': 0.3048, 'US survey foot': 1200.0 / 3937.0, 'metre': 1.0, 'meter': 1.0}

#: Sequences: name, start (x, y) in the survey's local frame (m), heading (deg), speed (m/s),
#: turn rate (deg/s).
SEQUENCES = (
    ('Autzen01', (25.0, 108.0), 0.0, 8.0, -3.0),
    ('Autzen02', (340.0, 30.0), 180.0, 8.0, 3.0),
    ('Autzen03', (225.0, 18.0), 55.0, 7.0, 6.0),
)


def read_survey(path):
    """Points (N, 3) metres, LAS classes (N,) uint8 and the unit factor of a LAS/LAZ file."""
    import laspy
    las = laspy.read(path)
    unit = 1.0
    crs = las.header.parse_crs()
    if crs is not None and crs.axis_info:
        name = crs.axis_info[0].unit_name
        if name not in FEET:
            raise SystemExit(f'{path}: unknown CRS unit {name!r}')
        unit = FEET[name]
    xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], 1) * unit
    return xyz, np.asarray(las.classification, np.uint8), unit


def fly(start, heading_deg, speed, turn_deg_s, n_key, rate=10.0, interval=5, seed=0):
    """Dense (10 Hz) positions (M, 2), yaw/pitch/roll (M, 3) rad and times (M,) s."""
    rng = np.random.default_rng(seed)
    m = (n_key - 1) * interval + 1
    t = np.arange(m) / rate
    yaw = np.deg2rad(heading_deg + turn_deg_s * t + 2.0 * np.sin(0.9 * t + rng.uniform(0, 6)))
    v = speed * (1.0 + 0.05 * np.sin(0.7 * t))
    step = np.stack([np.cos(yaw), np.sin(yaw)], 1) * (v / rate)[:, None]
    xy = np.asarray(start) + np.concatenate([[[0.0, 0.0]], np.cumsum(step[:-1], 0)])
    pitch = np.deg2rad(3.0 + 1.0 * np.sin(1.3 * t))
    roll = np.deg2rad(2.0 * np.sin(0.8 * t + 1.0))
    return xy, np.stack([yaw, pitch, roll], 1), t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('survey', help='LAS/LAZ file (e.g. laspy tests/data/autzen_trim.laz)')
    p.add_argument('--out-dir', default=os.path.join(ROOT, 'tests', 'data', 'uavscenes'))
    p.add_argument('--key-frames', type=int, default=14)
    p.add_argument('--points-per-scan', type=int, default=2000)
    p.add_argument('--height', type=float, default=35.0, help='flight height above ground (m)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args(argv)
    xyz, cls, unit = read_survey(args.survey)
    keep = np.array([LAS_TO_UAVSCENES.get(int(c)) is not None for c in range(256)])[cls]
    xyz, cls = xyz[keep], cls[keep]
    lut = np.array([LAS_TO_UAVSCENES.get(c) or 0 for c in range(256)], np.int64)
    origin = np.array([np.floor(xyz[:, 0].min()), np.floor(xyz[:, 1].min()), 0.0])
    xyz = xyz - origin
    ground = xyz[cls == 2]
    out = args.out_dir
    if os.path.exists(out):
        if not args.overwrite:
            raise SystemExit(f'{out} exists; pass --overwrite')
        for sub in ('interval5_CAM_LIDAR', 'interval5_LIDAR_label'):
            shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    R_bc = POSE_TO_BODY_PRESETS['nadir_camera']
    tan_h, tan_v = np.tan(np.deg2rad(70.4 / 2)), np.tan(np.deg2rad(77.2 / 2))
    rng = np.random.default_rng(args.seed)
    for s_i, (name, start, heading, speed, turn) in enumerate(SEQUENCES):
        xy, ypr, t = fly(start, heading, speed, turn, args.key_frames, seed=args.seed + s_i)
        near = np.linalg.norm(ground[:, None, :2] - xy[::25][None], axis=2).min(1) < 30.0
        z_ground = float(np.median(ground[near, 2]))
        pos = np.concatenate([xy, np.full((len(xy), 1), z_ground + args.height)], 1)
        R_wb = Rotation.from_euler('ZYX', ypr).as_matrix()
        R_wc = R_wb @ R_bc  # p_body = R_bc p_cam  ->  R_wc = R_wb R_bc
        ns = (1700000000 + 1000 * s_i) * 10**9 + np.round(t * 1e9).astype(np.int64)
        stamps = [f'{v // 10**9}.{v % 10**9:09d}' for v in ns.tolist()]
        seq_dir = os.path.join(out, 'interval5_CAM_LIDAR', f'interval5_{name}')
        lab_dir = os.path.join(out, 'interval5_LIDAR_label', f'interval5_{name}',
                               'interval5_LIDAR_label_id')
        os.makedirs(os.path.join(seq_dir, 'interval5_LIDAR'), exist_ok=True)
        os.makedirs(lab_dir, exist_ok=True)
        infos = []
        for k in range(len(t)):
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = R_wc[k], pos[k]
            infos.append({'OriginalImageName': f'{stamps[k]}.jpg',
                          'T4x4': np.round(T, 9).tolist()})
            if k % 5:
                continue
            pc = (xyz - pos[k]) @ R_wc[k]  # world -> camera
            z = pc[:, 2]
            fov = (z > 0.5) & (np.abs(pc[:, 0]) < tan_h * z) & (np.abs(pc[:, 1]) < tan_v * z)
            idx = np.flatnonzero(fov)
            if len(idx) > args.points_per_scan:
                idx = np.sort(rng.choice(idx, args.points_per_scan, replace=False))
            lv = int(ns[k]) - 17_000_000  # LiDAR stamp 17 ms before the image
            lidar_stamp = f'{lv // 10**9}.{lv % 10**9:09d}'
            fname = f'image{stamps[k]}_lidar{lidar_stamp}.txt'
            np.savetxt(os.path.join(seq_dir, 'interval5_LIDAR', fname), pc[idx], fmt='%.3f')
            np.savetxt(os.path.join(lab_dir, fname), lut[cls[idx]], fmt='%d')
        with open(os.path.join(seq_dir, 'sampleinfos_interpolated.json'), 'w') as f:
            json.dump(infos, f)
        print(f'{name}: {args.key_frames} scans, ground {z_ground:.1f} m, poses {len(infos)}')
    print(f'unit factor {unit}, local origin {origin.tolist()} (survey CRS, metres)')


if __name__ == '__main__':
    main()
