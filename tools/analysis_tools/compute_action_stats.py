"""Action normalisation statistics of a sensor VLA training index.

Per dimension: mean, std, min, max, 1 % / 99 % quantiles, and whether the gripper dimension
is binary. ``--action-type absolute`` converts the listed absolute dimensions into per-step
deltas per episode first (the policy then predicts deltas); ``delta`` (Bridge, the insertion
episodes) uses the actions as stored. The JSON is read by ``ActionNormalizer`` (config
``model.action_normalizer.stats``), whose buffers carry it into every checkpoint; inference
denormalises with the checkpoint's copy.

Example:
    python tools/analysis_tools/compute_action_stats.py data/sensor_vla/bridge/train.json \\
        --out data/sensor_vla/bridge/action_stats.json
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from projects.common.utils.io import save_json_atomic  # noqa: E402
from projects.sensor_vla.models.action_norm import compute_action_stats  # noqa: E402
from projects.sensor_vla.episodes import EPISODE_DIR  # noqa: E402


def load_index_actions(index_path: str):
    """Actions ``(T, A)`` of every episode listed in an index (episodes next to it)."""
    with open(index_path, encoding='utf-8') as f:
        index = json.load(f)
    root = osp.dirname(osp.abspath(index_path))
    return [np.load(osp.join(root, EPISODE_DIR, row['episode'], 'actions.npy'))
            for row in index['data_list']]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('index', nargs='+', help='training index JSON file(s)')
    p.add_argument('--out', required=True, help='output JSON')
    p.add_argument('--action-type', choices=['delta', 'absolute'], default='delta')
    p.add_argument('--absolute-dims', type=int, nargs='*', default=[0, 1, 2, 3, 4, 5])
    p.add_argument('--gripper-dims', type=int, nargs='*', default=[6])
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    a = p.parse_args()
    if osp.exists(a.out) and not a.overwrite:
        raise SystemExit(f'{a.out} exists; pass --overwrite to replace it')
    episodes = [ep for idx in a.index for ep in load_index_actions(idx)]
    stats = compute_action_stats(episodes, a.action_type, a.absolute_dims, a.gripper_dims)
    stats['source'] = [osp.relpath(i) for i in a.index]
    save_json_atomic(a.out, stats, indent=1)
    print(f'{stats["num_episodes"]} episodes, {stats["num_steps"]} steps -> {a.out}')
    for k in ('mean', 'std', 'q01', 'q99'):
        print(f'{k:>5}: ' + ' '.join(f'{v:+.4f}' for v in stats[k]))
    print(f'binary: {stats["binary"]}')


if __name__ == '__main__':
    main()
