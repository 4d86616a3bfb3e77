"""Scene encoders of the drive-distill students (vector, raster, camera → tokens).

Every encoder maps the packed ``inputs`` dict to ``(tokens, mask)``: tokens ``(B, N, D)``
float and a validity mask ``(B, N)`` bool (True = valid) that the trajectory decoder uses as
its key-padding mask.
"""
import math

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from projects.registry import MODELS

__all__ = ['VectorSceneEncoder', 'RasterSceneEncoder', 'CameraBEVEncoder', 'TokenEncoder']


def _mlp(in_dim, dim, out_dim=None):
    return nn.Sequential(nn.Linear(in_dim, dim), nn.LayerNorm(dim), nn.GELU(),
                         nn.Linear(dim, out_dim or dim))


class TokenEncoder(nn.Module):
    """Pre-norm transformer encoder over tokens with optional gradient checkpointing.

    Args:
        dim (int): token width D.
        num_layers (int): layers (0: identity).
        num_heads (int): attention heads.
        ffn_ratio (int): FFN width = ``ffn_ratio * dim``.
        dropout (float): dropout.
        with_cp (bool): checkpoint each layer in training (saves activation memory).
    """

    def __init__(self, dim, num_layers, num_heads=8, ffn_ratio=4, dropout=0.0, with_cp=False):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, num_heads, ffn_ratio * dim, dropout,
                                       activation='gelu', batch_first=True, norm_first=True)
            for _ in range(num_layers))
        self.with_cp = with_cp

    def forward(self, tokens, mask):
        """Args: tokens (B, N, D); mask (B, N) bool valid. Returns (B, N, D)."""
        pad = ~mask
        for layer in self.layers:
            if self.with_cp and self.training and tokens.requires_grad:
                tokens = checkpoint(layer, tokens, None, pad, use_reentrant=False)
            else:
                tokens = layer(tokens, src_key_padding_mask=pad)
        return tokens


def _ensure_one_valid(mask):
    """Mark the first token valid in rows without any valid token (avoids NaN attention)."""
    # branch-free (the same graph for every input, so the student traces for export)
    empty = ~mask.any(-1, keepdim=True)
    first = torch.zeros_like(mask)
    first[..., 0] = True
    return mask | (first & empty)


@MODELS.register_module()
class VectorSceneEncoder(nn.Module):
    """Agent tracks and map polylines → tokens (VectorNet-style, Gao et al. 2020).

    Each agent track (H steps × 10 features) and each map piece (L points × 9 features) is
    embedded point-wise by an MLP (plus a learned step / point-index embedding), max-pooled
    over its valid points into one token, tagged with a token-type embedding and mixed by a
    transformer encoder.

    Inputs: ``agent_feats`` (B, A, H, 10), ``agent_mask`` (B, A, H), ``map_feats``
    (B, P, L, 9), ``map_mask`` (B, P, L).

    Args:
        dim (int): token width.
        num_layers (int): transformer encoder layers.
        num_heads (int): heads.
        agent_dim (int): agent feature size.
        map_dim (int): map feature size.
        max_steps (int): maximum H / L (size of the index embedding).
        dropout (float): dropout of the encoder layers.
        with_cp (bool): gradient checkpointing of the encoder layers.
    """

    def __init__(self, dim=128, num_layers=2, num_heads=4, agent_dim=10, map_dim=9,
                 max_steps=64, dropout=0.0, with_cp=False):
        super().__init__()
        self.agent_mlp = _mlp(agent_dim, dim)
        self.map_mlp = _mlp(map_dim, dim)
        self.step_embed = nn.Embedding(max_steps, dim)
        self.type_embed = nn.Embedding(2, dim)
        self.out_mlp = _mlp(dim, dim)
        self.encoder = TokenEncoder(dim, num_layers, num_heads, dropout=dropout, with_cp=with_cp)

    def _pool(self, feats, mask, mlp):
        x = mlp(feats) + self.step_embed.weight[:feats.shape[-2]]
        x = x.masked_fill(~mask[..., None], float('-inf')).amax(-2)
        valid = mask.any(-1)
        return torch.where(valid[..., None], x, torch.zeros_like(x)), valid

    def forward(self, inputs):
        """Return ``(tokens (B, A + P, D), mask (B, A + P))``."""
        agents, amask = self._pool(inputs['agent_feats'].float(), inputs['agent_mask'].bool(),
                                   self.agent_mlp)
        lanes, lmask = self._pool(inputs['map_feats'].float(), inputs['map_mask'].bool(),
                                  self.map_mlp)
        tokens = torch.cat([agents + self.type_embed.weight[0],
                            lanes + self.type_embed.weight[1]], 1)
        mask = _ensure_one_valid(torch.cat([amask, lmask], 1))
        return self.encoder(self.out_mlp(tokens), mask), mask


@MODELS.register_module()
class RasterSceneEncoder(nn.Module):
    """BEV raster → tokens with an MMDetection ResNet backbone.

    Input ``raster`` (B, C, H, W) uint8 (or float in [0, 1]); the backbone is any
    ``mmdet.ResNet`` config whose ``in_channels`` equals the raster channels; its last output
    (B, C_out, h, w) is projected to ``dim`` with a learned 2-D position embedding.

    Args:
        backbone (dict): backbone config, e.g. ``dict(type='mmdet.ResNet', depth=18,
            in_channels=6, num_stages=3, out_indices=(2,), strides=(1, 2, 2))``.
        backbone_channels (int): channels of the used backbone output.
        dim (int): token width.
        feat_size (tuple[int]): (h, w) of the backbone output (for the position embedding).
        num_layers (int): transformer encoder layers on the tokens.
        num_heads (int): heads.
    """

    def __init__(self, backbone, backbone_channels, dim=128, feat_size=(6, 6), num_layers=1,
                 num_heads=4):
        super().__init__()
        self.backbone = MODELS.build(backbone)
        self.proj = nn.Conv2d(backbone_channels, dim, 1)
        self.pos = nn.Parameter(torch.zeros(1, feat_size[0] * feat_size[1], dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.encoder = TokenEncoder(dim, num_layers, num_heads)

    def forward(self, inputs):
        """Return ``(tokens (B, h*w, D), mask (B, h*w))``.

        Raises:
            ValueError: if the feature map size differs from ``feat_size``.
        """
        x = inputs['raster']
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        feat = self.proj(self.backbone(x)[-1])
        tokens = feat.flatten(2).transpose(1, 2)
        if tokens.shape[1] != self.pos.shape[1]:
            raise ValueError(f'RasterSceneEncoder: backbone output {tuple(feat.shape[-2:])} does '
                             f'not match feat_size ({self.pos.shape[1]} tokens)')
        tokens = tokens + self.pos
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self.encoder(tokens, mask), mask


@MODELS.register_module()
class CameraBEVEncoder(nn.Module):
    """Multi-camera, multi-frame images → BEV tokens.

    Input ``frames`` (B, N_cam, N_frame, H, W, 3) uint8 (the seed format). The frames of one
    camera are stacked on the channel axis (N_frame × 3 = 12 channels for 4 frames) and encoded
    by an ``mmdet.ResNet`` with a 12-channel stem. BEV projection (a simplified lift-splat,
    Philion & Fidler 2020): per camera, the feature map is pooled over image rows with learned
    attention into column features; a depth head predicts a distribution over ``depth_bins``
    per column; every (column, depth) pair is placed at ``d (cos α, sin α)`` where ``α`` is the
    column's azimuth (camera yaw + horizontal field of view, from ``cam_yaws`` /
    ``cam_hfovs`` in degrees) and its features, weighted by the depth probability, are
    scatter-averaged into a (bev_size × bev_size) grid covering ±``bev_range`` metres.
    BEV convolutions, a learned position embedding and a transformer encoder follow.

    Args:
        backbone (dict): ``mmdet.ResNet`` config (``in_channels=12``).
        backbone_channels (int): channels of the last backbone output (2048 for ResNet-50).
        dim (int): token width (d_model).
        cam_yaws (tuple[float]): yaw of each camera (degrees, CCW from forward).
        cam_hfovs (tuple[float]): horizontal field of view of each camera (degrees).
        depth_bins (tuple[float]): (min, max, num) depth bins (metres).
        bev_size (int): BEV grid cells per side.
        bev_range (float): half extent of the BEV grid (metres).
        num_layers (int): transformer encoder layers on the BEV tokens.
        num_heads (int): heads.
        mean (tuple[float]): pixel mean (0..255) per RGB channel.
        std (tuple[float]): pixel std per RGB channel.
        with_cp (bool): gradient checkpointing in the encoder layers.

    Raises:
        ValueError: if the number of cameras does not match ``cam_yaws``.
    """

    def __init__(self, backbone, backbone_channels=2048, dim=768,
                 cam_yaws=(0.0, 55.0, -55.0, 180.0), cam_hfovs=(64.0, 64.0, 64.0, 110.0),
                 depth_bins=(2.0, 60.0, 30), bev_size=16, bev_range=64.0, num_layers=2,
                 num_heads=8, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                 with_cp=False):
        super().__init__()
        self.backbone = MODELS.build(backbone)
        self.neck = nn.Sequential(nn.Conv2d(backbone_channels, dim, 1), nn.GroupNorm(32, dim),
                                  nn.GELU())
        self.row_attn = nn.Conv2d(dim, 1, 1)
        self.depth_head = nn.Linear(dim, int(depth_bins[2]))
        self.bev_conv = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(32, dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(32, dim), nn.GELU())
        self.pos = nn.Parameter(torch.zeros(1, bev_size * bev_size, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.encoder = TokenEncoder(dim, num_layers, num_heads, with_cp=with_cp)
        self.register_buffer('cam_yaws', torch.tensor(cam_yaws).float() * math.pi / 180,
                             persistent=False)
        self.register_buffer('cam_hfovs', torch.tensor(cam_hfovs).float() * math.pi / 180,
                             persistent=False)
        self.register_buffer('depths', torch.linspace(*depth_bins[:2], int(depth_bins[2])),
                             persistent=False)
        self.register_buffer('mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.bev_size = bev_size
        self.bev_range = bev_range
        self.dim = dim
        self.with_cp = with_cp

    def _bev_index(self, width):
        """Flat BEV cell of every (camera, depth, column): (N_cam, D_bins, width) long."""
        col = (torch.arange(width, device=self.depths.device) + 0.5) / width
        az = self.cam_yaws[:, None] + self.cam_hfovs[:, None] * (0.5 - col[None])  # left→right
        x = self.depths[None, :, None] * torch.cos(az)[:, None]
        y = self.depths[None, :, None] * torch.sin(az)[:, None]
        cell = 2 * self.bev_range / self.bev_size
        row = ((self.bev_range - x) / cell).floor().long().clamp(0, self.bev_size - 1)
        colb = ((self.bev_range - y) / cell).floor().long().clamp(0, self.bev_size - 1)
        return row * self.bev_size + colb

    def forward(self, inputs):
        """Return ``(tokens (B, bev_size², D), mask)``."""
        frames = inputs['frames']
        bsz, ncam, nfr, height, width, _ = frames.shape
        if ncam != self.cam_yaws.numel():
            raise ValueError(f'CameraBEVEncoder: {ncam} cameras in the input but cam_yaws has '
                             f'{self.cam_yaws.numel()}')
        x = frames.permute(0, 1, 2, 5, 3, 4).float().reshape(bsz * ncam * nfr, 3, height, width)
        x = ((x - self.mean) / self.std).reshape(bsz * ncam, nfr * 3, height, width)
        feat = self.neck(self.backbone(x)[-1])  # (B*N, D, h, w)
        attn = torch.softmax(self.row_attn(feat), dim=2)
        cols = (feat * attn).sum(2).transpose(1, 2)  # (B*N, w, D)
        depth = torch.softmax(self.depth_head(cols), -1)  # (B*N, w, Db)
        w = cols.shape[1]
        lifted = depth.transpose(1, 2)[..., None] * cols[:, None]  # (B*N, Db, w, D)
        lifted = lifted.reshape(bsz, ncam * depth.shape[-1] * w, self.dim)
        index = self._bev_index(w).reshape(-1)
        bev = feat.new_zeros(bsz, self.bev_size ** 2, self.dim)
        bev.index_add_(1, index, lifted)
        count = torch.bincount(index, minlength=self.bev_size ** 2).clamp_min(1).to(bev.dtype)
        bev = (bev / count[None, :, None]).transpose(1, 2).reshape(
            bsz, self.dim, self.bev_size, self.bev_size)
        tokens = self.bev_conv(bev).flatten(2).transpose(1, 2) + self.pos
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self.encoder(tokens, mask), mask
