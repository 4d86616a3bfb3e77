"""Train a config with several seeds (separate work dirs) and summarise the metrics.

Usage:
    python tools/analysis_tools/multi_seed.py CONFIG --seeds 0 1 2 [--work-root work_dirs/ms]
        [-- extra train.py args]

Each seed runs ``tools/train.py CONFIG --seed S --work-dir <root>/seed<S>``; the last
validation metrics of each run (MMEngine's ``scalars.json``) are summarised as mean ± std.
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def last_metrics(work_dir):
    """Return the last logged validation metrics (``traj/*`` keys) of a work dir.

    Raises:
        FileNotFoundError: if the run wrote no ``scalars.json``.
    """
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}')
    metrics = {}
    with open(files[-1]) as f:
        for line in f:
            rec = json.loads(line)
            metrics.update({k: v for k, v in rec.items() if '/' in k and 'loss' not in k})
    return metrics


def main(argv=None):
    """Run the seeds, print and return ``{metric: (mean, std)}``."""
    parser = argparse.ArgumentParser(description='multi-seed training')
    parser.add_argument('config')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--work-root', default=None)
    args, extra = parser.parse_known_args(argv)
    root = args.work_root or osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0]
                                      + '_multiseed')
    per_seed = {}
    for seed in args.seeds:
        wd = osp.join(root, f'seed{seed}')
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), args.config, '--seed',
               str(seed), '--work-dir', wd] + [a for a in extra if a != '--']
        subprocess.run(cmd, check=True)
        per_seed[seed] = last_metrics(wd)
    keys = sorted(set.intersection(*(set(m) for m in per_seed.values())))
    summary = {k: (float(np.mean([m[k] for m in per_seed.values()])),
                   float(np.std([m[k] for m in per_seed.values()]))) for k in keys}
    for k, (mean, std) in summary.items():
        print(f'{k}: {mean:.3f} ± {std:.3f} (seeds {args.seeds})')
    return summary


if __name__ == '__main__':
    main()
