"""Validate seed-format shards and write one index over all of them.

Usage:
    python tools/data_converter/merge_shards.py OUT_INDEX SHARD [SHARD ...] [--root DIR]

Each ``SHARD`` is a path prefix ``<dir>/<name>`` of a pair ``<name>_frames.npz`` +
``<name>_labels.npz``, or a folder (every ``*_labels.npz`` in it with its frames file). Every
shard is checked (keys, shapes, equal N between frames and labels, finite values; errors
name the file) before the index is written. See
:func:`projects.drive_distill.converters.seed_format.merge_shards`.
"""
import argparse
import glob
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from projects.drive_distill.converters.seed_format import merge_shards  # noqa: E402


def expand_shards(specs):
    """Turn prefixes / folders into ``(frames file, labels file)`` pairs (sorted, unique).

    Raises:
        FileNotFoundError: a folder without ``*_labels.npz``.
    """
    pairs = []
    for spec in specs:
        if osp.isdir(spec):
            labels = sorted(glob.glob(osp.join(spec, '*_labels.npz')))
            if not labels:
                raise FileNotFoundError(f'no *_labels.npz shards in {spec}')
            prefixes = [p[:-len('_labels.npz')] for p in labels]
        else:
            prefix = spec
            for suffix in ('_labels.npz', '_frames.npz'):
                if prefix.endswith(suffix):
                    prefix = prefix[:-len(suffix)]
            prefixes = [prefix]
        for prefix in prefixes:
            pair = (prefix + '_frames.npz', prefix + '_labels.npz')
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def main(argv=None):
    """Parse arguments, merge, print the sample count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', help='index file to write (.pkl)')
    parser.add_argument('shards', nargs='+', help='shard prefixes or folders')
    parser.add_argument('--root', help='paths in the index are relative to it '
                        '(default: the index folder)')
    args = parser.parse_args(argv)
    pairs = expand_shards(args.shards)
    num = merge_shards(pairs, args.out, root=args.root)
    print(f'wrote {args.out}: {num} samples from {len(pairs)} shard(s)')
    return num


if __name__ == '__main__':
    main()
