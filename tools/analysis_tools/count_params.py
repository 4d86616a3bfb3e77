"""Print the parameter count of a config's model.

Usage:
    python tools/analysis_tools/count_params.py CONFIG [CONFIG ...]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from projects.drive_distill.utils import count_parameters  # noqa: E402


def main(argv=None):
    """Print ``total`` / ``trainable`` and the per-module breakdown for each config."""
    parser = argparse.ArgumentParser(description='count model parameters')
    parser.add_argument('configs', nargs='+')
    args = parser.parse_args(argv)
    results = {}
    for cfg in args.configs:
        counts = count_parameters(cfg)
        results[cfg] = counts
        parts = ', '.join(f'{k} {v / 1e6:.2f}M' for k, v in counts.items()
                          if k not in ('total', 'trainable'))
        print(f'{cfg}: {counts["total"] / 1e6:.2f}M parameters '
              f'({counts["trainable"] / 1e6:.2f}M trainable; {parts})')
    return results


if __name__ == '__main__':
    main()
