"""6-DoF pose losses, registered in :data:`projects.registry.MODELS`.

* :class:`GeodesicRotationLoss` -- angle of ``R_pred^T R_gt`` (radians) on unit quaternions,
  invariant to ``q`` vs ``-q``; computed as ``2 atan2(|u|, |w|)`` of the relative quaternion
  ``conj(q_pred) (x) q_gt = [w, u]``, which is finite with finite gradients at 0 and at pi
  (the usual ``acos(2 <p, q>^2 - 1)`` has an infinite derivative at 0). Reference: D. Q.
  Huynh, "Metrics for 3D Rotations: Comparison and Analysis", J. Math. Imaging and Vision 35,
  2009; used as a training loss e.g. by Zhou et al., CVPR 2019 (continuity of rotation
  representations).
* :class:`TranslationLoss` -- per-step translation error (Euclidean, L1, L2 or SmoothL1 of
  R. Girshick, "Fast R-CNN", ICCV 2015), metres.
* :class:`VelocityLoss` -- the same on ``[v (m/s), w (rad/s)]`` with separate weights for the
  linear and angular parts.

All return ``loss_weight * reduce(per-element loss)``; ``weight`` (broadcastable to the
per-element loss, e.g. a ``(B, F)`` validity mask) is applied before the reduction and a
weighted ``'mean'`` divides by the weight sum.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from projects.common.structures.rotation import quat_geodesic_distance
from projects.registry import MODELS

__all__ = ['GeodesicRotationLoss', 'TranslationLoss', 'VelocityLoss']

_REDUCTIONS = ('mean', 'sum', 'none')


def _reduce(loss: torch.Tensor, weight: Optional[torch.Tensor], reduction: str) -> torch.Tensor:
    """Weight and reduce a per-element loss ``(...)``."""
    if weight is not None:
        weight = weight.to(loss.dtype).expand_as(loss)
        loss = loss * weight
        if reduction == 'mean':
            return loss.sum() / weight.sum().clamp(min=1e-12)
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f'{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}')


@MODELS.register_module()
class GeodesicRotationLoss(nn.Module):
    """Geodesic angle between predicted and ground-truth rotations (radians).

    ``loss = loss_weight * reduce(angle(conj(q_pred) (x) q_gt))`` with the angle in
    ``[0, pi]``; quaternions are normalised first, ``q`` and ``-q`` give the same loss.
    Example values: identical rotations -> 0; 90 degrees about z -> pi / 2; 180 degrees ->
    pi.

    Args:
        loss_weight (float): Multiplier. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to ``'mean'``.
        degrees (bool): Report the angle in degrees instead of radians (metrics; keep False
            for training so the weight is comparable to metre losses). Defaults to False.

    Raises:
        ValueError: On an unknown ``reduction``.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean',
                 degrees: bool = False) -> None:
        super().__init__()
        _check_reduction('GeodesicRotationLoss', reduction)
        self.loss_weight = float(loss_weight)
        self.reduction = reduction
        self.degrees = bool(degrees)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (torch.Tensor): ``(..., 4)`` float quaternions ``[qw, qx, qy, qz]``.
            target (torch.Tensor): ``(..., 4)`` float quaternions, same shape.
            weight (torch.Tensor, optional): Broadcastable to ``(...)``.

        Returns:
            torch.Tensor: Scalar (or ``(...)`` for ``reduction='none'``), radians (degrees
            with ``degrees=True``) times ``loss_weight``.

        Raises:
            ValueError: If the shapes differ or the last dimension is not 4.
        """
        if pred.shape != target.shape or pred.shape[-1] != 4:
            raise ValueError(f'GeodesicRotationLoss: expected pred and target (..., 4) of the '
                             f'same shape, got {tuple(pred.shape)} and {tuple(target.shape)}')
        angle = quat_geodesic_distance(pred, target.to(pred.dtype))
        if self.degrees:
            angle = torch.rad2deg(angle)
        return self.loss_weight * _reduce(angle, weight, self.reduction)


@MODELS.register_module()
class TranslationLoss(nn.Module):
    """Translation (or any vector) regression loss.

    ``loss_type``:

    * ``'euclidean'``: ``|p - g|_2`` per vector (metres; the ADE-style distance);
    * ``'l2'``: ``|p - g|_2^2`` per vector;
    * ``'l1'``: ``sum |p - g|`` per vector;
    * ``'smooth_l1'``: ``sum smoothL1_beta(p - g)`` per vector (Girshick 2015).

    Args:
        loss_type (str): See above. Defaults to ``'smooth_l1'``.
        beta (float): SmoothL1 transition point (same unit as the input). Defaults to 1.0.
        loss_weight (float): Multiplier. Defaults to 1.0.
        reduction (str): ``'mean'`` (over vectors), ``'sum'`` or ``'none'``. Defaults to
            ``'mean'``.

    Raises:
        ValueError: On an unknown ``loss_type`` / ``reduction`` or ``beta <= 0``.
    """

    _TYPES = ('euclidean', 'l2', 'l1', 'smooth_l1')

    def __init__(self, loss_type: str = 'smooth_l1', beta: float = 1.0,
                 loss_weight: float = 1.0, reduction: str = 'mean') -> None:
        super().__init__()
        name = type(self).__name__
        if loss_type not in self._TYPES:
            raise ValueError(f'{name}: loss_type must be one of {self._TYPES}, got '
                             f'{loss_type!r}')
        if beta <= 0:
            raise ValueError(f'{name}: beta must be > 0, got {beta}')
        _check_reduction(name, reduction)
        self.loss_type = loss_type
        self.beta = float(beta)
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def _per_vector(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = pred - target.to(pred.dtype)
        if self.loss_type == 'euclidean':
            sq = (diff ** 2).sum(-1)
            safe = torch.where(sq > 0, sq, torch.ones_like(sq))
            return torch.where(sq > 0, torch.sqrt(safe), torch.zeros_like(sq))
        if self.loss_type == 'l2':
            return (diff ** 2).sum(-1)
        if self.loss_type == 'l1':
            return diff.abs().sum(-1)
        return F.smooth_l1_loss(pred, target.to(pred.dtype), reduction='none',
                                beta=self.beta).sum(-1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (torch.Tensor): ``(..., D)`` float (``D = 3`` for translations, metres).
            target (torch.Tensor): ``(..., D)`` float, same shape.
            weight (torch.Tensor, optional): Broadcastable to ``(...)``.

        Returns:
            torch.Tensor: Scalar (``(...)`` for ``reduction='none'``).

        Raises:
            ValueError: If the shapes differ.
        """
        if pred.shape != target.shape:
            raise ValueError(f'{type(self).__name__}: pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ')
        return self.loss_weight * _reduce(self._per_vector(pred, target), weight,
                                          self.reduction)


@MODELS.register_module()
class VelocityLoss(TranslationLoss):
    """Linear + angular velocity regression loss.

    ``loss = loss_weight * reduce(linear_weight * l(v_p, v_g) + angular_weight * l(w_p, w_g))``
    with ``l`` the per-vector loss of :class:`TranslationLoss`.

    Args:
        linear_weight (float): Weight of the linear part (m/s). Defaults to 1.0.
        angular_weight (float): Weight of the angular part (rad/s). Defaults to 1.0.
        **kwargs: ``loss_type``, ``beta``, ``loss_weight``, ``reduction`` of
            :class:`TranslationLoss`.
    """

    def __init__(self, linear_weight: float = 1.0, angular_weight: float = 1.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.linear_weight = float(linear_weight)
        self.angular_weight = float(angular_weight)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred (torch.Tensor): ``(..., 6)`` float ``[vx, vy, vz, wx, wy, wz]``.
            target (torch.Tensor): ``(..., 6)`` float, same shape.
            weight (torch.Tensor, optional): Broadcastable to ``(...)``.

        Returns:
            torch.Tensor: Scalar (``(...)`` for ``reduction='none'``).

        Raises:
            ValueError: If the shapes differ or the last dimension is not 6.
        """
        if pred.shape != target.shape or pred.shape[-1] != 6:
            raise ValueError(f'VelocityLoss: expected pred and target (..., 6) of the same '
                             f'shape, got {tuple(pred.shape)} and {tuple(target.shape)}')
        per = (self.linear_weight * self._per_vector(pred[..., :3], target[..., :3]) +
               self.angular_weight * self._per_vector(pred[..., 3:], target[..., 3:]))
        return self.loss_weight * _reduce(per, weight, self.reduction)
