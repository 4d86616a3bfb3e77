"""The sensor VLA's episode format (written by the converters, read by the pipeline).

::

    <data_root>/
      episodes/<name>/images.npy     (T, V, H, W, 3) uint8 RGB, views in the index's order
      episodes/<name>/actions.npy    (T, 7) float32 (dx, dy, dz, droll, dpitch, dyaw, gripper)
      episodes/<name>/state.npy      (T, S) float32, optional
      episodes/<name>/sensor.npy     (N, C) float16, optional: the sensor stream (C = 1 force
                                     + 1025 A-scan samples) at ``sensor_rate_hz``
      episodes/<name>/sensor_end.npy (T,) int64, optional: index into sensor.npy one past the
                                     last stream sample recorded up to step t
      <split>.json                   index: {"metainfo": {...}, "data_list": [episode rows]}

An index row: ``{"episode": name, "num_steps": T, "instruction": str, "has_sensor": bool,
"views": [...], "source": str}``. Splits are by episode (one index per split).
"""
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional

import numpy as np

from projects.common.utils.io import save_json_atomic, save_npy_atomic

__all__ = ['write_episode', 'write_index', 'prepare_output_dir', 'EPISODE_DIR']

EPISODE_DIR = 'episodes'


def prepare_output_dir(out_dir: str, overwrite: bool) -> None:
    """Create ``out_dir``; refuse to write into a non-empty one unless ``overwrite``.

    Raises:
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is False.
    """
    if osp.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise FileExistsError(f'{out_dir} is not empty; pass --overwrite to replace it')
        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)


def write_episode(data_root: str, name: str, images: np.ndarray, actions: np.ndarray,
                  state: Optional[np.ndarray] = None, sensor: Optional[np.ndarray] = None,
                  sensor_end: Optional[np.ndarray] = None) -> None:
    """Write one episode folder atomically file by file.

    Args:
        images (ndarray): ``(T, V, H, W, 3)`` uint8.
        actions (ndarray): ``(T, A)``.
        state (ndarray, optional): ``(T, S)``.
        sensor (ndarray, optional): ``(N, C)`` stream; needs ``sensor_end`` ``(T,)``.

    Raises:
        ValueError: On inconsistent step counts or a sensor stream without ``sensor_end``.
    """
    t = len(actions)
    if images.ndim != 5 or images.shape[0] != t or images.shape[-1] != 3:
        raise ValueError(f'episode {name}: images must be (T={t}, V, H, W, 3), got '
                         f'{images.shape}')
    if (sensor is None) != (sensor_end is None):
        raise ValueError(f'episode {name}: sensor and sensor_end go together')
    d = osp.join(data_root, EPISODE_DIR, name)
    save_npy_atomic(osp.join(d, 'images.npy'), np.ascontiguousarray(images, dtype=np.uint8))
    save_npy_atomic(osp.join(d, 'actions.npy'), np.asarray(actions, dtype=np.float32))
    if state is not None:
        save_npy_atomic(osp.join(d, 'state.npy'), np.asarray(state, dtype=np.float32))
    if sensor is not None:
        if len(sensor_end) != t:
            raise ValueError(f'episode {name}: sensor_end has {len(sensor_end)} entries for '
                             f'{t} steps')
        save_npy_atomic(osp.join(d, 'sensor.npy'), np.asarray(sensor, dtype=np.float16))
        save_npy_atomic(osp.join(d, 'sensor_end.npy'), np.asarray(sensor_end, dtype=np.int64))


def write_index(path: str, rows: List[Dict], metainfo: Dict) -> None:
    """Write a split index ``{"metainfo", "data_list"}`` atomically."""
    save_json_atomic(path, dict(metainfo=metainfo, data_list=rows), indent=1)
