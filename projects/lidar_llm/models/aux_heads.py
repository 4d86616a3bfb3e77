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

Two dense heads supervise the BEV map itself (the map the VAT reads), so that its cells
carry object identity and position with many more labels per sweep than a few dozen counts:
:class:`BEVSemanticHead` classifies every BEV cell from the per-point lidarseg labels
(``LoadBEVSemantics``; sigmoid focal loss, Lin et al., ICCV 2017), and
:class:`CenterHeatmapHead` predicts CenterPoint's class-wise Gaussian object-centre heatmap
from the boxes (Yin et al., CVPR 2021; Gaussian focal loss of CornerNet / CenterNet).
A head's ``input_key`` says what :class:`LidarLLM` passes to its ``loss``: ``'queries'``
(the VAT output, ``(B, Q, d_model)``), ``'tokens'`` (the projected LiDAR tokens the LLM
reads, ``(B, Q, D_llm)``), ``'bev'`` (the BEV map, ``(B, C, H, W)``), both once
per distinct sample, or ``'readout'`` (the question-aware readout tokens, one row per
question, :class:`ReadoutAnswerHead`).
"""
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule

from projects.registry import MODELS
from ..datasets.grounded_qa import view_of

__all__ = ['SectorCountHead', 'sector_counts', 'BEVSemanticHead', 'CenterHeatmapHead',
           'centre_heatmap', 'ReadoutAnswerHead']


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



def _with_boxes(data_samples: List, head: str) -> List:
    """The data samples, each checked to carry ``gt_bboxes_bev`` / ``gt_labels``.

    Raises:
        KeyError: a sample has no boxes (names ``head``; add ``LoadBEVObjects`` to the train
            pipeline).
    """
    for s in data_samples:
        if 'gt_bboxes_bev' not in s:
            raise KeyError(f'{head} needs gt_bboxes_bev / gt_labels in every data sample: '
                           'add LoadBEVObjects to the train pipeline')
    return list(data_samples)

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
        input_key (str): ``'queries'`` (the VAT output, ``in_dim = d_model``) or
            ``'tokens'`` (the projected LiDAR tokens the LLM reads, ``in_dim`` = the LLM
            hidden size), see :class:`LidarLLM`. Defaults to ``'queries'``.

    Shapes: queries ``(B, Q, in_dim)`` with ``Q % num_views == 0`` → log-rates
    ``(B, num_views, R, K + 1)``.
    """

    def __init__(self, in_dim: int, num_classes: int,
                 ranges: Sequence[float] = (15.0, 30.0), num_views: int = 6,
                 hidden_dim: int = None, loss_weight: float = 1.0,
                 input_key: str = 'queries', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if input_key not in ('queries', 'tokens'):
            raise ValueError(f"SectorCountHead: input_key must be 'queries' or 'tokens', got "
                             f'{input_key!r}')
        self.input_key = input_key
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
        return torch.from_numpy(np.stack([
            sector_counts(s.gt_bboxes_bev, s.gt_labels, self.num_classes, self.ranges,
                          self.num_views)
            for s in _with_boxes(data_samples, 'SectorCountHead')]))

    def loss(self, queries: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        """``{'loss_sector_count': weight · Poisson NLL}`` (mean over sectors, rings, classes
        and samples) of the predicted log-rates against the counts; the key is
        ``loss_sector_count_tokens`` for ``input_key='tokens'``."""
        log_rate = self(queries).float()
        target = self.targets(data_samples).to(log_rate.device)
        nll = F.poisson_nll_loss(log_rate, target, log_input=True, full=False)
        name = 'loss_sector_count' if self.input_key == 'queries' else \
            f'loss_sector_count_{self.input_key}'
        return {name: self.loss_weight * nll}


def _bev_conv_head(in_channels: int, feat_channels: int, out_channels: int,
                   prior_prob: float) -> nn.Sequential:
    """3×3 conv + BN + ReLU, then a 1×1 classifier whose bias starts at the logit of
    ``prior_prob`` (RetinaNet's prior initialisation, so the focal losses start stable)."""
    cls = nn.Conv2d(feat_channels, out_channels, 1)
    nn.init.normal_(cls.weight, std=0.01)
    nn.init.constant_(cls.bias, -float(np.log((1 - prior_prob) / prior_prob)))
    return nn.Sequential(ConvModule(in_channels, feat_channels, 3, padding=1,
                                    norm_cfg=dict(type='BN2d', momentum=0.1)), cls)


def _check_grid(name: str, target_hw, bev_hw, field: str):
    if tuple(target_hw) != tuple(bev_hw):
        raise ValueError(f'{name}: the targets are {tuple(target_hw)} cells but the BEV map '
                         f'is {tuple(bev_hw)}; set {field} to the BEV map size')


@MODELS.register_module()
class BEVSemanticHead(BaseModule):
    """Dense BEV semantics: the class of every BEV cell, from per-point lidarseg labels.

    A 3×3 conv + BN + ReLU and a 1×1 classifier give ``K`` sigmoid logits per cell (the
    object classes; background is the all-negative target, mmdet's convention). The targets
    are ``gt_bev_semantic`` of :class:`~projects.lidar_llm.transforms.LoadBEVSemantics`
    (``0 .. K-1`` object, ``K`` background, -1 empty cell: left out of the loss). The loss is
    ``loss_cls`` (default mmdet's sigmoid ``FocalLoss``, γ = 2, α = 0.25) summed over the
    non-empty cells and divided by the number of object cells (at least 1), as RetinaNet
    normalises by its positive anchors.

    Args:
        in_channels (int): C of the BEV map.
        num_classes (int): K object classes.
        feat_channels (int): width of the 3×3 conv. Defaults to 64.
        loss_cls (dict): loss config taking ``(pred (N, K), target (N,), avg_factor=)``.
        prior_prob (float): initial object probability of every cell. Defaults to 0.01.

    Shapes: ``bev`` ``(B, C, H, W)`` → logits ``(B, K, H, W)``.
    """

    input_key = 'bev'

    def __init__(self, in_channels: int, num_classes: int, feat_channels: int = 64,
                 loss_cls: Dict = None, prior_prob: float = 0.01, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes = int(num_classes)
        self.net = _bev_conv_head(in_channels, feat_channels, self.num_classes, prior_prob)
        self.loss_cls = MODELS.build(loss_cls or dict(
            type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
            reduction='mean', loss_weight=1.0))

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` of the BEV map ``(B, C, H, W)``."""
        return self.net(bev)

    def targets(self, data_samples: List, hw) -> torch.Tensor:
        """``(B, H, W)`` long class maps from the samples' ``gt_bev_semantic``.

        Raises:
            KeyError: a sample has none (add ``LoadBEVSemantics`` to the train pipeline).
            ValueError: the map size differs from the BEV map's.
        """
        out = []
        for s in data_samples:
            if 'gt_bev_semantic' not in s:
                raise KeyError('BEVSemanticHead needs gt_bev_semantic in every data sample: '
                               'add LoadBEVSemantics to the train pipeline')
            _check_grid('BEVSemanticHead', s.gt_bev_semantic.shape, hw,
                        'LoadBEVSemantics.grid_size')
            out.append(torch.from_numpy(s.gt_bev_semantic))
        return torch.stack(out)

    def loss(self, bev: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        """``{'loss_bev_semantic': ...}``: focal loss over the non-empty cells / object
        cells."""
        logits = self(bev).float()
        target = self.targets(data_samples, logits.shape[-2:]).to(logits.device)
        valid = target >= 0
        pred = logits.permute(0, 2, 3, 1)[valid]
        tgt = target[valid]
        num_fg = int((tgt < self.num_classes).sum())
        loss = self.loss_cls(pred, tgt, avg_factor=max(num_fg, 1))
        return dict(loss_bev_semantic=loss)


def centre_heatmap(boxes: np.ndarray, labels: np.ndarray, num_classes: int,
                   bev_range: Sequence[float], grid_size: Sequence[int],
                   min_radius: int = 1, min_overlap: float = 0.1) -> torch.Tensor:
    """CenterPoint's training heatmap: a Gaussian peak of 1 at each box centre's cell.

    The box footprint in cells ``(l / cell_x, w / cell_y)`` gives the radius through
    CornerNet's ``gaussian_radius`` (``min_overlap``), floored and at least ``min_radius``;
    overlapping Gaussians of one class keep the maximum (mmdet3d ``draw_heatmap_gaussian``,
    σ = diameter / 6). Yin et al., CVPR 2021.

    Args:
        boxes (np.ndarray): (M, 7) ``x, y, z, l, w, h, yaw`` (m), the BEV map's frame.
        labels (np.ndarray): (M,) class index, outside ``0 .. K-1`` = not drawn.
        num_classes (int): K.
        bev_range (Sequence[float]): ``(x0, y0, x1, y1)`` (m).
        grid_size (Sequence[int]): ``(H, W)``; PointPillarsScatter layout (row along y).
        min_radius (int): smallest Gaussian radius (cells).
        min_overlap (float): ``gaussian_radius`` overlap.

    Returns:
        torch.Tensor: float32 (K, H, W) in [0, 1].
    """
    from mmdet3d.models.utils import draw_heatmap_gaussian, gaussian_radius
    h, w = int(grid_size[0]), int(grid_size[1])
    x0, y0, x1, y1 = [float(v) for v in bev_range]
    cx, cy = (x1 - x0) / w, (y1 - y0) / h
    heat = torch.zeros(num_classes, h, w)
    for b, k in zip(np.asarray(boxes, np.float64).reshape(-1, 7), np.asarray(labels)):
        if not 0 <= k < num_classes:
            continue
        u, v = (b[0] - x0) / cx, (b[1] - y0) / cy
        if not (0 <= u < w and 0 <= v < h):
            continue
        r = gaussian_radius((torch.tensor(b[3] / cx), torch.tensor(b[4] / cy)),
                            min_overlap=min_overlap)
        r = max(int(min_radius), int(r))
        draw_heatmap_gaussian(heat[int(k)], torch.tensor([int(u), int(v)]), r)
    return heat


@MODELS.register_module()
class CenterHeatmapHead(BaseModule):
    """CenterPoint's class-wise object-centre heatmap on the BEV map (Yin et al., CVPR 2021).

    A 3×3 conv + BN + ReLU and a 1×1 conv give ``K`` heatmap logits per cell; the targets
    are :func:`centre_heatmap` of the sample's boxes (``gt_bboxes_bev`` / ``gt_labels`` of
    ``LoadBEVObjects``, rotated with the points); the loss is ``loss_heatmap`` (default
    mmdet's ``GaussianFocalLoss``, α = 2, γ = 4) on the sigmoid clamped to
    ``[1e-4, 1 - 1e-4]``, divided by the number of peaks (at least 1), as CenterPoint does.
    :meth:`detect` turns the heatmap into object centres (3×3 max-pool peaks, CenterNet's
    NMS-free decoding).

    Args:
        in_channels (int): C of the BEV map.
        num_classes (int): K.
        bev_range (Sequence[float]): ``(x0, y0, x1, y1)`` (m) of the BEV map.
        feat_channels (int): width of the 3×3 conv. Defaults to 64.
        min_radius (int): see :func:`centre_heatmap`. Defaults to 1 (CenterPoint: 2 on
            0.8 m cells; the tiny configs' cells are 1.6 m).
        min_overlap (float): Defaults to 0.1 (CenterPoint).
        loss_heatmap (dict): loss config taking ``(pred, target, avg_factor=)``.
        prior_prob (float): initial peak probability. Defaults to 0.1 (CenterPoint's bias
            -2.19).

    Shapes: ``bev`` ``(B, C, H, W)`` → logits ``(B, K, H, W)``.
    """

    input_key = 'bev'

    def __init__(self, in_channels: int, num_classes: int, bev_range: Sequence[float],
                 feat_channels: int = 64, min_radius: int = 1, min_overlap: float = 0.1,
                 loss_heatmap: Dict = None, prior_prob: float = 0.1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.num_classes, self.bev_range = int(num_classes), tuple(float(v) for v in bev_range)
        self.min_radius, self.min_overlap = int(min_radius), float(min_overlap)
        self.net = _bev_conv_head(in_channels, feat_channels, self.num_classes, prior_prob)
        self.loss_heatmap = MODELS.build(loss_heatmap or dict(
            type='mmdet.GaussianFocalLoss', reduction='mean', loss_weight=1.0))

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` of the BEV map ``(B, C, H, W)``."""
        return self.net(bev)

    def targets(self, data_samples: List, hw) -> torch.Tensor:
        """``(B, K, H, W)`` heatmaps of the samples' boxes.

        Raises:
            KeyError: a sample has no boxes (add ``LoadBEVObjects`` to the pipeline).
        """
        return torch.stack([
            centre_heatmap(s.gt_bboxes_bev, s.gt_labels, self.num_classes, self.bev_range, hw,
                           self.min_radius, self.min_overlap)
            for s in _with_boxes(data_samples, 'CenterHeatmapHead')])

    def loss(self, bev: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        """``{'loss_heatmap': ...}``: Gaussian focal loss / number of peaks."""
        logits = self(bev).float()
        target = self.targets(data_samples, logits.shape[-2:]).to(logits.device)
        pred = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
        num_pos = float(target.eq(1).sum())
        loss = self.loss_heatmap(pred, target, avg_factor=max(num_pos, 1.0))
        return dict(loss_heatmap=loss)

    @torch.no_grad()
    def detect(self, bev: torch.Tensor, score_thr: float = 0.3) -> List[Dict[str, np.ndarray]]:
        """Object centres: cells that are the maximum of their 3×3 neighbourhood with a
        score above ``score_thr``.

        Returns:
            list[dict]: per sample ``xy`` float (P, 2) cell centres (m), ``labels`` int64
            (P,), ``scores`` float (P,).
        """
        heat = self(bev).float().sigmoid()
        peaks = heat == F.max_pool2d(heat, 3, stride=1, padding=1)
        b, k, h, w = heat.shape
        x0, y0, x1, y1 = self.bev_range
        out = []
        for i in range(b):
            cls, row, col = torch.nonzero(peaks[i] & (heat[i] > score_thr), as_tuple=True)
            xy = torch.stack([x0 + (col.float() + 0.5) * (x1 - x0) / w,
                              y0 + (row.float() + 0.5) * (y1 - y0) / h], 1)
            out.append(dict(xy=xy.numpy(), labels=cls.numpy().astype(np.int64),
                            scores=heat[i, cls, row, col].numpy()))
        return out


@MODELS.register_module()
class ReadoutAnswerHead(BaseModule):
    """Grounding supervision of the question-aware readout with the training answers.

    :class:`~projects.lidar_llm.models.readout.QuestionAwareReadout` is meant to extract
    what the question asks about from the LiDAR queries, but it learns only through the
    LLM's answer loss, which a small LLM first minimises with the per-question answer prior
    (measured: with it alone the LiDAR model answered every count / existence question of
    its *training* frames like the text-only twin). This head makes the readout carry the
    asked quantity directly: from the readout tokens of each question (mean-pooled, an MLP)
    it predicts the log-rate of the answer of a ``count`` question (Poisson NLL against
    ``gt_count``) and the logit of a ``yes`` answer of an ``exist`` question (binary cross
    entropy); other questions are left out. Multi-task supervision of a query module with
    the task's own labels, as BLIP-2's Q-Former is pre-trained with its own objectives
    before the LLM reads it (Li et al., ICML 2023). Training answers only; never used for
    predictions.

    Args:
        in_dim (int): readout width (``VATLiDAR.d_model``).
        hidden_dim (int): MLP width. Defaults to ``in_dim``.
        count_types (Sequence[str]): ``template_type`` s with a ``gt_count``. Defaults to
            ``('count',)``.
        exist_types (Sequence[str]): yes / no ``template_type`` s. Defaults to
            ``('exist',)``.
        loss_weight (float): Defaults to 1.0.

    Shapes: readout ``(B, n, in_dim)`` → ``(B, 2)`` (count log-rate, existence logit).
    """

    input_key = 'readout'

    def __init__(self, in_dim: int, hidden_dim: int = None,
                 count_types: Sequence[str] = ('count',),
                 exist_types: Sequence[str] = ('exist',), loss_weight: float = 1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.count_types, self.exist_types = tuple(count_types), tuple(exist_types)
        self.loss_weight = float(loss_weight)
        hidden_dim = hidden_dim or in_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, 2))

    def forward(self, readout: torch.Tensor) -> torch.Tensor:
        return self.mlp(readout.mean(1))

    def targets(self, data_samples: List):
        """Per row: kind (0 none, 1 count, 2 exist) and target value.

        Raises:
            KeyError: a count row without ``gt_count`` (naming the row).
            ValueError: an exist row whose answer is not yes / no (naming the row).
        """
        kind, value = [], []
        for s in data_samples:
            ttype = s.metainfo.get('template_type')
            if ttype in self.count_types:
                if 'gt_count' not in s:
                    raise KeyError(f'ReadoutAnswerHead: count row {s.metainfo.get("qa_id")} '
                                   'has no gt_count')
                kind.append(1)
                value.append(float(s.gt_count))
            elif ttype in self.exist_types:
                a = s.answer.strip().lower()
                if a not in ('yes', 'no'):
                    raise ValueError(f'ReadoutAnswerHead: exist row {s.metainfo.get("qa_id")} '
                                     f'answers {s.answer!r}, expected yes / no')
                kind.append(2)
                value.append(float(a == 'yes'))
            else:
                kind.append(0)
                value.append(0.0)
        return torch.tensor(kind), torch.tensor(value)

    def loss(self, readout: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        """``{'loss_readout_answer': weight · (mean Poisson NLL of the count rows + mean BCE
        of the exist rows)}``; 0 (with gradient) when the batch has neither."""
        out = self(readout).float()
        kind, value = self.targets(data_samples)
        kind, value = kind.to(out.device), value.to(out.device)
        loss = out.sum() * 0.0
        if (kind == 1).any():
            loss = loss + F.poisson_nll_loss(out[kind == 1, 0], value[kind == 1],
                                             log_input=True, full=False)
        if (kind == 2).any():
            loss = loss + F.binary_cross_entropy_with_logits(out[kind == 2, 1],
                                                             value[kind == 2])
        return dict(loss_readout_answer=self.loss_weight * loss)
