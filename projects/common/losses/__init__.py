"""Shared losses, registered in :data:`projects.registry.MODELS`.

Occupancy: :class:`OccupancyFocalLoss`, :class:`OccupancyDiceLoss`, :class:`MeanMatchingLoss`.
Tokens: :class:`TokenCrossEntropyLoss`, :class:`VQCodebookLoss`.
6-DoF pose: :class:`GeodesicRotationLoss`, :class:`TranslationLoss`, :class:`VelocityLoss`.
Trajectory distillation: :class:`TrajectoryLoss`, :class:`InfoNCELoss`, :class:`ActionLoss`,
:class:`DiscreteActionLoss`, :class:`WTALoss`, :class:`MixtureNLLLoss`.
Regression losses (pose L1 / SmoothL1 / L2) are taken from MMDetection in configs, e.g.
``dict(type='mmdet.SmoothL1Loss')``.
"""
from .occupancy_losses import MeanMatchingLoss, OccupancyDiceLoss, OccupancyFocalLoss
from .pose_losses import GeodesicRotationLoss, TranslationLoss, VelocityLoss
from .token_losses import TokenCrossEntropyLoss, VQCodebookLoss
from .trajectory_losses import (ActionLoss, DiscreteActionLoss, InfoNCELoss, MixtureNLLLoss,
                                TrajectoryLoss, WTALoss)

__all__ = [
    'OccupancyFocalLoss', 'OccupancyDiceLoss', 'MeanMatchingLoss', 'TokenCrossEntropyLoss',
    'VQCodebookLoss', 'GeodesicRotationLoss', 'TranslationLoss', 'VelocityLoss',
    'TrajectoryLoss', 'InfoNCELoss', 'ActionLoss', 'DiscreteActionLoss', 'WTALoss',
    'MixtureNLLLoss'
]
