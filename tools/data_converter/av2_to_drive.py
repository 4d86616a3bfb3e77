"""Convert Argoverse 2 motion-forecasting scenarios to drive-distill scene files and an index.

Usage:
    python tools/data_converter/av2_to_drive.py [--src data/av2] [--out data/drive_distill/av2]
        [--split val] [--ego focal|av]

``--src`` is a folder of AV2 scenario folders (``<id>/scenario_<id>.parquet`` +
``<id>/log_map_archive_<id>.json``), e.g. the ``train/`` or ``val/`` folder of the dataset;
run once per split. Windows follow the AV2 protocol: 50 history poses (t0 = step 49) and 60
future poses at 10 Hz. See :mod:`projects.drive_distill.converters.av2`.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from projects.drive_distill.converters.av2 import convert_av2  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None):
    """Parse arguments, convert, print the number of windows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', default=osp.join(ROOT, 'data', 'av2'))
    parser.add_argument('--out', default=osp.join(ROOT, 'data', 'drive_distill', 'av2'))
    parser.add_argument('--split', default='val', help='name of the index (infos_<split>.pkl)')
    parser.add_argument('--ego', choices=('focal', 'av'), default='focal',
                        help='track used as the ego: the focal agent or the AV')
    parser.add_argument('--num-history', type=int, default=50)
    parser.add_argument('--num-future', type=int, default=60)
    args = parser.parse_args(argv)
    num = convert_av2(args.src, args.out, split=args.split, ego=args.ego,
                      num_history=args.num_history, num_future=args.num_future)
    print(f'wrote {args.out}: {args.split}: {num} windows')
    return num


if __name__ == '__main__':
    main()
