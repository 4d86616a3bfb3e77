"""Shared set-up of ``tools/train.py`` and ``tools/test.py``.

Turns command-line flags into MMEngine config keys, prepares distributed training without
CUDA, and picks the mixed-precision wrapper for the device.
"""
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import DictAction

from .dist import init_cpu_distributed

_DDP_TYPE = 'projects.DeviceAgnosticDDP'

__all__ = ['prepare_launcher', 'finalize_distributed', 'apply_amp', 'default_work_dir',
           'ConfigFlagError', 'set_by_path', 'add_common_args', 'parse_args_set_local_rank',
           'select_gpus', 'add_wandb_backend',
           'build_runner']


class ConfigFlagError(ValueError):
    """A command-line flag cannot be mapped onto the config (the message names both)."""


def default_work_dir(config_path):
    """Return ``work_dirs/<config file stem>`` (MMEngine convention).

    Args:
        config_path (str): path of the config file.

    Returns:
        str: the default work directory.
    """
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_by_path(cfg, dotted_key, value, must_exist=True):
    """Set ``cfg`` key ``a.b.c`` to ``value``.

    Args:
        cfg (Config): the config.
        dotted_key (str): dotted key path.
        value: new value.
        must_exist (bool): raise when a parent of the key is missing.

    Raises:
        ConfigFlagError: when ``must_exist`` and a parent key is missing.
    """
    node = cfg
    parts = dotted_key.split('.')
    for part in parts[:-1]:
        if part not in node or node[part] is None:
            if must_exist:
                raise ConfigFlagError(f'config has no `{dotted_key}` (missing `{part}`)')
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def prepare_launcher(cfg, launcher):
    """Configure distributed execution for ``launcher``.

    For ``launcher='pytorch'`` without CUDA, a gloo process group is created here (before the
    Runner, which then skips MMEngine's CUDA-only ``init_dist``) and the dist backend is set to
    gloo. In all distributed cases the model wrapper defaults to
    :class:`~projects.common.engine.DeviceAgnosticDDP`, which keeps MMEngine's behaviour on CUDA
    and drops ``device_ids`` on the CPU.

    Args:
        cfg (Config): config, modified in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return
    # The Runner looks wrappers up in MMEngine's root registry, so the type carries our scope.
    wrapper = cfg.get('model_wrapper_cfg') or dict(type=_DDP_TYPE)
    if wrapper.get('type', 'MMDistributedDataParallel') in ('MMDistributedDataParallel',
                                                            'DeviceAgnosticDDP', _DDP_TYPE):
        wrapper['type'] = _DDP_TYPE
    cfg.model_wrapper_cfg = wrapper
    if not torch.cuda.is_available():
        env_cfg = cfg.get('env_cfg') or {}
        env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
        cfg.env_cfg = env_cfg
        if launcher == 'pytorch':
            init_cpu_distributed(timeout_s=cfg.env_cfg['dist_cfg'].get('timeout', 1800))


def finalize_distributed():
    """Shut the default process group down cleanly at the end of a successful run.

    Every rank waits at a barrier, then destroys the process group. Without this a rank that
    finishes first exits while its peers still hold open gloo connections, and a peer can be
    aborted (SIGABRT, "connection closed by peer") during interpreter shutdown, which turns a
    successful ``torchrun`` job into a failed one. Does nothing outside distributed runs. Call it
    only after the run succeeded on this rank: a rank that raised never reaches the barrier.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def apply_amp(cfg):
    """Switch the optimizer wrapper to mixed precision for the available device.

    CUDA: MMEngine's ``AmpOptimWrapper`` with dynamic loss scaling (float16, or bfloat16 when
    the config sets ``optim_wrapper.dtype``). CPU: ``CPUBf16OptimWrapper`` (bfloat16 autocast;
    ``AmpOptimWrapper`` asserts a GPU), announced with a message.

    Args:
        cfg (Config): config, modified in place.

    Returns:
        str: a one-line description of what was chosen (for the log).

    Raises:
        ConfigFlagError: if the config has no ``optim_wrapper``.
    """
    if 'optim_wrapper' not in cfg:
        raise ConfigFlagError('--amp needs an `optim_wrapper` in the config')
    optim = cfg.optim_wrapper
    current = optim.get('type', 'OptimWrapper')
    guarded = current.startswith('Guarded') or current == 'CPUBf16OptimWrapper'
    if current not in ('OptimWrapper', 'AmpOptimWrapper', 'GuardedOptimWrapper',
                       'GuardedAmpOptimWrapper', 'CPUBf16OptimWrapper'):
        raise ConfigFlagError(f'--amp: cannot convert optim_wrapper.type={current!r}')
    if torch.cuda.is_available():
        optim.type = 'GuardedAmpOptimWrapper' if guarded else 'AmpOptimWrapper'
        optim.setdefault('loss_scale', 'dynamic')
        return f'AMP: {optim.type} (CUDA autocast, dynamic loss scale)'
    optim.type = 'CPUBf16OptimWrapper'
    optim.pop('loss_scale', None)
    optim.pop('dtype', None)
    return ('AMP: no CUDA device; AmpOptimWrapper needs a GPU, using CPUBf16OptimWrapper '
            '(bfloat16 autocast on the CPU)')


def add_common_args(parser, cfg_options_example):
    """Add the flags every tool shares: ``--cfg-options``, ``--launcher``, ``--local_rank``.

    Args:
        parser (argparse.ArgumentParser): the tool's parser.
        cfg_options_example (str): example shown in the ``--cfg-options`` help.
    """
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help=f'override config keys, e.g. {cfg_options_example}')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_args_set_local_rank(parser, argv=None):
    """Parse ``argv`` and export ``LOCAL_RANK`` (from ``--local_rank``) when torchrun did not.

    Args:
        parser (argparse.ArgumentParser): parser with :func:`add_common_args` applied.
        argv (list[str], optional): arguments; ``sys.argv[1:]`` when None.

    Returns:
        argparse.Namespace: the parsed arguments.
    """
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


# Strategies that shard the model over processes: they need a process group (a launcher).
_SHARDED_STRATEGIES = ('FSDPStrategy', 'DeepSpeedStrategy', 'ColossalAIStrategy')


def build_runner(cfg):
    """Build the Runner named by ``cfg.runner_type`` (our registry), else MMEngine's Runner.

    ``runner_type='FlexibleRunner'`` builds MMEngine's strategy-based runner (found through our
    registry's parent); its ``strategy`` (e.g. ``FSDPStrategy``) replaces
    ``model_wrapper_cfg``. Sharded strategies need ``--launcher pytorch`` (or slurm/mpi), i.e.
    ``tools/dist_train.sh``, because they shard over a process group.

    Args:
        cfg (Config): the complete config.

    Returns:
        mmengine.runner.Runner | mmengine.runner.FlexibleRunner: the runner.

    Raises:
        ConfigFlagError: when ``strategy`` is set without ``runner_type='FlexibleRunner'``,
            or a sharded strategy is used without a distributed launcher.
    """
    from mmengine.runner import Runner

    from projects.registry import RUNNERS
    strategy = cfg.get('strategy')
    if strategy is not None:
        if cfg.get('runner_type') != 'FlexibleRunner':
            raise ConfigFlagError(f"`strategy` (type={strategy.get('type')!r}) is only used by "
                                  "runner_type='FlexibleRunner', got runner_type="
                                  f"{cfg.get('runner_type')!r}")
        kind = strategy.get('type', '')
        kind = kind if isinstance(kind, str) else kind.__name__
        if kind.split('.')[-1] in _SHARDED_STRATEGIES and cfg.get('launcher',
                                                                  'none') == 'none':
            raise ConfigFlagError(f'strategy.type={kind!r} shards the model over processes and '
                                  'needs a distributed launch: tools/dist_train.sh CONFIG '
                                  'NUM_PROCS (or --launcher pytorch/slurm). Its rank-0 '
                                  "checkpoint (state_dict_cfg='full') evaluates in one "
                                  'process with the non-sharded config, e.g. tools/test.py '
                                  'configs/worldmodel_tokyo.py CKPT')
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def select_gpus(gpu_ids, launcher='none'):
    """Restrict the process to the GPUs ``gpu_ids`` (``--gpu-ids``, comma-separated).

    Sets ``CUDA_VISIBLE_DEVICES`` before CUDA is initialised, so ``cuda:0`` is the first
    listed GPU. A single-process run (``launcher='none'``) uses one GPU; more ids need a
    distributed launch (``tools/dist_train.sh CONFIG NUM_GPUS --gpu-ids ...``), where rank ``r``
    uses the ``r``-th listed GPU.

    Args:
        gpu_ids (str): e.g. ``'0'`` or ``'0,2,3'``.
        launcher (str): the job launcher.

    Returns:
        str: a one-line description for the log.

    Raises:
        ConfigFlagError: for ids that are not non-negative integers, repeated ids, several ids
            without a distributed launcher, or ids when CUDA was initialised already.
    """
    parts = [p.strip() for p in str(gpu_ids).split(',') if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ConfigFlagError(f'--gpu-ids: expected comma-separated GPU indices such as 0 or '
                              f'0,1, got {gpu_ids!r}')
    if len(set(parts)) != len(parts):
        raise ConfigFlagError(f'--gpu-ids: repeated GPU index in {gpu_ids!r}')
    if len(parts) > 1 and launcher == 'none':
        raise ConfigFlagError(f'--gpu-ids {gpu_ids}: {len(parts)} GPUs need one process each; '
                              f'start with tools/dist_train.sh CONFIG {len(parts)} '
                              f'--gpu-ids {gpu_ids}')
    if torch.cuda.is_initialized():
        raise ConfigFlagError('--gpu-ids must be applied before CUDA is initialised')
    os.environ['CUDA_VISIBLE_DEVICES'] = ','.join(parts)
    if not torch.cuda.is_available():
        return (f'--gpu-ids {gpu_ids}: CUDA_VISIBLE_DEVICES={",".join(parts)}, but no CUDA '
                'device is available: training runs on the CPU')
    return f'--gpu-ids: CUDA_VISIBLE_DEVICES={",".join(parts)}'


def _wandb_reachable(host='api.wandb.ai', port=443, timeout_s=3.0):
    """Whether a TCP connection to the W&B API can be opened within ``timeout_s``."""
    import socket
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def add_wandb_backend(cfg, project=None, run_name=None, tags=None, reachable=None):
    """Add MMEngine's ``WandbVisBackend`` to ``cfg.visualizer`` (``--wandb`` and its options).

    ``project`` / ``run_name`` / ``tags`` become ``wandb.init`` arguments. Without a network
    connection to the W&B API (and no ``WANDB_MODE`` set by the user) the run is logged in
    offline mode (``wandb sync`` uploads it later), so a training job never waits on or fails
    for W&B.

    Args:
        cfg (Config): config, modified in place.
        project (str, optional): W&B project; defaults to ``'occworld-tokyo'`` (the seed's).
        run_name (str, optional): W&B run name.
        tags (Sequence[str], optional): W&B tags.
        reachable (bool, optional): the network test's result (tests pass it); measured when
            None.

    Returns:
        str: a one-line description for the log.

    Raises:
        ConfigFlagError: when ``wandb`` is not installed or the config has no ``visualizer``.
    """
    import importlib.util
    if importlib.util.find_spec('wandb') is None:
        raise ConfigFlagError('--wandb / --wandb-project / --wandb-run-name / --wandb-tags need '
                              'the wandb package, which is not installed (pip install wandb)')
    vis = cfg.get('visualizer')
    if vis is None:
        raise ConfigFlagError('--wandb: the config has no `visualizer`')
    init_kwargs = dict(project=project or 'occworld-tokyo')
    if run_name:
        init_kwargs['name'] = run_name
    if tags:
        init_kwargs['tags'] = list(tags)
    if os.environ.get('WANDB_MODE'):
        mode = f"WANDB_MODE={os.environ['WANDB_MODE']} (from the environment)"
    else:
        if reachable is None:
            reachable = _wandb_reachable()
        if not reachable:
            init_kwargs['mode'] = 'offline'
        mode = 'online' if reachable else 'offline (api.wandb.ai not reachable; upload later ' \
            'with `wandb sync` on the run folder)'
    backends = [b for b in vis.get('vis_backends', []) if b.get('type') != 'WandbVisBackend']
    backends.append(dict(type='WandbVisBackend', init_kwargs=init_kwargs))
    vis.vis_backends = backends
    return f"W&B: project {init_kwargs['project']!r}, {mode}"
