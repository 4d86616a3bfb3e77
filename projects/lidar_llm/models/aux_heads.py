"""Auxiliary perception supervision of the LiDAR view-aware queries.

LiDAR-LLM (arXiv:2312.14074, §3.3) trains its LiDAR branch in stages and teaches perception
(captioning, grounding) with annotated boxes before instruction tuning, and its BEV features
come from a detector trained on boxes. The CPU configs here train the pillar encoder and the
VAT from scratch on a few keyframes, where the answer loss alone gives the sensor path almost
no signal (the LLM first learns the answer prior and ignores the sensor tokens). The head
below gives each view group of :class:`VATLiDAR` queries the box supervision directly: from
the group's tokens it regresses how many objects of each class lie in its 60° sector within
each range ring, the scene-graph quantities NuScenes-QA's counting / existence questions are
generated from (Qian et al., AAAI 2024). It only shapes the sensor tokens; answers still come
from the LLM.
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from projects.registry import MODELS
from ..datasets.grounded_qa import view_of

__all__ = ['SectorCountHead', 'sector_counts']


def sector_counts(boxes: np.ndarray, labels: np.ndarray, num_classes: int,
                  ranges: Sequence[float], num_views: int = 6) -> np.ndarray:
    """Objects per azimuth sector, range and class (plus all classes together).

    Sector ``v`` covers azimuths ``[60° v − 30°, 60° v + 30°)`` with ``θ = atan2(y, x)`` (sector
    0 centred on +x, counter-clockwise: :func:`view_of`, the QA converter's assignment). An
    object counts in range ``r`` when its BEV centre is within ``r`` metres of the ego
    origin.

    Args:
        boxes (np.ndarray): (M, >=2) box centres ``x, y`` first (m, ego frame).
        labels (np.ndarray): (M,) class index, -1 for a class outside the list (counted in
            the all-classes column only).
        num_classes (int): K.
        ranges (Sequence[float]): R radii (m), each ring counted from the origin.
        num_views (int): number of equal sectors.

    Returns:
        np.ndarray: float32 (num_views, R, K + 1); the last column counts every box.
    """
    out = np.zeros((num_views, len(ranges), num_classes + 1), np.float32)
    if not len(labels):
        return out
    boxes = np.asarray(boxes, np.float64).reshape(len(labels), -1)
    xy = boxes[:, :2]
    view = view_of(xy, num_views)
    dist = np.linalg.norm(xy, axis=1)
    labels = np.asarray(labels, np.int64)
    for j, r in enumerate(ranges):
        near = dist <= r
        np.add.at(out[:, j, num_classes], view[near], 1)
        known = near & (labels >= 0) & (labels < num_classes)
        np.add.at(out[:, j], (view[known], labels[known]), 1)
    return out


@MODELS.register_module()
class SectorCountHead(BaseModule):
    """Per-sector object counts regressed from the view groups of the LiDAR queries.

    Query group ``v`` of :class:`VATLiDAR` (its ``n_queries / num_views`` consecutive
    queries, which with ``view_masked=True`` see only sector ``v``) is mean-pooled and an
    MLP predicts the log-rate of the number of objects per range ring and class (and of all
    objects); the loss is the Poisson negative log-likelihood against
    :func:`sector_counts` of the sample's annotated boxes.

    Args:
        in_dim (int): query width (``VATLiDAR.d_model``).
        num_classes (int): K, the classes of ``LoadBEVObjects``.
        ranges (Sequence[float]): range rings (m). Defaults to (15, 30), the radii of the
            grounded QA.
        num_views (int): view groups. Defaults to 6.
        hidden_dim (int): MLP width. Defaults to ``in_dim``.
        loss_weight (float): Defaults to 1.0.

    Shapes: queries ``(B, Q, in_dim)`` with ``Q % num_views == 0`` → log-rates
    ``(B, num_views, R, K + 1)``.
    """

    def __init__(self, in_dim: int, num_classes: int,
                 ranges: Sequence[float] = (15.0, 30.0), num_views: int = 6,
                 hidden_dim: int = None, loss_weight: float = 1.0, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes, self.ranges = int(num_classes), tuple(float(r) for r in ranges)
        self.num_views, self.loss_weight = int(num_views), float(loss_weight)
        hidden_dim = hidden_dim or in_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, len(self.ranges) * (num_classes + 1)))

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        """Log-rates ``(B, V, R, K + 1)`` from queries ``(B, Q, D)``.

        Raises:
            ValueError: ``Q`` is not a multiple of ``num_views``.
        """
        b, q, d = queries.shape
        if q % self.num_views:
            raise ValueError(f'SectorCountHead: {q} queries do not split into '
                             f'{self.num_views} view groups')
        pooled = queries.view(b, self.num_views, q // self.num_views, d).mean(2)
        return self.mlp(pooled).view(b, self.num_views, len(self.ranges), self.num_classes + 1)

    def targets(self, data_samples: List) -> torch.Tensor:
        """Counts ``(B, V, R, K + 1)`` from each sample's ``gt_bboxes_bev`` / ``gt_labels``.

        Raises:
            KeyError: a sample has no boxes (add ``LoadBEVObjects`` to the pipeline).
        """
        out = []
        for s in data_samples:
            if 'gt_bboxes_bev' not in s:
                raise KeyError('SectorCountHead needs gt_bboxes_bev / gt_labels in every data '
                               'sample: add LoadBEVObjects to the train pipeline')
            out.append(sector_counts(s.gt_bboxes_bev, s.gt_labels, self.num_classes,
                                     self.ranges, self.num_views))
        return torch.from_numpy(np.stack(out))

    def loss(self, queries: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        """``{'loss_sector_count': weight · Poisson NLL}`` (mean over sectors, rings,
        classes and samples) of the predicted log-rates against the counts."""
        log_rate = self(queries).float()
        target = self.targets(data_samples).to(log_rate.device)
        nll = F.poisson_nll_loss(log_rate, target, log_input=True, full=False)
        return dict(loss_sector_count=self.loss_weight * nll)
