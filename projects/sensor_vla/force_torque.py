"""Readers for the real force/torque recordings that feed the sensor VLA's force channel.

UCI Robot Execution Failures (Camarinha-Matos, Lopes, Barata 1996; UCI ML Repository
dataset 138, CC BY 4.0; ``data/force_torque/uci_robot_failures/lp1.data`` .. ``lp5.data``):
each file holds failure episodes of one learning problem, written as

.. code-block:: text

    <label>                       e.g. normal, collision, obstruction, moved, ...
    \\t<Fx>\\t<Fy>\\t<Fz>\\t<Tx>\\t<Ty>\\t<Tz>   15 rows of integer force / torque readings
    ...
    (blank lines between episodes)

"each failure instance is characterized in terms of 15 force/torque samples collected at
regular time intervals starting immediately after failure detection; the total observation
window for each failure instance was of 315 ms" (the dataset's description). The readings are
the sensor's raw integer counts; the dataset gives no unit conversion, so they are used as
they are (the sensor encoder normalises its inputs with batch norm). We place the 15 samples
at ``t_k = k * 315 ms / 15`` (21 ms apart) when resampling.

The screw-driving trace (``data/force_torque/screw_driving/sensor_data.csv``) is read by
:func:`projects.sensor_vla.synthetic.load_force_trace`.
"""
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np

__all__ = ['UCI_AXES', 'UCI_SAMPLES', 'UCI_WINDOW_S', 'UCIFormatError', 'load_uci_episodes',
           'uci_force_trace']

UCI_AXES = ('Fx', 'Fy', 'Fz', 'Tx', 'Ty', 'Tz')
UCI_SAMPLES = 15
UCI_WINDOW_S = 0.315


class UCIFormatError(ValueError):
    """A UCI robot-failure file does not follow the label + 15 x 6 integer rows layout."""


def load_uci_episodes(path: str) -> List[Dict]:
    """Read one UCI robot-execution-failure file.

    Args:
        path (str): An ``lpN.data`` file.

    Returns:
        list[dict]: Episodes in file order, each ``dict(label=str, ft=(15, 6) float32
        [Fx, Fy, Fz, Tx, Ty, Tz] raw counts, line=int)`` (``line``: 1-based line of the label).

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        UCIFormatError: Naming the file and line: readings before any label, a row without
            6 numeric values, an episode without exactly 15 rows, or a file without episodes.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'UCI force/torque file not found: {path}')
    episodes: List[Dict] = []
    cur = None

    def close():
        if cur is not None and len(cur['rows']) != UCI_SAMPLES:
            raise UCIFormatError(
                f'{path}:{cur["line"]}: episode {cur["label"]!r} has {len(cur["rows"])} '
                f'force/torque rows, expected {UCI_SAMPLES}')
        if cur is not None:
            episodes.append(dict(label=cur['label'], line=cur['line'],
                                 ft=np.asarray(cur['rows'], dtype=np.float32)))

    with open(path, encoding='utf-8') as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            if not raw[0].isspace():  # a label line starts a new episode
                close()
                cur = dict(label=raw.strip(), line=n, rows=[])
                continue
            fields = raw.split()
            if cur is None:
                raise UCIFormatError(f'{path}:{n}: force/torque readings before any episode '
                                     f'label')
            try:
                values = [float(v) for v in fields]
            except ValueError:
                raise UCIFormatError(f'{path}:{n}: non-numeric force/torque reading in '
                                     f'{raw.strip()!r} (episode {cur["label"]!r})') from None
            if len(values) != len(UCI_AXES):
                raise UCIFormatError(f'{path}:{n}: {len(values)} values, expected '
                                     f'{len(UCI_AXES)} ({", ".join(UCI_AXES)}) (episode '
                                     f'{cur["label"]!r})')
            if not np.isfinite(values).all():
                raise UCIFormatError(f'{path}:{n}: non-finite reading (episode '
                                     f'{cur["label"]!r})')
            cur['rows'].append(values)
    close()
    if not episodes:
        raise UCIFormatError(f'{path}: no episodes (expected a label line followed by '
                             f'{UCI_SAMPLES} rows of {len(UCI_AXES)} values)')
    return episodes


def uci_force_trace(paths: Sequence[str], rate_hz: float, axis: str = 'Fz') -> np.ndarray:
    """One force channel from UCI episodes: every episode's ``axis`` readings linearly
    resampled from 15 samples over 315 ms to ``rate_hz``, episodes concatenated in order.

    Args:
        paths (Sequence[str]): ``lpN.data`` files, read in the given order.
        rate_hz (float): Output rate in Hz (e.g. 650 for the sensor stream).
        axis (str): One of ``Fx Fy Fz Tx Ty Tz``. Defaults to ``'Fz'``.

    Returns:
        ndarray: ``(N,)`` float32 raw counts, ``N = n_episodes * round(0.315 * rate_hz)``.

    Raises:
        KeyError: On an unknown ``axis``.
        UCIFormatError / FileNotFoundError: From :func:`load_uci_episodes`.
    """
    if axis not in UCI_AXES:
        raise KeyError(f'uci_force_trace: axis must be one of {UCI_AXES}, got {axis!r}')
    col = UCI_AXES.index(axis)
    dt = UCI_WINDOW_S / UCI_SAMPLES
    t_src = np.arange(UCI_SAMPLES) * dt
    n_out = int(round(UCI_WINDOW_S * rate_hz))
    t_out = np.arange(n_out) / rate_hz
    parts = [np.interp(t_out, t_src, ep['ft'][:, col])
             for p in paths for ep in load_uci_episodes(p)]
    return np.concatenate(parts).astype(np.float32)
