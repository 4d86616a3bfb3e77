"""Data preprocessor of the video world model: batch clips, enforce frames in [-1, 1]."""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from projects.registry import MODELS

__all__ = ['VideoDataPreprocessor']


@MODELS.register_module()
class VideoDataPreprocessor(BaseDataPreprocessor):
    """Stack clips, convert frames to float32 in [-1, 1] and normalise actions.

    Input (from ``PackVideoInputs`` through ``pseudo_collate``)::

        {'inputs': {'frames': list of uint8 (T, 3, H, W),
                    'actions': list of float32 (T - 1, A),
                    'shuffled_actions': optional list of float32 (T - 1, A)},
         'data_samples': list[VideoDataSample]}

    Output: ``frames`` float32 ``(B, T, 3, H, W)`` in [-1, 1] (``x / 127.5 - 1`` for
    uint8), ``actions`` / ``shuffled_actions`` float32 ``(B, T - 1, A)``, standardised
    with ``(a - action_mean) / action_std`` when given, on the model's device. This is the
    one place frames change value range; the model, the losses and the metrics rely on it.

    Args:
        action_mean (Sequence[float], optional): Per-dimension action mean.
        action_std (Sequence[float], optional): Per-dimension action scale (> 0).
        non_blocking (bool): Asynchronous host-to-device copies. Defaults to True.

    Raises:
        KeyError: ``frames`` or ``actions`` missing.
        TypeError: Frames are neither uint8 nor floating point.
        ValueError: Float frames outside [-1, 1]; shapes that differ between samples;
            ``actions`` whose length is not ``T - 1`` or whose size differs from
            ``action_mean`` / ``action_std``; a non-positive ``action_std``.
    """

    def __init__(self, action_mean: Optional[Sequence[float]] = None,
                 action_std: Optional[Sequence[float]] = None,
                 non_blocking: bool = True) -> None:
        super().__init__(non_blocking=non_blocking)
        if (action_mean is None) != (action_std is None):
            raise ValueError('VideoDataPreprocessor: give both action_mean and action_std, '
                             'or neither')
        if action_std is not None and any(s <= 0 for s in action_std):
            raise ValueError(f'VideoDataPreprocessor: action_std must be > 0, got '
                             f'{list(action_std)}')
        self.action_mean = None if action_mean is None else torch.tensor(action_mean,
                                                                         dtype=torch.float32)
        self.action_std = None if action_std is None else torch.tensor(action_std,
                                                                       dtype=torch.float32)

    @staticmethod
    def _stack(value, key: str) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value
        shapes = {tuple(v.shape) for v in value}
        if len(shapes) != 1:
            raise ValueError(f'VideoDataPreprocessor: inputs[{key!r}] have different shapes '
                             f'{sorted(shapes)} within one batch')
        return torch.stack(list(value))

    @staticmethod
    def to_unit_range(frames: torch.Tensor) -> torch.Tensor:
        """Frames to float32 in [-1, 1].

        Args:
            frames (Tensor): uint8 (0..255) or float already in [-1, 1].

        Returns:
            Tensor: float32 in [-1, 1].

        Raises:
            TypeError: Not uint8 / floating point.
            ValueError: Float values outside [-1, 1] (e.g. [0, 255] or [0, 1] floats are
                not guessed).
        """
        if frames.dtype == torch.uint8:
            return frames.float() / 127.5 - 1.0
        if not frames.dtype.is_floating_point:
            raise TypeError(f'VideoDataPreprocessor: frames must be uint8 or float in [-1, 1], '
                            f'got {frames.dtype}')
        lo, hi = float(frames.min()), float(frames.max())
        if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
            raise ValueError(f'VideoDataPreprocessor: float frames must be in [-1, 1], got '
                             f'[{lo:.3f}, {hi:.3f}]; pass uint8 frames or scale them first')
        return frames.float()

    def _norm_actions(self, actions: torch.Tensor, key: str) -> torch.Tensor:
        actions = actions.float()
        if self.action_mean is None:
            return actions
        if actions.shape[-1] != self.action_mean.numel():
            raise ValueError(f'VideoDataPreprocessor: inputs[{key!r}] have {actions.shape[-1]} '
                             f'dimensions, action_mean/action_std have '
                             f'{self.action_mean.numel()}')
        return (actions - self.action_mean.to(actions)) / self.action_std.to(actions)

    def forward(self, data: Union[dict, List[dict]], training: bool = False) -> dict:
        """Collate, convert and move to the device.

        Args:
            data (dict): A batch from the dataloader (see the class docstring).
            training (bool): Unused (augmentation happens in the pipeline, one draw per
                clip).

        Returns:
            dict: ``{'inputs': {'frames', 'actions'[, 'shuffled_actions']},
            'data_samples'}``.
        """
        if isinstance(data, (list, tuple)):
            data = dict(inputs={k: [d['inputs'][k] for d in data] for k in data[0]['inputs']},
                        data_samples=[d.get('data_samples') for d in data])
        raw = data['inputs']
        for key in ('frames', 'actions'):
            if key not in raw:
                raise KeyError(f'VideoDataPreprocessor: inputs have no {key!r} (keys: '
                               f'{sorted(raw)})')
        frames = self.to_unit_range(self._stack(raw['frames'], 'frames'))
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f'VideoDataPreprocessor: frames must be (B, T, 3, H, W), got '
                             f'{tuple(frames.shape)}')
        inputs = dict(frames=frames)
        for key in ('actions', 'shuffled_actions'):
            if key not in raw:
                continue
            act = self._norm_actions(self._stack(raw[key], key), key)
            if act.dim() != 3 or act.shape[1] != frames.shape[1] - 1:
                raise ValueError(f'VideoDataPreprocessor: inputs[{key!r}] must be '
                                 f'(B, T - 1, A) = (B, {frames.shape[1] - 1}, A), got '
                                 f'{tuple(act.shape)}')
            inputs[key] = act
        inputs = self.cast_data(inputs)
        return dict(inputs=inputs, data_samples=data.get('data_samples'))
