"""Action normalisation statistics: computation, storage and the normaliser module.

Statistics are computed once per training set by ``tools/analysis_tools/compute_action_stats.py``
(a JSON file), loaded by the model into buffers of :class:`ActionNormalizer` (so they are
saved in every checkpoint) and applied in reverse at inference.
"""
import json
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from projects.registry import MODELS

__all__ = ['compute_action_stats', 'load_action_stats', 'ActionNormalizer', 'to_delta_actions',
           'STATS_KEYS']

STATS_KEYS = ('mean', 'std', 'min', 'max', 'q01', 'q99')


def to_delta_actions(actions: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """Turn absolute targets into per-step deltas on ``dims`` (first step: delta 0).

    Args:
        actions (ndarray): ``(T, A)`` actions of one episode.
        dims (Sequence[int]): Dimensions holding absolute values (e.g. poses); the others
            (gripper) stay as they are.

    Returns:
        ndarray: ``(T, A)`` float64 copy.
    """
    out = np.asarray(actions, dtype=np.float64).copy()
    d = list(dims)
    if d:
        out[1:, d] = actions[1:, d] - actions[:-1, d]
        out[0, d] = 0.0
    return out


def compute_action_stats(episodes: Sequence[np.ndarray], action_type: str = 'delta',
                         absolute_dims: Sequence[int] = (0, 1, 2, 3, 4, 5),
                         gripper_dims: Sequence[int] = (6,)) -> Dict:
    """Per-dimension statistics of a training set's actions.

    Args:
        episodes (Sequence[ndarray]): One ``(T_i, A)`` array per training episode.
        action_type (str): ``'delta'`` when the actions already are per-step deltas (Bridge,
            the insertion episodes), ``'absolute'`` when ``absolute_dims`` hold absolute
            targets: those are converted with :func:`to_delta_actions` per episode before the
            statistics, and the policy is trained on deltas (stated in the output).
        absolute_dims (Sequence[int]): See ``action_type``.
        gripper_dims (Sequence[int]): Dimensions checked for being binary: a dimension whose
            values all lie in {min, max} is marked ``binary`` and normalised to {-1, 1}.

    Returns:
        dict: ``{'action_type', 'num_episodes', 'num_steps', 'mean', 'std', 'min', 'max',
        'q01', 'q99', 'binary'}`` with per-dimension lists.

    Raises:
        ValueError: On an unknown ``action_type``, no episodes, ragged action widths or
            non-finite values (naming the episode index).
    """
    if action_type not in ('delta', 'absolute'):
        raise ValueError(f"action_type must be 'delta' or 'absolute', got {action_type!r}")
    if not episodes:
        raise ValueError('compute_action_stats: no episodes')
    arrays = []
    for i, ep in enumerate(episodes):
        a = np.asarray(ep, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != np.asarray(episodes[0]).shape[1]:
            raise ValueError(f'compute_action_stats: episode {i} has actions of shape '
                             f'{a.shape}, expected (T, {np.asarray(episodes[0]).shape[1]})')
        if not np.isfinite(a).all():
            raise ValueError(f'compute_action_stats: episode {i} has non-finite actions')
        arrays.append(to_delta_actions(a, absolute_dims) if action_type == 'absolute' else a)
    allv = np.concatenate(arrays, axis=0)
    binary = [False] * allv.shape[1]
    for d in gripper_dims:
        col = allv[:, d]
        lo, hi = col.min(), col.max()
        binary[d] = bool(hi > lo and np.all((col == lo) | (col == hi)))
    return dict(action_type=action_type, num_episodes=len(arrays), num_steps=int(len(allv)),
                mean=allv.mean(0).tolist(), std=allv.std(0).tolist(),
                min=allv.min(0).tolist(), max=allv.max(0).tolist(),
                q01=np.quantile(allv, 0.01, axis=0).tolist(),
                q99=np.quantile(allv, 0.99, axis=0).tolist(), binary=binary)


def load_action_stats(path: str) -> Dict:
    """Read a stats JSON written by ``compute_action_stats.py``.

    Raises:
        FileNotFoundError: With a hint to run the tool.
        KeyError: When a key of :data:`STATS_KEYS` is missing.
    """
    try:
        with open(path, encoding='utf-8') as f:
            stats = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(
            f'action statistics {path} not found; run tools/analysis_tools/'
            f'compute_action_stats.py on the training index first') from None
    for k in STATS_KEYS + ('binary',):
        if k not in stats:
            raise KeyError(f'action statistics {path} lack the key {k!r}')
    return stats


@MODELS.register_module()
class ActionNormalizer(nn.Module):
    """Normalise actions for training and undo it at inference; the statistics are buffers,
    so every checkpoint carries the statistics its policy was trained with.

    Modes: ``'mean_std'``: ``z = (a - mean) / std``; ``'quantile'`` (OpenVLA's bounds_q99):
    ``z = 2 (a - q01) / (q99 - q01) - 1`` clipped to [-1, 1]. Binary dimensions (the gripper)
    always map ``{min, max}`` to ``{-1, 1}``. ``std`` and ranges are floored at ``eps`` so a
    constant dimension normalises to 0 instead of dividing by zero.

    Args:
        stats (dict | str, optional): Stats dict or path of the JSON; None keeps identity
            statistics (mean 0, std 1) until a checkpoint is loaded.
        action_dim (int): A. Defaults to 7.
        mode (str): ``'mean_std'`` or ``'quantile'``. Defaults to 'mean_std'.
        eps (float): Floor of std / range. Defaults to 1e-6.
    """

    def __init__(self, stats=None, action_dim: int = 7, mode: str = 'mean_std',
                 eps: float = 1e-6):
        super().__init__()
        if mode not in ('mean_std', 'quantile'):
            raise ValueError(f"ActionNormalizer: mode must be 'mean_std' or 'quantile', got "
                             f'{mode!r}')
        self.mode = mode
        self.eps = eps
        if isinstance(stats, str):
            stats = load_action_stats(stats)
        for k in STATS_KEYS:
            default = 1.0 if k in ('std', 'max', 'q99') else (
                -1.0 if k in ('min', 'q01') else 0.0)
            v = torch.full((action_dim,), default) if stats is None else torch.tensor(
                stats[k], dtype=torch.float32)
            if v.shape != (action_dim,):
                raise ValueError(f'ActionNormalizer: stats[{k!r}] has {v.numel()} values, '
                                 f'expected action_dim={action_dim}')
            self.register_buffer(k, v.float())
        binary = torch.zeros(action_dim, dtype=torch.bool) if stats is None else torch.tensor(
            stats['binary'], dtype=torch.bool)
        self.register_buffer('binary', binary)

    def _lo_hi(self):
        lo = torch.where(self.binary, self.min, self.q01)
        hi = torch.where(self.binary, self.max, self.q99)
        return lo, torch.maximum(hi - lo, torch.full_like(hi, self.eps))

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Raw ``(..., A)`` -> normalised ``(..., A)``."""
        lo, rng = self._lo_hi()
        bounded = (2 * (actions - lo) / rng - 1)
        if self.mode == 'quantile':
            z = bounded.clamp(-1, 1)
        else:
            z = (actions - self.mean) / self.std.clamp_min(self.eps)
        return torch.where(self.binary, bounded, z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised ``(..., A)`` -> raw ``(..., A)`` (binary dims clipped to [min, max])."""
        lo, rng = self._lo_hi()
        bounded = (z + 1) / 2 * rng + lo
        if self.mode == 'quantile':
            a = bounded
        else:
            a = z * self.std.clamp_min(self.eps) + self.mean
        return torch.where(self.binary, torch.minimum(torch.maximum(bounded, self.min), self.max),
                           a)

    def as_dict(self) -> Dict:
        """The statistics as plain lists (what the stats JSON holds)."""
        d = {k: getattr(self, k).tolist() for k in STATS_KEYS}
        d['binary'] = self.binary.tolist()
        return d

    def __repr__(self):
        return f'ActionNormalizer(mode={self.mode!r}, action_dim={self.mean.numel()})'


def stats_from_checkpoint(state_dict: Dict[str, torch.Tensor],
                          prefix: str = 'action_normalizer.') -> Optional[Dict]:
    """Extract the normaliser buffers from a model state dict (None when absent)."""
    keys = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not all(k in keys for k in STATS_KEYS + ('binary',)):
        return None
    return {k: v.tolist() for k, v in keys.items()}
