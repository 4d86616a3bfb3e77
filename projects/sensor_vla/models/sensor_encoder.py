"""Sensor encoder for force + OCT A-scan streams."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from projects.registry import MODELS

__all__ = ['SensorEncoder', 'resample_stream']


def resample_stream(stream: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly resample a stream along time.

    Args:
        stream (Tensor): ``(B, T_in, C)``.
        length (int): Target number of time samples T.

    Returns:
        Tensor: ``(B, length, C)``; the input itself when ``T_in == length``.
    """
    if stream.shape[1] == length:
        return stream
    return F.interpolate(stream.transpose(1, 2), size=length, mode='linear',
                         align_corners=True).transpose(1, 2)


class _AttentionPool(nn.Module):
    """Attention pooling: a learned query attends over the time tokens (one head per 64 ch)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.query, std=0.02)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        q = self.query.expand(tokens.shape[0], -1, -1)
        pooled, _ = self.attn(q, tokens, tokens, need_weights=False)
        return self.norm(pooled[:, 0])


@MODELS.register_module()
class SensorEncoder(nn.Module):
    """Encoder of a multichannel sensor stream ``(B, T, C)``: by default 1 s of a 650 Hz stream
    with C = 1026 channels (1 force channel + a 1025-sample OCT A-scan per time sample).

    Architecture (the seed's sensor encoder): ``len(conv_channels)`` x [Conv1d (kernel 3,
    stride 2, over time) + BatchNorm1d + GELU + Dropout] -> ``num_transformer_layers``
    pre-norm transformer encoder layers over the downsampled time tokens (with a learned
    positional embedding) -> attention pooling (one learned query) -> linear projection to
    ``output_dim``, which must equal the VL backbone's hidden size (checked by
    :meth:`check_output_dim`). The time tokens are projected too (``(B, T', output_dim)``) for
    the token-level fusions.

    Absent streams are not encoded: the ``has_sensor`` mask selects the rows that run through
    the network, and absent rows get a learned "no sensor" token (and a single token in the
    token output, the rest masked). So absent rows contribute no gradient to the encoder, and
    the zeros that datasets put in place of a missing stream are never fed as data.

    Args:
        input_channels (int): C. Defaults to 1026.
        temporal_length (int): T; inputs of another length are linearly resampled to it.
            Defaults to 650.
        output_dim (int): Output width (the VL hidden size). Defaults to 3072 (the seed).
        conv_channels (Sequence[int]): Widths of the conv stages. Defaults to
            (64, 128, 256, 256).
        num_transformer_layers (int): Defaults to 2.
        num_heads (int): Heads of the transformer layers and the pooling. Defaults to 4.
        dropout (float): Dropout after each conv stage and inside the transformer. 0.1.
        input_norm (bool): Per-channel LayerNorm-free standardisation of the raw stream
            (each sample's stream minus its mean over time and channels, divided by its std),
            so force in newtons and A-scan intensities share a scale. Defaults to True.

    Raises:
        ValueError: On an empty ``conv_channels`` or a width not divisible by ``num_heads``.
    """

    def __init__(self, input_channels: int = 1026, temporal_length: int = 650,
                 output_dim: int = 3072, conv_channels: Sequence[int] = (64, 128, 256, 256),
                 num_transformer_layers: int = 2, num_heads: int = 4, dropout: float = 0.1,
                 input_norm: bool = True):
        super().__init__()
        if not conv_channels:
            raise ValueError('SensorEncoder: conv_channels must name at least one stage')
        width = conv_channels[-1]
        if width % num_heads:
            raise ValueError(f'SensorEncoder: conv_channels[-1]={width} must be divisible by '
                             f'num_heads={num_heads}')
        self.input_channels = input_channels
        self.temporal_length = temporal_length
        self.output_dim = output_dim
        self.input_norm = input_norm
        stages, c_in = [], input_channels
        for c_out in conv_channels:
            stages += [nn.Conv1d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm1d(c_out),
                       nn.GELU(), nn.Dropout(dropout)]
            c_in = c_out
        self.conv = nn.Sequential(*stages)
        t = temporal_length
        for _ in conv_channels:
            t = (t - 1) // 2 + 1
        self.num_tokens = t
        self.pos_embed = nn.Parameter(torch.zeros(1, t, width))
        nn.init.normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(width, num_heads, 4 * width, dropout,
                                           activation='gelu', batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_transformer_layers,
                                                 enable_nested_tensor=False)
        self.pool = _AttentionPool(width, num_heads)
        self.proj = nn.Linear(width, output_dim)
        self.token_proj = nn.Linear(width, output_dim)
        self.no_sensor_token = nn.Parameter(torch.zeros(output_dim))
        nn.init.normal_(self.no_sensor_token, std=0.02)

    def check_output_dim(self, hidden_size: int) -> None:
        """Raise unless the projection width equals the VL backbone's hidden size.

        Raises:
            ValueError: Naming both sizes and the config field to change.
        """
        if self.output_dim != hidden_size:
            raise ValueError(
                f'SensorEncoder.output_dim={self.output_dim} does not match the VL backbone '
                f'hidden size {hidden_size}; set model.sensor_encoder.output_dim={hidden_size}')

    def encode(self, stream: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode present streams only.

        Args:
            stream (Tensor): ``(N, T_in, C)`` float.

        Returns:
            tuple: pooled ``(N, output_dim)`` and tokens ``(N, T', output_dim)``.

        Raises:
            ValueError: When C differs from ``input_channels``.
        """
        if stream.dim() != 3 or stream.shape[-1] != self.input_channels:
            raise ValueError(f'SensorEncoder expects (B, T, {self.input_channels}) streams, got '
                             f'{tuple(stream.shape)}')
        x = resample_stream(stream.float(), self.temporal_length)
        if self.input_norm:
            mean = x.mean(dim=(1, 2), keepdim=True)
            std = x.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)
            x = (x - mean) / std
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (N, T', W)
        x = self.transformer(x + self.pos_embed)
        return self.proj(self.pool(x)), self.token_proj(x)

    def forward(self, stream: torch.Tensor, has_sensor: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode a batch in which some rows may have no sensor.

        Args:
            stream (Tensor): ``(B, T_in, C)``; rows with ``has_sensor=False`` are ignored.
            has_sensor (Tensor, optional): ``(B,)`` bool; all True when None.

        Returns:
            tuple:
            - pooled ``(B, D)``: encoder output, or the no-sensor token for absent rows.
            - tokens ``(B, 1 + T', D)``: the pooled token followed by the time tokens.
            - token_mask ``(B, 1 + T')`` bool, True = valid (absent rows: only token 0).
        """
        b = stream.shape[0]
        if has_sensor is None:
            has_sensor = torch.ones(b, dtype=torch.bool, device=stream.device)
        has_sensor = has_sensor.to(device=stream.device, dtype=torch.bool)
        d, t = self.output_dim, self.num_tokens
        no_tok = self.no_sensor_token.to(stream.dtype if stream.is_floating_point()
                                         else torch.float32)
        pooled = no_tok.expand(b, d).clone()
        tokens = no_tok.expand(b, 1 + t, d).clone()
        mask = torch.zeros(b, 1 + t, dtype=torch.bool, device=stream.device)
        mask[:, 0] = True
        idx = has_sensor.nonzero(as_tuple=True)[0]
        if idx.numel():
            p, tk = self.encode(stream[idx])  # BatchNorm pools over N x T' values
            pooled = pooled.index_put((idx,), p.to(pooled.dtype))
            full = torch.cat([p.unsqueeze(1), tk], dim=1).to(tokens.dtype)
            tokens = tokens.index_put((idx,), full)
            mask[idx] = True
        return pooled, tokens, mask
