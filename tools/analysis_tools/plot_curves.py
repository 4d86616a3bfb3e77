"""Plot loss and metric curves from MMEngine's ``scalars.json`` logs.

Usage:
    python tools/analysis_tools/plot_curves.py WORK_DIR_OR_SCALARS_JSON [...]
        [--keys loss IoU@mean 'baseline/IoU@*' ...] [--out curves.png] [--smooth N]
        [--logy] [--title TEXT] [--list]

``WORK_DIR`` is a run's work dir: every ``<timestamp>/vis_data/scalars.json`` below it is read
in timestamp order, so a resumed run continues its curves (a later log wins where steps
repeat). A ``scalars.json`` path (JSON lines) is read alone. Several inputs are plotted as
separate runs (labelled by their path).

Each line of ``scalars.json`` is one record. Training records carry an ``iter`` key
(LoggerHook writes ``lr``, ``loss``, ... every ``interval`` iterations); validation records
have no ``iter`` and are plotted at their ``step`` (the training iteration of the
validation). Every key gets one subplot with a ``train`` and a ``val`` series where it exists.
Keys may be shell patterns (``IoU@*``); ``--list`` prints the available keys.
"""
import argparse
import fnmatch
import glob
import json
import math
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

DEFAULT_KEYS = ('loss', 'IoU@mean', 'mIoU@mean')

Series = Dict[str, Dict[str, Dict[int, float]]]  # split -> key -> step -> value


def find_scalar_files(path: str) -> List[str]:
    """Return the ``scalars.json`` files of ``path`` (a file, or a work dir), oldest first.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no ``scalars.json``.
    """
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'plot_curves: {path!r} is neither a scalars.json file nor a '
                                'work dir')
    files = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    files += sorted(glob.glob(osp.join(path, 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'plot_curves: no */vis_data/scalars.json under {path!r} '
                                '(has the run logged anything yet?)')
    return files


def load_scalars(files: Sequence[str]) -> Series:
    """Read JSON-lines scalar logs into ``{'train'|'val': {key: {step: value}}}``.

    Records with an ``iter`` key are training records (x = ``iter``), the others validation
    records (x = ``step``). Non-numeric values are ignored; later files win on equal steps.

    Raises:
        ValueError: A line is not valid JSON (the message names file and line).
    """
    data: Series = {'train': OrderedDict(), 'val': OrderedDict()}
    for path in files:
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f'plot_curves: {path}:{lineno} is not JSON: {err}') from err
                split = 'train' if 'iter' in rec else 'val'
                step = rec.get('iter', rec.get('step'))
                if step is None:
                    continue
                for key, value in rec.items():
                    if key in ('iter', 'step', 'epoch') or isinstance(value, bool):
                        continue
                    if isinstance(value, (int, float)):
                        data[split].setdefault(key, {})[int(step)] = float(value)
    return data


def select_keys(data: Series, patterns: Sequence[str]) -> List[str]:
    """Keys present in ``data`` that match ``patterns`` (exact names or shell patterns)."""
    available = list(OrderedDict.fromkeys(list(data['train']) + list(data['val'])))
    keys = []
    for pat in patterns:
        matched = [k for k in available if fnmatch.fnmatchcase(k, pat)] if any(
            ch in pat for ch in '*?[') else ([pat] if pat in available else [])
        keys.extend(k for k in matched if k not in keys)
    return keys


def _smooth(values: List[float], window: int) -> List[float]:
    if window <= 1 or len(values) < 2:
        return values
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_curves(runs: Sequence[Tuple[str, Series]], keys: Sequence[str], out: str,
                smooth: int = 1, logy: bool = False, title: str = None) -> List[str]:
    """Plot ``keys`` of every run into ``out`` (PNG, matplotlib Agg).

    Args:
        runs: ``(label, series)`` pairs from :func:`load_scalars`.
        keys: Keys to plot, one subplot each.
        out: Output image path (format from the extension, e.g. ``.png``).
        smooth: Moving-average window for training series. Defaults to 1 (raw).
        logy: Log-scale y axes. Defaults to False.
        title: Figure title.

    Returns:
        list[str]: The keys that were plotted.

    Raises:
        ValueError: None of ``keys`` exists in any run.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    present = [k for k in keys if any(k in s['train'] or k in s['val'] for _, s in runs)]
    if not present:
        raise ValueError(f'plot_curves: none of the keys {list(keys)} is in the logs')
    cols = min(3, len(present))
    rows = int(math.ceil(len(present) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    multi = len(runs) > 1
    for ax, key in zip(axes.ravel(), present):
        for label, series in runs:
            for split, style in (('train', '-'), ('val', 'o-')):
                points = series[split].get(key)
                if not points:
                    continue
                steps = sorted(points)
                values = [points[s] for s in steps]
                if split == 'train':
                    values = _smooth(values, smooth)
                name = f'{label} {split}' if multi else split
                ax.plot(steps, values, style, label=name, markersize=3, linewidth=1.2)
        ax.set_title(key)
        ax.set_xlabel('iteration')
        if logy:
            ax.set_yscale('log')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(present):]:
        ax.axis('off')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return present


def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Plot loss / metric curves (scalars.json)')
    parser.add_argument('inputs', nargs='+', help='work dir(s) or scalars.json file(s)')
    parser.add_argument('--keys', nargs='+', default=list(DEFAULT_KEYS),
                        help='keys (or shell patterns) to plot; default: loss IoU@mean '
                        'mIoU@mean')
    parser.add_argument('--out', default='curves.png', help='output image (default curves.png)')
    parser.add_argument('--smooth', type=int, default=1,
                        help='moving-average window for training curves')
    parser.add_argument('--logy', action='store_true', help='log-scale y axes')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--list', action='store_true', help='print the available keys and exit')
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point; returns the list of plotted keys."""
    args = parse_args(argv)
    try:
        runs = [(path, load_scalars(find_scalar_files(path))) for path in args.inputs]
    except (FileNotFoundError, ValueError) as err:
        sys.exit(str(err))
    if args.list:
        for label, series in runs:
            print(f'{label}:')
            for split in ('train', 'val'):
                print(f'  {split}: {", ".join(series[split]) or "-"}')
        return []
    keys = []
    for _, series in runs:
        keys.extend(k for k in select_keys(series, args.keys) if k not in keys)
    if not keys:
        sys.exit(f'plot_curves: none of --keys {args.keys} is in the logs; use --list')
    plotted = plot_curves(runs, keys, args.out, args.smooth, args.logy, args.title)
    print(f'wrote {args.out} ({", ".join(plotted)})')
    return plotted


if __name__ == '__main__':
    main()
