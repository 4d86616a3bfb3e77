"""Convert ScenarioNet nuScenes scenarios to drive-distill scene files and window indices.

Usage:
    python tools/data_converter/scenarionet_to_drive.py [--src data/scenarionet]
        [--out data/drive_distill/scenarionet] [--stride 2] [--val-stride 4]

Splits: the official nuScenes v1.0-mini splits (``infos_train.pkl`` 8 scenes,
``infos_val.pkl`` 2 scenes; the val split is the held-out *test* split of the configs) and,
carved from the official train split, ``infos_train_fit.pkl`` (7 scenes, trained on) and
``infos_train_holdout.pkl`` (scene-0757, checkpoint selection / early stopping). See
:mod:`projects.drive_distill.converters.scenarionet`.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from projects.drive_distill.converters.scenarionet import convert_scenarionet  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None):
    """Parse arguments and run the conversion; print the window counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', default=osp.join(ROOT, 'data', 'scenarionet'))
    parser.add_argument('--out', default=osp.join(ROOT, 'data', 'drive_distill', 'scenarionet'))
    parser.add_argument('--num-history', type=int, default=16)
    parser.add_argument('--num-future', type=int, default=64)
    parser.add_argument('--stride', type=int, default=2, help='train window stride (steps)')
    parser.add_argument('--val-stride', type=int, default=4, help='val window stride (steps)')
    args = parser.parse_args(argv)
    counts = convert_scenarionet(args.src, args.out, num_history=args.num_history,
                                 num_future=args.num_future, stride=args.stride,
                                 val_stride=args.val_stride)
    print(f'wrote {args.out}: ' + ', '.join(f'{k}: {v} windows' for k, v in counts.items()))
    return counts


if __name__ == '__main__':
    main()
