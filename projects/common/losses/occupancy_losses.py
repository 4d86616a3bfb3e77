"""Losses on per-voxel semantic occupancy logits.

All losses here take semantic logits ``(N, C, *spatial)`` (typically ``(N, C, X, Y, Z)``)
and integer labels ``(N, *spatial)`` (any integer dtype, ``uint8`` included). The *free*
class (empty space) is ``free_label`` (``-1`` means the last class ``C - 1``, the PLATEAU /
OccWorld convention); voxels labelled ``ignore_index`` are excluded from every loss.

Memory: the per-voxel intermediates of a loss (softmax, log-softmax, weights) are each as large
as the logits (135 MB per frame of a 200 x 200 x 121 x 7 grid). The focal, binary Dice and
mean-matching losses (and :class:`~projects.common.losses.TokenCrossEntropyLoss`) therefore
reduce large batches in chunks of samples (``max_chunk_elements`` logits each, see
:func:`per_sample_terms`), each chunk under activation checkpointing, so only one chunk's
intermediates exist at a time. Values and gradients are the same as in one pass (up to float
summation order).

Sources:
    * Focal loss: T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal Loss for Dense
      Object Detection", ICCV 2017, Eq. (5): ``FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)``.
    * Dice loss: F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net: Fully Convolutional Neural
      Networks for Volumetric Medical Image Segmentation", 3DV 2016, Eq. (1) (soft Dice, here
      with the linear denominator ``sum p + sum g`` and additive smoothing).
    * Mean matching: the anti-collapse term of the AerialWorld seed; it penalises the gap
      between the predicted and the true occupied fraction, which prevents the degenerate
      "everything is free" solution of heavily imbalanced occupancy (cf. the class imbalance
      discussion of OccWorld, W. Zheng et al., "OccWorld: Learning a 3D Occupancy World Model
      for Autonomous Driving", arXiv:2311.16038, 2023).
"""
from functools import partial
from typing import Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from projects.registry import MODELS

#: Default ``max_chunk_elements`` of the chunked losses (2 ** 25 logits, 128 MiB in float32).
MAX_CHUNK_ELEMENTS = 2**25


def _check_inputs(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    """Validate the shapes of semantic logits and labels.

    Args:
        pred (torch.Tensor): Logits ``(N, C, *spatial)``, floating point.
        target (torch.Tensor): Labels ``(N, *spatial)``, integer.
        name (str): Loss name used in error messages.

    Raises:
        ValueError: If the shapes do not match or ``pred`` has fewer than 2 dimensions.
    """
    if pred.dim() < 2:
        raise ValueError(f'{name}: pred must be (N, C, ...), got shape {tuple(pred.shape)}')
    if target.shape != pred.shape[:1] + pred.shape[2:]:
        raise ValueError(f'{name}: target shape {tuple(target.shape)} does not match pred '
                         f'{tuple(pred.shape)} without its class dimension')
    if target.is_floating_point():
        raise ValueError(f'{name}: target must be an integer label tensor, got {target.dtype}')


def _resolve_free_label(free_label: int, num_classes: int, name: str) -> int:
    """Map a possibly negative ``free_label`` to a class index.

    Args:
        free_label (int): Free-class index; negative values count from the end.
        num_classes (int): Number of classes ``C``.
        name (str): Loss name used in error messages.

    Returns:
        int: The free class index in ``[0, C)``.

    Raises:
        ValueError: If ``free_label`` is out of range for ``C`` classes.
    """
    free = free_label + num_classes if free_label < 0 else free_label
    if not 0 <= free < num_classes:
        raise ValueError(f'{name}: free_label={free_label} is out of range for '
                         f'{num_classes} classes')
    return free


def per_sample_terms(fn, pred: torch.Tensor, target: torch.Tensor,
                     max_chunk_elements: int = MAX_CHUNK_ELEMENTS) -> torch.Tensor:
    """``fn(pred, target)`` evaluated over chunks of the batch and concatenated.

    ``fn`` maps a chunk of ``n`` samples to per-sample terms ``(n, ...)`` (e.g. per-sample
    sums), so concatenating the chunks' results gives exactly ``fn`` of the whole batch. When
    ``pred`` has more than ``max_chunk_elements`` elements and gradients flow, every chunk
    (of as many samples as fit, at least one) runs under ``torch.utils.checkpoint``: its
    intermediates are recomputed in the backward pass instead of being kept, so at most one
    chunk's intermediates exist at a time.

    Args:
        fn (Callable): ``(pred (n, C, ...), target (n, ...)) -> Tensor (n, ...)``.
        pred (torch.Tensor): Logits ``(N, C, *spatial)``.
        target (torch.Tensor): Labels ``(N, *spatial)``.
        max_chunk_elements (int): Logit elements per chunk; ``<= 0`` disables chunking.

    Returns:
        torch.Tensor: ``(N, ...)``, the per-sample terms of the whole batch.

    The decomposable losses of this package (:class:`OccupancyFocalLoss`,
    :class:`OccupancyDiceLoss` in binary mode, :class:`MeanMatchingLoss`,
    ``TokenCrossEntropyLoss``) expose the same split as methods, so that callers can evaluate
    the terms of each sample wherever its logits exist (e.g. the VQ-VAE's per-frame
    checkpointing, :meth:`OccVQVAE.forward_terms`): ``batch_context(target, num_classes)``
    (constants of the whole batch, no gradient), ``sample_terms(pred, target, **context)``
    -> ``(n, ...)`` and ``reduce_terms(terms of all N samples)`` -> the loss ``forward``
    returns.
    """
    n = pred.shape[0]
    if max_chunk_elements <= 0 or pred.numel() <= max_chunk_elements or n == 1:
        return fn(pred, target)
    step = max(1, max_chunk_elements // max(1, pred[0].numel()))
    use_cp = torch.is_grad_enabled() and pred.requires_grad
    outs = []
    for i in range(0, n, step):
        p, t = pred[i:i + step], target[i:i + step]
        outs.append(checkpoint(fn, p, t, use_reentrant=False) if use_cp else fn(p, t))
    return torch.cat(outs)


def _occupancy_prob(pred: torch.Tensor, target: torch.Tensor, free: int, ignore_index: int,
                    normalized: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Occupied probability, binary ground truth and validity mask.

    Args:
        pred (torch.Tensor): Logits ``(N, C, *spatial)`` (log-probabilities with
            ``normalized``).
        target (torch.Tensor): Labels ``(N, *spatial)``.
        free (int): Resolved free class index.
        ignore_index (int): Label value excluded from the loss.
        normalized (bool): ``pred`` already holds ``log_softmax(logits, dim=1)``.

    Returns:
        tuple: ``p_occ`` float ``(N, M)`` = ``1 - softmax(pred)[free]``, ``gt_occ`` float
        ``(N, M)`` in ``{0, 1}``, ``valid`` float ``(N, M)`` in ``{0, 1}``, with
        ``M = prod(spatial)``.
    """
    n = pred.shape[0]
    target = target.long()
    # 1 - softmax[free] == sum of the non-free probabilities; computed stably via logsumexp.
    p_free = torch.exp(pred[:, free] if normalized else
                       pred[:, free] - torch.logsumexp(pred, dim=1))
    p_occ = (1.0 - p_free).reshape(n, -1)
    valid = (target != ignore_index).reshape(n, -1).to(pred.dtype)
    gt_occ = (target != free).reshape(n, -1).to(pred.dtype) * valid
    return p_occ * valid, gt_occ, valid


@MODELS.register_module()
class OccupancyFocalLoss(nn.Module):
    """Multi-class focal loss on per-voxel semantic occupancy (Lin et al., ICCV 2017).

    For every valid voxel with true class ``y`` and predicted probability
    ``p_t = softmax(pred)[y]``::

        loss = -w * (1 - p_t) ** gamma * log(p_t),   w = alpha      if y != free
                                                       w = 1 - alpha  if y == free

    averaged over valid voxels (label ``!= ignore_index``) and multiplied by ``loss_weight``.
    With ``alpha=0.99`` (the AerialWorld seed default) occupied voxels weigh 99 times more
    than free ones, countering the >95 % free space of aerial grids.

    ``alpha='adaptive'`` sets ``alpha`` once per call to the free fraction of the valid voxels
    in the batch, clamped to ``adaptive_range`` (default ``[0.5, 0.999]``); a batch with 97 %
    free voxels thus uses ``alpha = 0.97`` so that both groups contribute about equally.
    The adaptive alpha is computed without gradient.

    Args:
        alpha (float | str): Weight of occupied voxels in ``[0, 1]``, or ``'adaptive'``.
            Defaults to 0.99.
        gamma (float): Focusing parameter (>= 0). Defaults to 2.0.
        free_label (int): Free class index; negative counts from the last class.
            Defaults to -1 (last class).
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int): Label excluded from the loss. Defaults to 255.
        adaptive_range (tuple[float, float]): Clamp range of the adaptive alpha.
            Defaults to (0.5, 0.999).
        max_chunk_elements (int): Batches with more logits than this are reduced in
            checkpointed chunks of samples (see :func:`per_sample_terms`); same value, less
            memory. ``<= 0`` disables it. Defaults to :data:`MAX_CHUNK_ELEMENTS`.

    Raises:
        ValueError: On an invalid ``alpha``, ``gamma`` or ``adaptive_range``.
    """

    def __init__(self,
                 alpha: Union[float, str] = 0.99,
                 gamma: float = 2.0,
                 free_label: int = -1,
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 adaptive_range: Tuple[float, float] = (0.5, 0.999),
                 max_chunk_elements: int = MAX_CHUNK_ELEMENTS) -> None:
        super().__init__()
        if isinstance(alpha, str):
            if alpha != 'adaptive':
                raise ValueError(f"OccupancyFocalLoss: alpha must be a float in [0, 1] or "
                                 f"'adaptive', got {alpha!r}")
        elif not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f'OccupancyFocalLoss: alpha must be in [0, 1], got {alpha}')
        if gamma < 0:
            raise ValueError(f'OccupancyFocalLoss: gamma must be >= 0, got {gamma}')
        lo, hi = adaptive_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f'OccupancyFocalLoss: adaptive_range must satisfy '
                             f'0 <= lo <= hi <= 1, got {adaptive_range}')
        self.alpha = alpha
        self.gamma = float(gamma)
        self.free_label = int(free_label)
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)
        self.adaptive_range = (float(lo), float(hi))
        self.max_chunk_elements = int(max_chunk_elements)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the focal loss.

        Args:
            pred (torch.Tensor): Logits ``(N, C, *spatial)``, float.
            target (torch.Tensor): Labels ``(N, *spatial)``, integer (``uint8`` allowed).

        Returns:
            torch.Tensor: Scalar loss (0 when no voxel is valid).

        Raises:
            ValueError: On mismatching shapes or an out-of-range ``free_label``.
        """
        _check_inputs(pred, target, 'OccupancyFocalLoss')
        context = self.batch_context(target, pred.shape[1])
        terms = per_sample_terms(partial(self.sample_terms, **context), pred, target,
                                 self.max_chunk_elements)
        return self.reduce_terms(terms)

    def batch_context(self, target: torch.Tensor, num_classes: int) -> dict:
        """Batch-level constants of the loss (no gradient): the focal ``alpha``.

        Args:
            target (torch.Tensor): Labels ``(N, *spatial)`` of the whole batch.
            num_classes (int): ``C``.

        Returns:
            dict: ``alpha`` (float) and ``free`` (resolved free class), keyword arguments of
            :meth:`sample_terms`.

        Raises:
            ValueError: On an out-of-range ``free_label``.
        """
        free = _resolve_free_label(self.free_label, num_classes, 'OccupancyFocalLoss')
        if self.alpha != 'adaptive':
            return dict(alpha=float(self.alpha), free=free)
        with torch.no_grad():
            valid = target != self.ignore_index
            n_valid = valid.sum().clamp(min=1)
            alpha = (((target == free) & valid).sum().float() / n_valid).clamp(
                *self.adaptive_range).item()
        return dict(alpha=alpha, free=free)

    def sample_terms(self, pred: torch.Tensor, target: torch.Tensor, alpha: float,
                     free: int, normalized: bool = False) -> torch.Tensor:
        """Per-sample ``[sum of the weighted focal terms, valid voxels]``.

        Args:
            pred (torch.Tensor): Logits ``(n, C, *spatial)`` of some samples of the batch.
            target (torch.Tensor): Their labels ``(n, *spatial)``.
            alpha (float): ``alpha`` of the whole batch (:meth:`batch_context`).
            free (int): Resolved free class.
            normalized (bool): ``pred`` already holds ``log_softmax(logits, dim=1)`` (callers
                that evaluate several losses on the same logits compute it once; same values
                and gradients, since ``log_softmax`` is idempotent). Defaults to False.

        Returns:
            torch.Tensor: ``(n, 2)`` float; :meth:`reduce_terms` of the terms of every sample
            is the loss of the batch.
        """
        t = target.long()
        valid = t != self.ignore_index
        safe = torch.where(valid, t, torch.zeros_like(t))
        log_p = pred if normalized else F.log_softmax(pred, dim=1)
        log_pt = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
        w = torch.where(safe == free, 1.0 - alpha, alpha).to(log_pt.dtype)
        loss = -w * (1.0 - log_pt.exp()).clamp(min=0).pow(self.gamma) * log_pt
        validf = valid.to(loss.dtype)
        return torch.stack([(loss * validf).flatten(1).sum(1), validf.flatten(1).sum(1)], 1)

    def reduce_terms(self, terms: torch.Tensor) -> torch.Tensor:
        """Loss of a batch from the :meth:`sample_terms` ``(N, 2)`` of all its samples."""
        total = terms.sum(0)
        return self.loss_weight * total[0] / total[1].clamp(min=1.0)


@MODELS.register_module()
class OccupancyDiceLoss(nn.Module):
    """Soft Dice loss on occupancy (Milletari et al., V-Net, 3DV 2016).

    Binary mode (``per_class=False``): with ``p = 1 - softmax(pred)[free]`` (the occupied
    probability) and ``g = [label != free]``, for every sample::

        dice = 1 - (2 * sum(p * g) + smooth) / (sum(p) + sum(g) + smooth)

    summed over valid voxels, then averaged over the batch.

    Per-class mode (``per_class=True``): for every non-free class ``c`` present in the ground
    truth of the batch, ``p = softmax(pred)[c]`` and ``g = [label == c]``, with the sums taken
    over the whole batch; the loss is the mean over those classes (0 if none is present).

    Args:
        free_label (int): Free class index; negative counts from the last class.
            Defaults to -1.
        per_class (bool): Use the per-class variant. Defaults to False.
        smooth (float): Additive smoothing (> 0 keeps empty volumes finite). Defaults to 1.0.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        ignore_index (int): Label excluded from the loss. Defaults to 255.
        max_chunk_elements (int): Batches with more logits than this are reduced in
            checkpointed chunks of samples (see :func:`per_sample_terms`); same value, less
            memory. ``<= 0`` disables it. Defaults to :data:`MAX_CHUNK_ELEMENTS`.

    Raises:
        ValueError: If ``smooth`` is negative.
    """

    def __init__(self,
                 free_label: int = -1,
                 per_class: bool = False,
                 smooth: float = 1.0,
                 loss_weight: float = 1.0,
                 ignore_index: int = 255,
                 max_chunk_elements: int = MAX_CHUNK_ELEMENTS) -> None:
        super().__init__()
        if smooth < 0:
            raise ValueError(f'OccupancyDiceLoss: smooth must be >= 0, got {smooth}')
        self.free_label = int(free_label)
        self.per_class = bool(per_class)
        self.max_chunk_elements = int(max_chunk_elements)
        self.smooth = float(smooth)
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the Dice loss.

        Args:
            pred (torch.Tensor): Logits ``(N, C, *spatial)``, float.
            target (torch.Tensor): Labels ``(N, *spatial)``, integer.

        Returns:
            torch.Tensor: Scalar loss.

        Raises:
            ValueError: On mismatching shapes or an out-of-range ``free_label``.
        """
        _check_inputs(pred, target, 'OccupancyDiceLoss')
        num_classes = pred.shape[1]
        free = _resolve_free_label(self.free_label, num_classes, 'OccupancyDiceLoss')
        if not self.per_class:
            terms = per_sample_terms(partial(self.sample_terms, free=free), pred, target,
                                     self.max_chunk_elements)
            return self.reduce_terms(terms)
        target = target.long()
        valid = (target != self.ignore_index).to(pred.dtype)
        prob = F.softmax(pred, dim=1)
        losses = []
        for c in range(num_classes):
            if c == free:
                continue
            g = (target == c).to(pred.dtype)
            if g.sum() == 0:
                continue
            p = prob[:, c] * valid
            dice = (2.0 * (p * g).sum() + self.smooth) / (p.sum() + g.sum() + self.smooth)
            losses.append(1.0 - dice)
        if not losses:
            return pred.sum() * 0.0
        return self.loss_weight * torch.stack(losses).mean()

    @property
    def decomposable(self) -> bool:
        """Whether the loss is a reduction of per-sample terms (binary mode only)."""
        return not self.per_class

    def batch_context(self, target: torch.Tensor, num_classes: int) -> dict:
        """Keyword arguments of :meth:`sample_terms`: the resolved free class ``free``.

        Raises:
            ValueError: In per-class mode (its class sums span the batch) or on an
                out-of-range ``free_label``.
        """
        if self.per_class:
            raise ValueError('OccupancyDiceLoss: per_class=True is not a reduction of '
                             'per-sample terms; use forward()')
        return dict(free=_resolve_free_label(self.free_label, num_classes,
                                             'OccupancyDiceLoss'))

    def sample_terms(self, pred: torch.Tensor, target: torch.Tensor, free: int,
                     normalized: bool = False) -> torch.Tensor:
        """Per-sample soft Dice coefficients ``(n,)`` of logits ``(n, C, *spatial)``
        (log-probabilities with ``normalized``, see :meth:`OccupancyFocalLoss.sample_terms`).
        """
        p, g, _ = _occupancy_prob(pred, target, free, self.ignore_index, normalized)
        inter = (p * g).sum(dim=1)
        return (2.0 * inter + self.smooth) / (p.sum(dim=1) + g.sum(dim=1) + self.smooth)

    def reduce_terms(self, terms: torch.Tensor) -> torch.Tensor:
        """Loss of a batch from the Dice coefficients ``(N,)`` of all its samples."""
        return self.loss_weight * (1.0 - terms).mean()


@MODELS.register_module()
class MeanMatchingLoss(nn.Module):
    """Occupied-fraction matching loss (anti-collapse term of the AerialWorld seed).

    For every sample, with ``p = 1 - softmax(pred)[free]`` and ``g = [label != free]`` over
    the valid voxels::

        loss_n = (mean(p) - mean(g)) ** 2

    averaged over the batch and multiplied by ``loss_weight`` (seed default 10). A model that
    predicts "all free" on a grid with 5 % occupancy pays ``10 * 0.05**2 = 0.025`` per sample
    and, unlike the per-voxel terms, the gradient pushes every voxel's occupancy up at once.
    Context: OccWorld (Zheng et al., 2023) reports the same free-space collapse tendency of
    occupancy tokenizers.

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 10.0.
        free_label (int): Free class index; negative counts from the last class.
            Defaults to -1.
        ignore_index (int): Label excluded from the loss. Defaults to 255.
        max_chunk_elements (int): Batches with more logits than this are reduced in
            checkpointed chunks of samples (see :func:`per_sample_terms`); same value, less
            memory. ``<= 0`` disables it. Defaults to :data:`MAX_CHUNK_ELEMENTS`.
    """

    def __init__(self,
                 loss_weight: float = 10.0,
                 free_label: int = -1,
                 ignore_index: int = 255,
                 max_chunk_elements: int = MAX_CHUNK_ELEMENTS) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.free_label = int(free_label)
        self.ignore_index = int(ignore_index)
        self.max_chunk_elements = int(max_chunk_elements)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the mean-matching loss.

        Args:
            pred (torch.Tensor): Logits ``(N, C, *spatial)``, float.
            target (torch.Tensor): Labels ``(N, *spatial)``, integer.

        Returns:
            torch.Tensor: Scalar loss.

        Raises:
            ValueError: On mismatching shapes or an out-of-range ``free_label``.
        """
        _check_inputs(pred, target, 'MeanMatchingLoss')
        context = self.batch_context(target, pred.shape[1])
        terms = per_sample_terms(partial(self.sample_terms, **context), pred, target,
                                 self.max_chunk_elements)
        return self.reduce_terms(terms)

    def batch_context(self, target: torch.Tensor, num_classes: int) -> dict:
        """Keyword arguments of :meth:`sample_terms`: the resolved free class ``free``."""
        return dict(free=_resolve_free_label(self.free_label, num_classes,
                                             'MeanMatchingLoss'))

    def sample_terms(self, pred: torch.Tensor, target: torch.Tensor, free: int,
                     normalized: bool = False) -> torch.Tensor:
        """Per-sample gap of the occupied fractions ``(n,)`` of logits ``(n, C, *spatial)``
        (log-probabilities with ``normalized``, see :meth:`OccupancyFocalLoss.sample_terms`).
        """
        p, g, valid = _occupancy_prob(pred, target, free, self.ignore_index, normalized)
        n_valid = valid.sum(dim=1).clamp(min=1.0)
        return p.sum(dim=1) / n_valid - g.sum(dim=1) / n_valid

    def reduce_terms(self, terms: torch.Tensor) -> torch.Tensor:
        """Loss of a batch from the occupied-fraction gaps ``(N,)`` of all its samples."""
        return self.loss_weight * terms.pow(2).mean()
