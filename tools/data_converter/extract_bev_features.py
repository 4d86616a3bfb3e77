"""BEV features of real LiDAR sweeps from an mmdet3d detector's front end.

Usage::

    python tools/data_converter/extract_bev_features.py DET_CONFIG OUT_DIR \
        --index data/lidar_llm/nuscenes_qa/nuscenes_qa_val.json --data-root data \
        [--checkpoint CKPT] [--channels 256] [--rotations] [--overwrite]

``DET_CONFIG`` is an mmdet3d detector config (a path, or ``mmdet3d::<rel path>`` for the
configs shipped with mmdet3d, e.g.
``mmdet3d::pointpillars/pointpillars_hv_secfpn_sbn-all_8xb4-2x_nus-3d.py`` or a CenterPoint
config). Its data preprocessor's voxel layer, voxel encoder, middle encoder, backbone and neck
(``pts_*`` keys of two-stage detectors too) run on every sweep named by the index's
``metainfo['frames']`` table (``lidar_path``, ``lidar2ego``; the sweep is moved to the ego
frame first); the neck's first output (all outputs concatenated when they share a size) is
written as float16 ``(C, H, W)`` to ``OUT_DIR/<sample_token>.npy`` atomically, one file per
distinct ``sample_token`` of the index (``--rotations``: rotated tokens ``<t>@r<deg>`` get
features of the rotated sweep; otherwise only unrotated rows are written). ``--channels``
keeps the first C channels. Random initialisation without ``--checkpoint`` (tests).
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from projects.common.utils.io import save_npy_atomic  # noqa: E402


def build_front_end(det_cfg_path, checkpoint=None):
    """(PointsBEVEncoder, name) built from an mmdet3d detector config."""
    from mmengine.registry import init_default_scope
    import mmdet3d.models  # noqa: F401
    from projects.lidar_llm.models.encoders import PointsBEVEncoder
    if '::' in det_cfg_path:  # a config shipped with a package, e.g. mmdet3d::pointpillars/...
        from mmengine.hub import get_config
        cfg = get_config(det_cfg_path)
    else:
        cfg = Config.fromfile(det_cfg_path)
    m = cfg.model
    pre = 'pts_' if 'pts_voxel_encoder' in m else ''
    vox = m['data_preprocessor']['voxel_layer']
    init_default_scope('mmdet3d')

    def scoped(c):
        c = dict(c)
        c['type'] = c['type'] if '.' in c['type'] else f'mmdet3d.{c["type"]}'
        return c
    enc = PointsBEVEncoder(
        voxel_layer=dict(voxel_size=vox['voxel_size'],
                         point_cloud_range=vox['point_cloud_range'],
                         max_num_points=vox['max_num_points'],
                         max_voxels=vox['max_voxels'][1] if isinstance(vox['max_voxels'],
                                                                       (list, tuple))
                         else vox['max_voxels']),
        voxel_encoder=scoped(m[f'{pre}voxel_encoder']),
        middle_encoder=scoped(m[f'{pre}middle_encoder']),
        backbone=scoped(m[f'{pre}backbone']) if m.get(f'{pre}backbone') else None,
        neck=scoped(m[f'{pre}neck']) if m.get(f'{pre}neck') else None, out_index=0)
    enc.point_dims = int(m[f'{pre}voxel_encoder'].get('in_channels', 4))
    if checkpoint:
        state = torch.load(checkpoint, map_location='cpu', weights_only=False)
        state = state.get('state_dict', state)
        mapping = {f'{pre}voxel_encoder.': 'voxel_encoder.',
                   f'{pre}middle_encoder.': 'middle_encoder.',
                   f'{pre}backbone.': 'backbone.', f'{pre}neck.': 'neck.'}
        sub = {}
        for k, v in state.items():
            for a, b in mapping.items():
                if k.startswith(a):
                    sub[b + k[len(a):]] = v
        missing, _ = enc.load_state_dict(sub, strict=False)
        if missing:
            raise KeyError(f'{checkpoint}: no weights for {missing[:5]} ...')
    return enc.eval()


def load_sweep(path, lidar2ego, rot_deg, load_dim=5):
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: LiDAR sweep not found')
    pts = np.load(path) if path.endswith('.npy') else \
        np.fromfile(path, dtype=np.float32).reshape(-1, load_dim)
    pts = pts[:, :4].astype(np.float32).copy()
    if lidar2ego is not None:
        m = np.asarray(lidar2ego)
        pts[:, :3] = pts[:, :3] @ m[:3, :3].T + m[:3, 3]
    if rot_deg:
        c, s = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
        x, y = pts[:, 0].copy(), pts[:, 1].copy()
        pts[:, 0], pts[:, 1] = c * x - s * y, s * x + c * y
    return pts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('det_config')
    ap.add_argument('out_dir')
    ap.add_argument('--index', action='append', required=True, help='QA index (repeatable)')
    ap.add_argument('--data-root', default='data')
    ap.add_argument('--checkpoint', default=None)
    ap.add_argument('--channels', type=int, default=None)
    ap.add_argument('--rotations', action='store_true')
    ap.add_argument('--overwrite', action='store_true')
    args = ap.parse_args(argv)
    jobs = {}
    for idx in args.index:
        with open(idx, encoding='utf-8') as f:
            data = json.load(f)
        frames = data.get('metainfo', {}).get('frames', {})
        for r in data['data_list']:
            rot = float(r.get('rot_deg', 0.0) or 0.0)
            if rot and not args.rotations:
                continue
            fr = frames.get(r.get('frame'))
            if fr is None or not fr.get('lidar_path'):
                sys.exit(f'{idx}: row {r.get("qa_id")} has no frame with a lidar_path')
            jobs[r['sample_token']] = (osp.join(args.data_root, fr['lidar_path']),
                                       fr.get('lidar2ego'), rot)
    os.makedirs(args.out_dir, exist_ok=True)
    enc = build_front_end(args.det_config, args.checkpoint)
    t0 = time.time()
    for k, (token, (path, l2e, rot)) in enumerate(sorted(jobs.items()), 1):
        out = osp.join(args.out_dir, f'{token}.npy')
        if osp.exists(out) and not args.overwrite:
            sys.exit(f'{out} exists; pass --overwrite to replace it')
        pts = load_sweep(path, l2e, rot)
        n_in = enc.point_dims
        pts = pts[:, :n_in]
        if n_in > pts.shape[1]:  # e.g. a time-lag channel of multi-sweep detectors: 0
            pts = np.concatenate([pts, np.zeros((len(pts), n_in - pts.shape[1]),
                                                np.float32)], 1)
        pts = torch.from_numpy(pts)
        with torch.no_grad():
            feat = enc([pts])[0]
        if args.channels:
            feat = feat[:args.channels]
        save_npy_atomic(out, feat.to(torch.float16).numpy())
        eta = (time.time() - t0) / k * (len(jobs) - k)
        print(f'[extract_bev] {k}/{len(jobs)} {token} -> {tuple(feat.shape)} float16 '
              f'(ETA {eta:.0f} s)', flush=True)


if __name__ == '__main__':
    main()
