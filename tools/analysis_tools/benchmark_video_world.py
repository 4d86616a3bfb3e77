"""Training throughput and peak memory of video world model configs.

For each config, in its own child process (so each peak is the config's own): build the
model, the optimizer wrapper (with the config's ``accumulative_counts``, ``clip_grad`` and
per-module learning rates) and the train dataloader as ``tools/train.py`` does, run
``--warmup`` untimed then ``--iters`` timed ``model.train_step`` calls (data loading
included, as in training), and report iterations/s, seconds and CPU seconds per iteration,
clips/s and the peak memory: ``torch.cuda.max_memory_allocated`` on CUDA (reset after the
warm-up), the process's peak resident set size (``ru_maxrss``, Python and dataset included)
on the CPU. One ``RESULT {json}`` line per config is printed, then a table.

Usage:
    python tools/analysis_tools/benchmark_video_world.py configs/video_world/bridge_64.py \\
        configs/video_world/kitti_raw.py [--iters 5] [--warmup 1] [--batch-size N] \\
        [--amp] [--device cpu|cuda] [--cfg-options k=v ...]

``--cfg-options`` applies to every config (e.g. ``train_dataloader.batch_size=1`` to fit the
seed-sized config on a small machine).
"""
import argparse
import copy
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

__all__ = ['peak_memory_mib', 'benchmark_config', 'format_table', 'main']


def parse_args(argv=None):
    """Command line (see the module docstring)."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Iterations/s and peak memory of video world '
                                            'model configs')
    p.add_argument('configs', nargs='+')
    p.add_argument('--iters', type=int, default=5, help='timed training iterations')
    p.add_argument('--warmup', type=int, default=1, help='untimed iterations first')
    p.add_argument('--batch-size', type=int, default=None,
                   help='override train_dataloader.batch_size')
    p.add_argument('--amp', action='store_true', help='mixed precision as tools/train.py --amp')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def peak_memory_mib(device: str) -> float:
    """Peak memory in MiB: CUDA allocator peak, or this process's peak RSS on the CPU."""
    import torch
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def benchmark_config(config: str, iters: int = 5, warmup: int = 1,
                     batch_size: int = None, amp: bool = False, device: str = None,
                     cfg_options: dict = None) -> dict:
    """Time ``iters`` training iterations of one config in this process.

    Args:
        config (str): Config path.
        iters (int): Timed iterations (>= 1).
        warmup (int): Untimed iterations before (>= 0).
        batch_size (int, optional): Overrides ``train_dataloader.batch_size``.
        amp (bool): Mixed precision (``apply_amp`` of ``tools/train.py``).
        device (str, optional): ``'cpu'`` / ``'cuda'``; defaults to CUDA when available.
        cfg_options (dict, optional): Config overrides.

    Returns:
        dict: ``config``, ``device``, ``batch_size``, ``frames`` (clip shape ``T x H x W``),
        ``params_m`` (million parameters), ``it_per_s``, ``s_per_iter``,
        ``cpu_s_per_iter`` (process CPU time), ``clips_per_s``, ``peak_mib``, ``loss``
        (last), ``threads``, ``optim_wrapper`` (type).

    Raises:
        ValueError: ``iters < 1`` or ``warmup < 0``.
    """
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import projects
    projects.register_all_modules()
    from projects.registry import MODELS
    if iters < 1 or warmup < 0:
        raise ValueError(f'benchmark_video_world: --iters {iters} must be >= 1 and --warmup '
                         f'{warmup} >= 0')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if batch_size:
        cfg.train_dataloader.batch_size = batch_size
    if amp:
        from projects.common.engine.launch import apply_amp
        print(apply_amp(cfg), flush=True)
    init_default_scope(cfg.get('default_scope', 'projects'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=0)
    it = iter(loader)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    times, cpu_times, loss, shape = [], [], float('nan'), None
    for i in range(warmup + iters):
        if i == warmup and device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0, c0 = time.perf_counter(), time.process_time()
        batch = next_batch()
        shape = tuple(batch['inputs']['frames'][0].shape)
        log_vars = model.train_step(batch, optim_wrapper)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        loss = float(log_vars['loss'])
    s_per_iter = sum(times) / len(times)
    bs = cfg.train_dataloader.batch_size
    return dict(config=config, device=device, batch_size=bs,
                frames=f'{shape[0]}x{shape[2]}x{shape[3]}',
                params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
                it_per_s=round(1.0 / s_per_iter, 4), s_per_iter=round(s_per_iter, 4),
                cpu_s_per_iter=round(sum(cpu_times) / len(cpu_times), 4),
                clips_per_s=round(bs / s_per_iter, 3),
                peak_mib=round(peak_memory_mib(device), 1), loss=round(loss, 5),
                threads=torch.get_num_threads(),
                optim_wrapper=type(optim_wrapper).__name__, iters=iters)


def format_table(rows) -> str:
    """Plain-text table of :func:`benchmark_config` results."""
    head = (f'{"config":<34}{"device":>7}{"batch":>6}{"clip TxHxW":>13}{"params M":>9}'
            f'{"it/s":>8}{"s/it":>8}{"CPU s/it":>9}{"clips/s":>8}{"peak MiB":>10}')
    lines = [head, '-' * len(head)]
    for r in rows:
        lines.append(f'{osp.basename(r["config"]):<34}{r["device"]:>7}{r["batch_size"]:>6}'
                     f'{r["frames"]:>13}{r["params_m"]:>9.2f}{r["it_per_s"]:>8.3f}'
                     f'{r["s_per_iter"]:>8.3f}{r["cpu_s_per_iter"]:>9.3f}'
                     f'{r["clips_per_s"]:>8.2f}{r["peak_mib"]:>10.0f}')
    return '\n'.join(lines)


def main(argv=None):
    """Benchmark every config in a child process and print the table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        res = benchmark_config(args.worker, args.iters, args.warmup, args.batch_size, args.amp,
                               args.device, args.cfg_options)
        print('RESULT ' + json.dumps(res), flush=True)
        return
    for cfg in args.configs:
        if not osp.isfile(cfg):
            raise SystemExit(f'benchmark_video_world: config {cfg!r} does not exist')
    rest = [a for a in argv if a not in args.configs]
    rows = []
    for n, cfg in enumerate(args.configs, 1):
        print(f'[benchmark] {n}/{len(args.configs)} {cfg}: {args.warmup} warm-up + '
              f'{args.iters} timed iterations ...', flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, osp.abspath(__file__), cfg, *rest,
                               '--worker', cfg], cwd=os.getcwd(), capture_output=True,
                              text=True, env=dict(os.environ))
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
        if proc.returncode != 0 or not lines:
            print(proc.stdout[-2000:] + proc.stderr[-4000:])
            raise SystemExit(f'benchmark_video_world: {cfg} failed (exit {proc.returncode})')
        rows.append(json.loads(lines[-1][len('RESULT '):]))
        print(lines[-1], flush=True)
        print(f'[benchmark]   done in {time.perf_counter() - t0:.0f} s', flush=True)
    print(f'\nOMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}, torch threads '
          f'{rows[0]["threads"]}, load average {os.getloadavg()[0]:.1f}; peak memory = '
          + ('torch.cuda.max_memory_allocated' if rows[0]['device'].startswith('cuda')
             else 'peak RSS of the process'))
    print(format_table(rows))


if __name__ == '__main__':
    main()
