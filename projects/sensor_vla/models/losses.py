"""Per-sample weighted action losses of the sensor VLA heads."""
import torch
import torch.nn as nn

from projects.registry import MODELS

__all__ = ['WeightedActionL1Loss', 'WeightedActionMSELoss', 'weighted_chunk_loss']


def weighted_chunk_loss(error: torch.Tensor, mask: torch.Tensor,
                        weight: torch.Tensor) -> torch.Tensor:
    """Per-sample weighted mean of an element-wise error over valid chunk steps.

    ``loss = (1 / B) * sum_i w_i * mean_{h valid, a} error[i, h, a]``; a sample without any
    valid step contributes 0.

    Args:
        error (Tensor): ``(B, H, A)`` non-negative element-wise error.
        mask (Tensor): ``(B, H)`` bool, True = valid chunk step.
        weight (Tensor): ``(B,)`` per-sample weights (``sensor_loss_weight`` for sensor
            samples, 1.0 otherwise).

    Returns:
        Tensor: scalar loss.
    """
    m = mask.to(error.dtype).unsqueeze(-1)
    per_sample = (error * m).sum(dim=(1, 2)) / (m.sum(dim=(1, 2)) * error.shape[-1]).clamp_min(1)
    return (weight.to(error.dtype) * per_sample).sum() / error.shape[0]


@MODELS.register_module()
class WeightedActionL1Loss(nn.Module):
    """L1 between predicted and target chunks with per-sample weights (OpenVLA-OFT's L1
    regression objective). See :func:`weighted_chunk_loss`.

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        loss_name (str): Key in the loss dict. Defaults to 'loss_l1'.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_l1'):
        super().__init__()
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self, pred, target, mask, weight):
        """pred / target ``(B, H, A)``, mask ``(B, H)``, weight ``(B,)`` -> scalar."""
        return self.loss_weight * weighted_chunk_loss((pred - target).abs(), mask, weight)


@MODELS.register_module()
class WeightedActionMSELoss(nn.Module):
    """Squared error with per-sample weights (the flow-matching velocity objective).

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        loss_name (str): Key in the loss dict. Defaults to 'loss_flow'.
    """

    def __init__(self, loss_weight: float = 1.0, loss_name: str = 'loss_flow'):
        super().__init__()
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self, pred, target, mask, weight):
        """pred / target ``(B, H, A)``, mask ``(B, H)``, weight ``(B,)`` -> scalar."""
        return self.loss_weight * weighted_chunk_loss((pred - target).pow(2), mask, weight)
