"""Trajectory-distillation losses, registered in :data:`projects.registry.MODELS`.

All losses return a scalar tensor already multiplied by ``loss_weight``. Shapes: ``B`` batch,
``K`` modes, ``T`` future steps; positions in metres, yaw in radians.

* :class:`TrajectoryLoss` — position error + ``yaw_weight`` (0.3) × wrapped yaw error.
* :class:`InfoNCELoss` — contrastive loss between student reasoning features and 384-d teacher
  sentence embeddings (van den Oord et al., "Representation Learning with Contrastive
  Predictive Coding", 2018), temperature τ = 0.07, weight λ warmed up linearly.
* :class:`ActionLoss` — unicycle controls (acceleration, curvature) + a smoothness term on
  their first differences.
* :class:`DiscreteActionLoss` — cross-entropy over action bins with label smoothing
  (Szegedy et al., "Rethinking the Inception Architecture", 2016).
* :class:`WTALoss` — winner-takes-all / multiple-choice learning (Guzman-Rivera et al.,
  "Multiple Choice Learning", NeurIPS 2012): regression on the best mode only + cross-entropy
  of the mode logits towards the best mode.
* :class:`MixtureNLLLoss` — negative log-likelihood of the ground truth under a mixture of
  per-step Laplace / Gaussian modes (MultiPath, Chai et al., CoRL 2019).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from projects.registry import MODELS

__all__ = ['TrajectoryLoss', 'InfoNCELoss', 'ActionLoss', 'DiscreteActionLoss', 'WTALoss',
           'MixtureNLLLoss', 'trajectory_distance']


def _wrap(angle):
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def _masked_mean(value, mask):
    """Mean of ``value`` over entries where ``mask`` is true (0 when the mask is empty)."""
    if mask is None:
        return value.mean()
    mask = mask.to(value.dtype).expand_as(value)
    return (value * mask).sum() / mask.sum().clamp_min(1.0)


def _check_last_dim(name, tensor, minimum):
    if tensor.shape[-1] < minimum:
        raise ValueError(f'{name}: expected a last dimension >= {minimum}, got shape '
                         f'{tuple(tensor.shape)}')


def trajectory_distance(pred, target):
    """Per-step Euclidean position error.

    Args:
        pred (Tensor): (..., T, >=2) predicted ``[x, y, ...]`` (metres).
        target (Tensor): (..., T, >=2) ground truth, broadcastable to ``pred``.

    Returns:
        Tensor: (..., T) float distances in metres.
    """
    return torch.linalg.norm(pred[..., :2] - target[..., :2], dim=-1)


@MODELS.register_module()
class TrajectoryLoss(nn.Module):
    """Position + yaw regression loss for a single trajectory.

    ``loss = mean_t pos(p̂_t - p_t) + yaw_weight · mean_t |wrap(ψ̂_t - ψ_t)|`` where ``pos`` is
    the per-step Euclidean distance (``'l2'``), the L1 norm of the difference (``'l1'``) or
    SmoothL1 with ``beta`` (``'smooth_l1'``).

    Args:
        position_loss (str): ``'l2'`` | ``'l1'`` | ``'smooth_l1'``.
        yaw_weight (float): weight of the yaw term (0.3 by default).
        beta (float): SmoothL1 transition point (metres).
        loss_weight (float): overall weight.

    Raises:
        ValueError: on an unknown ``position_loss``.
    """

    def __init__(self, position_loss='l2', yaw_weight=0.3, beta=1.0, loss_weight=1.0):
        super().__init__()
        if position_loss not in ('l2', 'l1', 'smooth_l1'):
            raise ValueError(f'TrajectoryLoss.position_loss must be l2, l1 or smooth_l1, got '
                             f'{position_loss!r}')
        self.position_loss = position_loss
        self.yaw_weight = yaw_weight
        self.beta = beta
        self.loss_weight = loss_weight

    def per_step(self, pred, target):
        """Per-step loss ``(..., T)`` (position term + weighted yaw term).

        Args:
            pred (Tensor): (..., T, 3) ``[x, y, yaw]``.
            target (Tensor): (..., T, 3), broadcastable.
        """
        diff = pred[..., :2] - target[..., :2]
        if self.position_loss == 'l2':
            pos = torch.sqrt((diff ** 2).sum(-1) + 1e-9)
        elif self.position_loss == 'l1':
            pos = diff.abs().sum(-1)
        else:
            pos = F.smooth_l1_loss(diff, torch.zeros_like(diff), beta=self.beta,
                                   reduction='none').sum(-1)
        if self.yaw_weight and pred.shape[-1] >= 3:
            pos = pos + self.yaw_weight * _wrap(pred[..., 2] - target[..., 2]).abs()
        return pos

    def forward(self, pred, target, mask=None):
        """Compute the loss.

        Args:
            pred (Tensor): (B, T, 3) float ``[x, y, yaw]``.
            target (Tensor): (B, T, 3) float.
            mask (Tensor, optional): (B, T) bool/float valid steps.

        Returns:
            Tensor: scalar.
        """
        _check_last_dim('TrajectoryLoss pred', pred, 2)
        return self.loss_weight * _masked_mean(self.per_step(pred, target), mask)


@MODELS.register_module()
class InfoNCELoss(nn.Module):
    """InfoNCE between student features and teacher embeddings (van den Oord et al. 2018).

    With L2-normalised ``z`` (student, B × D) and ``e`` (teacher, B × D), logits
    ``s_ij = z_i · e_j / τ``; the loss is the mean of the cross-entropies
    ``-log softmax_j(s_ij)[i]`` (student → teacher) and, when ``symmetric``, of
    ``-log softmax_i(s_ij)[j]`` (teacher → student). Positives are the diagonal; every other
    sample of the batch is a negative.

    The weight follows a linear warm-up ``λ(it) = loss_weight · min(1, it / warmup_iters)``;
    the iteration counter is a buffer (saved in checkpoints, so resuming keeps the schedule)
    advanced by one at every call in training mode.

    Args:
        temperature (float): τ (0.07).
        loss_weight (float): λ after the warm-up.
        warmup_iters (int): warm-up length in training calls (0: no warm-up).
        symmetric (bool): average both directions.

    Raises:
        ValueError: if ``temperature <= 0``.
    """

    def __init__(self, temperature=0.07, loss_weight=1.0, warmup_iters=0, symmetric=True):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'InfoNCELoss.temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.warmup_iters = int(warmup_iters)
        self.symmetric = symmetric
        self.register_buffer('num_calls', torch.zeros((), dtype=torch.long))

    def current_weight(self):
        """Return λ at the current iteration (float)."""
        if self.warmup_iters <= 0:
            return float(self.loss_weight)
        return float(self.loss_weight) * min(1.0, float(self.num_calls) / self.warmup_iters)

    def forward(self, student, teacher):
        """Compute the weighted loss.

        Args:
            student (Tensor): (B, D) float student reasoning features.
            teacher (Tensor): (B, D) float teacher embeddings (e.g. 384-d all-MiniLM-L6-v2).

        Returns:
            Tensor: scalar.

        Raises:
            ValueError: if the shapes differ.
        """
        if student.shape != teacher.shape:
            raise ValueError(f'InfoNCELoss: student {tuple(student.shape)} and teacher '
                             f'{tuple(teacher.shape)} embeddings must have the same shape')
        weight = self.current_weight()
        if self.training:
            self.num_calls += 1
        z = F.normalize(student, dim=-1)
        e = F.normalize(teacher, dim=-1)
        logits = z @ e.T / self.temperature
        labels = torch.arange(z.shape[0], device=z.device)
        loss = F.cross_entropy(logits, labels)
        if self.symmetric:
            loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
        return weight * loss


@MODELS.register_module()
class ActionLoss(nn.Module):
    """Loss on unicycle controls with a smoothness penalty.

    ``loss = mean |(â - a) / s|_1 + smooth_weight · mean |Δ_t â / s|²`` with per-channel scales
    ``s`` (``action_scale``, e.g. 1 m/s² and 0.05 1/m) so acceleration and curvature are
    comparable.

    Args:
        action_scale (tuple[float]): scale of each action channel.
        smooth_weight (float): weight of the first-difference penalty on the prediction.
        loss_weight (float): overall weight.
    """

    def __init__(self, action_scale=(1.0, 0.05), smooth_weight=0.1, loss_weight=1.0):
        super().__init__()
        self.register_buffer('scale', torch.tensor(action_scale, dtype=torch.float32),
                             persistent=False)
        self.smooth_weight = smooth_weight
        self.loss_weight = loss_weight

    def forward(self, pred, target, mask=None):
        """Compute the loss.

        Args:
            pred (Tensor): (B, T, A) predicted controls.
            target (Tensor): (B, T, A) teacher controls.
            mask (Tensor, optional): (B, T) valid steps.

        Returns:
            Tensor: scalar.

        Raises:
            ValueError: if the channel count differs from ``action_scale``.
        """
        if pred.shape[-1] != self.scale.numel():
            raise ValueError(f'ActionLoss: {pred.shape[-1]} action channels but action_scale '
                             f'has {self.scale.numel()}')
        scale = self.scale.to(pred)
        err = ((pred - target) / scale).abs().sum(-1)
        loss = _masked_mean(err, mask)
        if self.smooth_weight:
            rough = (torch.diff(pred, dim=-2) / scale).pow(2).sum(-1)
            loss = loss + self.smooth_weight * rough.mean()
        return self.loss_weight * loss


@MODELS.register_module()
class DiscreteActionLoss(nn.Module):
    """Cross-entropy over discretised actions with label smoothing.

    Args:
        label_smoothing (float): ε; the target distribution is ``(1 - ε) onehot + ε / C``.
        loss_weight (float): overall weight.
    """

    def __init__(self, label_smoothing=0.1, loss_weight=1.0):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight

    def forward(self, logits, target_bins, mask=None):
        """Compute the loss.

        Args:
            logits (Tensor): (B, T, A, C) float logits over ``C`` bins per action channel.
            target_bins (Tensor): (B, T, A) long bin indices.
            mask (Tensor, optional): (B, T) valid steps.

        Returns:
            Tensor: scalar.
        """
        ce = F.cross_entropy(logits.flatten(0, -2), target_bins.flatten().long(),
                             label_smoothing=self.label_smoothing, reduction='none')
        ce = ce.view(target_bins.shape).mean(-1)
        return self.loss_weight * _masked_mean(ce, mask)


@MODELS.register_module()
class WTALoss(nn.Module):
    """Winner-takes-all multi-modal loss (multiple-choice learning, Guzman-Rivera et al. 2012).

    The best mode ``k* = argmin_k ADE(ŷ_k, y)`` (no gradient through the choice) receives the
    regression loss ``reg(ŷ_{k*}, y)`` (a :class:`TrajectoryLoss`); the mode logits get
    ``mode_weight · CE(logits, k*)``.

    Args:
        regression (dict | None): config of the regression loss (default TrajectoryLoss with
            yaw weight 0.3).
        mode_weight (float): weight of the mode classification term.
        loss_weight (float): overall weight.
    """

    def __init__(self, regression=None, mode_weight=0.5, loss_weight=1.0):
        super().__init__()
        self.regression = MODELS.build(regression or dict(type='TrajectoryLoss'))
        self.mode_weight = mode_weight
        self.loss_weight = loss_weight

    def forward(self, pred, logits, target, mask=None):
        """Compute the loss.

        Args:
            pred (Tensor): (B, K, T, 3) mode trajectories ``[x, y, yaw]``.
            logits (Tensor): (B, K) mode logits.
            target (Tensor): (B, T, 3) ground truth.
            mask (Tensor, optional): (B, T) valid steps.

        Returns:
            Tensor: scalar.
        """
        with torch.no_grad():
            dist = trajectory_distance(pred, target[:, None])
            if mask is not None:
                m = mask[:, None].to(dist.dtype)
                dist = (dist * m).sum(-1) / m.sum(-1).clamp_min(1.0)
            else:
                dist = dist.mean(-1)
            best = dist.argmin(dim=1)
        chosen = pred[torch.arange(pred.shape[0], device=pred.device), best]
        loss = self.regression(chosen, target, mask)
        if self.mode_weight:
            loss = loss + self.mode_weight * F.cross_entropy(logits, best)
        return self.loss_weight * loss


@MODELS.register_module()
class MixtureNLLLoss(nn.Module):
    """Negative log-likelihood under a mixture of trajectory modes (MultiPath, Chai et al. 2019).

    ``p(y) = Σ_k π_k Π_t Π_{d∈{x,y}} f(y_td | ŷ_ktd, σ_ktd)`` with ``π = softmax(logits)`` and
    ``f`` a Laplace (``b = σ``) or Gaussian density; the loss is ``-log p(y)`` averaged over the
    batch and divided by ``T`` (per-step scale), computed with ``logsumexp``. ``log σ`` is
    clamped to ``[log_sigma_min, log_sigma_max]``.

    Args:
        distribution (str): ``'laplace'`` | ``'gaussian'``.
        log_sigma_min (float): lower clamp of ``log σ`` (σ in metres).
        log_sigma_max (float): upper clamp.
        loss_weight (float): overall weight.

    Raises:
        ValueError: on an unknown ``distribution``.
    """

    def __init__(self, distribution='laplace', log_sigma_min=-3.0, log_sigma_max=4.0,
                 loss_weight=1.0):
        super().__init__()
        if distribution not in ('laplace', 'gaussian'):
            raise ValueError(f'MixtureNLLLoss.distribution must be laplace or gaussian, got '
                             f'{distribution!r}')
        self.distribution = distribution
        self.log_sigma_min = log_sigma_min
        self.log_sigma_max = log_sigma_max
        self.loss_weight = loss_weight

    def forward(self, pred, logits, log_sigma, target, mask=None):
        """Compute the loss.

        Args:
            pred (Tensor): (B, K, T, >=2) mode means ``[x, y, ...]`` (metres).
            logits (Tensor): (B, K) mode logits.
            log_sigma (Tensor): (B, K, T, 2) log scales (log metres).
            target (Tensor): (B, T, >=2) ground truth.
            mask (Tensor, optional): (B, T) valid steps.

        Returns:
            Tensor: scalar.
        """
        log_sigma = log_sigma.clamp(self.log_sigma_min, self.log_sigma_max)
        diff = pred[..., :2] - target[:, None, :, :2]
        if self.distribution == 'laplace':
            nll = diff.abs() * torch.exp(-log_sigma) + log_sigma + math.log(2.0)
        else:
            nll = (0.5 * diff.pow(2) * torch.exp(-2 * log_sigma) + log_sigma
                   + 0.5 * math.log(2 * math.pi))
        nll = nll.sum(-1)  # (B, K, T)
        if mask is not None:
            nll = nll * mask[:, None].to(nll.dtype)
            steps = mask.to(nll.dtype).sum(-1).clamp_min(1.0)
        else:
            steps = nll.new_full((nll.shape[0],), nll.shape[-1])
        log_lik = torch.logsumexp(F.log_softmax(logits, dim=-1) - nll.sum(-1), dim=-1)
        return self.loss_weight * (-log_lik / steps).mean()
