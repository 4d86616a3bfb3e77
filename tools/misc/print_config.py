"""Print the fully resolved config: every ``_base_`` merged, ``--cfg-options`` applied.

Usage:
    python tools/misc/print_config.py CONFIG [--cfg-options k=v ...] [--format py|json]
        [--out FILE] [--overwrite]

Shows what a run would actually use (inherited pipelines, grids, hooks, schedules), e.g.
``python tools/misc/print_config.py configs/test_local.py --cfg-options
train_cfg.max_iters=100``. ``--out`` writes the dump to a file (atomically; an existing file
is replaced only with ``--overwrite``).
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from mmengine.config import Config, DictAction  # noqa: E402


def parse_args(argv=None):
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Print the fully resolved config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--format', choices=['py', 'json'], default='py',
                        help="'py': MMEngine's Python dump (default); 'json': JSON")
    parser.add_argument('--out', help='write the dump to this file instead of stdout')
    parser.add_argument('--overwrite', action='store_true', help='allow --out to replace a file')
    return parser.parse_args(argv)


def load_config(path, cfg_options=None):
    """Load ``path`` with every base merged and ``cfg_options`` applied.

    Args:
        path (str): config file.
        cfg_options (dict, optional): ``{'a.b': value}`` overrides (``--cfg-options``).

    Returns:
        mmengine.config.Config: the resolved config.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def dump_config(cfg, fmt='py'):
    """Text of the resolved config.

    Args:
        cfg (Config): the config.
        fmt (str): ``'py'`` (MMEngine's ``Config.pretty_text``) or ``'json'``.

    Returns:
        str: the dump.
    """
    if fmt == 'json':
        return json.dumps(cfg.to_dict(), indent=2, default=str) + '\n'
    return cfg.pretty_text + '\n'


def main(argv=None):
    """Print (or write) the dump; return its text."""
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.cfg_options)
    except FileNotFoundError as err:
        sys.exit(f'print_config: error: {err}')
    text = dump_config(cfg, args.format)
    if args.out:
        from projects.common.utils.io import atomic_write
        if osp.exists(args.out) and not args.overwrite:
            sys.exit(f'print_config: error: {args.out} exists; pass --overwrite to replace it')

        def write(tmp):
            with open(tmp, 'w', encoding='utf-8') as f:
                f.write(text)
        atomic_write(args.out, write)
        print(f'print_config: wrote {args.out}')
    else:
        sys.stdout.write(text)
    return text


if __name__ == '__main__':
    main()
