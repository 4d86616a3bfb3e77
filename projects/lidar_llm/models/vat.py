"""View-Aware Transformers (VAT) of LiDAR-LLM (Yang et al., arXiv:2312.14074, Sec. 3.2).

A VAT turns a dense sensor feature map into a fixed number of query tokens for the LLM. Its
queries are split into ``num_views`` groups, each tagged with a learned *view embedding*; the
feature tokens carry the view embedding of the sector they lie in (LiDAR: 60° azimuth sectors
of the BEV grid; cameras: the camera id), so every query knows which part of the scene it
summarises. With ``view_masked=True`` a query group cross-attends only to the tokens of its
own view, which makes the per-view summaries explicit.

Conventions: ego / LiDAR frame x forward, y left, z up; azimuth ``θ = atan2(y, x)`` (rad,
counter-clockwise from forward). View ``k`` (k = 0..5) covers ``θ ∈ [60k - 30, 60k + 30)``
degrees: 0 front, 1 front-left, 2 back-left, 3 back, 4 back-right, 5 front-right
(``VIEW_NAMES``).
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from projects.registry import MODELS

__all__ = ['VATBlock', 'VATLiDAR', 'VATVision', 'SensorTokenProjector', 'VIEW_NAMES',
           'bev_view_ids', 'bev_cell_centres']

VIEW_NAMES = ('front', 'front-left', 'back-left', 'back', 'back-right', 'front-right')


def bev_cell_centres(height: int, width: int, bev_range: Sequence[float]) -> torch.Tensor:
    """Metric centres of the cells of a BEV map.

    The BEV map follows mmdet3d's ``PointPillarsScatter`` layout: row index ``i`` runs along
    y (``y = y0 + (i + 0.5) * (y1 - y0) / H``), column ``j`` along x.

    Args:
        height (int): H (cells along y).
        width (int): W (cells along x).
        bev_range (Sequence[float]): ``(x0, y0, x1, y1)`` in metres.

    Returns:
        torch.Tensor: float32 (H, W, 2) cell centres ``(x, y)`` in metres.
    """
    x0, y0, x1, y1 = [float(v) for v in bev_range]
    xs = x0 + (torch.arange(width, dtype=torch.float32) + 0.5) * (x1 - x0) / width
    ys = y0 + (torch.arange(height, dtype=torch.float32) + 0.5) * (y1 - y0) / height
    yy, xx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([xx, yy], dim=-1)


def bev_view_ids(xy: torch.Tensor, num_views: int = 6) -> torch.Tensor:
    """Azimuth sector of BEV positions (see the module docstring for the convention).

    Args:
        xy (torch.Tensor): (..., 2) positions ``(x, y)`` in metres (x forward, y left).
        num_views (int): Number of equal sectors; sector 0 is centred on +x. Defaults to 6.

    Returns:
        torch.Tensor: int64 (...) view ids in ``[0, num_views)``.
    """
    width = 2 * math.pi / num_views
    theta = torch.atan2(xy[..., 1], xy[..., 0])
    return torch.floor(torch.remainder(theta + width / 2, 2 * math.pi) / width).long() \
        .clamp_(0, num_views - 1)


class VATBlock(nn.Module):
    """One VAT layer: pre-norm self-attention → cross-attention to feature tokens → MLP.

    Args:
        d_model (int): Token width.
        n_heads (int): Attention heads (``d_model % n_heads == 0``).
        mlp_ratio (float): MLP hidden width / ``d_model``. Defaults to 4 (GELU MLP).
        dropout (float): Dropout on attention weights and the MLP. Defaults to 0.

    Shapes:
        queries ``(B, Q, d_model)``, feats ``(B, N, d_model)``, optional ``cross_mask``
        bool ``(Q, N)`` or ``(B * n_heads, Q, N)`` with True = *not* allowed (PyTorch
        ``attn_mask`` convention); returns ``(B, Q, d_model)``.
    """

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float = 4.0,
                 dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f'VATBlock: d_model={d_model} must be divisible by '
                             f'n_heads={n_heads}')
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout,
                                               batch_first=True)
        self.norm_q = nn.LayerNorm(d_model)
        self.norm_kv = nn.LayerNorm(d_model)
        self.cross_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout,
                                                batch_first=True)
        self.norm_mlp = nn.LayerNorm(d_model)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, d_model), nn.Dropout(dropout))

    def forward(self, queries: torch.Tensor, feats: torch.Tensor,
                cross_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.norm_self(queries)
        queries = queries + self.self_attn(h, h, h, need_weights=False)[0]
        kv = self.norm_kv(feats)
        queries = queries + self.cross_attn(self.norm_q(queries), kv, kv, attn_mask=cross_mask,
                                            need_weights=False)[0]
        return queries + self.mlp(self.norm_mlp(queries))


class _VATBase(BaseModule):
    """Shared query / view machinery of :class:`VATLiDAR` and :class:`VATVision`."""

    def __init__(self, d_model, n_queries, n_layers, n_heads, num_views, dropout,
                 view_masked, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if n_queries % num_views != 0:
            raise ValueError(f'{type(self).__name__}: n_queries={n_queries} must be divisible '
                             f'by the number of views ({num_views}) so that every view gets '
                             f'the same number of queries; use e.g. '
                             f'{max(num_views, n_queries - n_queries % num_views)}')
        self.d_model, self.n_queries, self.num_views = d_model, n_queries, num_views
        self.n_heads, self.view_masked = n_heads, view_masked
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)
        self.view_embed = nn.Embedding(num_views, d_model)
        nn.init.normal_(self.view_embed.weight, std=0.02)
        self.register_buffer('query_views', torch.arange(num_views).repeat_interleave(
            n_queries // num_views), persistent=False)
        self.layers = nn.ModuleList(VATBlock(d_model, n_heads, dropout=dropout)
                                    for _ in range(n_layers))
        self.out_norm = nn.LayerNorm(d_model)

    def _attend(self, feats: torch.Tensor, feat_views: torch.Tensor) -> torch.Tensor:
        """Queries (tagged by view) attend to ``feats`` (B, N, d) with views ``feat_views``
        (N,) or (B, N)."""
        b = feats.shape[0]
        q = (self.queries + self.view_embed(self.query_views)).unsqueeze(0).expand(b, -1, -1)
        mask = None
        if self.view_masked:
            fv = feat_views if feat_views.dim() == 2 else feat_views.unsqueeze(0).expand(b, -1)
            mask = self.query_views.view(1, -1, 1) != fv.unsqueeze(1)  # (B, Q, N)
            # a view without any token (e.g. a cropped map) falls back to attending to all
            empty = mask.all(dim=-1, keepdim=True)
            mask = mask & ~empty
            mask = mask.repeat_interleave(self.n_heads, dim=0)
        for layer in self.layers:
            q = layer(q, feats, mask)
        return self.out_norm(q)


@MODELS.register_module()
class VATLiDAR(_VATBase):
    """View-aware transformer over a BEV LiDAR feature map.

    BEV ``(B, C, H, W)`` → depthwise 3×3 conv + GELU + 1×1 conv to ``d_model`` + LayerNorm →
    ``H·W`` tokens, plus a geometric position MLP on ``[x/R, y/R, r/R, sin θ, cos θ]`` of each
    cell (R = half the BEV extent) and the view embedding of the cell's 60° sector; then
    ``n_layers`` :class:`VATBlock` s over ``n_queries`` queries in ``num_views`` view groups.

    Args:
        c_in (int): BEV channels C. Defaults to 256.
        d_model (int): Token width. Defaults to 896 (Qwen2.5-0.5B's hidden size).
        n_queries (int): Output tokens; must be divisible by ``num_views``. Defaults to 576.
        n_layers (int): Defaults to 4.
        n_heads (int): Defaults to 8.
        bev_range (Sequence[float]): ``(x0, y0, x1, y1)`` metres covered by the BEV map.
            Defaults to nuScenes' ``(-51.2, -51.2, 51.2, 51.2)``.
        num_views (int): Azimuth sectors. Defaults to 6.
        view_masked (bool): Each query group attends only to its sector. Defaults to False.
        dropout (float): Defaults to 0.

    Raises:
        ValueError: ``n_queries % num_views != 0``.
    """

    def __init__(self, c_in: int = 256, d_model: int = 896, n_queries: int = 576,
                 n_layers: int = 4, n_heads: int = 8,
                 bev_range: Sequence[float] = (-51.2, -51.2, 51.2, 51.2), num_views: int = 6,
                 view_masked: bool = False, dropout: float = 0.0, init_cfg=None):
        super().__init__(d_model, n_queries, n_layers, n_heads, num_views, dropout,
                         view_masked, init_cfg)
        self.c_in, self.bev_range = c_in, tuple(float(v) for v in bev_range)
        self.input_proj = nn.Sequential(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in), nn.GELU(),
            nn.Conv2d(c_in, d_model, 1))
        self.input_norm = nn.LayerNorm(d_model)
        self.pos_mlp = nn.Sequential(nn.Linear(5, d_model), nn.GELU(),
                                     nn.Linear(d_model, d_model))

    def geometry(self, height: int, width: int, device=None):
        """Position features ``(H*W, 5)`` and view ids ``(H*W,)`` of the BEV cells."""
        xy = bev_cell_centres(height, width, self.bev_range).to(device).view(-1, 2)
        half = max(abs(v) for v in self.bev_range)
        r = xy.norm(dim=-1, keepdim=True)
        theta = torch.atan2(xy[:, 1:], xy[:, :1])
        pos = torch.cat([xy / half, r / half, torch.sin(theta), torch.cos(theta)], dim=-1)
        return pos, bev_view_ids(xy, self.num_views)

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        """Args: bev (torch.Tensor): (B, C, H, W). Returns: (B, n_queries, d_model).

        Raises:
            ValueError: the channel count differs from ``c_in``.
        """
        if bev.dim() != 4 or bev.shape[1] != self.c_in:
            raise ValueError(f'VATLiDAR expects BEV features (B, {self.c_in}, H, W), got '
                             f'{tuple(bev.shape)}')
        b, _, h, w = bev.shape
        x = self.input_proj(bev).flatten(2).transpose(1, 2)  # (B, H*W, d)
        pos, views = self.geometry(h, w, bev.device)
        x = self.input_norm(x) + self.pos_mlp(pos.to(x.dtype)) + self.view_embed(views)
        return self._attend(x, views)


@MODELS.register_module()
class VATVision(_VATBase):
    """View-aware transformer over per-camera feature tokens.

    Camera tokens ``(B, N_cam, L, d_model)`` (from the vision encoder through its token
    adapter) get a learned camera embedding (= view embedding, camera k ↔ view k) and a
    learned per-token position embedding; ``n_queries`` queries in ``N_cam`` groups attend
    to them.

    Args:
        d_model (int): Defaults to 896.
        n_queries (int): Defaults to 1536 (256 per camera); divisible by ``num_cams``.
        n_layers (int): Defaults to 4.
        n_heads (int): Defaults to 8.
        num_cams (int): Defaults to 6.
        max_tokens_per_cam (int): Size of the position table. Defaults to 1024.
        view_masked (bool): Query group k attends only to camera k. Defaults to False.
    """

    def __init__(self, d_model: int = 896, n_queries: int = 1536, n_layers: int = 4,
                 n_heads: int = 8, num_cams: int = 6, max_tokens_per_cam: int = 1024,
                 view_masked: bool = False, dropout: float = 0.0, init_cfg=None):
        super().__init__(d_model, n_queries, n_layers, n_heads, num_cams, dropout,
                         view_masked, init_cfg)
        self.pos_embed = nn.Parameter(torch.randn(max_tokens_per_cam, d_model) * 0.02)

    def forward(self, cam_tokens: torch.Tensor) -> torch.Tensor:
        """Args: cam_tokens (torch.Tensor): (B, N_cam, L, d_model). Returns (B, Q, d_model).

        Raises:
            ValueError: wrong camera count, width or more tokens than the position table.
        """
        b, n, length, d = cam_tokens.shape
        if n != self.num_views or d != self.d_model or length > self.pos_embed.shape[0]:
            raise ValueError(f'VATVision expects (B, {self.num_views}, <= '
                             f'{self.pos_embed.shape[0]}, {self.d_model}) camera tokens, got '
                             f'{tuple(cam_tokens.shape)}')
        cams = torch.arange(n, device=cam_tokens.device)
        x = cam_tokens + self.view_embed(cams).view(1, n, 1, d) + self.pos_embed[:length]
        return self._attend(x.reshape(b, n * length, d), cams.repeat_interleave(length))


@MODELS.register_module()
class SensorTokenProjector(BaseModule):
    """Projector of sensor tokens into the LLM's embedding space with learned token scaling.

    ``y = s · LayerNorm(W2 GELU(W1 x))`` with one learned scalar ``s`` per projector,
    initialised to ``init_scale`` (set it to the RMS of the LLM's word embeddings so sensor
    tokens enter at the same magnitude as text tokens; the LLM wrapper does this when
    ``init_scale=None``). Used as the LiDAR ``projector`` and the camera ``vision_adapter``.

    Args:
        in_dim (int): Sensor token width.
        out_dim (int): LLM hidden size.
        hidden_dim (int, optional): MLP width; ``None`` = ``out_dim``.
        init_scale (float, optional): Initial ``s``. Defaults to 1.

    Shapes: ``(B, Q, in_dim)`` → ``(B, Q, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: Optional[int] = None,
                 init_scale: Optional[float] = 1.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        hidden_dim = hidden_dim or out_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, out_dim))
        self.norm = nn.LayerNorm(out_dim, elementwise_affine=False)
        self.scale = nn.Parameter(torch.tensor(float(init_scale if init_scale else 1.0)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.scale * self.norm(self.mlp(tokens))
