"""Grounded LiDAR QA index from real nuScenes boxes (see projects/lidar_llm/datasets/grounded_qa.py).

Usage::

    python tools/data_converter/nuscenes_qa_from_boxes.py \
        --seq-dir data/nuscenes_seq --info data/nuscenes_frame/n015-2018-07-24-11-22-45+0800.pkl \
        --data-root data --out-dir data/lidar_llm/nuscenes_qa --val-frames 2 [--overwrite]

Split by frame: the last ``--val-frames`` keyframes of every ``--seq-dir`` sequence are held
out (validation / test); the other keyframes and every ``--info`` frame train. Each keyframe
is used at ``--train-rots`` (train) / ``--val-rots`` (held out) rotations about the ego z axis.
Writes ``nuscenes_qa_{train,val}.json`` (``metainfo`` with a ``frames`` table: LiDAR path,
``lidar2ego``, cameras, the annotated ``boxes`` (M, 7: x, y, z, l, w, h, yaw; ego frame, m /
rad, before the row's rotation), their class ``names`` and, for SurroundOcc-layout frames with
``pc_seman/``, ``seman_path`` (per-point lidarseg classes); ``data_list`` of QA rows)
atomically; refuses to overwrite without
``--overwrite``.
"""
import argparse
import os
import os.path as osp
import sys
import time
from collections import Counter

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from projects.common.utils.io import save_json_atomic  # noqa: E402
from projects.lidar_llm.datasets.grounded_qa import (  # noqa: E402
    generate_frame_qa, load_info_frames, load_seq_frames)

LICENSE = 'nuScenes terms of use: CC BY-NC-SA 4.0 (non-commercial)'


def build_rows(frames, rots, split):
    rows = []
    for f in frames:
        for rot in rots:
            token = f'{f["token"]}@r{rot:g}'
            for k, r in enumerate(generate_frame_qa(f, rot)):
                r.pop('template')  # the question text is its own template here
                r.update(qa_id=f'{token}#{k}', sample_token=token, frame=f['token'],
                         rot_deg=float(rot))
                rows.append(r)
    return rows


def frame_table(frames):
    return {f['token']: dict(lidar_path=f['lidar_path'],
                             lidar2ego=np.round(f['lidar2ego'], 8).tolist(),
                             cams=f.get('cams', {}), scene=f['scene'],
                             timestamp=f['timestamp'],
                             boxes=np.round(f['boxes'], 3).tolist(),
                             names=[str(n) for n in f['names']],
                             **({'seman_path': f['seman_path']} if f.get('seman_path') else {}))
            for f in frames}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seq-dir', action='append', default=[],
                    help='SurroundOcc-layout keyframe folder (repeatable)')
    ap.add_argument('--info', action='append', default=[],
                    help='mmdet3d nuScenes info .pkl (repeatable; its frames train)')
    ap.add_argument('--data-root', default='data', help='paths in the index are relative to it')
    ap.add_argument('--out-dir', default='data/lidar_llm/nuscenes_qa')
    ap.add_argument('--val-frames', type=int, default=2,
                    help='last keyframes of each sequence held out')
    ap.add_argument('--train-rots', type=int, default=8, help='rotations per training frame')
    ap.add_argument('--val-rots', type=int, default=4, help='rotations per held-out frame')
    ap.add_argument('--overwrite', action='store_true')
    args = ap.parse_args(argv)
    if not args.seq_dir and not args.info:
        ap.error('give at least one --seq-dir or --info')
    outs = {s: osp.join(args.out_dir, f'nuscenes_qa_{s}.json') for s in ('train', 'val')}
    for p in outs.values():
        if osp.exists(p) and not args.overwrite:
            sys.exit(f'{p} exists; pass --overwrite to replace it')
    t0 = time.time()
    train_f, val_f = [], []
    for d in args.seq_dir:
        frames = load_seq_frames(d, args.data_root)
        if len(frames) <= args.val_frames:
            sys.exit(f'{d}: {len(frames)} keyframes, cannot hold out {args.val_frames}')
        train_f += frames[:-args.val_frames] if args.val_frames else frames
        val_f += frames[-args.val_frames:] if args.val_frames else []
        print(f'[nuscenes_qa] {d}: {len(frames)} keyframes '
              f'({len(frames) - args.val_frames} train, {args.val_frames} held out)', flush=True)
    for p in args.info:
        frames = load_info_frames(p, args.data_root)
        train_f += frames
        print(f'[nuscenes_qa] {p}: {len(frames)} keyframe(s) (train)', flush=True)
    rots = {'train': [360.0 * k / args.train_rots for k in range(args.train_rots)],
            'val': [360.0 * k / args.val_rots for k in range(args.val_rots)]}
    for split, frames in (('train', train_f), ('val', val_f)):
        rows = build_rows(frames, rots[split], split)
        if split == 'val':  # short answers first: batched generation stops early
            order = {'exist': 0, 'count': 1, 'comparison': 2, 'status': 3, 'object': 4,
                     'grounding': 5}
            rows.sort(key=lambda r: order.get(r['template_type'], 9))
        meta = dict(dataset='nuscenes_grounded_qa', split=split, license=LICENSE,
                    frames=frame_table(frames), rotations_deg=rots[split],
                    source=dict(seq_dirs=args.seq_dir, infos=args.info))
        save_json_atomic(outs[split], dict(metainfo=meta, data_list=rows),
                         separators=(',', ':'))
        types = Counter(r['template_type'] for r in rows)
        print(f'[nuscenes_qa] {split}: {len(frames)} frames x {len(rots[split])} rotations -> '
              f'{len(rows)} questions {dict(types)} -> {outs[split]} '
              f'({osp.getsize(outs[split]) / 1e6:.2f} MB, {time.time() - t0:.1f} s)', flush=True)


if __name__ == '__main__':
    main()
