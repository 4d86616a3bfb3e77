"""Training-step benchmark of every AerialWorld config: one table (config, stage, s/iter, peak).

Runs ``benchmark_train_step.py`` once per (config, stage) in its own process, so the peak
memory of one stage does not include another's, with a wall-clock limit per run; a run over
the limit is reported as skipped. Prints a Markdown table.

Usage:
    python tools/analysis_tools/benchmark_configs.py [--configs configs/test_local.py ...] \\
        [--iters 1] [--warmup 1] [--timeout 120] [--device cpu|cuda] [--cfg-options k=v ...]

On a 2-core CPU the full-grid configs (200 x 200 x 121) take about a minute per step at their
full widths; ``--timeout`` keeps the loop bounded.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

AERIALWORLD_CONFIGS = [
    'configs/test_local.py', 'configs/finetune_tokyo.py', 'configs/vqvae_tokyo.py',
    'configs/worldmodel_tokyo.py', 'configs/finetune_6dof.py', 'configs/finetune_nuscenes.py',
    'configs/finetune_nuscenes_6dof.py', 'configs/finetune_uavscenes.py',
]


def parse_args(argv=None):
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description='Benchmark the training step of every config')
    p.add_argument('--configs', nargs='+', default=AERIALWORLD_CONFIGS)
    p.add_argument('--iters', type=int, default=1, help='timed steps per stage')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps per stage')
    p.add_argument('--timeout', type=float, default=120,
                   help='wall-clock seconds per (config, stage) before it is skipped')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda when present)')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='passed to every benchmark_train_step.py run')
    return p.parse_args(argv)


def stages_of(config):
    """Stages ``config`` trains (as ``benchmark_train_step.config_stages``)."""
    from mmengine.config import Config

    from tools.analysis_tools.benchmark_train_step import config_stages
    return config_stages(Config.fromfile(config))


def run_one(config, stage, args):
    """Benchmark one stage in a subprocess.

    Returns:
        dict: the ``RESULT`` record, or ``{'skipped': reason}``.
    """
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_train_step.py'),
           config, '--stages', stage, '--impl', 'new', '--iters', str(args.iters),
           '--warmup', str(args.warmup)]
    if args.device:
        cmd += ['--device', args.device]
    if args.cfg_options:
        cmd += ['--cfg-options', *args.cfg_options]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              timeout=args.timeout, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return dict(skipped=f'> {args.timeout:.0f} s (not finished)')
    results = [json.loads(line[len('RESULT '):]) for line in proc.stdout.splitlines()
               if line.startswith('RESULT ')]
    if proc.returncode != 0 or not results:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ['no output']
        return dict(skipped=f'failed ({proc.returncode}): {tail[0][:120]}')
    results[0]['wall_s'] = round(time.perf_counter() - start, 1)
    return results[0]


def main(argv=None):
    """Benchmark every (config, stage) and print the Markdown table."""
    args = parse_args(argv)
    rows = []
    for config in args.configs:
        for stage in stages_of(config):
            res = run_one(config, stage, args)
            rows.append((config, stage, res))
            print(f'{config} [{stage}]: {res}', file=sys.stderr, flush=True)
    print('| config | stage | grid | s/iter | peak memory (MiB) | process wall (s) |')
    print('|---|---|---|---|---|---|')
    for config, stage, res in rows:
        if 'skipped' in res:
            print(f'| `{osp.basename(config)}` | {stage} | | skipped: {res["skipped"]} | | |')
            continue
        grid = ' x '.join(str(g) for g in res['grid'])
        print(f'| `{osp.basename(config)}` | {stage} | {grid} | {res["s_per_iter"]:.2f} | '
              f'{res["peak_mib"]} | {res["wall_s"]} |')


if __name__ == '__main__':
    main()
