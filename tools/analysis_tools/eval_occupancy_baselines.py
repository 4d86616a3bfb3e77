"""No-learning occupancy forecasting baselines of an AerialWorld config's data, no model needed.

Usage:
    python tools/analysis_tools/eval_occupancy_baselines.py CONFIG [--split val|test|train]
        [--max-windows N] [--plan-checkpoint CKPT [--stage world|joint] [--batch-size B]]
        [--cfg-options k=v ...]

Builds ``<split>_dataloader.dataset`` and ``<split>_evaluator`` (an ``OccupancyMetric``) of
CONFIG and evaluates, on every window, the baselines the metric computes from the observed
window (:mod:`projects.common.metrics.occupancy_baselines`):

* copy-last: the last history frame repeated (pose: constant velocity);
* CV-warp: the last history frame warped by constant-velocity ego motion;
* true-pose warp: the last history frame warped along the window's *true* future poses
  (passed to the metric as a plan): the best any static-world warp can do, i.e. what is left
  for a model is what moves and what comes into view.

Prints the metric's table and a Markdown table of the baselines per future step. Without
``--plan-checkpoint`` the metric's "model" rows are the copy-last forecast (the metric needs a
prediction). With it, they are the checkpoint's planned-path rollout
(``AerialWorld.predict_with_plan`` along each window's true future poses, the world model
stage given by ``--stage``), so the table shows it beside the planned-pose warp.
"""
import argparse
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import projects  # noqa: E402,F401
from projects.common.structures.pose import ego_motion_from_poses  # noqa: E402
from projects.registry import DATASETS, METRICS  # noqa: E402

ROWS = (('IoU', 'IoU'), ('mIoU', 'mIoU'), ('IoU_visible', 'IoU visible'),
        ('IoU_revealed', 'IoU revealed'), ('mIoU_visible', 'mIoU visible'),
        ('mIoU_revealed', 'mIoU revealed'))
SOURCES = (('', 'model'), ('baseline/', 'copy-last'), ('warp_cv/', 'CV-warp'),
           ('warp_plan/', 'true-pose warp'), ('margin/', 'model - strongest'))


def _sample(item: dict) -> dict:
    """The metric's input for one packed window: copy-last as the prediction."""
    occ, poses = item['inputs']['occupancy'], item['inputs']['poses'].float()
    meta = item['data_samples'].metainfo
    hist, fut = int(meta['num_history']), int(meta['num_future'])
    motion = ego_motion_from_poses(poses[None])[0]  # (T - 1, 4)
    last_motion = motion[hist - 2] if hist >= 2 else motion.new_zeros(4)
    copy_last = occ[hist - 1:hist].expand(fut, *occ.shape[1:])
    return dict(metainfo=dict(meta), gt_occ=occ[hist:hist + fut], pred_occ=copy_last,
                baseline_occ=copy_last, planned_poses=poses[hist:hist + fut],
                gt_ego_motion=motion[hist - 1:hist - 1 + fut],
                pred_ego_motion=last_motion.expand(fut, 4),
                baseline_ego_motion=last_motion.expand(fut, 4))


def _plan_rollout_outputs(model, items):
    """``predict_with_plan`` outputs of a list of packed windows (plan = true future)."""
    data = model.data_preprocessor(pseudo_collate(items), False)
    inputs, samples = data['inputs'], data['data_samples']
    hist, fut = model.num_history, model.num_future
    plan = inputs['poses'][:, hist:hist + fut]
    return model.predict_with_plan(inputs, plan, samples)


def _load_model(cfg, checkpoint: str, stage: str):
    from mmengine.runner.checkpoint import load_checkpoint

    from projects.registry import MODELS
    if not osp.isfile(checkpoint):
        sys.exit(f'eval_occupancy_baselines: checkpoint {checkpoint!r} does not exist')
    model = MODELS.build(cfg.model)
    if not hasattr(model, 'predict_with_plan'):
        sys.exit(f'eval_occupancy_baselines: model type {type(model).__name__} has no '
                 'predict_with_plan (an AerialWorld model is needed)')
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    model.set_stage(stage)
    return model.eval()


def main(argv=None):
    """Evaluate the baselines (and a planned rollout) and print the tables."""
    p = argparse.ArgumentParser(description='No-learning occupancy baselines of a config')
    p.add_argument('config')
    p.add_argument('--split', choices=['train', 'val', 'test'], default='val')
    p.add_argument('--max-windows', type=int, default=None, help='evaluate the first N windows')
    p.add_argument('--plan-checkpoint', default=None,
                   help='evaluate this checkpoint\'s planned-path rollout as the model')
    p.add_argument('--stage', choices=['world', 'joint'], default='world',
                   help='model stage of --plan-checkpoint (default: world)')
    p.add_argument('--batch-size', type=int, default=4, help='windows per rollout batch')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    loader_key = f'{args.split}_dataloader'
    evaluator_key = 'val_evaluator' if args.split == 'train' else f'{args.split}_evaluator'
    if loader_key not in cfg or evaluator_key not in cfg:
        sys.exit(f'eval_occupancy_baselines: {args.config} lacks {loader_key} or '
                 f'{evaluator_key}')
    metric_cfg = cfg[evaluator_key]
    if isinstance(metric_cfg, (list, tuple)):
        metric_cfg = next((m for m in metric_cfg if m.get('type') == 'OccupancyMetric'), None)
    if metric_cfg is None or metric_cfg.get('type') != 'OccupancyMetric':
        sys.exit(f'eval_occupancy_baselines: {evaluator_key} of {args.config} is not an '
                 'OccupancyMetric')
    metric = METRICS.build(metric_cfg)
    dataset = DATASETS.build(cfg[loader_key]['dataset'])
    metric.dataset_meta = dataset.metainfo  # as the runner does: the grid range comes from it
    if metric_cfg.get('point_cloud_range') is None and \
            dataset.metainfo.get('point_cloud_range') is None:
        sys.exit(f'eval_occupancy_baselines: neither {evaluator_key}.point_cloud_range nor '
                 'the dataset metainfo gives the grid range the warp baselines need')
    model = None if args.plan_checkpoint is None else \
        _load_model(cfg, args.plan_checkpoint, args.stage)
    n = len(dataset) if args.max_windows is None else min(len(dataset), args.max_windows)
    step = 1 if model is None else max(args.batch_size, 1)
    start = time.time()
    for k in range(0, n, step):
        items = [dataset[i] for i in range(k, min(k + step, n))]
        outputs = [_sample(it) for it in items] if model is None else \
            _plan_rollout_outputs(model, items)
        metric.process(pseudo_collate(items), outputs)
        done = k + len(items)
        if done % 20 < step or done == n:
            rate = done / max(time.time() - start, 1e-9)
            print(f'[eval_occupancy_baselines] {done}/{n} windows, ETA '
                  f'{(n - done) / rate:.0f} s', flush=True)
    metrics = metric.evaluate(n)
    fut = max(int(key.split('@')[1]) for key in metrics
              if key.startswith('IoU@') and key[4:].isdigit())
    what = 'baselines' if model is None else \
        f'planned rollout of {args.plan_checkpoint} (model) and baselines'
    print(f'\n{n} {args.split} windows of {args.config}: {what}\n')
    print('| metric | baseline | ' + ' | '.join(f't={t}' for t in range(1, fut + 1)) +
          ' | mean |')
    print('|---|---|' + '---|' * (fut + 1))
    for key, name in ROWS:
        for prefix, label in SOURCES:
            if f'{prefix}{key}@1' not in metrics:
                continue
            if model is None and prefix in ('', 'margin/'):
                continue  # the "model" is copy-last here
            vals = [metrics[f'{prefix}{key}@{t}'] for t in range(1, fut + 1)]
            vals.append(metrics[f'{prefix}{key}@mean'])
            print(f'| {name} | {label} | ' + ' | '.join(f'{v:.2f}' for v in vals) + ' |')
    if 'baseline/pose/L2@1' in metrics:
        vals = [metrics[f'baseline/pose/L2@{t}'] for t in range(1, fut + 1)]
        print('| pose L2 [m] | constant velocity | ' +
              ' | '.join(f'{v:.2f}' for v in vals) + f' | {metrics["baseline/pose/ADE"]:.2f} |')
    return metrics


if __name__ == '__main__':
    with torch.no_grad():
        main()
