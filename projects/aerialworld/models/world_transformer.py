"""Causal spatio-temporal transformer over occupancy tokens (AerialWorld world model).

Idea after OccWorld (W. Zheng et al., "OccWorld: Learning a 3D Occupancy World Model for
Autonomous Driving", arXiv:2311.16038, 2023): scene tokens of every frame are predicted from
the tokens of the previous frames; ego motion is embedded and predicted alongside. This
implementation factorises attention (pre-norm blocks, A. Vaswani et al., NeurIPS 2017):

* causal temporal self-attention per BEV token location (sequence over ``T``,
  ``F.scaled_dot_product_attention(is_causal=True)``),
* multi-scale spatial mixing inside each frame (full-resolution branch + 2x, 4x ... pooled
  branches up-sampled back; each branch is self-attention or a depth-wise conv),
* a token-wise MLP.

No operation mixes different frames except the causal temporal attention, so the outputs
at frame ``t`` depend only on frames ``<= t``: output ``t`` predicts the tokens and the ego
motion of frame ``t + 1``.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from projects.common.structures.pose6dof import MOTION_6DOF_DIM, planar_from_motion_6dof
from projects.common.structures.rotation import (matrix_to_quat, quat_canonical,
                                                 quat_multiply, quat_normalize,
                                                 rotation_6d_to_matrix)
from projects.registry import MODELS

POSE_DIMS = (4, MOTION_6DOF_DIM)
ROTATION_REPRS = ('6d', 'quat')


class _Attention(nn.Module):
    """Multi-head self-attention on ``(N, L, d)`` sequences via SDPA.

    Args:
        dim (int): Model width ``d``.
        num_heads (int): Heads (must divide ``dim``).
        causal (bool): Apply a causal mask (position ``i`` attends to ``j <= i``).
    """

    def __init__(self, dim: int, num_heads: int, causal: bool) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f'num_heads={num_heads} must divide d_model={dim}')
        self.num_heads = num_heads
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, d) -> (N, L, d)``."""
        return self.step(x)[0]

    def step(self, x: torch.Tensor, past: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
             ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Attention of new positions over the cached keys / values and their own.

        The incremental decoding of autoregressive transformers (the key / value cache of
        Transformer-XL / GPT-2 generation): positions ``P .. P + L - 1`` attend to the
        ``P`` cached ones and, causally, to each other, which equals :meth:`forward` on the
        whole sequence restricted to the new rows.

        Args:
            x (torch.Tensor): ``(N, L, d)`` the new positions.
            past (tuple, optional): Cached ``(k, v)``, each ``(N, heads, P, d / heads)``
                (None: no earlier positions).

        Returns:
            tuple: ``(N, L, d)`` output and the updated cache ``(k, v)`` ``(N, heads,
            P + L, d / heads)``.
        """
        n, length, d = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (N, heads, L, d/heads)
        mask, causal = None, self.causal
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
            if self.causal and length > 1:  # new row i sees the past and new rows <= i
                p = k.shape[2] - length
                mask = torch.ones(length, p + length, dtype=torch.bool,
                                  device=x.device).tril(p)
            causal = False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(n, length, d)), (k, v)


class MultiScaleSpatialMixer(nn.Module):
    """Per-frame spatial mixing at several scales.

    For every scale ``s`` in ``scales`` the ``(h, w)`` map is average-pooled by ``s``
    (``ceil_mode``), mixed (self-attention over the pooled positions, or a 3x3 depth-wise
    conv + GELU for ``mode='conv'``), up-sampled back (nearest) and the branches are summed
    and projected. Frames are processed independently (they are folded into the batch).

    Args:
        dim (int): Model width ``d``.
        num_heads (int): Attention heads (``mode='attn'``).
        scales (Sequence[int]): Pooling factors, e.g. ``(1, 2)``.
        mode (str): ``'attn'`` or ``'conv'``.

    Raises:
        ValueError: On an unknown ``mode`` or a scale < 1.
    """

    def __init__(self, dim: int, num_heads: int, scales: Sequence[int] = (1, 2),
                 mode: str = 'attn') -> None:
        super().__init__()
        if mode not in ('attn', 'conv'):
            raise ValueError(f"spatial_mode must be 'attn' or 'conv', got {mode!r}")
        if len(scales) == 0 or min(scales) < 1:
            raise ValueError(f'spatial_scales must be positive ints, got {scales}')
        self.scales = tuple(int(s) for s in scales)
        self.mode = mode
        if mode == 'attn':
            self.branches = nn.ModuleList(
                [_Attention(dim, num_heads, causal=False) for _ in self.scales])
        else:
            self.branches = nn.ModuleList([
                nn.Conv2d(dim, dim, 3, padding=1, groups=dim) for _ in self.scales
            ])
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mix ``(N, h, w, d)`` (``N`` = batch x frames); returns the same shape."""
        n, h, w, d = x.shape
        grid = x.permute(0, 3, 1, 2)  # (N, d, h, w)
        out = 0
        for s, branch in zip(self.scales, self.branches):
            g = grid if s == 1 else F.avg_pool2d(grid, s, s, ceil_mode=True)
            gh, gw = g.shape[-2:]
            if self.mode == 'attn':
                y = branch(g.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(n, d, gh, gw)
            else:
                y = F.gelu(branch(g))
            if s != 1:
                y = F.interpolate(y, size=(h, w), mode='nearest')
            out = out + y
        return self.proj(out.permute(0, 2, 3, 1))


class WorldBlock(nn.Module):
    """Pre-norm block: causal temporal attention, spatial mixing, MLP.

    Args:
        dim (int): Model width ``d``.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP relative to ``d``.
        spatial_scales (Sequence[int]): Scales of :class:`MultiScaleSpatialMixer`.
        spatial_mode (str): ``'attn'`` or ``'conv'``.
        dropout (float): Dropout on the residual branches.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float,
                 spatial_scales: Sequence[int], spatial_mode: str, dropout: float) -> None:
        super().__init__()
        self.norm_t = nn.LayerNorm(dim)
        self.temporal = _Attention(dim, num_heads, causal=True)
        self.norm_s = nn.LayerNorm(dim)
        self.spatial = MultiScaleSpatialMixer(dim, num_heads, spatial_scales, spatial_mode)
        self.norm_m = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor,
                past: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                use_cache: bool = False):
        """``(B, T, h, w, d) -> (B, T, h, w, d)``; with a key / value cache, the block on new
        frames that follow cached ones (see :meth:`_Attention.step`): the temporal attention
        reads the cache, spatial mixing and MLP act per frame. (One ``forward``, so that a
        wrapper such as FSDP, which gathers the weights in ``__call__``, sees every use.)

        Args:
            x (torch.Tensor): ``(B, T_new, h, w, d)`` the (new) frames.
            past (tuple, optional): The temporal attention's cache of the earlier frames.
            use_cache (bool): Also return the updated cache. Defaults to False.

        Returns:
            torch.Tensor | tuple: ``(B, T_new, h, w, d)``, and with ``use_cache`` the
            updated cache.
        """
        b, t, h, w, d = x.shape
        seq = x.permute(0, 2, 3, 1, 4).reshape(b * h * w, t, d)
        att, cache = self.temporal.step(self.norm_t(seq), past)
        seq = seq + self.drop(att)
        x = seq.reshape(b, h, w, t, d).permute(0, 3, 1, 2, 4)
        frames = x.reshape(b * t, h, w, d)
        frames = frames + self.drop(self.spatial(self.norm_s(frames)))
        frames = frames + self.drop(self.mlp(self.norm_m(frames)))
        out = frames.reshape(b, t, h, w, d)
        return (out, cache) if use_cache else out


@MODELS.register_module()
class OccWorldTransformer(BaseModule):
    """Next-frame token and ego-motion predictor over occupancy token sequences.

    Inputs are the token indices of ``T`` frames and the per-frame ego motion (motion of
    frame ``t`` relative to ``t - 1``; zeros for the first frame). Every token is embedded
    (learned table, or the tokenizer's code vector through a linear layer), and the learned
    spatial embedding (per token position), temporal embedding (per frame index) and the
    frame's ego-motion embedding (MLP) are added. Output ``t`` gives logits over the
    ``num_codes`` codes for every position of frame ``t + 1`` and the ego motion of frame
    ``t + 1`` relative to ``t`` (MLP on the spatially averaged frame features).

    Args:
        num_codes (int): Codebook size ``K``.
        token_grid (Sequence[int]): Token map size ``(h, w)``.
        code_dim (int, optional): Code dimension ``D`` (required for
            ``token_embed='codebook'``).
        d_model (int): Model width. Defaults to 128.
        num_blocks (int): Number of :class:`WorldBlock`. Defaults to 4.
        num_heads (int): Attention heads. Defaults to 4.
        mlp_ratio (float): MLP expansion. Defaults to 4.0.
        max_frames (int): Maximum sequence length ``T`` (size of the temporal embedding).
            Defaults to 16.
        pose_dims (int): Ego-motion dimension: 4 = planar ``[dx, dy, dz, dyaw]`` (metres,
            radians), or 13 = 6-DoF ``[dx, dy, dz, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]``
            (see :mod:`projects.common.structures.pose6dof`: translation and orientation in
            the previous frame's gravity-aligned frame, velocities in m/s and rad/s).
            Defaults to 4.
        rotation_repr (str): How the 6-DoF head parametrises the rotation (``pose_dims=13``
            only): ``'6d'`` (default; continuous 6-D representation of Zhou et al., CVPR
            2019, offset so a zero output is the identity, Gram-Schmidt, converted to a unit
            quaternion) or ``'quat'`` (4 raw values + identity offset, normalised). The
            returned motion always holds a unit quaternion with ``qw >= 0``.
        pose_hidden (int): Hidden width of the pose encoder / decoder MLPs. Defaults to 128.
        token_embed (str): ``'table'`` (learned ``K x d`` table) or ``'codebook'`` (code
            vectors passed to :meth:`forward`, projected by a linear layer). Defaults to
            ``'codebook'``.
        spatial_scales (Sequence[int]): Scales of the spatial mixer. Defaults to (1, 2).
        spatial_mode (str): ``'attn'`` or ``'conv'``. Defaults to ``'attn'``.
        dropout (float): Residual dropout. Defaults to 0.0.
        copy_prior (float, optional): Initial value of a learnable logit bonus added to the
            code that position ``(i, j)`` holds in frame ``t`` when predicting frame
            ``t + 1`` (a copy mechanism, cf. CopyNet, Gu et al. 2016). Most tokens of an
            occupancy sequence do not change between frames, so with a bonus of a few nats
            the untrained model already forecasts "no change" (the copy-last-frame
            baseline) and training spends its capacity on what moves. Causal: it only uses
            frame ``t``'s own tokens. None (default) disables it (plain OccWorld head).
        copy_warp_range (Sequence[float], optional): ``[x_min, y_min, x_max, y_max]`` in
            metres of the token map in the ego frame (the grid's x/y range). When set, the
            copy prior is *motion compensated*: the bonus goes to the code found at the
            position in frame ``t`` that the token centre of frame ``t + 1`` maps to under
            the ego motion ``t -> t + 1`` (``[dx, dy, dz, dyaw]``; x/y and yaw only, since z
            is gravity aligned), i.e. a static world seen from the moved ego. Tokens that
            map outside the map get no bonus. With ``pose_dims=13`` the planar part
            ``dx, dy`` and the yaw of the motion quaternion are used
            (:func:`~projects.common.structures.pose6dof.planar_from_motion_6dof`). The
            motion is ``next_motion`` when given
            (teacher forcing) else the model's own predicted motion (detached).
        pose_residual (bool): Predict the next ego motion as a correction of the frame's
            own input motion (a constant-velocity prior for the pose branch, the pose
            counterpart of ``copy_prior``): 4-D ``motion_{t+1} = motion_t + head``; 6-DoF
            translation and velocities add, the rotation is ``q_t (x) q_head``. The head's
            last layer starts at zero, so the untrained branch is the constant-velocity
            baseline and training learns turns and accelerations (``AerialWorld`` then
            leaves the first frame, which has no motion to continue, out of the pose loss;
            use ``num_history >= 2``). Defaults to False (the head predicts the motion
            itself, as in OccWorld).
        pose_envelope (float, optional): Kinematic envelope of the residual pose correction
            (needs ``pose_residual`` and ``pose_dims=4``): per dimension the correction is
            ``k * |a_t| * tanh(head)`` with ``a_t = motion_t - motion_{t-1}`` the change of the
            ego motion over the last step (the observed acceleration; zero for the first two
            frames of the window, whose previous motion is not given) and ``k`` this value.
            With ``k = 1`` the branch blends, per dimension and step, between the
            constant-velocity model (correction 0), the constant-acceleration model
            (``+a_t``) and the previous motion (``-a_t``), as an interacting-multiple-model
            filter mixes kinematic models (Blom & Bar-Shalom, IEEE TAC 33(8), 1988). A
            history at constant velocity (straight legs, steady orbits) is therefore
            continued exactly as the constant-velocity baseline does, whatever the weights,
            and in a rollout the model's own correction is the next step's acceleration, so
            for ``k <= 1`` the correction never grows along the forecast. Learned corrections
            can only act where the ego is already manoeuvring. None (default) leaves the
            correction unbounded.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On an invalid ``token_embed``, ``token_grid``, ``pose_dims``,
            ``rotation_repr`` or missing ``code_dim``.
    """

    def __init__(self,
                 num_codes: int,
                 token_grid: Sequence[int],
                 code_dim: Optional[int] = None,
                 d_model: int = 128,
                 num_blocks: int = 4,
                 num_heads: int = 4,
                 mlp_ratio: float = 4.0,
                 max_frames: int = 16,
                 pose_dims: int = 4,
                 rotation_repr: str = '6d',
                 pose_hidden: int = 128,
                 token_embed: str = 'codebook',
                 spatial_scales: Sequence[int] = (1, 2),
                 spatial_mode: str = 'attn',
                 dropout: float = 0.0,
                 copy_prior: Optional[float] = None,
                 copy_warp_range: Optional[Sequence[float]] = None,
                 pose_residual: bool = False,
                 pose_envelope: Optional[float] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if token_embed not in ('table', 'codebook'):
            raise ValueError(f"token_embed must be 'table' or 'codebook', got {token_embed!r}")
        if token_embed == 'codebook' and not code_dim:
            raise ValueError("code_dim is required when token_embed='codebook'")
        token_grid = tuple(int(s) for s in token_grid)
        if len(token_grid) != 2 or min(token_grid) < 1:
            raise ValueError(f'token_grid must be (h, w), got {token_grid}')
        self.num_codes = int(num_codes)
        self.token_grid = token_grid
        self.d_model = int(d_model)
        self.max_frames = int(max_frames)
        if int(pose_dims) not in POSE_DIMS:
            raise ValueError(f'pose_dims must be 4 ([dx, dy, dz, dyaw]) or 13 (6-DoF motion), '
                             f'got {pose_dims}')
        if rotation_repr not in ROTATION_REPRS:
            raise ValueError(f'rotation_repr must be one of {ROTATION_REPRS}, got '
                             f'{rotation_repr!r}')
        self.pose_dims = int(pose_dims)
        self.rotation_repr = rotation_repr
        # raw head outputs: translation 3 + rotation (6 or 4) + velocities 6 for 6-DoF
        pose_out = self.pose_dims if self.pose_dims == 4 else \
            3 + (6 if rotation_repr == '6d' else 4) + 6
        self.token_embed = token_embed
        if token_embed == 'table':
            self.embed = nn.Embedding(self.num_codes, self.d_model)
        else:
            self.embed = nn.Linear(int(code_dim), self.d_model)
        h, w = token_grid
        self.spatial_embed = nn.Parameter(torch.zeros(1, 1, h, w, self.d_model))
        self.temporal_embed = nn.Parameter(torch.zeros(1, self.max_frames, 1, 1, self.d_model))
        nn.init.trunc_normal_(self.spatial_embed, std=0.02)
        nn.init.trunc_normal_(self.temporal_embed, std=0.02)
        self.pose_encoder = nn.Sequential(
            nn.Linear(self.pose_dims, pose_hidden), nn.GELU(),
            nn.Linear(pose_hidden, self.d_model))
        self.blocks = nn.ModuleList([
            WorldBlock(self.d_model, num_heads, mlp_ratio, spatial_scales, spatial_mode,
                       dropout) for _ in range(num_blocks)
        ])
        self.norm_out = nn.LayerNorm(self.d_model)
        self.head = nn.Linear(self.d_model, self.num_codes)
        self.pose_decoder = nn.Sequential(
            nn.Linear(self.d_model, pose_hidden), nn.GELU(),
            nn.Linear(pose_hidden, pose_out))
        self.pose_residual = bool(pose_residual)
        if pose_envelope is not None:
            if not self.pose_residual or self.pose_dims != 4:
                raise ValueError('pose_envelope needs pose_residual=True and pose_dims=4 '
                                 f'(got pose_residual={pose_residual}, pose_dims={pose_dims})')
            if not float(pose_envelope) > 0:
                raise ValueError(f'pose_envelope must be > 0, got {pose_envelope}')
        self.pose_envelope = None if pose_envelope is None else float(pose_envelope)
        if self.pose_residual:  # start at the constant-velocity prior
            nn.init.zeros_(self.pose_decoder[-1].weight)
            nn.init.zeros_(self.pose_decoder[-1].bias)
        # Copy prior: a learnable logit bonus for "same code as now" at every position.
        self.copy_logit = (nn.Parameter(torch.tensor(float(copy_prior)))
                           if copy_prior is not None else None)
        if copy_warp_range is not None:
            if copy_prior is None:
                raise ValueError('copy_warp_range needs copy_prior to be set')
            rng = [float(v) for v in copy_warp_range]
            if len(rng) != 4 or rng[2] <= rng[0] or rng[3] <= rng[1]:
                raise ValueError('copy_warp_range must be [x_min, y_min, x_max, y_max] (m), got '
                                 f'{copy_warp_range}')
            self.copy_warp_range = rng
        else:
            self.copy_warp_range = None

    def decode_motion(self, raw: torch.Tensor) -> torch.Tensor:
        """Turn raw pose-head outputs into ego motion.

        Args:
            raw (torch.Tensor): ``(..., P)`` pose-decoder output (``P`` = 4, or 15 / 13 for
                the 6-DoF head with ``rotation_repr`` ``'6d'`` / ``'quat'``).

        Returns:
            torch.Tensor: ``(..., pose_dims)``; for 6-DoF the rotation is a unit quaternion
            with ``qw >= 0`` (a zero raw rotation decodes to the identity).
        """
        if self.pose_dims == 4:
            return raw
        trans, vel = raw[..., :3], raw[..., -6:]
        rot = raw[..., 3:-6]
        if self.rotation_repr == '6d':
            eye = rot.new_tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
            quat = matrix_to_quat(rotation_6d_to_matrix(rot + eye))
        else:
            quat = quat_canonical(quat_normalize(rot + rot.new_tensor([1.0, 0.0, 0.0, 0.0])))
        return torch.cat([trans, quat, vel], dim=-1)

    @staticmethod
    def observed_acceleration(motion: torch.Tensor) -> torch.Tensor:
        """Change of the planar ego motion over the last step, per frame.

        Args:
            motion (torch.Tensor): ``(B, T, 4)`` per-frame motion ``[dx, dy, dz, dyaw]`` of
                frame ``t`` relative to ``t - 1`` (metres, radians; the first frame's is not
                given).

        Returns:
            torch.Tensor: ``(B, T, 4)`` ``motion_t - motion_{t-1}``, zero for frames 0 and 1
            (no previous motion to compare with).
        """
        acc = torch.zeros_like(motion)
        acc[:, 2:] = motion[:, 2:] - motion[:, 1:-1]
        return acc

    def residual_motion(self, motion: torch.Tensor, raw: torch.Tensor,
                        accel: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Next ego motion as a correction of the current one (``pose_residual``).

        Args:
            motion (torch.Tensor): ``(..., pose_dims)`` input motion of frame ``t`` (relative
                to ``t - 1``); a zero 6-DoF quaternion (no motion given) counts as identity.
            raw (torch.Tensor): ``(..., P)`` pose-decoder output (see :meth:`decode_motion`).
            accel (torch.Tensor, optional): ``(..., 4)`` observed acceleration
                (:meth:`observed_acceleration`); required with ``pose_envelope``, which
                bounds the correction to ``pose_envelope * |accel| * tanh(raw)``.

        Returns:
            torch.Tensor: ``(..., pose_dims)`` motion of frame ``t + 1`` relative to ``t``.
        """
        delta = self.decode_motion(raw)
        if self.pose_envelope is not None:
            if accel is None:
                raise ValueError('residual_motion: pose_envelope needs the observed '
                                 'acceleration (accel)')
            delta = self.pose_envelope * accel.abs() * torch.tanh(delta)
        if self.pose_dims == 4:
            return motion + delta
        quat = motion[..., 3:7]
        ident = quat.new_tensor([1.0, 0.0, 0.0, 0.0])
        quat = torch.where(quat.norm(dim=-1, keepdim=True) < 1e-6, ident, quat_normalize(quat))
        rot = quat_canonical(quat_normalize(quat_multiply(quat, delta[..., 3:7])))
        return torch.cat([motion[..., :3] + delta[..., :3], rot,
                          motion[..., 7:] + delta[..., 7:]], dim=-1)

    def _warp_source(self, next_motion: torch.Tensor):
        """Token index in frame ``t`` seen by each token of frame ``t + 1``.

        Args:
            next_motion (torch.Tensor): ``(B, T, pose_dims)`` motion of ``t + 1`` relative to
                ``t``: ``dx, dy`` metres and ``dyaw`` radians at index 3 (4-D), or 6-DoF
                motion whose planar part is used (13-D).

        Returns:
            tuple: flat source index ``(B, T, h * w)`` long and validity ``(B, T, h * w)``
            bool (False where the position falls outside the token map).
        """
        h, w = self.token_grid
        x0, y0, x1, y1 = self.copy_warp_range
        sx, sy = (x1 - x0) / h, (y1 - y0) / w
        dev, dt = next_motion.device, next_motion.dtype
        xs = x0 + (torch.arange(h, device=dev, dtype=dt) + 0.5) * sx
        ys = y0 + (torch.arange(w, device=dev, dtype=dt) + 0.5) * sy
        gx, gy = torch.meshgrid(xs, ys, indexing='ij')
        gx, gy = gx.reshape(1, 1, -1), gy.reshape(1, 1, -1)
        if next_motion.shape[-1] == MOTION_6DOF_DIM:
            next_motion = planar_from_motion_6dof(next_motion)
        dx, dy, dyaw = (next_motion[..., k:k + 1] for k in (0, 1, 3))
        cos, sin = torch.cos(dyaw), torch.sin(dyaw)
        px = cos * gx - sin * gy + dx  # token centre of frame t+1 expressed in frame t
        py = sin * gx + cos * gy + dy
        i = torch.floor((px - x0) / sx).long()
        j = torch.floor((py - y0) / sy).long()
        valid = (i >= 0) & (i < h) & (j >= 0) & (j < w)
        return i.clamp(0, h - 1) * w + j.clamp(0, w - 1), valid

    def forward(self,
                tokens: torch.Tensor,
                ego_motion: torch.Tensor,
                codebook: Optional[torch.Tensor] = None,
                next_motion: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Predict next-frame token logits and ego motion for every input frame.

        Args:
            tokens (torch.Tensor): ``(B, T, h, w)`` long code indices in ``[0, K)``.
            ego_motion (torch.Tensor): ``(B, T, pose_dims)`` float per-frame ego motion
                (frame ``t`` relative to ``t - 1``; zeros for the first frame).
            codebook (torch.Tensor, optional): ``(K, D)`` code vectors, required for
                ``token_embed='codebook'`` (used detached).
            next_motion (torch.Tensor, optional): ``(B, T, pose_dims)`` motion of frame
                ``t + 1`` relative to ``t`` for the motion-compensated copy prior (teacher
                forcing); None uses the predicted motion.

        Returns:
            tuple: ``logits`` ``(B, T, K, h, w)`` float (output ``t`` predicts frame
            ``t + 1``) and ``motion`` ``(B, T, pose_dims)`` float (motion of ``t + 1``
            relative to ``t``; see :meth:`decode_motion`).

        Raises:
            ValueError: On bad shapes, ``T > max_frames`` or a missing codebook.
        """
        self._check_inputs(tokens, ego_motion)
        x = self._embed(tokens, ego_motion, codebook, 0)
        for block in self.blocks:
            x = block(x)
        return self._outputs(x, tokens, ego_motion, next_motion)

    def _check_inputs(self, tokens: torch.Tensor, ego_motion: torch.Tensor) -> None:
        """Raise ValueError unless ``tokens`` is ``(B, T, h, w)`` with ``T <= max_frames``
        and ``ego_motion`` ``(B, T, pose_dims)``."""
        if tokens.dim() != 4 or tuple(tokens.shape[2:]) != self.token_grid:
            raise ValueError(f'OccWorldTransformer: tokens must be (B, T, '
                             f'{self.token_grid[0]}, {self.token_grid[1]}) (token_grid), got '
                             f'{tuple(tokens.shape)}')
        b, t = tokens.shape[:2]
        if t > self.max_frames:
            raise ValueError(f'OccWorldTransformer: T={t} exceeds max_frames='
                             f'{self.max_frames}')
        if ego_motion.shape != (b, t, self.pose_dims):
            raise ValueError(f'OccWorldTransformer: ego_motion must be ({b}, {t}, '
                             f'{self.pose_dims}), got {tuple(ego_motion.shape)}')

    def _embed(self, tokens: torch.Tensor, ego_motion: torch.Tensor,
               codebook: Optional[torch.Tensor], start: int) -> torch.Tensor:
        """Input embedding ``(B, T, h, w, d)`` of frames ``start .. start + T - 1`` of the
        window (their temporal embedding), see :meth:`forward` for the arguments."""
        t = tokens.shape[1]
        if self.token_embed == 'table':
            x = self.embed(tokens.long())
        else:
            if codebook is None:
                raise ValueError("OccWorldTransformer: token_embed='codebook' needs the "
                                 'codebook argument')
            x = self.embed(F.embedding(tokens.long(), codebook.detach()))
        x = x + self.spatial_embed + self.temporal_embed[:, start:start + t]
        return x + self.pose_encoder(ego_motion.to(x.dtype))[:, :, None, None, :]

    def _outputs(self, x: torch.Tensor, tokens: torch.Tensor, ego_motion: torch.Tensor,
                 next_motion: Optional[torch.Tensor],
                 window_motion: Optional[torch.Tensor] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Token logits and next motion of the last ``T`` frames of a window, whose
        last-block features are ``x`` ``(B, T, h, w, d)``. Per frame they need that frame
        only, except the :meth:`observed_acceleration` of ``pose_envelope``, taken from
        ``window_motion`` ``(B, T_all, D)`` (the whole window's motion; None: the window
        is these ``T`` frames). See :meth:`forward` for the other arguments."""
        b, t = tokens.shape[:2]
        x = self.norm_out(x)
        logits = self.head(x).permute(0, 1, 4, 2, 3)
        raw = self.pose_decoder(x.mean(dim=(2, 3)))
        if self.pose_residual:
            cur = ego_motion.to(raw.dtype)
            accel = None
            if self.pose_envelope is not None:
                full = cur if window_motion is None else window_motion.to(raw.dtype)
                accel = self.observed_acceleration(full)[:, -t:]
            motion = self.residual_motion(cur, raw, accel)
        else:
            motion = self.decode_motion(raw)
        if self.copy_logit is not None:
            h, w = self.token_grid
            if self.copy_warp_range is None:
                source = tokens.long()
                bonus = self.copy_logit.to(logits.dtype).expand(b, t, h, w)
            else:
                nm = motion.detach() if next_motion is None else next_motion
                if nm.shape != (b, t, self.pose_dims):
                    raise ValueError(f'OccWorldTransformer: next_motion must be ({b}, {t}, '
                                     f'{self.pose_dims}), got {tuple(nm.shape)}')
                index, valid = self._warp_source(nm.to(logits.dtype))
                source = tokens.long().flatten(2).gather(2, index).reshape(b, t, h, w)
                bonus = self.copy_logit.to(logits.dtype) * valid.to(logits.dtype)
                bonus = bonus.reshape(b, t, h, w)
            logits = logits.scatter_add(2, source.unsqueeze(2), bonus.unsqueeze(2))
        return logits, motion

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, ego_motion: torch.Tensor,
                 codebook: Optional[torch.Tensor], num_future: int,
                 planned_motion: Optional[torch.Tensor] = None, use_cache: bool = True):
        """Greedy autoregressive rollout over the last ``max_frames`` frames of the window.

        Each step appends the arg-max codes of the last frame's logits and the motion of the
        new frame: the predicted motion, or ``planned_motion[:, f]`` when a plan is given (then
        also the ``next_motion`` of the copy-prior warp that predicts it).

        Args:
            tokens (torch.Tensor): ``(B, H, h, w)`` long codes of the history.
            ego_motion (torch.Tensor): ``(B, H, D)`` per-frame motion of the history.
            codebook (torch.Tensor, optional): ``(K, code_dim)`` (``token_embed='codebook'``).
            num_future (int): Steps ``F``.
            planned_motion (torch.Tensor, optional): ``(B, F, D)``. Defaults to None.
            use_cache (bool): When the rollout fits in ``max_frames``, run each new frame
                only through the blocks over cached keys / values of the earlier ones
                (:meth:`WorldBlock.forward`, same result); False always runs the whole
                window again (the rollout as it was before the cache). Defaults to True.

        Returns:
            tuple: codes ``(B, F, h, w)`` long and motion ``(B, F, D)`` float.
        """
        motion = ego_motion.float()
        max_t = self.max_frames
        # key / value cache when the rollout fits in max_frames (no window to slide): each
        # step runs the blocks on the new frame only, over the cached keys and values of the
        # earlier frames (WorldBlock with use_cache): H + F - 1 frame passes instead of
        # F H + F (F - 1) / 2, same result
        cached = use_cache and tokens.shape[1] + num_future - 1 <= max_t
        if cached:
            self._check_inputs(tokens, motion)
            caches = [None] * len(self.blocks)
            x = self._embed(tokens, motion, codebook, 0)
        pred_tokens, pred_motion = [], []
        for f in range(num_future):
            if cached:
                for i, block in enumerate(self.blocks):
                    x, caches[i] = block(x, caches[i], use_cache=True)
                next_motion = None if planned_motion is None else \
                    planned_motion[:, f:f + 1].float()
                logits, mot = self._outputs(x[:, -1:], tokens[:, -1:], motion[:, -1:],
                                            next_motion, motion)
            else:
                next_motion = None
                if planned_motion is not None:
                    # the motion that follows each frame of the window; the last is the plan's
                    next_motion = torch.cat([motion[:, 1:], planned_motion[:, f:f + 1].float()],
                                            dim=1)[:, -max_t:]
                logits, mot = self(tokens[:, -max_t:], motion[:, -max_t:], codebook,
                                   next_motion=next_motion)
            nxt = logits[:, -1].argmax(1)
            nxt_motion = mot[:, -1] if planned_motion is None else planned_motion[:, f].float()
            pred_tokens.append(nxt)
            pred_motion.append(nxt_motion)
            if cached and f + 1 < num_future:
                x = self._embed(nxt[:, None], nxt_motion[:, None], codebook, tokens.shape[1])
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            motion = torch.cat([motion, nxt_motion[:, None]], dim=1)
        return torch.stack(pred_tokens, 1), torch.stack(pred_motion, 1)
