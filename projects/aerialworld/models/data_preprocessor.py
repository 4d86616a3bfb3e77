"""Data preprocessor of AerialWorld: batch windows, keep occupancy uint8."""
from typing import Any, List, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from projects.registry import MODELS


def _stack(value: Any, key: str) -> torch.Tensor:
    """Stack a list of per-sample tensors (or pass a batched tensor)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, torch.Tensor) for v in value):
        shapes = {tuple(v.shape) for v in value}
        if len(shapes) != 1:
            raise ValueError(f'OccupancyDataPreprocessor: inputs[{key!r}] '
                             f'have different shapes {sorted(shapes)}; every '
                             f'sample of a batch needs the same grid / T')
        return torch.stack(list(value), dim=0)
    raise TypeError(f'OccupancyDataPreprocessor: inputs[{key!r}] must be a '
                    f'tensor or a non-empty list of tensors, got '
                    f'{type(value).__name__}')


@MODELS.register_module()
class OccupancyDataPreprocessor(BaseDataPreprocessor):
    """Collate AerialWorld windows and move them to the model's device.

    Accepts the output of MMEngine's ``pseudo_collate`` (``inputs`` is a dict
    of lists of per-sample tensors), of ``default_collate`` (already stacked
    tensors) or a plain list of packed samples, and returns::

        {'inputs': {'occupancy': torch.uint8 (B, T, X, Y, Z),
                    'poses': torch.float32 (B, T, 13),
                    ...other keys (lists of tensors stay lists)},
         'data_samples': list[BaseDataElement]  # unchanged}

    on the device. Occupancy stays ``uint8`` (1 byte per voxel on the way to
    the device); the model embeds it. Integer occupancy of another dtype is
    range checked and cast to uint8; floating point occupancy raises.

    Args:
        stack_keys (Sequence[str]): Input keys stacked into a batch tensor.
            Other input keys (e.g. ``'lidar'``, ragged) are moved to the
            device as lists. Defaults to ``('occupancy', 'poses')``.
        non_blocking (bool): Asynchronous host-to-device copies (useful with
            ``pin_memory=True``). Defaults to True.

    Raises:
        KeyError: ``occupancy`` is missing from the inputs.
        TypeError: Occupancy is not an integer tensor.
        ValueError: Samples of a batch have different shapes, or integer
            occupancy does not fit in uint8.
    """

    def __init__(self,
                 stack_keys: Sequence[str] = ('occupancy', 'poses'),
                 non_blocking: bool = True) -> None:
        super().__init__(non_blocking=non_blocking)
        self.stack_keys = tuple(stack_keys)

    @staticmethod
    def _as_batch_dict(data: Union[dict, List[dict]]) -> dict:
        """Turn a list of packed samples into ``{'inputs', 'data_samples'}``."""
        if isinstance(data, dict):
            return data
        if isinstance(data, (list, tuple)):
            inputs = {}
            for sample in data:
                for k, v in sample['inputs'].items():
                    inputs.setdefault(k, []).append(v)
            return dict(
                inputs=inputs,
                data_samples=[s.get('data_samples') for s in data])
        raise TypeError('OccupancyDataPreprocessor expects a dict or a list of '
                        f'dicts, got {type(data).__name__}')

    def forward(self, data: Union[dict, List[dict]],
                training: bool = False) -> dict:
        """Collate and move to the device.

        Args:
            data (dict | list[dict]): A batch from the dataloader.
            training (bool): Unused (no augmentation here).

        Returns:
            dict: ``{'inputs': dict, 'data_samples': list | None}``.
        """
        data = self._as_batch_dict(data)
        raw_inputs = data['inputs']
        if isinstance(raw_inputs, (list, tuple)):  # list of per-sample dicts
            merged = {}
            for sample in raw_inputs:
                for k, v in sample.items():
                    merged.setdefault(k, []).append(v)
            raw_inputs = merged
        if 'occupancy' not in raw_inputs:
            raise KeyError('OccupancyDataPreprocessor: inputs have no '
                           f"'occupancy' (keys: {sorted(raw_inputs)})")
        inputs = {}
        for key, value in raw_inputs.items():
            if key in self.stack_keys:
                inputs[key] = _stack(value, key)
            else:
                inputs[key] = value
        occ = inputs['occupancy']
        if occ.dtype.is_floating_point or occ.dtype.is_complex:
            raise TypeError('OccupancyDataPreprocessor: occupancy must be '
                            f'integer labels (uint8), got {occ.dtype}')
        if occ.dtype != torch.uint8:
            if occ.numel() and (int(occ.min()) < 0 or int(occ.max()) > 255):
                raise ValueError('OccupancyDataPreprocessor: occupancy labels '
                                 'do not fit in uint8')
            inputs['occupancy'] = occ.to(torch.uint8)
        if 'poses' in inputs and isinstance(inputs['poses'], torch.Tensor):
            inputs['poses'] = inputs['poses'].to(torch.float32)
        inputs = self.cast_data(inputs)
        return dict(inputs=inputs, data_samples=data.get('data_samples'))
