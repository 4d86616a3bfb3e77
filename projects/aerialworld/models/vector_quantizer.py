"""Vector quantiser of the AerialWorld VQ-VAE (van den Oord et al., NeurIPS 2017)."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, broadcast

from projects.registry import MODELS


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook with straight-through gradients (van den Oord et al. 2017).

    Dead-code handling (both only while ``self.training``):

    * ``init_from_data``: on the first training forward the codebook is overwritten with
      randomly drawn encoder outputs (plus 1 % noise), so codes start on the data manifold.
      The ``initialized`` buffer is saved in checkpoints, so resuming does not re-initialise.
    * ``restart_dead_codes``: an exponential moving average of every code's usage
      (``usage_decay``, normalised so that uniform use is 1) is kept; codes whose usage falls
      below ``dead_threshold`` are re-seeded with random encoder outputs of the current batch
      and their usage reset to 1. The encoder outputs are drawn with probability
      proportional to their squared distance to the nearest code (k-means++ seeding), so new
      codes go where the codebook represents the data worst, not to the most frequent pattern.

    Under distributed training the usage counts are all-reduced and the re-seeded codebook is
    broadcast from rank 0, so replicas stay identical.

    ``normalize=True`` is the l2-normalised (cosine) codebook of ViT-VQGAN (Yu et al. 2022,
    "Vector-quantized Image Modeling with Improved VQGAN", Sec. 3.2): encoder outputs and codes
    are projected onto the unit sphere before the nearest-neighbour search, so the search uses
    cosine similarity and the codes cannot drift away from the encoder outputs in scale. With a
    small ``code_dim`` (the paper's factorised low-dimensional lookup) this keeps far more of
    the codebook in use than the plain Euclidean codebook.

    Args:
        num_codes (int): Codebook size ``K``. Defaults to 512.
        code_dim (int): Code dimension ``D``. Defaults to 128.
        loss_vq (dict, optional): Config of the codebook loss. Defaults to
            ``dict(type='VQCodebookLoss', beta=beta)``.
        beta (float): Commitment weight used by the default ``loss_vq``. Defaults to 0.25.
        init_from_data (bool): Data-dependent codebook initialisation. Defaults to True.
        restart_dead_codes (bool): Re-seed unused codes. Defaults to True.
        usage_decay (float): EMA decay of code usage. Defaults to 0.95.
        dead_threshold (float): Usage (relative to uniform) below which a code is dead.
            Defaults to 0.01.
        normalize (bool): l2-normalised (cosine) codebook, see above. Defaults to False.
    """

    def __init__(self,
                 num_codes: int = 512,
                 code_dim: int = 128,
                 loss_vq: Optional[dict] = None,
                 beta: float = 0.25,
                 init_from_data: bool = True,
                 restart_dead_codes: bool = True,
                 usage_decay: float = 0.95,
                 dead_threshold: float = 0.01,
                 normalize: bool = False) -> None:
        super().__init__()
        self.normalize = bool(normalize)
        self.num_codes = int(num_codes)
        self.code_dim = int(code_dim)
        self.embedding = nn.Embedding(self.num_codes, self.code_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / self.num_codes, 1.0 / self.num_codes)
        if loss_vq is None:
            loss_vq = dict(type='VQCodebookLoss', beta=beta)
        self.loss_vq = MODELS.build(loss_vq)
        self.init_from_data = init_from_data
        self.restart_dead_codes = restart_dead_codes
        self.usage_decay = float(usage_decay)
        self.dead_threshold = float(dead_threshold)
        self.register_buffer('usage', torch.ones(self.num_codes))
        self.register_buffer('initialized', torch.tensor(not init_from_data))

    @staticmethod
    def _sample_rows(z: torch.Tensor, n: int,
                     weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Draw ``n`` rows of ``z`` ``(N, D)`` plus 1 % noise.

        Uniformly without replacement when possible, or, with ``weights`` ``(N,)`` (e.g. the
        squared distance of every row to its nearest code), with probability proportional to
        the weight (k-means++ style seeding, Arthur & Vassilvitskii 2007; used for codebook
        re-initialisation by Lancucki et al. 2020, "Robust Training of Vector Quantized Deep
        Generative Models using Dynamic Initialization and Codebook Reinitialization").
        """
        if weights is not None and bool((weights > 0).any()):
            positive = int((weights > 0).sum())
            idx = torch.multinomial(weights.float(), n, replacement=positive < n)
        elif z.shape[0] >= n:
            idx = torch.randperm(z.shape[0], device=z.device)[:n]
        else:
            idx = torch.randint(0, z.shape[0], (n, ), device=z.device)
        rows = z[idx]
        return rows + 0.01 * rows.std().clamp(min=1e-6) * torch.randn_like(rows)

    @torch.no_grad()
    def update_codebook(self, z_flat: torch.Tensor, indices: torch.Tensor,
                        min_dist: Optional[torch.Tensor] = None) -> None:
        """Data-dependent init and dead-code restart (see class docstring).

        The stateful side of the quantiser: :meth:`forward` applies it once per training
        forward; callers of :meth:`quantize` (which has no side effects, so it can run under
        activation checkpointing) apply it once per step themselves, with the statistics of
        the whole batch. On the first call with ``init_from_data`` (``initialized`` false)
        the codebook is initialised from ``z_flat`` and ``indices`` is ignored.

        Args:
            z_flat (torch.Tensor): ``(N, D)`` encoder outputs of the batch.
            indices (torch.Tensor): ``(N,)`` long, their nearest codes.
            min_dist (torch.Tensor, optional): ``(N,)`` squared distance of every row to its
                nearest code; dead codes are then re-seeded preferentially at the worst
                represented encoder outputs instead of uniformly.
        """
        weight = self.embedding.weight
        if not bool(self.initialized):
            weight.data.copy_(self._sample_rows(z_flat, self.num_codes))
            broadcast(weight.data, src=0)
            self.initialized.fill_(True)
            self.usage.fill_(1.0)
            return
        if not self.restart_dead_codes:
            return
        counts = torch.bincount(indices, minlength=self.num_codes).to(self.usage.dtype)
        all_reduce(counts, op='sum')
        rel = counts * self.num_codes / counts.sum().clamp(min=1.0)
        self.usage.mul_(self.usage_decay).add_(rel, alpha=1.0 - self.usage_decay)
        dead = self.usage < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead > 0:
            new = weight.data.clone()
            new[dead] = self._sample_rows(z_flat, n_dead, min_dist)
            broadcast(new, src=0)
            weight.data.copy_(new)
            self.usage[dead] = 1.0

    @property
    def codes(self) -> torch.Tensor:
        """The code vectors ``(K, D)`` as used for quantisation (unit length if ``normalize``)."""
        weight = self.embedding.weight
        return F.normalize(weight, dim=1) if self.normalize else weight

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of ``indices`` ``(B, h, w)`` long -> ``(B, D, h, w)`` float."""
        return F.embedding(indices, self.codes).permute(0, 3, 1, 2)

    def flatten_latents(self, z_e: torch.Tensor) -> torch.Tensor:
        """Encoder outputs ``(B, D, h, w)`` as the ``(B * h * w, D)`` rows that are quantised
        (l2-normalised with ``normalize``).

        Raises:
            ValueError: If the shape is not ``(B, code_dim, h, w)``.
        """
        if z_e.dim() != 4 or z_e.shape[1] != self.code_dim:
            raise ValueError(f'VectorQuantizer: expected (B, {self.code_dim}, h, w), got '
                             f'{tuple(z_e.shape)}')
        if self.normalize:
            z_e = F.normalize(z_e, dim=1)
        return z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)

    def frozen_codes(self) -> torch.Tensor:
        """The codes ``(K, D)`` computed from a copy of the codebook weights.

        Same values and gradients (to ``embedding.weight``) as :attr:`codes`, but unaffected
        by later in-place updates of the weights (:meth:`update_codebook`): code that is
        recomputed in the backward pass (activation checkpointing) after the step's codebook
        update then sees the codebook its forward pass saw.
        """
        weight = self.embedding.weight.clone()
        return F.normalize(weight, dim=1) if self.normalize else weight

    def quantize(self, z_e: torch.Tensor, codes: Optional[torch.Tensor] = None) -> Tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise encoder outputs without side effects (no codebook update).

        Args:
            z_e (torch.Tensor): ``(B, D, h, w)`` float encoder outputs.
            codes (torch.Tensor, optional): ``(K, D)`` code vectors to use (e.g.
                :meth:`frozen_codes`). Defaults to :attr:`codes`.

        Returns:
            tuple: ``z_q`` ``(B, D, h, w)`` (straight-through), ``indices`` ``(B, h, w)``
            long, ``loss`` scalar codebook + commitment loss, and the statistics of
            :meth:`update_codebook` (no gradient): ``z_flat`` ``(B * h * w, D)`` and
            ``min_dist`` ``(B * h * w,)`` (squared distance to the nearest code, >= 0).

        Raises:
            ValueError: If the channel dimension is not ``code_dim``.
        """
        z_flat = self.flatten_latents(z_e)
        if self.normalize:
            z_e = F.normalize(z_e, dim=1)
        b, d, h, w = z_e.shape
        weight = self.codes if codes is None else codes
        dist = (z_flat.detach().pow(2).sum(1, keepdim=True) - 2.0 * z_flat.detach() @ weight.t()
                + weight.detach().pow(2).sum(1)[None])
        min_dist, indices = dist.min(dim=1)
        z_q = F.embedding(indices, weight).reshape(b, h, w, d).permute(0, 3, 1, 2)
        loss = self.loss_vq(z_e, z_q)
        z_q_st = z_e + (z_q - z_e).detach()
        return (z_q_st, indices.reshape(b, h, w), loss, z_flat.detach(),
                min_dist.detach().clamp(min=0))

    def forward(self, z_e: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise encoder outputs and, while training, update the codebook.

        Args:
            z_e (torch.Tensor): ``(B, D, h, w)`` float encoder outputs.

        Returns:
            tuple: ``z_q`` ``(B, D, h, w)`` (straight-through: forward value = code vectors,
            gradient = identity to ``z_e``), ``indices`` ``(B, h, w)`` long in ``[0, K)``,
            ``loss`` scalar codebook + commitment loss.

        Raises:
            ValueError: If the channel dimension is not ``code_dim``.
        """
        if self.training and self.init_from_data and not bool(self.initialized):
            self.update_codebook(self.flatten_latents(z_e).detach(),
                                 torch.empty(0, dtype=torch.long))
        z_q, indices, loss, z_flat, min_dist = self.quantize(z_e)
        if self.training:
            self.update_codebook(z_flat, indices.flatten(), min_dist)
        return z_q, indices, loss
