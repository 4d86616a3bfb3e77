"""Probe whether the LiDAR branch of a LiDAR-LLM config perceives held-out keyframes.

Trains the config's sensor branch alone (``model.lidar_encoder`` + ``model.vat_lidar`` +
``model.aux_heads``, no LLM) with the auxiliary losses on the training sweeps, for as many
sweeps as the QA run shows it, or loads the sensor branch of a trained checkpoint; then
measures on another set of sweeps what the LLM would need to read off the sensor tokens:

* per (60° sector, range ring, class) object counts of the ``CenterHeatmapHead`` peaks and of
  the ``SectorCountHead`` (rounded rates), as exact match and mean absolute error against
  the annotated boxes, beside two no-learning baselines: "0" and the most frequent training
  count of the same (sector, ring, class) cell;
* per-class IoU of the ``BEVSemanticHead`` cell classes against the lidarseg map.

Selection of settings must use a train-side split (``--holdout-train-frames K``: the last K
keyframes of the training sequence become the evaluation set and are left out of
training); ``--split val`` evaluates on the held-out keyframes of the index (report only).

Usage::

    OMP_NUM_THREADS=1 python tools/analysis_tools/lidar_llm_sensor_probe.py \\
        configs/lidar_llm/nuscenes_qa_lidar_tiny.py --holdout-train-frames 2 [--iters 120]
    OMP_NUM_THREADS=1 python tools/analysis_tools/lidar_llm_sensor_probe.py \\
        configs/lidar_llm/nuscenes_qa_lidar_tiny.py --checkpoint work_dirs/.../iter_120.pth \\
        --split val
"""
import argparse
import math
import os.path as osp
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

RANGES = (15.0, 30.0)


class SensorBranch(nn.Module):
    """The LiDAR modules of a ``LidarLLM`` config under the same attribute names (so a
    ``LidarLLM`` checkpoint's ``lidar_encoder.* / vat_lidar.* / aux_heads.*`` keys load).
    Heads on the BEV map or the VAT queries train here; heads on the LLM-side tokens or the
    question readout (``input_key`` ``'tokens'`` / ``'readout'``) are skipped."""

    def __init__(self, model_cfg):
        super().__init__()
        from projects.registry import MODELS
        self.lidar_encoder = MODELS.build(model_cfg['lidar_encoder'])
        self.vat_lidar = MODELS.build(model_cfg['vat_lidar'])
        self.aux_heads = nn.ModuleList(MODELS.build(c) for c in model_cfg.get('aux_heads') or [])

    def forward(self, points):
        bev = self.lidar_encoder(points)
        return dict(bev=bev, queries=self.vat_lidar(bev))


def sweeps(cfg, split, classes, grid, holdout, bev_range):
    """One packed item per sample token (keyframe × rotation) of the split.

    Returns:
        tuple: (train items, eval items) lists of ``(points tensor, data sample)``.
    """
    from projects.registry import DATASETS
    pipeline = [dict(type='LoadLiDARPoints', load_dim=5, use_dim=4),
                dict(type='LoadBEVObjects', classes=list(classes)),
                dict(type='LoadBEVSemantics', classes=list(classes), bev_range=bev_range,
                     grid_size=grid),
                dict(type='PackLidarQAInputs')]

    def build(ann_key):
        dcfg = dict(cfg[ann_key].dataset)
        dcfg.update(pipeline=pipeline, max_samples=None)
        dcfg.pop('feature_dirs', None)
        ds = DATASETS.build(dcfg)
        first = {}
        for i in range(len(ds)):
            first.setdefault(ds.get_data_info(i)['sample_token'], i)
        return ds, first

    ds, first = build('train_dataloader')
    frames = ds.metainfo['frames']
    seq = [t for t in frames if frames[t].get('seman_path')]  # the annotated sequence, in order
    held = set(seq[len(seq) - holdout:]) if holdout else set()
    train, evals = [], []
    for tok, i in first.items():
        item = ds[i]
        s = item['data_samples']
        entry = (item['inputs']['points'], s)
        (evals if s.metainfo['frame'] in held else train).append(entry)
    if split == 'val':
        vds, vfirst = build('val_dataloader')
        evals = []
        for tok, i in vfirst.items():
            item = vds[i]
            evals.append((item['inputs']['points'], item['data_samples']))
    return train, evals, sorted(held)


def counts_of(boxes_xy, labels, k):
    from projects.lidar_llm.models.aux_heads import sector_counts
    return sector_counts(np.asarray(boxes_xy).reshape(-1, 2), labels, k, RANGES)[..., :k]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('--checkpoint', help='LidarLLM checkpoint: evaluate its sensor branch')
    ap.add_argument('--split', choices=['holdout', 'val'], default='holdout',
                    help='evaluate on the held-out training frames or on the index val split')
    ap.add_argument('--holdout-train-frames', type=int, default=2,
                    help='last K annotated training keyframes held out (train-side split)')
    ap.add_argument('--iters', type=int, help='training steps (default: the config max_iters)')
    ap.add_argument('--sweeps-per-step', type=int,
                    help='sweeps per step (default: the config batch / questions_per_sample)')
    ap.add_argument('--lr', type=float, default=5e-3)
    ap.add_argument('--score-thr', type=float, nargs='+', default=[0.3],
                    help='heatmap peak thresholds (one table row each)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                    help='key=value overrides of the config (mmengine syntax)')
    ap.add_argument('--keep-heads', nargs='+',
                    help='train / evaluate only these aux head types of the config')
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    from mmengine.registry import init_default_scope
    import projects  # noqa: F401
    init_default_scope('projects')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.keep_heads:
        cfg.model.aux_heads = [h for h in cfg.model.aux_heads if h['type'] in args.keep_heads]
    classes = list(cfg.get('count_classes') or ['car', 'pedestrian', 'barrier'])
    k = len(classes)
    net = SensorBranch(cfg.model)
    bev_range = list(cfg.model.vat_lidar.bev_range)
    with torch.no_grad():
        net.eval()
        h, w = net.lidar_encoder([torch.zeros(1, 4)]).shape[-2:]
    holdout = args.holdout_train_frames if args.split == 'holdout' else 0
    if args.checkpoint and args.split == 'holdout':
        sys.exit('--checkpoint was trained on every training frame: use --split val')
    t0 = time.time()
    train, evals, held = sweeps(cfg, args.split, classes, (h, w), holdout, bev_range)
    print(f'[probe] {len(train)} training sweeps, {len(evals)} evaluation sweeps '
          f'({args.split}{", held-out train frames " + str(held) if held else ""}); '
          f'BEV {h}x{w}; loaded in {time.time() - t0:.0f} s', flush=True)

    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
        state = state.get('state_dict', state)
        own = {n: v for n, v in state.items()
               if n.split('.')[0] in ('lidar_encoder', 'vat_lidar', 'aux_heads')}
        missing, unexpected = net.load_state_dict(own, strict=False)
        print(f'[probe] loaded {len(own)} tensors from {args.checkpoint}; missing '
              f'{len(missing)}', flush=True)
    else:
        iters = args.iters or cfg.train_cfg.max_iters
        spp = args.sweeps_per_step or max(1, cfg.train_dataloader.batch_size //
                                          cfg.train_dataloader.sampler.get(
                                              'questions_per_sample', 1))
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=args.lr,
                                weight_decay=0.01)
        warm = max(1, iters // 12)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * (
            0.5 * (1 + math.cos(math.pi * min(1.0, max(0, i - warm) / max(1, iters - warm))))))
        rng = np.random.default_rng(args.seed)
        net.train()
        order, t0 = [], time.time()
        log = defaultdict(float)
        for it in range(iters):
            if len(order) < spp:
                order += list(rng.permutation(len(train)))
            batch = [train[order.pop()] for _ in range(spp)]
            out = net([p for p, _ in batch])
            losses = {}
            for head in net.aux_heads:
                key = getattr(head, 'input_key', 'queries')
                if key in out:  # heads on the LLM-side tokens / readout need the LLM
                    losses.update(head.loss(out[key], [s for _, s in batch]))
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            for n, v in losses.items():
                log[n] += float(v.detach()) / 10
            if (it + 1) % 10 == 0:
                el = time.time() - t0
                print(f'[probe] iter {it + 1}/{iters} ' + ' '.join(
                    f'{n}: {v:.4f}' for n, v in log.items()) +
                    f'  ETA {el / (it + 1) * (iters - it - 1):.0f} s', flush=True)
                log.clear()

    # ---------------------------------------------------------------- evaluation
    net.eval()
    torch.set_grad_enabled(False)
    train_counts = np.stack([counts_of(s.gt_bboxes_bev[:, :2], s.gt_labels, k)
                             for _, s in train])
    mode = np.zeros(train_counts.shape[1:], np.float32)
    for idx in np.ndindex(*mode.shape):
        mode[idx] = Counter(train_counts[(slice(None),) + idx].tolist()).most_common(1)[0][0]
    rows = defaultdict(lambda: defaultdict(list))
    inter, union = np.zeros(k), np.zeros(k)
    for pts, s in evals:
        with torch.no_grad():
            out = net([pts])
        gt = counts_of(s.gt_bboxes_bev[:, :2], s.gt_labels, k)
        preds = {'"0" prior': np.zeros_like(gt), 'train-mode prior': mode}
        for head in net.aux_heads:
            name = type(head).__name__
            if name == 'CenterHeatmapHead':
                for thr in args.score_thr:
                    det = head.detect(out['bev'], thr)[0]
                    preds[f'CenterHeatmapHead >{thr:g}'] = counts_of(det['xy'], det['labels'], k)
            elif name == 'SectorCountHead' and head.input_key == 'queries':
                rate = head(out['queries'])[0].exp().numpy()[..., :k]
                preds['SectorCountHead'] = np.round(rate)
            elif name == 'BEVSemanticHead':
                prob = head(out['bev'])[0].sigmoid()
                best = prob.argmax(0)
                pred = torch.where(prob.max(0).values > 0.5, best,
                                   torch.full_like(best, k)).numpy()
                tgt = s.gt_bev_semantic
                valid = tgt >= 0
                for c in range(k):
                    inter[c] += ((pred == c) & (tgt == c) & valid).sum()
                    union[c] += (((pred == c) | (tgt == c)) & valid).sum()
        for name, p in preds.items():
            for c in range(k):
                rows[name][c].append((p[..., c] == gt[..., c]).ravel())
                rows[name][c + k].append(np.abs(p[..., c] - gt[..., c]).ravel())
                rows[name][c + 2 * k].append(((p[..., c] > 0) == (gt[..., c] > 0)).ravel())
    print(f'\n[probe] counts per (sector, ring {RANGES}, class) on {len(evals)} sweeps '
          f'({args.split}): exact match % / MAE (objects)')
    head = 'predictor'.ljust(26) + ''.join(c[:12].rjust(14) for c in classes) + '      mean EM'
    print(head)
    for name, r in rows.items():
        em = [100 * np.concatenate(r[c]).mean() for c in range(k)]
        mae = [np.concatenate(r[c + k]).mean() for c in range(k)]
        print(name.ljust(26) + ''.join(f'{e:6.1f} / {m:5.2f}' for e, m in zip(em, mae))
              + f'{np.mean(em):11.1f}')
    print(f'\n[probe] existence (count > 0) accuracy % per (sector, ring, class)')
    print(head)
    for name, r in rows.items():
        ex = [100 * np.concatenate(r[c + 2 * k]).mean() for c in range(k)]
        print(name.ljust(26) + ''.join(f'{e:14.1f}' for e in ex) + f'{np.mean(ex):13.1f}')
    if union.sum():
        print('\n[probe] BEVSemanticHead IoU % per class (non-empty cells): ' + ', '.join(
            f'{c} {100 * i / u:.1f}' if u else f'{c} -' for c, i, u in zip(classes, inter, union)))


if __name__ == '__main__':
    main()
