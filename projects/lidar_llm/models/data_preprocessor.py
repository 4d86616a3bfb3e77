"""Data preprocessor of the LiDAR-Vision LLM."""
from typing import Dict, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from projects.registry import MODELS

__all__ = ['LidarLLMDataPreprocessor']


@MODELS.register_module()
class LidarLLMDataPreprocessor(BaseDataPreprocessor):
    """Moves a collated batch to the device and shapes its sensor inputs.

    * ``points``: list of ``(N_i, C)`` float32 tensors, kept as a list (voxelised in the model).
    * ``bev``: list of ``(C, H, W)`` (float16 on disk) → stacked float32 ``(B, C, H, W)``.
    * ``imgs``: list of uint8 ``(N_cam, 3, H, W)`` → float ``(B, N_cam, 3, H, W)`` normalised
      with ``mean`` / ``std`` (0..255 scale, RGB).

    Args:
        mean (Sequence[float]): Per-channel image mean. Defaults to ImageNet's.
        std (Sequence[float]): Per-channel image std. Defaults to ImageNet's.

    Raises:
        ValueError: BEV maps or image stacks of different shapes in one batch.
    """

    def __init__(self, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.register_buffer('mean', torch.tensor(mean).view(1, 1, 3, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(1, 1, 3, 1, 1), False)

    def forward(self, data: Dict, training: bool = False) -> Dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        out = {}
        if 'points' in inputs:
            out['points'] = [p.float() for p in inputs['points']]
        for key in ('bev', 'imgs'):
            if key in inputs:
                items = inputs[key]
                shapes = {tuple(t.shape) for t in items}
                if len(shapes) != 1:
                    raise ValueError(f'inputs[{key!r}] of one batch have different shapes '
                                     f'{sorted(shapes)}')
                # float32 before stacking: float16 BEV files cannot be stacked inside the
                # CPU bf16 autocast region that train_step opens (autocast's dtype check)
                out[key] = torch.stack([t.float() for t in items])
        if 'imgs' in out:
            out['imgs'] = (out['imgs'] - self.mean) / self.std
        return dict(inputs=out, data_samples=data.get('data_samples'))
