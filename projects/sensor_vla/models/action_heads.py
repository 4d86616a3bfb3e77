"""Action expert and the two action heads (L1 regression, conditional flow matching)."""
import math
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from projects.registry import MODELS

__all__ = ['ActionExpert', 'L1RegressionActionHead', 'FlowMatchingActionHead']


@MODELS.register_module()
class ActionExpert(nn.Module):
    """Action expert: learned chunk queries decoded over the fused context.

    ``chunk_size`` learned queries (plus, for the flow-matching head, an embedding of the
    noisy action and the time) pass through a pre-norm ``nn.TransformerDecoder`` (self-attention
    among the queries, cross-attention to the projected context, MLP) and come out as
    ``(B, chunk_size, dim)`` features. Its inputs are the queries and the context only: the
    sample's ground-truth actions are not an argument, so they cannot leak in.

    Args:
        context_dim (int): Width of the fused context (the VL hidden size).
        dim (int): Width of the decoder. Defaults to 256.
        chunk_size (int): Number of queries H. Defaults to 8.
        num_layers (int): Decoder layers. Defaults to 4.
        num_heads (int): Attention heads. Defaults to 8.
        ffn_ratio (int): MLP width factor. Defaults to 4.
        dropout (float): Defaults to 0.1.
    """

    def __init__(self, context_dim: int, dim: int = 256, chunk_size: int = 8,
                 num_layers: int = 4, num_heads: int = 8, ffn_ratio: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.chunk_size = chunk_size
        self.context_proj = nn.Sequential(nn.LayerNorm(context_dim), nn.Linear(context_dim, dim))
        self.queries = nn.Parameter(torch.zeros(chunk_size, dim))
        nn.init.normal_(self.queries, std=0.02)
        layer = nn.TransformerDecoderLayer(dim, num_heads, ffn_ratio * dim, dropout,
                                           activation='gelu', batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers)
        self.norm = nn.LayerNorm(dim)

    def forward(self, context: torch.Tensor, context_mask: torch.Tensor,
                query_offset: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Decode.

        Args:
            context (Tensor): ``(B, L, context_dim)``.
            context_mask (Tensor): ``(B, L)`` bool, True = valid.
            query_offset (Tensor, optional): ``(B, H, dim)`` added to the queries.

        Returns:
            Tensor: ``(B, H, dim)``.
        """
        mem = self.context_proj(context.float())
        q = self.queries.unsqueeze(0).expand(context.shape[0], -1, -1)
        if query_offset is not None:
            q = q + query_offset
        out = self.decoder(q, mem, memory_key_padding_mask=~context_mask.bool())
        return self.norm(out)


class _ChunkHead(nn.Module):
    """Shared parts of the action heads: the expert and the registered loss list."""

    def __init__(self, expert: dict, losses: List[dict], action_dim: int = 7):
        super().__init__()
        self.expert = MODELS.build(expert)
        self.action_dim = action_dim
        self.chunk_size = self.expert.chunk_size
        self.losses = nn.ModuleList(MODELS.build(cfg) for cfg in losses)
        if not len(self.losses):
            raise ValueError(f'{type(self).__name__}: losses must list at least one loss')

    def _loss_dict(self, pred, target, mask, weight) -> Dict[str, torch.Tensor]:
        out = {}
        for loss in self.losses:
            name = getattr(loss, 'loss_name', type(loss).__name__)
            out[name] = out.get(name, 0) + loss(pred, target, mask, weight)
        return out


@MODELS.register_module()
class L1RegressionActionHead(_ChunkHead):
    """Direct chunk regression (OpenVLA-OFT style): expert features -> MLP -> ``(B, H, A)``
    normalised actions, trained with an L1 loss.

    Args:
        expert (dict): :class:`ActionExpert` config.
        losses (list[dict]): Loss configs; default one :class:`WeightedActionL1Loss`.
        action_dim (int): A. Defaults to 7.
    """

    def __init__(self, expert: dict, losses: Optional[List[dict]] = None, action_dim: int = 7):
        super().__init__(expert, losses or [dict(type='WeightedActionL1Loss')], action_dim)
        d = self.expert.dim
        self.out = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, action_dim))

    def forward(self, context, context_mask, query_cond: Optional[torch.Tensor] = None):
        """``(B, L, D)``, ``(B, L)`` -> normalised actions ``(B, H, A)``; ``query_cond``
        ``(B, dim)`` (optional) is added to every query."""
        off = None if query_cond is None else query_cond.unsqueeze(1)
        return self.out(self.expert(context, context_mask, off))

    def loss(self, context, context_mask, target, mask, weight,
             query_cond: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Losses against normalised ``target`` ``(B, H, A)`` (mask ``(B, H)``, weight ``(B,)``)."""
        return self._loss_dict(self(context, context_mask, query_cond), target, mask, weight)

    def predict(self, context, context_mask,
                query_cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised actions ``(B, H, A)``."""
        return self(context, context_mask, query_cond)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of ``t`` in [0, 1] (scaled by 1000), ``(B,)`` -> ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return emb if dim % 2 == 0 else torch.cat([emb, emb[:, :1] * 0], dim=-1)


@MODELS.register_module()
class FlowMatchingActionHead(_ChunkHead):
    """Conditional flow matching over action chunks (pi0, Black et al. 2024, as in openpi).

    Path: ``x_t = t * eps + (1 - t) * a`` with ``eps ~ N(0, I)`` and the target velocity
    ``u = eps - a``; training draws ``t = 0.999 * Beta(1.5, 1) + 0.001`` (openpi's ``beta``
    time sampling, which puts more mass near t = 1, the noisier end). The expert's queries
    receive ``W_a x_t + MLP(emb(t))`` and the head regresses ``v(x_t, t | context)`` with a
    squared error. Inference integrates ``x_{t + dt} = x_t + dt * v`` from ``t = 1`` (pure
    noise) to ``t = 0`` with ``num_steps`` Euler steps (``dt = -1 / num_steps``).

    The ground truth enters training only through ``x_t`` and ``u`` (the flow-matching
    objective); :meth:`predict` never sees it.

    Args:
        expert (dict): :class:`ActionExpert` config.
        losses (list[dict]): Default one :class:`WeightedActionMSELoss`.
        action_dim (int): A. Defaults to 7.
        num_steps (int): Euler steps at inference. Defaults to 10.
        time_beta (tuple): ``(alpha, beta)`` of the Beta time distribution. (1.5, 1.0).
        sample_seed (int, optional): Seed of the initial noise at inference (deterministic
            evaluation); None draws from the global generator. Defaults to 0.
        num_samples (int): Chunks sampled per query at inference and averaged (a Monte-Carlo
            estimate of the conditional mean, which is what an MSE evaluation rewards; 1 =
            pi0's single sample). Defaults to 1.
        eval_decodings (dict, optional): Extra decodings reported beside the configured
            sampler in evaluation tables, ``{name: dict(num_samples=..., num_steps=...,
            noise_scale=...)}`` (keys of :meth:`predict`); e.g. ``noise_scale=0`` starts
            the integration from the zero chunk (a deterministic "zero-noise" decoding).
            They never replace the configured sampler's prediction. Defaults to None.
    """

    def __init__(self, expert: dict, losses: Optional[List[dict]] = None, action_dim: int = 7,
                 num_steps: int = 10, time_beta=(1.5, 1.0), sample_seed: Optional[int] = 0,
                 num_samples: int = 1, eval_decodings: Optional[Dict[str, dict]] = None):
        super().__init__(expert, losses or [dict(type='WeightedActionMSELoss')], action_dim)
        if num_steps < 1:
            raise ValueError(f'FlowMatchingActionHead: num_steps must be >= 1, got {num_steps}')
        d = self.expert.dim
        self.num_steps = num_steps
        self.time_beta = tuple(float(v) for v in time_beta)
        self.sample_seed = sample_seed
        if num_samples < 1:
            raise ValueError(f'FlowMatchingActionHead: num_samples must be >= 1, got '
                             f'{num_samples}')
        self.num_samples = num_samples
        self.eval_decodings = {}
        for name, kw in (eval_decodings or {}).items():
            bad = set(kw) - {'num_samples', 'num_steps', 'noise_scale'}
            if bad:
                raise ValueError(f'FlowMatchingActionHead: eval_decodings[{name!r}] has unknown '
                                 f'keys {sorted(bad)}; expected num_samples, num_steps, '
                                 f'noise_scale')
            self.eval_decodings[str(name)] = dict(kw)
        self.action_in = nn.Linear(action_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.out = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, action_dim))

    def velocity(self, context, context_mask, x_t: torch.Tensor, t: torch.Tensor,
                 query_cond: Optional[torch.Tensor] = None):
        """``v(x_t, t)``: x_t ``(B, H, A)``, t ``(B,)`` -> ``(B, H, A)``; ``query_cond``
        ``(B, dim)`` (optional) is added to every query."""
        offset = self.action_in(x_t) + self.time_mlp(
            timestep_embedding(t, self.expert.dim)).unsqueeze(1)
        if query_cond is not None:
            offset = offset + query_cond.unsqueeze(1)
        return self.out(self.expert(context, context_mask, offset))

    def sample_time(self, n: int, device) -> torch.Tensor:
        """``(n,)`` times ``0.999 * Beta(alpha, beta) + 0.001``."""
        beta = torch.distributions.Beta(torch.tensor(self.time_beta[0], device=device),
                                        torch.tensor(self.time_beta[1], device=device))
        return beta.sample((n,)) * 0.999 + 0.001

    def loss(self, context, context_mask, target, mask, weight,
             query_cond: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Flow-matching loss for normalised ``target`` ``(B, H, A)``."""
        noise = torch.randn_like(target)
        t = self.sample_time(target.shape[0], target.device)
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * target
        return self._loss_dict(self.velocity(context, context_mask, x_t, t, query_cond),
                               noise - target, mask, weight)

    @torch.no_grad()
    def predict(self, context, context_mask, noise: Optional[torch.Tensor] = None,
                num_steps: Optional[int] = None, num_samples: Optional[int] = None,
                noise_scale: float = 1.0,
                query_cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Euler integration from noise; returns normalised actions ``(B, H, A)``.

        Args:
            noise (Tensor, optional): ``(B, H, A)`` initial sample; drawn (seeded by
                ``sample_seed``) when None.
            num_steps (int, optional): Overrides ``self.num_steps``.
            num_samples (int, optional): Overrides ``self.num_samples`` (ignored when
                ``noise`` is given).
            noise_scale (float): Factor on the drawn initial noise (1 = the trained source
                distribution N(0, I); 0 = start from the zero chunk). Defaults to 1.
            query_cond (Tensor, optional): ``(B, dim)`` added to every query.
        """
        b = context.shape[0]
        k = 1 if noise is not None else (num_samples or self.num_samples)
        if k > 1:  # K samples per query, averaged
            context = context.repeat_interleave(k, 0)
            context_mask = context_mask.repeat_interleave(k, 0)
            if query_cond is not None:
                query_cond = query_cond.repeat_interleave(k, 0)
        shape = (b * k, self.chunk_size, self.action_dim)
        if noise is None:
            gen = None
            if self.sample_seed is not None:
                gen = torch.Generator(device='cpu').manual_seed(self.sample_seed)
            noise = noise_scale * torch.randn(shape, generator=gen).to(context.device)
        steps = num_steps or self.num_steps
        x, dt = noise.float(), -1.0 / steps
        for i in range(steps):
            t = torch.full((x.shape[0],), 1.0 + i * dt, device=context.device)
            x = x + dt * self.velocity(context, context_mask, x, t, query_cond)
        return x.view(b, k, *x.shape[1:]).mean(1)
