"""Run a trained sensor VLA over one episode (closed-loop style, ACT temporal ensembling)
and print predicted vs recorded actions.

Example:
    python tools/misc/vla_predict.py configs/sensor_vla/bridge_tiny.py \\
        work_dirs/bridge_tiny/iter_600.pth --index data/sensor_vla/bridge/val.json --episode 0
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from projects.sensor_vla.episodes import EPISODE_DIR  # noqa: E402
from projects.sensor_vla.inference import VLAPolicy  # noqa: E402
from projects.sensor_vla.transforms import LoadVLAStep  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--index', required=True, help='episode index JSON')
    p.add_argument('--episode', default='0', help='episode name or position in the index')
    p.add_argument('--ensemble-k', type=float, default=0.01,
                   help='ACT temporal ensembling constant (negative: off)')
    p.add_argument('--window', type=int, default=650, help='sensor window (samples)')
    p.add_argument('--decimate', type=int, default=1, help='sensor decimation (as trained)')
    a = p.parse_args()
    with open(a.index, encoding='utf-8') as f:
        rows = json.load(f)['data_list']
    row = next((r for r in rows if r['episode'] == a.episode), None)
    if row is None:
        if not a.episode.isdigit() or int(a.episode) >= len(rows):
            raise SystemExit(f'episode {a.episode!r} not in {a.index}')
        row = rows[int(a.episode)]
    policy = VLAPolicy.from_checkpoint(a.config, a.checkpoint,
                                       ensemble_k=None if a.ensemble_k < 0 else a.ensemble_k)
    loader = LoadVLAStep(chunk_size=policy.model.action_head.chunk_size, window=a.window,
                         decimate=a.decimate)
    root = osp.dirname(osp.abspath(a.index))
    gt_all, pred_all = [], []
    print(f'episode {row["episode"]}: "{row["instruction"]}"  (has_sensor={row["has_sensor"]})')
    for t in range(row['num_steps']):
        res = loader(dict(row, episode_dir=osp.join(root, EPISODE_DIR, row['episode']), step=t))
        action = policy.act(row['instruction'], res['images'], res['sensor'])
        gt = res['gt_actions'][0]
        gt_all.append(gt)
        pred_all.append(action)
        print(f'step {t:3d}  pred ' + ' '.join(f'{v:+.4f}' for v in action) +
              '\n          gt   ' + ' '.join(f'{v:+.4f}' for v in gt))
    std = policy.model.action_normalizer.std.numpy()
    std = np.where(std > 1e-12, std, 1.0)
    e = (np.array(pred_all) - np.array(gt_all)) / std
    print(f'normalised MSE of the executed actions over {len(e)} steps: {np.mean(e ** 2):.4f}')


if __name__ == '__main__':
    main()
