"""Losses of discrete-token world models: token cross-entropy and the VQ codebook loss.

Sources:
    * VQ-VAE objective: A. van den Oord, O. Vinyals, K. Kavukcuoglu, "Neural Discrete
      Representation Learning", NeurIPS 2017, Eq. (3):
      ``||sg[z_e(x)] - e||^2 + beta * ||z_e(x) - sg[e]||^2``.
    * Next-token cross-entropy over codebook indices as in OccWorld (W. Zheng et al.,
      "OccWorld: Learning a 3D Occupancy World Model for Autonomous Driving",
      arXiv:2311.16038, 2023).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from projects.registry import MODELS
from .occupancy_losses import MAX_CHUNK_ELEMENTS, per_sample_terms


@MODELS.register_module()
class TokenCrossEntropyLoss(nn.Module):
    """Cross-entropy between next-frame token logits and target code indices.

    ``loss = loss_weight * mean_{valid positions} CE(logits, target)`` with optional label
    smoothing (OccWorld, Zheng et al. 2023, trains its world model with this objective).

    Args:
        label_smoothing (float): Label smoothing in ``[0, 1)``. Defaults to 0.0.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int): Target value excluded from the loss. Defaults to -100.
        max_chunk_elements (int): Batches with more logits than this (e.g. the tokenizer's
            per-voxel reconstruction logits of full aerial grids) are reduced in checkpointed
            chunks of samples (:func:`~projects.common.losses.occupancy_losses.per_sample_terms`):
            same value, less memory. ``<= 0`` disables it. Defaults to ``2 ** 25``.

    Raises:
        ValueError: If ``label_smoothing`` is outside ``[0, 1)``.
    """

    def __init__(self,
                 label_smoothing: float = 0.0,
                 loss_weight: float = 1.0,
                 ignore_index: int = -100,
                 max_chunk_elements: int = MAX_CHUNK_ELEMENTS) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'TokenCrossEntropyLoss: label_smoothing must be in [0, 1), '
                             f'got {label_smoothing}')
        self.label_smoothing = float(label_smoothing)
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)
        self.max_chunk_elements = int(max_chunk_elements)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the token cross-entropy.

        Args:
            logits (torch.Tensor): Token logits ``(N, K, H, W)`` (any ``(N, K, *)``), float.
            target (torch.Tensor): Code indices ``(N, H, W)``, integer in ``[0, K)``.

        Returns:
            torch.Tensor: Scalar loss.

        Raises:
            ValueError: If the shapes do not match.
        """
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f'TokenCrossEntropyLoss: target shape {tuple(target.shape)} '
                             f'does not match logits {tuple(logits.shape)}')
        if logits.numel() <= self.max_chunk_elements or self.max_chunk_elements <= 0:
            loss = F.cross_entropy(logits, target.long(), ignore_index=self.ignore_index,
                                   label_smoothing=self.label_smoothing)
            return self.loss_weight * loss

        # mean over the counted positions, as F.cross_entropy's 'mean' reduction
        terms = per_sample_terms(self.sample_terms, logits, target, self.max_chunk_elements)
        return self.reduce_terms(terms)

    def batch_context(self, target: torch.Tensor, num_classes: int) -> dict:
        """Keyword arguments of :meth:`sample_terms` (none: no batch-level constants)."""
        return {}

    def sample_terms(self, logits: torch.Tensor, target: torch.Tensor,
                     normalized: bool = False) -> torch.Tensor:
        """Per-sample ``[summed cross-entropy, counted positions]`` ``(n, 2)``.

        Args:
            logits (torch.Tensor): ``(n, K, *)`` logits of some samples of the batch.
            target (torch.Tensor): ``(n, *)`` integer targets.
            normalized (bool): ``logits`` already holds ``log_softmax(logits, dim=1)`` (see
                ``OccupancyFocalLoss.sample_terms``); the negative log-likelihood (and the
                label-smoothing term ``-mean_k log p_k``) is then read from it directly.
                Defaults to False.

        Returns:
            torch.Tensor: ``(n, 2)`` float; :meth:`reduce_terms` of the terms of every sample
            is the loss of the batch.
        """
        t = target.long()
        valid = t != self.ignore_index
        if normalized:
            safe = torch.where(valid, t, torch.zeros_like(t))
            ce = -logits.gather(1, safe.unsqueeze(1)).squeeze(1)
            if self.label_smoothing > 0:
                eps = self.label_smoothing
                ce = (1.0 - eps) * ce - eps * logits.mean(dim=1)
            ce = ce * valid.to(ce.dtype)
        else:
            ce = F.cross_entropy(logits, t, ignore_index=self.ignore_index,
                                 label_smoothing=self.label_smoothing, reduction='none')
        count = valid.to(ce.dtype)
        return torch.stack([ce.flatten(1).sum(1), count.flatten(1).sum(1)], 1)

    def reduce_terms(self, terms: torch.Tensor) -> torch.Tensor:
        """Loss of a batch from the :meth:`sample_terms` ``(N, 2)`` of all its samples."""
        total = terms.sum(0)
        return self.loss_weight * total[0] / total[1]


@MODELS.register_module()
class VQCodebookLoss(nn.Module):
    """VQ-VAE codebook + commitment loss (van den Oord et al., NeurIPS 2017, Eq. 3).

    ``loss = loss_weight * (mean((z_q - sg[z_e])^2) + beta * mean((z_e - sg[z_q])^2))``

    where ``sg`` is stop-gradient; the first term moves the codebook towards the encoder
    outputs, the second (commitment) keeps the encoder close to its chosen codes. Squared
    errors are averaged over all elements.

    Args:
        beta (float): Commitment weight (>= 0). Defaults to 0.25.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.

    Raises:
        ValueError: If ``beta`` is negative.
    """

    def __init__(self, beta: float = 0.25, loss_weight: float = 1.0) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f'VQCodebookLoss: beta must be >= 0, got {beta}')
        self.beta = float(beta)
        self.loss_weight = float(loss_weight)

    def forward(self, z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        """Compute the codebook and commitment terms.

        Args:
            z_e (torch.Tensor): Encoder outputs, any shape, float.
            z_q (torch.Tensor): Selected codebook vectors (before the straight-through
                trick), same shape as ``z_e``.

        Returns:
            torch.Tensor: Scalar loss.

        Raises:
            ValueError: If the shapes differ.
        """
        if z_e.shape != z_q.shape:
            raise ValueError(f'VQCodebookLoss: z_e shape {tuple(z_e.shape)} != z_q shape '
                             f'{tuple(z_q.shape)}')
        codebook = F.mse_loss(z_q, z_e.detach())
        commitment = F.mse_loss(z_e, z_q.detach())
        return self.loss_weight * (codebook + self.beta * commitment)
