"""Render occupancy forecasts of a checkpoint (or ground-truth windows) to PNG files.

Usage:
    python tools/misc/visualize_occupancy.py CONFIG CHECKPOINT --out-dir DIR
        [--num-samples N | --indices I ...] [--split val|test|train]
        [--stage auto|config|tokenizer|world|joint]
        [--device cpu|cuda] [--no-3d] [--tile-size PX] [--overwrite] [--cfg-options k=v ...]
    python tools/misc/visualize_occupancy.py CONFIG --gt-only --out-dir DIR [...]

Builds the dataset of ``<split>_dataloader`` and the model from CONFIG, loads CHECKPOINT, runs
``model.test_step`` on N windows (evenly spaced over the split, or ``--indices``) and writes
for each window ``<k>_<session>_f<first future frame>``:

* ``..._bev.png``: rows GT / Pred / Baseline (copy-last-frame) for the BEV class and height
  views, one column per future step;
* ``..._3d.png``: the same rows as 3-D renders;
* ``..._3d/t<step>_{gt,pred}.png``: a larger 3-D render of every future step.

``--gt-only`` needs no checkpoint: it renders the dataset window's future frames and the
copy-last-frame baseline (useful to check converted data). ``--stage auto`` (default) puts a
two-stage AerialWorld model into the stage the checkpoint was trained in (its
``meta['train_stage']``, else the config's ``train_cfg`` switch and the checkpoint's iteration;
``projects.common.engine.checkpoint_stage``). The tool refuses to write
into a non-empty ``--out-dir`` unless ``--overwrite`` is given.
"""
import argparse
import os
import os.path as osp
import sys
import time

import numpy as np
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

import projects  # noqa: E402,F401  (registers every module)
from projects.common.visualization import (draw_forecast_sample, top_occupied,  # noqa: E402
                                           voxel_render)
from projects.common.visualization.occupancy_visualizer import write_png  # noqa: E402


def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Render occupancy forecasts to PNG files')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (not needed with --gt-only)')
    parser.add_argument('--out-dir', required=True, help='output folder')
    parser.add_argument('--num-samples', type=int, default=4,
                        help='windows to render, evenly spaced over the split (default 4)')
    parser.add_argument('--indices', type=int, nargs='+', help='render these window indices')
    parser.add_argument('--split', choices=['val', 'test', 'train'], default='val',
                        help='which <split>_dataloader.dataset of the config (default val)')
    parser.add_argument('--gt-only', action='store_true',
                        help='render ground truth and the copy-last baseline; no checkpoint')
    parser.add_argument('--stage', default='auto',
                        help="model stage: 'auto' (the checkpoint's stage, else its iteration "
                        "and the config's train_cfg switch), 'config', or a stage name")
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if present)')
    parser.add_argument('--no-3d', action='store_true', help='skip the 3-D renders')
    parser.add_argument('--tile-size', type=int, default=200, help='BEV tile width in pixels')
    parser.add_argument('--render-width', type=int, default=480,
                        help='width of the per-step 3-D renders in pixels')
    parser.add_argument('--overwrite', action='store_true',
                        help='allow writing into a non-empty --out-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. val_dataloader.dataset.window_stride=1')
    args = parser.parse_args(argv)
    if not args.gt_only and not args.checkpoint:
        parser.error('CHECKPOINT is required unless --gt-only is given')
    if args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    return args


def _palette(meta):
    """Palette from the dataset metainfo, the PLATEAU palette for PLATEAU classes, or None."""
    if meta.get('palette') is not None:
        return meta['palette']
    from projects.aerialworld.datasets.classes import PLATEAU_CLASSES, PLATEAU_PALETTE
    if tuple(meta.get('classes') or ()) == PLATEAU_CLASSES:
        return PLATEAU_PALETTE
    return None


def _choose_stage(model, cfg, checkpoint, requested):
    """Set the model stage for ``--stage``; return a description (or None)."""
    if not hasattr(model, 'set_stage') or requested == 'config':
        return getattr(model, 'train_stage', None)
    if requested != 'auto':
        model.set_stage(requested)
        return requested
    from projects.common.engine import checkpoint_stage
    stage = checkpoint_stage(cfg, checkpoint)
    if stage is not None:
        model.set_stage(stage)
    return model.train_stage


def _build(cfg, args):
    from mmengine.registry import init_default_scope

    from projects.registry import DATASETS, MODELS
    init_default_scope(cfg.get('default_scope', 'projects'))
    key = f'{args.split}_dataloader'
    if key not in cfg or 'dataset' not in cfg[key]:
        sys.exit(f'visualize_occupancy: {args.config} has no {key}.dataset')
    dataset = DATASETS.build(cfg[key]['dataset'])
    model = None
    if not args.gt_only:
        import torch
        from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
        if not osp.isfile(args.checkpoint):
            sys.exit(f'visualize_occupancy: checkpoint {args.checkpoint!r} does not exist')
        model = MODELS.build(cfg.model)
        checkpoint = _load_checkpoint(args.checkpoint, map_location='cpu')
        _load_checkpoint_to_model(model, checkpoint, strict=True)
        stage = _choose_stage(model, cfg, checkpoint, args.stage)
        device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
        model.to(device).eval()
        print(f'loaded {args.checkpoint} (iter {(checkpoint.get("meta") or {}).get("iter")}, '
              f'stage {stage}) on {device}')
    return dataset, model


def _gt_sample(data):
    """Prediction-like sample (gt_occ, baseline_occ) from a packed dataset window."""
    from mmengine.structures import BaseDataElement
    occ = data['inputs']['occupancy']
    meta = dict(data['data_samples'].metainfo)
    hist, fut = int(meta['num_history']), int(meta['num_future'])
    if fut < 1:
        raise ValueError('visualize_occupancy: the dataset has num_future=0; nothing to show')
    sample = BaseDataElement(metainfo=meta)
    sample.gt_occ = occ[hist:hist + fut]
    sample.baseline_occ = occ[hist - 1:hist].expand(fut, *occ.shape[1:]).contiguous()
    return sample


def main(argv=None):
    """Render the selected windows; returns the list of written files."""
    args = parse_args(argv)
    if osp.isdir(args.out_dir) and os.listdir(args.out_dir) and not args.overwrite:
        sys.exit(f'visualize_occupancy: {args.out_dir} is not empty; pass --overwrite to write '
                 'into it')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    dataset, model = _build(cfg, args)
    meta = dict(dataset.metainfo)
    if len(dataset) == 0:
        sys.exit(f'visualize_occupancy: the {args.split} dataset of {args.config} is empty')
    if args.indices:
        bad = [i for i in args.indices if not 0 <= i < len(dataset)]
        if bad:
            sys.exit(f'visualize_occupancy: --indices {bad} out of range [0, {len(dataset)})')
        indices = list(args.indices)
    else:
        n = min(args.num_samples, len(dataset))
        indices = sorted(set(np.linspace(0, len(dataset) - 1, n).round().astype(int).tolist()))
    free = meta.get('free_label')
    render_cfg = dict(palette=_palette(meta), class_names=meta.get('classes'),
                      voxel_size=meta.get('voxel_size'),
                      point_cloud_range=meta.get('point_cloud_range'),
                      tile_size=args.tile_size, render_width=max(160, args.render_width // 2))
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for k, idx in enumerate(indices):
        t0 = time.time()
        data = dataset[idx]
        if model is None:
            sample = _gt_sample(data)
        else:
            import torch
            from mmengine.dataset import pseudo_collate
            with torch.no_grad():
                sample = model.test_step(pseudo_collate([data]))[0]
        smeta = sample.metainfo
        free_label = free if free is not None else smeta.get('free_label')
        frames, hist = smeta.get('frame_indices'), smeta.get('num_history')
        stem = f'{k:03d}_{smeta.get("session", "window")}'
        if frames is not None and hist is not None and len(frames) > hist:
            stem += f'_f{int(frames[hist]):06d}'
        stem = osp.join(args.out_dir, stem)
        panels = draw_forecast_sample(sample, free_label=free_label, draw_3d=not args.no_3d,
                                      **render_cfg)
        for kind, img in panels.items():
            write_png(f'{stem}_{kind}.png', img)
            written.append(f'{stem}_{kind}.png')
        if not args.no_3d:
            seqs = [(tag, np.asarray(sample.get(key))) for key, tag in
                    (('gt_occ', 'gt'), ('pred_occ', 'pred')) if key in sample]
            # One canvas for all steps: crop the empty sky above the highest voxel.
            top = max(int(top_occupied(s[f], free_label)[0].max()) for _, s in seqs
                      for f in range(s.shape[0]))
            z_max = top + 2 if top >= 0 else None
            for tag, seq in seqs:
                for step in range(seq.shape[0]):
                    img = voxel_render(seq[step], free_label, render_cfg['palette'],
                                       render_cfg['voxel_size'], width=args.render_width,
                                       z_max=z_max)
                    path = osp.join(f'{stem}_3d', f't{step + 1}_{tag}.png')
                    write_png(path, img)
                    written.append(path)
        print(f'[{k + 1}/{len(indices)}] window {idx}: {stem}_*.png ({time.time() - t0:.1f}s)')
    print(f'wrote {len(written)} files to {args.out_dir}')
    return written


if __name__ == '__main__':
    main()
