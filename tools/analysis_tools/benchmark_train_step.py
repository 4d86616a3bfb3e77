"""Benchmark AerialWorld training steps against the previous implementation, side by side.

Builds the model, the train dataset and an AdamW optimizer from a config, loads real
windows, and times ``model.train_step`` for each requested stage (tokenizer / world), for

* ``new``: the current code (world stage with the config's token cache: the codes of the
  frames timed are cached first, the one-off fill time is reported separately);
* ``old``: the implementation of git revision ``--legacy-rev`` (default ``e992577``, the last
  one before the thin-model / token-cache / memory work), loaded from git into a temporary
  module (``git show REV:projects/aerialworld/models/...``) and registered as
  ``LegacyAerialWorld`` / ``LegacyOccVQVAE`` / ``LegacyOccWorldTransformer``; the config's
  ``head.losses`` / ``head.pose_losses`` lists are translated into its ``loss_*`` arguments.

Every (implementation, stage) runs in its own child process so its peak RSS is its own, then
a table with the ratios ``old / new`` (wall time, CPU time of the process, which a shared
machine's load distorts less, and peak memory) is printed, plus one
``RESULT {json}`` line per run (``benchmark_configs.py`` reads those).

Usage:
    python tools/analysis_tools/benchmark_train_step.py configs/finetune_tokyo.py \\
        [--stages tokenizer world] [--iters 2] [--warmup 1] [--batch-size 1] \\
        [--impl new old] [--legacy-rev e992577] [--amp] [--profile] [--device cpu|cuda] \\
        [--cfg-options k=v ...]

Default stages follow the config: both for the two-stage configs (``TrainStageSwitchHook``
or ``train_cfg.switch_iter`` / ``switch_ratio``), only ``model.train_stage`` otherwise. A
tokenizer checkpoint that does not exist yet is skipped with a message (timing does not depend
on the tokenizer weights). Peak memory: the child's peak RSS (``resource.getrusage``; dataset
and Python runtime included) on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA.
"""
import argparse
import copy
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time
import types

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import projects  # noqa: E402,F401
from projects.registry import DATASETS, MODELS  # noqa: E402

LEGACY_REV = 'e992577'
LEGACY_FILES = ('vqvae', 'world_transformer', 'aerialworld')
LEGACY_CLASSES = ('AerialWorld', 'OccVQVAE', 'OccWorldTransformer')
#: head.losses entries -> ``loss_*`` arguments of the legacy model.
LEGACY_LOSS_KEYS = {('token', None): 'loss_token', ('occupancy', 'focal'): 'loss_focal',
                    ('occupancy', 'dice'): 'loss_dice', ('occupancy', 'mm'): 'loss_mean_matching',
                    ('recon', 'ce'): 'loss_recon_ce', ('pose', None): 'loss_pose',
                    ('rot', None): 'loss_rot', ('vel', None): 'loss_vel'}


def parse_args(argv=None):
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description='Benchmark AerialWorld training steps, new vs old')
    p.add_argument('config')
    p.add_argument('--stages', nargs='+', default=None, choices=['tokenizer', 'world', 'joint'],
                   help='stages to time (default: the stages the config trains)')
    p.add_argument('--impl', nargs='+', default=['new', 'old'], choices=['new', 'old'],
                   help='implementations to time (default: both)')
    p.add_argument('--legacy-rev', default=LEGACY_REV, help='git revision of the old code')
    p.add_argument('--iters', type=int, default=2, help='timed iterations per stage')
    p.add_argument('--warmup', type=int, default=1, help='untimed iterations per stage')
    p.add_argument('--batch-size', type=int, default=None)
    p.add_argument('--amp', action='store_true', help='mixed precision like tools/train.py')
    p.add_argument('--profile', action='store_true', help='print a torch.profiler table')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--worker', nargs=2, metavar=('IMPL', 'STAGE'), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_memory_mb(device):
    """Peak memory in MiB (CUDA allocator peak, or the process peak RSS on the CPU)."""
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config_stages(cfg):
    """Stages a config trains: both for a two-stage schedule, else ``model.train_stage``."""
    train_cfg = cfg.get('train_cfg') or {}
    if any(h.get('type') == 'TrainStageSwitchHook' for h in cfg.get('custom_hooks', [])) or \
            'switch_iter' in train_cfg or 'switch_ratio' in train_cfg:
        return ['tokenizer', 'world']
    return [cfg.model.get('train_stage', 'world')]


def load_legacy_models(rev: str) -> None:
    """Register the AerialWorld models of git revision ``rev`` as ``Legacy<Name>``.

    Raises:
        RuntimeError: If git cannot show the files of ``rev`` (not a git checkout, unknown
            revision).
    """
    pkg = f'legacy_aerialworld_{rev}'
    if pkg in sys.modules:
        return
    module = types.ModuleType(pkg)
    module.__path__ = []
    sys.modules[pkg] = module
    for name in LEGACY_FILES:
        path = f'projects/aerialworld/models/{name}.py'
        proc = subprocess.run(['git', 'show', f'{rev}:{path}'], cwd=ROOT, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeError(f'--legacy-rev {rev}: git show {rev}:{path} failed: '
                               f'{proc.stderr.strip()}')
        src = proc.stdout
        for cls in LEGACY_CLASSES:
            src = src.replace(f'@MODELS.register_module()\nclass {cls}(',
                              f"@MODELS.register_module(name='Legacy{cls}')\nclass {cls}(")
        mod = types.ModuleType(f'{pkg}.{name}')
        mod.__package__ = pkg
        sys.modules[mod.__name__] = mod
        exec(compile(src, f'{rev}:{path}', 'exec'), mod.__dict__)


def legacy_model_cfg(model_cfg: dict) -> dict:
    """The legacy ``AerialWorld`` config equivalent to a current model config.

    Raises:
        ValueError: On a ``head.losses`` entry the legacy model has no argument for.
    """
    from projects.aerialworld.models.forecast_head import DEFAULT_HEAD
    cfg = copy.deepcopy(model_cfg)
    cfg['type'] = 'LegacyAerialWorld'
    cfg['tokenizer']['type'] = 'LegacyOccVQVAE'
    cfg['tokenizer'].pop('init_cfg', None)
    # memory option added after the legacy revision (same values and gradients)
    cfg['tokenizer'].pop('checkpoint_frames', None)
    cfg['transformer']['type'] = 'LegacyOccWorldTransformer'
    cfg.pop('token_cache', None)
    # options added after the legacy revision: the legacy world stage decodes every target
    # frame (world_occ_loss_samples=None)
    cfg.pop('world_occ_loss_samples', None)
    head = cfg.pop('head', None) or DEFAULT_HEAD
    for key in set(LEGACY_LOSS_KEYS.values()) - {'loss_token'}:
        cfg[key] = None
    for entry in list(head['losses']) + list(head.get('pose_losses') or ()):
        entry = dict(entry)
        target, name = entry.pop('target'), entry.pop('name', None)
        key = LEGACY_LOSS_KEYS.get((target, name if target in ('occupancy', 'recon') else None))
        if key is None:
            raise ValueError(f'legacy model has no argument for head loss {target}/{name}')
        cfg[key] = entry
    return cfg


def run_worker(args) -> dict:
    """Time one implementation and stage in this process; returns the RESULT record."""
    impl, stage = args.worker
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    model_cfg = cfg.model.to_dict()
    ckpt = model_cfg.get('tokenizer_ckpt')
    if ckpt and not osp.isfile(ckpt):
        print(f'model.tokenizer_ckpt={ckpt!r} does not exist: timing with an untrained '
              'tokenizer')
        model_cfg['tokenizer_ckpt'] = None
    tmp_cache = None
    if impl == 'old':
        load_legacy_models(args.legacy_rev)
        model_cfg = legacy_model_cfg(model_cfg)
    elif model_cfg.get('token_cache'):
        tmp_cache = tempfile.mkdtemp(prefix='aw_token_cache_')
        model_cfg['token_cache'] = dict(model_cfg['token_cache'], cache_dir=tmp_cache)
    if args.amp:
        from projects.common.engine.launch import apply_amp
        print(apply_amp(cfg))
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    torch.manual_seed(0)  # same initial weights and frame choices for both implementations
    model = MODELS.build(model_cfg).to(args.device)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    n = len(dataset)
    model.set_stage(stage)
    model.train()
    batches = [pseudo_collate([dataset[(it * batch_size + k) % n] for k in range(batch_size)])
               for it in range(args.warmup + args.iters)]
    fill = 0.0
    if impl == 'new' and stage == 'world' and getattr(model, 'token_cache', None):
        start = time.perf_counter()
        for batch in batches:  # one-off: encode every frame once
            data = model.data_preprocessor(batch, True)
            model._tokenize_sequence(data['inputs']['occupancy'])
        fill = time.perf_counter() - start
    times, cpu_times = [], []
    for it, batch in enumerate(batches):
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        torch.manual_seed(1000 + it)
        start, cpu_start = time.perf_counter(), time.process_time()
        log_vars = model.train_step(batch, optim_wrapper)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        if it >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    loss = log_vars['loss']
    loss = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
    result = dict(config=args.config, impl=impl, stage=stage,
                  s_per_iter=round(sum(times) / len(times), 3), min_s=round(min(times), 3),
                  cpu_s_per_iter=round(sum(cpu_times) / len(cpu_times), 3),
                  iters=len(times), cache_fill_s=round(fill, 3), loss=round(loss, 4),
                  peak_mib=round(peak_memory_mb(args.device)), device=args.device,
                  grid=list(model.tokenizer.grid_size), batch_size=batch_size,
                  threads=torch.get_num_threads())
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU]
        if args.device.startswith('cuda'):
            activities.append(ProfilerActivity.CUDA)
        with profile(activities=activities) as prof:
            model.train_step(batches[0], optim_wrapper)
        sort = 'self_cuda_time_total' if args.device.startswith('cuda') else \
            'self_cpu_time_total'
        print(prof.key_averages().table(sort_by=sort, row_limit=15))
    if tmp_cache:
        import shutil
        shutil.rmtree(tmp_cache, ignore_errors=True)
    return result


def main(argv=None):
    """Run every (implementation, stage) in a child process and print the comparison."""
    args = parse_args(argv)
    if args.worker:
        print('RESULT ' + json.dumps(run_worker(args)), flush=True)
        return
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    stages = args.stages or config_stages(cfg)
    results = {}
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    for stage in stages:
        for impl in args.impl:
            print(f'[benchmark] {args.config}: {impl} implementation, {stage} stage ...',
                  flush=True)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, osp.abspath(__file__), *forwarded,
                                   '--worker', impl, stage], cwd=ROOT, capture_output=True,
                                  text=True, env=dict(os.environ))
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
            if proc.returncode != 0 or not lines:
                print(proc.stdout[-2000:] + proc.stderr[-4000:])
                raise SystemExit(f'[benchmark] {impl}/{stage} failed (exit {proc.returncode})')
            results[impl, stage] = json.loads(lines[-1][len('RESULT '):])
            if args.profile:  # the child's profiler table
                print('\n'.join(ln for ln in proc.stdout.splitlines()
                                 if not ln.startswith('RESULT ')))
            print(lines[-1], flush=True)
            print(f'[benchmark]   done in {time.perf_counter() - start:.0f} s', flush=True)
    print(f'\n{args.config}: grid {results[next(iter(results))]["grid"]}, batch '
          f'{results[next(iter(results))]["batch_size"]}, device {args.device}, '
          f'torch threads {results[next(iter(results))]["threads"]}')
    print(f'{"stage":10s} {"new s/it":>9s} {"old s/it":>9s} {"speed-up":>9s} '
          f'{"new CPU s":>9s} {"old CPU s":>9s} {"CPU ratio":>9s} '
          f'{"new MiB":>8s} {"old MiB":>8s} {"mem ratio":>9s} {"cache fill s":>12s}')
    for stage in stages:
        new, old = results.get(('new', stage)), results.get(('old', stage))
        cells = [f'{stage:10s}']
        cells.append(f'{new["s_per_iter"]:9.2f}' if new else f'{"-":>9s}')
        cells.append(f'{old["s_per_iter"]:9.2f}' if old else f'{"-":>9s}')
        cells.append(f'{old["s_per_iter"] / new["s_per_iter"]:8.2f}x' if new and old
                     else f'{"-":>9s}')
        cells.append(f'{new["cpu_s_per_iter"]:9.2f}' if new else f'{"-":>9s}')
        cells.append(f'{old["cpu_s_per_iter"]:9.2f}' if old else f'{"-":>9s}')
        cells.append(f'{old["cpu_s_per_iter"] / new["cpu_s_per_iter"]:8.2f}x' if new and old
                     else f'{"-":>9s}')
        cells.append(f'{new["peak_mib"]:8d}' if new else f'{"-":>8s}')
        cells.append(f'{old["peak_mib"]:8d}' if old else f'{"-":>8s}')
        cells.append(f'{old["peak_mib"] / new["peak_mib"]:8.2f}x' if new and old
                     else f'{"-":>9s}')
        cells.append(f'{new["cache_fill_s"]:12.1f}' if new else f'{"-":>12s}')
        print(' '.join(cells))


if __name__ == '__main__':
    main()
