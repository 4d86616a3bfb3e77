"""Packing transform of AerialWorld: numpy window -> model inputs."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from projects.registry import TRANSFORMS

DEFAULT_META_KEYS = ('session', 'frame_indices', 'timestamps', 'sample_idx',
                     'num_history', 'num_future', 'free_label', 'num_classes')


@TRANSFORMS.register_module()
class PackOccupancyInputs(BaseTransform):
    """Pack a loaded window into ``inputs`` + ``data_samples``.

    Output (the AerialWorld data contract)::

        {'inputs': {'occupancy': torch.uint8 (T, X, Y, Z),
                    'poses': torch.float32 (T, 13)},
         'data_samples': BaseDataElement(metainfo={k: results[k]
                                                   for k in meta_keys})}

    Occupancy is not copied (``torch.from_numpy`` shares memory) and stays
    ``uint8``. Extra input keys (for example ``'lidar'`` from
    :class:`LoadLidarSequence`) can be listed in ``keys``; a list of arrays
    becomes a list of tensors.

    Args:
        keys (Sequence[str]): Results keys packed into ``inputs``. Defaults
            to ``('occupancy', 'poses')``.
        meta_keys (Sequence[str]): Results keys copied into the data
            sample's metainfo. Defaults to ``('session', 'frame_indices',
            'timestamps', 'sample_idx', 'num_history', 'num_future',
            'free_label', 'num_classes')``.

    Raises:
        KeyError: A key of ``keys`` or ``meta_keys`` is missing from the
            results (message lists the available keys).
        TypeError: ``occupancy`` is not an integer array.
    """

    def __init__(self,
                 keys: Sequence[str] = ('occupancy', 'poses'),
                 meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.keys = tuple(keys)
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def _to_tensor(value):
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, (list, tuple)):
            return [PackOccupancyInputs._to_tensor(v) for v in value]
        return torch.as_tensor(value)

    def transform(self, results: dict) -> dict:
        """Pack the window.

        Args:
            results (dict): Output of the loading transforms.

        Returns:
            dict: ``{'inputs': dict[str, Tensor | list[Tensor]],
            'data_samples': BaseDataElement}``.
        """
        inputs = {}
        for key in self.keys:
            if key not in results:
                raise KeyError(f'PackOccupancyInputs: `{key}` is missing from '
                               f'the results (keys: {sorted(results)}); '
                               f'is its loading transform in the pipeline?')
            inputs[key] = self._to_tensor(results[key])
        if 'occupancy' in inputs:
            occ = inputs['occupancy']
            if occ.dtype.is_floating_point or occ.dtype.is_complex:
                raise TypeError('PackOccupancyInputs: occupancy must stay '
                                f'integer (uint8), got {occ.dtype}')
            if occ.dtype != torch.uint8:
                inputs['occupancy'] = occ.to(torch.uint8)
        if 'poses' in inputs:
            inputs['poses'] = inputs['poses'].to(torch.float32)
        metainfo = {}
        for key in self.meta_keys:
            if key not in results:
                raise KeyError(f'PackOccupancyInputs: meta key `{key}` is '
                               f'missing from the results (keys: '
                               f'{sorted(results)})')
            metainfo[key] = results[key]
        return dict(
            inputs=inputs, data_samples=BaseDataElement(metainfo=metainfo))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(keys={self.keys}, '
                f'meta_keys={self.meta_keys})')
