"""Convert BridgeData V2 RLDS TFRecords into the sensor VLA episode format.

Reads every ``*.tfrecord*`` file of ``--data-root`` with the shared TensorFlow-free reader
(``projects.common.utils.rlds``, built on the ``tfrecord`` package), drops duplicate episodes
and splits by episode identity (the bundled debug set's val file repeats its train episodes,
so the file names cannot be the split), then writes ``episodes/<name>/`` folders and
``train.json`` / ``val.json`` indexes (format: ``projects/sensor_vla/episodes.py``). Bridge
has no force / OCT sensor: every episode has ``has_sensor=false``.

Example:
    python tools/data_converter/bridge_to_vla.py --data-root data/bridge \\
        --out-dir data/sensor_vla/bridge
"""
import argparse
import os.path as osp
import sys
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from projects.common.utils.rlds import episode_key, read_bridge_split  # noqa: E402
from projects.sensor_vla.episodes import (prepare_output_dir, write_episode,  # noqa: E402
                                          write_index)

VIEWS = ('image_0', 'image_1', 'image_2', 'image_3')


def convert(data_root: str, out_dir: str, val_fraction: float = 0.24,
            overwrite: bool = False) -> dict:
    """Convert; returns ``{'train': n_episodes, 'val': n_episodes}``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        FileNotFoundError: No TFRecord under ``data_root``.
    """
    prepare_output_dir(out_dir, overwrite)
    counts, t0 = {}, time.time()
    for split in ('train', 'val'):
        eps = read_bridge_split(data_root, split, val_fraction)
        rows = []
        for i, ep in enumerate(eps):
            name = f'bridge_{split}_{i:03d}'
            views = [v for v in VIEWS if v in ep['images']]
            images = np.stack([ep['images'][v] for v in views], axis=1)  # (T, V, H, W, 3)
            write_episode(out_dir, name, images, ep['action'], state=ep.get('state'))
            rows.append(dict(episode=name, num_steps=int(ep['num_steps']),
                             instruction=ep['language_instruction'], has_sensor=False,
                             views=views, has_image=[bool(ep['has_image'][v]) for v in views],
                             source=episode_key(ep)))
            done = i + 1
            eta = (time.time() - t0) / done * (len(eps) - done)
            print(f'[bridge_to_vla] {split}: {done}/{len(eps)} episodes, ETA {eta:.0f} s',
                  flush=True)
        write_index(f'{out_dir}/{split}.json', rows,
                    dict(dataset='BridgeData V2 (RLDS debug set)', split=split,
                         action_names=['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper'],
                         action_type='delta', views=list(VIEWS),
                         split_rule=f'by episode identity, val_fraction={val_fraction}'))
        counts[split] = len(rows)
    print(f'[bridge_to_vla] wrote {counts} episodes to {out_dir}')
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data-root', default='data/bridge')
    p.add_argument('--out-dir', default='data/sensor_vla/bridge')
    p.add_argument('--val-fraction', type=float, default=0.24)
    p.add_argument('--overwrite', action='store_true', help='replace a non-empty --out-dir')
    a = p.parse_args()
    convert(a.data_root, a.out_dir, a.val_fraction, a.overwrite)


if __name__ == '__main__':
    main()
