"""Fusion of VL context tokens with the sensor encoding."""
from typing import Tuple

import torch
import torch.nn as nn

from projects.registry import MODELS

__all__ = ['SensorFusion', 'FUSION_STRATEGIES']

FUSION_STRATEGIES = ('concat', 'cross_attention', 'gated', 'none')


@MODELS.register_module()
class SensorFusion(nn.Module):
    """Combine the VL backbone's tokens with the sensor encoder's output.

    All strategies return a context sequence for the action expert plus its validity mask:

    - ``'concat'``: the sensor tokens (pooled token + time tokens, see
      :class:`SensorEncoder`) get a learned modality embedding and are appended to the VL
      tokens along the sequence: ``(B, L + 1 + T', D)``.
    - ``'cross_attention'``: every VL token attends to the sensor tokens (multi-head
      cross-attention, pre-norm, residual): ``(B, L, D)``.
    - ``'gated'``: a per-token, per-channel gate ``g = sigmoid(W [v; s])`` from the VL token
      ``v`` and the pooled sensor feature ``s`` mixes in a projection of ``s``:
      ``v + g * P s``: ``(B, L, D)``. The gate bias starts at -2 (sensor mostly closed) so the
      VL path is not disturbed at the start.
    - ``'none'``: the VL tokens alone (the sensor encoder is not run by the model).

    Args:
        strategy (str): One of :data:`FUSION_STRATEGIES`.
        dim (int): Token width D (VL hidden size).
        num_heads (int): Heads of the cross-attention. Defaults to 4.

    Raises:
        ValueError: On an unknown strategy or ``dim % num_heads != 0`` for cross-attention.
    """

    def __init__(self, strategy: str = 'concat', dim: int = 256, num_heads: int = 4):
        super().__init__()
        if strategy not in FUSION_STRATEGIES:
            raise ValueError(f'SensorFusion: strategy={strategy!r} is not one of '
                             f'{FUSION_STRATEGIES} (config field model.fusion.strategy)')
        self.strategy = strategy
        self.dim = dim
        if strategy == 'concat':
            self.modality_embed = nn.Parameter(torch.zeros(2, dim))
            nn.init.normal_(self.modality_embed, std=0.02)
        elif strategy == 'cross_attention':
            if dim % num_heads:
                raise ValueError(f'SensorFusion: dim={dim} not divisible by num_heads='
                                 f'{num_heads}')
            self.norm_q = nn.LayerNorm(dim)
            self.norm_kv = nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        elif strategy == 'gated':
            self.norm_s = nn.LayerNorm(dim)
            self.gate = nn.Linear(2 * dim, dim)
            nn.init.constant_(self.gate.bias, -2.0)
            self.value = nn.Linear(dim, dim)

    @property
    def uses_sensor(self) -> bool:
        """False for ``'none'`` (the model then skips the sensor encoder)."""
        return self.strategy != 'none'

    def forward(self, vl_tokens: torch.Tensor, vl_mask: torch.Tensor, sensor_pooled: torch.Tensor,
                sensor_tokens: torch.Tensor, sensor_mask: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Fuse.

        Args:
            vl_tokens (Tensor): ``(B, L, D)``.
            vl_mask (Tensor): ``(B, L)`` bool, True = valid token.
            sensor_pooled (Tensor): ``(B, D)`` (unused by ``'none'``; may be None there).
            sensor_tokens (Tensor): ``(B, S, D)``.
            sensor_mask (Tensor): ``(B, S)`` bool, True = valid.

        Returns:
            tuple: context ``(B, L', D)`` and its mask ``(B, L')`` (True = valid).
        """
        if self.strategy == 'none':
            return vl_tokens, vl_mask
        if self.strategy == 'concat':
            ctx = torch.cat([vl_tokens + self.modality_embed[0],
                             sensor_tokens.to(vl_tokens.dtype) + self.modality_embed[1]], dim=1)
            return ctx, torch.cat([vl_mask, sensor_mask], dim=1)
        if self.strategy == 'cross_attention':
            kv = self.norm_kv(sensor_tokens.to(vl_tokens.dtype))
            out, _ = self.attn(self.norm_q(vl_tokens), kv, kv, key_padding_mask=~sensor_mask,
                               need_weights=False)
            return vl_tokens + out, vl_mask
        s = self.norm_s(sensor_pooled.to(vl_tokens.dtype)).unsqueeze(1).expand_as(vl_tokens)
        g = torch.sigmoid(self.gate(torch.cat([vl_tokens, s], dim=-1)))
        return vl_tokens + g * self.value(s), vl_mask
