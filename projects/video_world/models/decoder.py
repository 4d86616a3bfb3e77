"""PixelShuffle frame decoder with an optional compositing mask."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule
from mmdet.models.backbones.resnet import BasicBlock
from mmengine.model import BaseModule

from projects.registry import MODELS

__all__ = ['PixelShuffleDecoder']


class _UpStage(nn.Module):
    """3x3 conv to ``4 * out`` channels, PixelShuffle(2) (Shi et al., "Real-Time Single
    Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN", CVPR 2016), norm,
    ReLU, then a residual BasicBlock."""

    def __init__(self, in_ch: int, out_ch: int, norm_cfg: dict) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.post = ConvModule(out_ch, out_ch, 3, padding=1, norm_cfg=norm_cfg,
                               act_cfg=dict(type='ReLU'))
        self.block = BasicBlock(out_ch, out_ch, norm_cfg=norm_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.post(self.shuffle(self.conv(x))))


@MODELS.register_module()
class PixelShuffleDecoder(BaseModule):
    """Latent map to frame: stages of PixelShuffle upsampling, then tanh.

    A 3x3 conv lifts the latent to ``stage_channels[0]`` (plus one residual block); each
    further stage doubles the resolution with a sub-pixel convolution. The output head is a
    3x3 conv followed by ``PixelShuffle(f)`` with ``f = stride / 2 ** (len(stages) - 1)``
    (1 when the stages already reach the image size), giving RGB through ``tanh`` (so frames
    are in [-1, 1]) and, when ``with_mask``, one compositing-mask channel through a sigmoid.

    Args:
        latent_dim (int): Latent channels. Defaults to 256.
        stage_channels (Sequence[int]): Channels per stage. Defaults to (512, 256, 128, 64).
        stride (int): Total upsampling factor (the encoder's stride). Defaults to 16.
        with_mask (bool): Also predict a compositing mask. Defaults to True.
        mask_bias_init (float): Initial bias of the mask logit; ``sigmoid(2) = 0.88``, so an
            untrained compositing decoder starts close to copying the previous frame and
            learns where the scene changes. Defaults to 2.0.
        norm_cfg (dict): Normalisation. Defaults to GroupNorm with 8 groups.
        with_cp (bool): Gradient checkpointing of the stages. Defaults to False.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: ``stride`` is not ``2 ** (len(stage_channels) - 1)`` times a power of 2.
    """

    def __init__(self,
                 latent_dim: int = 256,
                 stage_channels: Sequence[int] = (512, 256, 128, 64),
                 stride: int = 16,
                 with_mask: bool = True,
                 mask_bias_init: float = 2.0,
                 norm_cfg: dict = dict(type='GN', num_groups=8),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        ups = len(stage_channels) - 1
        factor = stride / (2 ** ups)
        if factor < 1 or factor != int(factor) or (int(factor) & (int(factor) - 1)):
            raise ValueError(f'PixelShuffleDecoder: stride={stride} must be '
                             f'2**(len(stage_channels)-1)={2 ** ups} times a power of 2 '
                             f'(stage_channels={tuple(stage_channels)})')
        self.head_factor = int(factor)
        self.with_mask = with_mask
        self.with_cp = with_cp
        self.stem = nn.Sequential(
            ConvModule(latent_dim, stage_channels[0], 3, padding=1, norm_cfg=norm_cfg,
                       act_cfg=dict(type='ReLU')),
            BasicBlock(stage_channels[0], stage_channels[0], norm_cfg=norm_cfg))
        self.stages = nn.ModuleList(
            _UpStage(cin, cout, norm_cfg)
            for cin, cout in zip(stage_channels[:-1], stage_channels[1:]))
        out_ch = (4 if with_mask else 3) * self.head_factor ** 2
        self.head = nn.Sequential(nn.Conv2d(stage_channels[-1], out_ch, 3, padding=1),
                                  nn.PixelShuffle(self.head_factor))
        self.log_stride = int(math.log2(stride))
        if with_mask:
            # PixelShuffle(f) takes channel group c * f^2 .. (c + 1) * f^2 - 1 to channel c.
            f2 = self.head_factor ** 2
            with torch.no_grad():
                self.head[0].bias[3 * f2:4 * f2].fill_(mask_bias_init)

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Decode latents.

        Args:
            z (Tensor): ``(N, latent_dim, h, w)``.

        Returns:
            tuple: ``rgb`` ``(N, 3, h * stride, w * stride)`` in [-1, 1] and ``mask``
            ``(N, 1, H, W)`` in [0, 1] (None without ``with_mask``).
        """
        x = self.stem(z)
        for stage in self.stages:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        out = self.head(x)
        rgb = torch.tanh(out[:, :3])
        mask = torch.sigmoid(out[:, 3:4]) if self.with_mask else None
        return rgb, mask
