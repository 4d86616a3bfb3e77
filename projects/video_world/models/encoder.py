"""Frame encoder: ResNet-style stages (MMDetection's ``ResLayer`` / ``BasicBlock``) and
spatial multi-head self-attention over the lowest-resolution feature map."""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmdet.models.backbones.resnet import BasicBlock
from mmdet.models.layers import ResLayer
from mmengine.model import BaseModule

from projects.registry import MODELS

__all__ = ['sincos_position_2d', 'SpatialSelfAttention', 'VideoFrameEncoder']


def sincos_position_2d(dim: int, height: int, width: int,
                       device: Optional[torch.device] = None) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (Vaswani et al. 2017, applied per axis as in
    MAE / ViT-style 2-D variants): half of the channels encode the row, half the column.

    Args:
        dim (int): Embedding size, a multiple of 4.
        height (int): Rows of the map.
        width (int): Columns of the map.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: ``(height * width, dim)`` float32, row-major over the map.

    Raises:
        ValueError: ``dim`` is not a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f'sincos_position_2d: dim={dim} must be a multiple of 4')
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) /
                             quarter))
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32),
                            indexing='ij')
    out_y = ys.reshape(-1, 1) * omega[None]
    out_x = xs.reshape(-1, 1) * omega[None]
    return torch.cat([out_y.sin(), out_y.cos(), out_x.sin(), out_x.cos()], dim=1)


class SpatialSelfAttention(nn.Module):
    """Pre-norm transformer block over the positions of a feature map.

    ``x + MHSA(LN(x + pos))`` followed by ``x + MLP(LN(x))`` (GELU, ``mlp_ratio`` x), with
    the fixed 2-D sine-cosine position embedding of :func:`sincos_position_2d`.

    Args:
        channels (int): Feature channels ``C`` (a multiple of ``num_heads`` and of 4).
        num_heads (int): Attention heads. Defaults to 4.
        mlp_ratio (float): Hidden size of the MLP relative to ``C``. Defaults to 2.
        dropout (float): Dropout on attention weights and MLP output. Defaults to 0.

    Raises:
        ValueError: ``channels`` is not divisible by ``num_heads``.
    """

    def __init__(self, channels: int, num_heads: int = 4, mlp_ratio: float = 2.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f'SpatialSelfAttention: channels={channels} is not divisible by '
                             f'num_heads={num_heads}')
        self.norm1 = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, num_heads, dropout=dropout,
                                          batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(),
                                 nn.Linear(hidden, channels), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over positions.

        Args:
            x (Tensor): ``(N, C, h, w)``.

        Returns:
            Tensor: ``(N, C, h, w)``.
        """
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, hw, C)
        pos = sincos_position_2d(c, h, w, device=x.device).to(tokens.dtype)
        q = self.norm1(tokens) + pos
        tokens = tokens + self.attn(q, q, self.norm1(tokens), need_weights=False)[0]
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(n, c, h, w)


@MODELS.register_module()
class VideoFrameEncoder(BaseModule):
    """Per-frame encoder: stem, ResNet stages, spatial self-attention, projection to a latent.

    ``stem``: 3x3 conv (stride ``stem_stride``) to ``stage_channels[0]``; stage ``i``: an
    MMDetection ``ResLayer`` of ``blocks_per_stage`` ``BasicBlock``s (He et al. 2016) with
    stride ``strides[i]``; then ``num_attn_layers`` :class:`SpatialSelfAttention` blocks at
    the lowest resolution and a 1x1 conv to ``latent_dim``. The total stride is
    ``stem_stride * prod(strides)``.

    Args:
        in_channels (int): Image channels. Defaults to 3.
        stage_channels (Sequence[int]): Channels per stage. Defaults to (64, 128, 256, 512).
        strides (Sequence[int]): Stride of each stage (same length). Defaults to
            (1, 2, 2, 2).
        stem_stride (int): Stride of the stem conv. Defaults to 2.
        blocks_per_stage (int): BasicBlocks per stage. Defaults to 2 (ResNet-18 layout).
        latent_dim (int): Channels of the latent map. Defaults to 256.
        num_heads (int): Heads of the spatial attention. Defaults to 4.
        num_attn_layers (int): Attention blocks (0 disables). Defaults to 1.
        norm_cfg (dict): Normalisation layers. Defaults to GroupNorm with 8 groups (batch
            statistics of BN differ between a training batch of clips and a test clip).
        with_cp (bool): Gradient checkpointing of the blocks. Defaults to False.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: ``strides`` and ``stage_channels`` differ in length.
    """

    def __init__(self,
                 in_channels: int = 3,
                 stage_channels: Sequence[int] = (64, 128, 256, 512),
                 strides: Sequence[int] = (1, 2, 2, 2),
                 stem_stride: int = 2,
                 blocks_per_stage: int = 2,
                 latent_dim: int = 256,
                 num_heads: int = 4,
                 num_attn_layers: int = 1,
                 norm_cfg: dict = dict(type='GN', num_groups=8),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(strides) != len(stage_channels):
            raise ValueError(f'VideoFrameEncoder: strides {tuple(strides)} and stage_channels '
                             f'{tuple(stage_channels)} must have the same length')
        self.with_cp = with_cp
        self.stride = int(stem_stride * math.prod(strides))
        self.latent_dim = latent_dim
        self.stem = ConvModule(in_channels, stage_channels[0], 3, stride=stem_stride,
                               padding=1, norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'))
        layers = []
        inplanes = stage_channels[0]
        for planes, stride in zip(stage_channels, strides):
            layers.append(ResLayer(BasicBlock, inplanes, planes, blocks_per_stage,
                                   stride=stride, norm_cfg=norm_cfg, with_cp=with_cp))
            inplanes = planes
        self.stages = nn.Sequential(*layers)
        self.attn = nn.ModuleList(SpatialSelfAttention(inplanes, num_heads)
                                  for _ in range(num_attn_layers))
        self.proj = nn.Conv2d(inplanes, latent_dim, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode frames.

        Args:
            frames (Tensor): ``(N, 3, H, W)`` in [-1, 1]; ``H`` and ``W`` divisible by
                :attr:`stride`.

        Returns:
            Tensor: ``(N, latent_dim, H / stride, W / stride)``.

        Raises:
            ValueError: The image size is not divisible by the encoder stride.
        """
        h, w = frames.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f'VideoFrameEncoder: frame size {h}x{w} is not divisible by the '
                             f'encoder stride {self.stride}')
        x = self.stages(self.stem(frames))
        for block in self.attn:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.proj(x)
