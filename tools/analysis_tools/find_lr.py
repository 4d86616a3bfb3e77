"""Learning-rate range test for any config: an exponential LR sweep, a loss-vs-LR plot and a
suggested learning rate.

The range test of Smith, "Cyclical Learning Rates for Training Neural Networks" (WACV 2017,
section 3.3): train for ``--iters`` optimizer steps while the learning rate grows
geometrically from ``--start-lr`` to ``--end-lr``, record the training loss, and read off
where it falls fastest. The model, the optimizer wrapper (optimizer type, weight decay,
``paramwise_cfg`` per-module learning rates, ``clip_grad``) and the train dataloader are
built from the config exactly as ``tools/train.py`` builds them; ``model.train_step`` does
the step. The swept value is the config's base learning rate (``optim_wrapper.optimizer.lr``):
every parameter group keeps its ratio to it, so per-module multipliers survive. Gradient
accumulation is switched off (``accumulative_counts=1``) so each recorded loss follows one
optimizer step at a known LR.

Suggested LR: the loss is smoothed with a bias-corrected exponential moving average
(``--smooth``); the sweep stops early when the smoothed loss exceeds ``--diverge`` times its
minimum or becomes non-finite; the suggestion is the LR where the smoothed loss falls
steepest in ``log10(lr)`` (before its minimum). The LR at the minimum divided by 10 is
printed too (the other common rule of thumb).

Outputs (written atomically; an existing file is never replaced without ``--overwrite``):
``--out`` (default ``work_dirs/<config stem>/find_lr.png``, a log-x plot of the raw and
smoothed loss with the suggestion marked) and the same path with ``.json`` (the curve).

Usage:
    python tools/analysis_tools/find_lr.py configs/video_world/bridge_64.py \\
        [--iters 100] [--start-lr 1e-7] [--end-lr 1] [--out PATH] [--overwrite] \\
        [--device cpu|cuda] [--seed 0] [--cfg-options k=v ...]
"""
import argparse
import copy
import math
import os.path as osp
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

__all__ = ['exponential_lrs', 'smooth_losses', 'suggest_lr', 'lr_sweep', 'plot_curve',
           'main']


def exponential_lrs(start_lr: float, end_lr: float, num: int) -> List[float]:
    """Geometric sequence ``start_lr * (end_lr / start_lr) ** (i / (num - 1))``.

    Args:
        start_lr (float): First learning rate (> 0).
        end_lr (float): Last learning rate (> ``start_lr``).
        num (int): Number of values (>= 2).

    Returns:
        list[float]: ``num`` learning rates.

    Raises:
        ValueError: Non-positive or non-increasing bounds, or ``num < 2``.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f'find_lr: need 0 < --start-lr < --end-lr, got {start_lr}, {end_lr}')
    if num < 2:
        raise ValueError(f'find_lr: --iters must be >= 2, got {num}')
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / (num - 1)) for i in range(num)]


def smooth_losses(losses: Sequence[float], beta: float = 0.9) -> List[float]:
    """Bias-corrected exponential moving average ``m_i / (1 - beta ** (i + 1))`` of
    ``m_i = beta * m_{i-1} + (1 - beta) * loss_i`` (so the first value is the first loss).

    Args:
        losses (Sequence[float]): Raw losses.
        beta (float): Smoothing factor in [0, 1). Defaults to 0.9.

    Returns:
        list[float]: Smoothed losses, same length.
    """
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest_lr(lrs: Sequence[float], smoothed: Sequence[float], skip_start: int = 0
               ) -> Dict[str, float]:
    """Suggested learning rates from a range-test curve.

    Args:
        lrs (Sequence[float]): Learning rates, increasing.
        smoothed (Sequence[float]): Smoothed loss at each LR (finite).
        skip_start (int): Leading points ignored (the EMA's warm-up). Defaults to 0.

    Returns:
        dict: ``steepest`` (LR of the most negative ``d loss / d log10(lr)`` at or before the
        loss minimum, central differences), ``min_loss_lr`` (LR of the minimum),
        ``min_over_10`` (``min_loss_lr / 10``).

    Raises:
        ValueError: Fewer than 3 usable points or mismatched lengths.
    """
    if len(lrs) != len(smoothed):
        raise ValueError(f'suggest_lr: {len(lrs)} LRs but {len(smoothed)} losses')
    xs = [math.log10(v) for v in lrs[skip_start:]]
    ys = list(smoothed[skip_start:])
    if len(xs) < 3:
        raise ValueError(f'suggest_lr: need >= 3 points after skipping {skip_start}, got '
                         f'{len(xs)} (run more --iters or lower --end-lr)')
    i_min = min(range(len(ys)), key=ys.__getitem__)
    stop = max(i_min, 2)
    best_i, best_slope = 1, math.inf
    for i in range(1, min(stop + 1, len(ys) - 1)):
        slope = (ys[i + 1] - ys[i - 1]) / (xs[i + 1] - xs[i - 1])
        if slope < best_slope:
            best_i, best_slope = i, slope
    return dict(steepest=lrs[skip_start + best_i], min_loss_lr=lrs[skip_start + i_min],
                min_over_10=lrs[skip_start + i_min] / 10)


def lr_sweep(step: Callable[[], float], set_lr: Callable[[float], None],
             lrs: Sequence[float], beta: float = 0.9, diverge: float = 4.0,
             log: Optional[Callable[[str], None]] = print) -> Dict[str, list]:
    """Run the range test: for each LR, ``set_lr(lr)`` then ``loss = step()``.

    Stops after the first step whose loss is non-finite or whose smoothed loss exceeds
    ``diverge`` times the smallest smoothed loss so far.

    Args:
        step (Callable[[], float]): One optimizer step; returns its training loss.
        set_lr (Callable[[float], None]): Sets the (base) learning rate.
        lrs (Sequence[float]): Learning rates, in order.
        beta (float): EMA factor of :func:`smooth_losses`. Defaults to 0.9.
        diverge (float): Early-stop ratio (> 1). Defaults to 4.0.
        log (Callable, optional): Progress printer (an ETA after the first steps).

    Returns:
        dict: ``lr``, ``loss``, ``smoothed`` (lists of the steps run) and ``stopped``
        (the reason, ``'end'``, ``'diverged'`` or ``'non-finite'``).
    """
    rec = dict(lr=[], loss=[], smoothed=[], stopped='end')
    best, avg = math.inf, 0.0
    start = time.perf_counter()
    for i, lr in enumerate(lrs):
        set_lr(lr)
        loss = float(step())
        if not math.isfinite(loss):
            rec['stopped'] = 'non-finite'
            if log:
                log(f'[find_lr] step {i + 1}: loss {loss} at lr {lr:.3g}, stopping')
            break
        avg = beta * avg + (1 - beta) * loss
        sm = avg / (1 - beta ** (i + 1))
        rec['lr'].append(lr)
        rec['loss'].append(loss)
        rec['smoothed'].append(sm)
        best = min(best, sm)
        if log and (i in (2, 9) or (i + 1) % 25 == 0):
            per = (time.perf_counter() - start) / (i + 1)
            log(f'[find_lr] step {i + 1}/{len(lrs)} lr {lr:.3g} loss {loss:.4f} '
                f'(smoothed {sm:.4f}); {per:.2f} s/step, ETA {per * (len(lrs) - i - 1):.0f} s')
        if i > 0 and sm > diverge * best:
            rec['stopped'] = 'diverged'
            if log:
                log(f'[find_lr] step {i + 1}: smoothed loss {sm:.4f} > {diverge} x best '
                    f'{best:.4f}, stopping')
            break
    return rec


def plot_curve(path: str, rec: dict, suggestion: Dict[str, float], title: str) -> None:
    """Write the loss-vs-LR plot (log x axis) to ``path`` atomically (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from projects.common.utils.io import atomic_write
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(rec['lr'], rec['loss'], color='0.7', lw=1, label='loss')
    ax.plot(rec['lr'], rec['smoothed'], color='C0', lw=2, label='smoothed loss')
    ax.axvline(suggestion['steepest'], color='C3', ls='--',
               label=f"steepest: {suggestion['steepest']:.2g}")
    ax.axvline(suggestion['min_over_10'], color='C2', ls=':',
               label=f"min / 10: {suggestion['min_over_10']:.2g}")
    ax.set_xscale('log')
    ax.set_xlabel('base learning rate')
    ax.set_ylabel('training loss')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=osp.splitext(path)[1][1:] or 'png'))
    plt.close(fig)


def parse_args(argv=None):
    """Command line (see the module docstring)."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Learning-rate range test of a config')
    p.add_argument('config')
    p.add_argument('--iters', type=int, default=100, help='optimizer steps of the sweep')
    p.add_argument('--start-lr', type=float, default=1e-7)
    p.add_argument('--end-lr', type=float, default=1.0)
    p.add_argument('--smooth', type=float, default=0.9, help='EMA factor of the loss')
    p.add_argument('--diverge', type=float, default=4.0,
                   help='stop when the smoothed loss exceeds this times its minimum')
    p.add_argument('--skip-start', type=int, default=3,
                   help='leading steps ignored by the suggestion')
    p.add_argument('--out', default=None,
                   help='plot path (default work_dirs/<config stem>/find_lr.png); the curve '
                        'goes to the same path with .json')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys, e.g. train_dataloader.batch_size=2')
    return p.parse_args(argv)


def _build(cfg, device: str):
    """Model, optimizer wrapper and an endless batch iterator from a config."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from projects.registry import MODELS
    model = MODELS.build(cfg.model)
    if hasattr(model, 'init_weights'):
        model.init_weights()
    model.to(device).train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if optim_cfg.get('accumulative_counts', 1) != 1:
        print(f"[find_lr] accumulative_counts={optim_cfg['accumulative_counts']} -> 1 (one "
              'recorded loss per optimizer step)')
    optim_cfg['accumulative_counts'] = 1
    if optim_cfg.get('type') == 'AmpOptimWrapper' and device == 'cpu':
        raise ValueError(f'find_lr: {cfg.filename}: optim_wrapper.type=AmpOptimWrapper needs '
                         'CUDA (run with --device cuda or drop --amp from the config)')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=cfg.get('seed'))

    def batches():
        while True:
            yielded = False
            for batch in loader:
                yielded = True
                yield batch
            if not yielded:
                raise ValueError(f'find_lr: {cfg.filename}: train_dataloader yields no batch')
    return model, optim_wrapper, batches()


def main(argv=None) -> Dict[str, float]:
    """Run the range test; print and return the suggestion (see the module docstring).

    Raises:
        SystemExit: An output exists and ``--overwrite`` was not given.
        ValueError: A bad config (optimizer without ``lr``, empty dataloader) or bad bounds.
    """
    args = parse_args(argv)
    out = args.out or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0],
                               'find_lr.png')
    out_json = osp.splitext(out)[0] + '.json'
    existing = [p for p in (out, out_json) if osp.exists(p)]
    if existing and not args.overwrite:
        raise SystemExit(f'find_lr: {", ".join(existing)} exists; pass --overwrite to replace '
                         'it or --out for another path')
    if not osp.isfile(args.config):
        raise SystemExit(f'find_lr: config {args.config!r} does not exist')
    lrs = exponential_lrs(args.start_lr, args.end_lr, args.iters)
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import projects
    projects.register_all_modules()
    from projects.common.utils.io import save_json_atomic

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    base_lr = cfg.get('optim_wrapper', {}).get('optimizer', {}).get('lr')
    if not base_lr:
        raise ValueError(f'find_lr: {args.config}: optim_wrapper.optimizer.lr is missing or '
                         '0 (the sweep scales every parameter group relative to it)')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    torch.manual_seed(args.seed)
    model, optim_wrapper, batches = _build(cfg, device)
    groups = optim_wrapper.optimizer.param_groups
    ratios = [g['lr'] / base_lr for g in groups]
    print(f'[find_lr] {args.config}: {len(groups)} parameter groups (LR ratios to the base '
          f'{base_lr:g}: {sorted(set(round(r, 6) for r in ratios))}), sweeping the base LR '
          f'{args.start_lr:g} -> {args.end_lr:g} over {args.iters} steps on {device}',
          flush=True)

    def set_lr(lr):
        for g, r in zip(groups, ratios):
            g['lr'] = lr * r

    def step():
        log_vars = model.train_step(next(batches), optim_wrapper)
        loss = log_vars['loss']
        return float(loss.detach()) if torch.is_tensor(loss) else float(loss)

    rec = lr_sweep(step, set_lr, lrs, beta=args.smooth, diverge=args.diverge,
                   log=lambda m: print(m, flush=True))
    skip = min(args.skip_start, max(len(rec['lr']) - 3, 0))
    suggestion = suggest_lr(rec['lr'], rec['smoothed'], skip_start=skip)
    title = f'{osp.basename(args.config)}: {len(rec["lr"])} steps ({rec["stopped"]})'
    plot_curve(out, rec, suggestion, title)
    save_json_atomic(out_json, dict(config=args.config, base_lr=base_lr, device=device,
                                    stopped=rec['stopped'], suggestion=suggestion,
                                    lr=rec['lr'], loss=rec['loss'], smoothed=rec['smoothed']))
    print(f'[find_lr] {len(rec["lr"])} steps, stopped: {rec["stopped"]}; min smoothed loss '
          f'{min(rec["smoothed"]):.4f} at lr {suggestion["min_loss_lr"]:.3g}')
    print(f'[find_lr] suggested base LR (steepest descent): {suggestion["steepest"]:.3g}; '
          f'min-loss LR / 10: {suggestion["min_over_10"]:.3g} (config: {base_lr:g})')
    print(f'[find_lr] plot: {out}; curve: {out_json}')
    return suggestion


if __name__ == '__main__':
    main()
