"""Train a model with MMEngine's Runner.

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
    Aliases for seed users: --batch-size, --epochs, --max-iters, --lr, --seed, --deterministic,
        --resume-from CKPT, --load-from CKPT, --from-scratch, --gpu-ids IDS, --eval-only,
        --wandb, --wandb-project NAME, --wandb-run-name NAME, --wandb-tags TAG [TAG ...],
        --compile.

``--from-scratch`` ignores the config's ``load_from``. ``--gpu-ids 0,1`` sets
``CUDA_VISIBLE_DEVICES`` (several GPUs: ``tools/dist_train.sh CONFIG N --gpu-ids ...``). Any
``--wandb-*`` option implies ``--wandb``; W&B logs offline when its API is unreachable, and the
flags fail with a clear message when the ``wandb`` package is not installed.

Distributed: ``tools/dist_train.sh CONFIG NUM_PROCS [args]`` (gloo on CPU-only machines).
Configs with ``runner_type = 'FlexibleRunner'`` and a ``strategy`` (e.g. FSDP in
``configs/worldmodel_tokyo_fsdp.py``) build MMEngine's FlexibleRunner.
"""
import argparse
import logging
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.logging import print_log

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # repo root, for `projects`

import projects  # noqa: E402
from projects.common.engine.launch import (ConfigFlagError, add_common_args,  # noqa: E402
                                           add_wandb_backend, apply_amp, build_runner,
                                           default_work_dir, finalize_distributed,
                                           parse_args_set_local_rank, prepare_launcher,
                                           select_gpus, set_by_path)


def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Train a model (mmembodied)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='directory for logs and checkpoints')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir '
                        'when no path is given')
    parser.add_argument('--resume-from', help='alias of --resume CKPT')
    parser.add_argument('--load-from', help='initialise weights from CKPT (no optimizer state)')
    parser.add_argument('--from-scratch', action='store_true',
                        help="ignore the config's load_from (random initialisation)")
    parser.add_argument('--gpu-ids', help='GPUs to use, comma-separated, e.g. 0 or 0,1 '
                        '(sets CUDA_VISIBLE_DEVICES)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (AmpOptimWrapper on CUDA, bf16 autocast on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the LR by total batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--batch-size', type=int, help='per-process batch size')
    parser.add_argument('--epochs', type=int, help='number of epochs (epoch-based configs)')
    parser.add_argument('--max-iters', type=int, help='number of iterations (iter-based configs)')
    parser.add_argument('--lr', type=float, help='base learning rate (optim_wrapper.optimizer.lr)')
    parser.add_argument('--seed', type=int, help='random seed')
    parser.add_argument('--deterministic', action='store_true',
                        help='deterministic algorithms (randomness.deterministic=True)')
    parser.add_argument('--eval-only', action='store_true',
                        help='only evaluate the loaded/resumed checkpoint on the val set')
    parser.add_argument('--wandb', action='store_true', help='also log to Weights & Biases')
    parser.add_argument('--wandb-project', help='W&B project (implies --wandb; default '
                        'occworld-tokyo)')
    parser.add_argument('--wandb-run-name', help='W&B run name (implies --wandb)')
    parser.add_argument('--wandb-tags', nargs='+', help='W&B tags (implies --wandb)')
    parser.add_argument('--compile', action='store_true', help='torch.compile the model')
    add_common_args(parser, 'train_cfg.max_iters=10')
    return parse_args_set_local_rank(parser, argv)


def drop_pretrained_init(node, path='model'):
    """Remove every ``init_cfg=dict(type='Pretrained', ...)`` under ``node`` (in place).

    Args:
        node (dict | list | None): a (sub-)config.
        path (str): dotted name of ``node``, for the returned keys.

    Returns:
        list[str]: dotted names of the configs whose ``init_cfg`` was removed.
    """
    dropped = []
    if isinstance(node, dict):
        init = node.get('init_cfg')
        inits = init if isinstance(init, (list, tuple)) else [init]
        if any(isinstance(i, dict) and i.get('type') == 'Pretrained' for i in inits):
            kept = [i for i in inits if not (isinstance(i, dict) and i.get('type') == 'Pretrained')]
            node['init_cfg'] = kept or None
            dropped.append(path)
        for key, value in node.items():
            if key != 'init_cfg':
                dropped += drop_pretrained_init(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            dropped += drop_pretrained_init(value, f'{path}.{i}')
    return dropped


def apply_aliases(cfg, args):
    """Map the seed-compatible flags onto config keys.

    Raises:
        ConfigFlagError: when a flag does not fit the config (e.g. ``--epochs`` for an
            iteration-based loop).
    """
    if args.batch_size is not None:
        set_by_path(cfg, 'train_dataloader.batch_size', args.batch_size)
    loop_type = cfg.get('train_cfg', {}).get('type', '')
    by_epoch = cfg.get('train_cfg', {}).get('by_epoch', 'Epoch' in loop_type)
    if args.epochs is not None:
        if not by_epoch:
            raise ConfigFlagError(f'--epochs: {args.config} trains by iterations '
                                  f'(train_cfg={dict(cfg.train_cfg)}); use --max-iters')
        set_by_path(cfg, 'train_cfg.max_epochs', args.epochs)
    if args.max_iters is not None:
        if by_epoch:
            raise ConfigFlagError(f'--max-iters: {args.config} trains by epochs; use --epochs')
        set_by_path(cfg, 'train_cfg.max_iters', args.max_iters)
    if args.lr is not None:
        set_by_path(cfg, 'optim_wrapper.optimizer.lr', args.lr)
    if args.seed is not None:
        set_by_path(cfg, 'randomness.seed', args.seed, must_exist=False)
    if args.deterministic:
        set_by_path(cfg, 'randomness.deterministic', True, must_exist=False)
    if args.wandb or args.wandb_project or args.wandb_run_name or args.wandb_tags:
        print_log(add_wandb_backend(cfg, args.wandb_project, args.wandb_run_name,
                                    args.wandb_tags), logger='current')
    if args.compile:
        cfg.compile = True
    resume = args.resume_from or args.resume
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        if not osp.isfile(resume):
            raise ConfigFlagError(f'--resume: checkpoint {resume!r} does not exist')
        cfg.resume, cfg.load_from = True, resume
    if args.from_scratch:
        if args.load_from is not None or resume is not None:
            raise ConfigFlagError('--from-scratch cannot be combined with --load-from / '
                                  '--resume / --resume-from')
        if cfg.get('load_from'):
            print_log(f'--from-scratch: ignoring load_from={cfg.load_from!r}', logger='current')
        cfg.load_from = None
        for key in drop_pretrained_init(cfg.get('model')):
            print_log(f"--from-scratch: ignoring {key}.init_cfg (type='Pretrained')",
                      logger='current')
    if args.load_from is not None:
        if not osp.isfile(args.load_from):
            raise ConfigFlagError(f'--load-from: checkpoint {args.load_from!r} does not exist')
        cfg.load_from = args.load_from
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ConfigFlagError('--auto-scale-lr needs `auto_scale_lr.base_batch_size` in '
                                  f'{args.config}')
        cfg.auto_scale_lr.enable = True


def main(argv=None):
    """Build the Runner from the config and train (or only evaluate with --eval-only)."""
    args = parse_args(argv)
    if args.gpu_ids is not None:  # before anything initialises CUDA
        try:
            print_log(select_gpus(args.gpu_ids, args.launcher), logger='current')
        except ConfigFlagError as err:
            sys.exit(f'tools/train.py: error: {err}')
    projects.register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(args.config)
    try:
        apply_aliases(cfg, args)
        if args.amp:
            print_log(apply_amp(cfg), logger='current', level=logging.WARNING)
    except ConfigFlagError as err:
        sys.exit(f'tools/train.py: error: {err}')
    if args.eval_only:
        # Evaluate weights only: a resume target becomes `load_from` (no optimizer state).
        if cfg.get('resume') and not cfg.get('load_from'):
            from mmengine.runner import find_latest_checkpoint
            cfg.load_from = find_latest_checkpoint(cfg.work_dir)
        cfg.resume = False
        if not cfg.get('load_from'):
            sys.exit('tools/train.py: error: --eval-only needs a checkpoint: --load-from CKPT, '
                     '--resume-from CKPT, or --resume with a checkpoint in the work dir')
    prepare_launcher(cfg, args.launcher)

    try:
        runner = build_runner(cfg)
    except ConfigFlagError as err:
        sys.exit(f'tools/train.py: error: {err}')
    if args.eval_only:
        runner.val()  # Runner.val() loads `load_from` itself
    else:
        runner.train()
    finalize_distributed()
    return runner


if __name__ == '__main__':
    main()
