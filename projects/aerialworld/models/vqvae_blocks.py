"""2-D building blocks of the AerialWorld VQ-VAE (:class:`OccVQVAE`).

Pre-activation residual blocks (GroupNorm or channel LayerNorm, SiLU, 3 x 3 convolutions),
single- or multi-head self-attention over all positions, stride-2 down-sampling and nearest
up-sampling, as in VQGAN (Esser et al., CVPR 2021) and OccWorld (Zheng et al. 2023).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _num_groups(channels: int, max_groups: int = 32) -> int:
    """Largest number of GroupNorm groups ``<= max_groups`` dividing ``channels``."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class ChannelLayerNorm2d(nn.Module):
    """LayerNorm over the channels of every location of a ``(B, C, H, W)`` map.

    Unlike GroupNorm it does not subtract a per-sample spatial mean, so a spatially uniform
    input (an aerial grid that is all roof, or all open ground) keeps its absolute content.
    Its parameters are named and shaped like GroupNorm's (``weight``/``bias`` ``(C,)``).

    Args:
        channels (int): ``C``.
        eps (float): Numerical epsilon. Defaults to 1e-6.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``(B, C, H, W)`` over ``C``; returns the same shape."""
        fmt = (torch.channels_last if not x.is_contiguous()
               and x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
        out = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        # Back to the input's memory format: the permuted view is channels-last in memory, and
        # a following convolution would take oneDNN's channels-last path, whose backward pass
        # is ~3x slower on CPU for NCHW weights (measured 2.3 s vs 0.77 s for the 64 -> 248
        # output convolution of a 200 x 200 grid).
        return out.permute(0, 3, 1, 2).contiguous(memory_format=fmt)


NORMS = ('group', 'layer')


def build_norm2d(kind: str, channels: int) -> nn.Module:
    """Normalisation layer of the tokenizer.

    Args:
        kind (str): ``'group'``: GroupNorm with up to 32 groups (VQGAN / OccWorld);
            ``'layer'``: :class:`ChannelLayerNorm2d` (per-location, keeps uniform inputs).
        channels (int): Channels.

    Returns:
        nn.Module: the layer.

    Raises:
        ValueError: On an unknown ``kind``.
    """
    if kind == 'group':
        return nn.GroupNorm(_num_groups(channels), channels, eps=1e-6)
    if kind == 'layer':
        return ChannelLayerNorm2d(channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ResBlock2d(nn.Module):
    """Pre-activation residual block: (norm, SiLU, 3x3 conv) x 2 + shortcut.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels (a 1x1 shortcut is used when they differ).
        dropout (float): Dropout before the second convolution. Defaults to 0.0.
        norm (str): ``'group'`` or ``'layer'``, see :func:`build_norm2d`. Defaults to 'group'.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0,
                 norm: str = 'group') -> None:
        super().__init__()
        self.norm1 = build_norm2d(norm, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = build_norm2d(norm, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = (nn.Conv2d(in_channels, out_channels, 1)
                         if in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``(B, C_in, H, W)``; returns ``(B, C_out, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttnBlock2d(nn.Module):
    """Spatial self-attention over all ``H * W`` positions (norm, SDPA, residual).

    Args:
        channels (int): Channels ``C`` (must be divisible by ``num_heads``).
        num_heads (int): Attention heads. Defaults to 1.
        norm (str): ``'group'`` or ``'layer'``, see :func:`build_norm2d`. Defaults to 'group'.

    Raises:
        ValueError: If ``channels`` is not divisible by ``num_heads``.
    """

    def __init__(self, channels: int, num_heads: int = 1, norm: str = 'group') -> None:
        super().__init__()
        if channels % num_heads != 0:
            raise ValueError(f'attn_heads={num_heads} must divide the lowest-scale channels '
                             f'{channels}')
        self.num_heads = num_heads
        self.norm = build_norm2d(norm, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply attention to ``(B, C, H, W)``; returns the same shape."""
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        # contiguous (B, heads, HW, C/heads) each: with transposed views SDPA falls back to
        # its math path on CPU (two batched matmuls over a materialised HW x HW matrix,
        # ~1.4x slower forward and backward at 50 x 50 positions than the flash kernel)
        q, k, v = qkv.permute(1, 0, 2, 4, 3).contiguous().unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


def maybe_checkpoint(fn, x: torch.Tensor, enabled: bool, force: bool = False) -> torch.Tensor:
    """``fn(x)``, under activation checkpointing when it saves memory.

    ``fn`` runs under ``torch.utils.checkpoint`` (non-reentrant: its activations are
    recomputed in the backward pass instead of being kept) when ``enabled``, gradient mode is
    on and gradients can flow through it: ``x`` requires grad, or ``force`` (e.g. a module in
    training mode whose input is data, such as integer labels, but whose parameters train).

    Args:
        fn (Callable): ``Tensor -> Tensor``.
        x (torch.Tensor): Its input.
        enabled (bool): Checkpointing requested (``with_cp``).
        force (bool): Checkpoint even when ``x`` does not require grad. Defaults to False.

    Returns:
        torch.Tensor: ``fn(x)`` (same values and gradients either way).
    """
    if enabled and torch.is_grad_enabled() and (force or x.requires_grad):
        return checkpoint(fn, x, use_reentrant=False)
    return fn(x)


class _Sequential(nn.ModuleList):
    """Module list applied in order, optionally with activation checkpointing per block."""

    def forward(self, x: torch.Tensor, with_cp: bool = False) -> torch.Tensor:
        """Run every block; checkpoint each one when ``with_cp`` and gradients are needed."""
        for block in self:
            x = maybe_checkpoint(block, x, with_cp)
        return x


class Downsample2d(nn.Module):
    """Stride-2 3x3 convolution (input sides must be even)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, H / 2, W / 2)``."""
        return self.conv(x)


class Upsample2d(nn.Module):
    """Nearest-neighbour 2x up-sampling followed by a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, 2H, 2W)``."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))
