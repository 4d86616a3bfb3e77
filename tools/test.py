"""Test (evaluate) a checkpoint with MMEngine's Runner.

Usage:
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--eval-only] [--show-dir DIR]
        [--out FILE] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

``--eval-only`` computes the metrics and nothing else (no visualisation, no prediction dump).
``--show-dir`` writes visualisations (when the config defines a visualisation hook) there.
``--out`` dumps the raw predictions with ``DumpResults`` (a ``.pkl`` file; refuses to overwrite).
Distributed: ``tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [args]``.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # repo root, for `projects`

import projects  # noqa: E402
from projects.common.engine.launch import (add_common_args, build_runner,  # noqa: E402
                                           default_work_dir, finalize_distributed,
                                           parse_args_set_local_rank, prepare_launcher)


def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Test (evaluate) a checkpoint (mmembodied)')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the test logs')
    parser.add_argument('--eval-only', action='store_true',
                        help='only compute metrics (no visualisation or dumps)')
    parser.add_argument('--show-dir', help='directory for visualisations')
    parser.add_argument('--out', help='dump predictions to this .pkl file')
    parser.add_argument('--overwrite', action='store_true', help='allow --out to overwrite')
    add_common_args(parser, 'test_dataloader.batch_size=1')
    return parse_args_set_local_rank(parser, argv)


def main(argv=None):
    """Build the Runner, load CHECKPOINT and run ``runner.test()``; return the metrics."""
    args = parse_args(argv)
    projects.register_all_modules()
    if not osp.isfile(args.checkpoint):
        sys.exit(f'tools/test.py: error: checkpoint {args.checkpoint!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if 'test_dataloader' not in cfg or 'test_evaluator' not in cfg:
        sys.exit(f'tools/test.py: error: {args.config} defines no test_dataloader/test_evaluator')
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    hooks = cfg.get('custom_hooks') or []
    if args.eval_only:
        cfg.custom_hooks = [h for h in hooks if not h.get('type', '').endswith('VisualizationHook')]
    elif args.show_dir:
        vis_hooks = [h for h in hooks if h.get('type', '').endswith('VisualizationHook')]
        if not vis_hooks:
            sys.exit(f'tools/test.py: error: --show-dir: {args.config} has no visualisation hook')
        for h in vis_hooks:
            h['out_dir'] = args.show_dir
    if args.out and not args.eval_only:
        if not args.out.endswith(('.pkl', '.pickle')):
            sys.exit('tools/test.py: error: --out must be a .pkl file')
        if osp.exists(args.out) and not args.overwrite:
            sys.exit(f'tools/test.py: error: {args.out} exists; pass --overwrite to replace it')
        evaluator = cfg.test_evaluator
        evaluator = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
        evaluator.append(dict(type='DumpResults', out_file_path=args.out))
        cfg.test_evaluator = evaluator
    prepare_launcher(cfg, args.launcher)

    runner = build_runner(cfg)
    metrics = runner.test()
    finalize_distributed()
    return metrics


if __name__ == '__main__':
    main()
