"""Learned keep-or-decode choice for newly revealed space that looks at both candidates."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from projects.registry import MODELS

#: Column features of :meth:`RevealChooser.features`, in channel order.
FEATURES = ('prior_logit', 'keep_count', 'fill_count', 'differ_count', 'keep_low', 'fill_low',
            'keep_high', 'fill_high', 'step')


def reveal_choice_targets(keep: torch.Tensor, fill: torch.Tensor, revealed: torch.Tensor,
                          occ_future: torch.Tensor, dynamic_lut: torch.Tensor,
                          free_label: int, fp_weight: float = 0.6) -> tuple:
    """Cost-sensitive targets of a keep-or-decode choice in newly revealed columns.

    Per future step and revealed column, the IoU cost of each fill against the static part
    of the true future column: its missed voxels plus ``fp_weight`` times its false ones.
    (With ``J = TP / (TP + FP + FN)`` the IoU of the whole forecast, changing one column
    changes ``J`` by ``-(dFN + J dFP) / union`` to first order, as ``TP + FN`` is fixed by
    the truth; ``fp_weight`` stands for ``J``. Counting both kinds of error alike would
    prefer a fill that leaves space empty, which lowers IoU.) Target "keep" where the last
    frame's column costs no more than the decoded one, weight the cost difference: a column
    where both fills are equally good trains nothing, one where they differ by many voxels
    counts that much (cost-sensitive classification, C. Elkan, IJCAI 2001).

    Args:
        keep (torch.Tensor): ``(B, X, Y, Z)`` uint8 last frame without agents.
        fill (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoded fill per step.
        revealed (torch.Tensor): ``(B, F, X, Y)`` bool columns the choice is made in.
        occ_future (torch.Tensor): ``(B, F, X, Y, Z)`` true future labels.
        dynamic_lut (torch.Tensor): ``(256,)`` bool, True for the moving classes (free in the
            targets: the agent flow handles them).
        free_label (int): Free class.
        fp_weight (float): Cost of a false voxel relative to a missed one (the IoU level
            the forecasts reach; 0.6 is that of ``test_local`` at its far steps). Defaults
            to 0.6.

    Returns:
        tuple: ``target`` ``(B, F, X, Y)`` float in ``{0, 1}`` and ``weight``
        ``(B, F, X, Y)`` float (zero outside ``revealed``).
    """
    truth = (occ_future != free_label) & ~dynamic_lut[occ_future.long()]

    def cost(occupied):
        missed = (~occupied & truth).sum(-1).float()
        return missed + fp_weight * (occupied & ~truth).sum(-1).float()

    c_keep = cost((keep != free_label)[:, None])
    c_fill = cost(fill != free_label)
    target = (c_keep <= c_fill).float()
    weight = (c_keep - c_fill).abs() * revealed
    return target, weight


@MODELS.register_module()
class RevealChooser(BaseModule):
    """Keep the last frame's column or take the decoded one, per revealed column and step.

    The reveal gate of :class:`~projects.aerialworld.models.AgentMotionHead` decides from
    the history alone, before the rollout exists, so it cannot tell a good decoded column
    from a bad one. This chooser runs after the rollout and sees both candidates: per future
    step and BEV column, the gate's logit (the prior) and eight features of the two columns
    (occupied voxels of each, voxels where they differ, lowest and highest occupied voxel of
    each, all divided by the grid height ``Z``, ``-1`` for an empty column's heights) and the
    step ``f / F``. A small 2-D conv net (weights shared by the steps) adds a correction to
    the prior logit; its last layer starts at zero, so the untrained chooser is the gate.
    Trained in the world and joint stages on the model's own decoded rollout of each training
    window with the IoU-cost-sensitive targets of :func:`reveal_choice_targets` (the learned
    choice between copying and generating of a pointer-generator network, A. See et al.,
    ACL 2017, conditioned on what is generated).

    Args:
        channels (int): Width of the hidden layers. Defaults to 16.
        interval (int): Train on every ``interval``-th training iteration only (the rollout
            costs about as much as a world-model step). Defaults to 1.
        loss_weight (float): Weight of ``loss_reveal_choice``. Defaults to 1.0.
        fp_weight (float): Cost of a false voxel relative to a missed one in the targets
            (:func:`reveal_choice_targets`). Defaults to 0.6.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On ``channels < 1`` or ``interval < 1``.
    """

    def __init__(self, channels: int = 16, interval: int = 1, loss_weight: float = 1.0,
                 fp_weight: float = 0.6, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(channels) < 1 or int(interval) < 1:
            raise ValueError(f'reveal_chooser: channels and interval must be >= 1, got '
                             f'{channels} and {interval}')
        c = int(channels)
        self.interval = int(interval)
        self.loss_weight = float(loss_weight)
        self.fp_weight = float(fp_weight)
        self.net = nn.Sequential(
            nn.Conv2d(len(FEATURES), c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    @staticmethod
    @torch.no_grad()
    def features(keep: torch.Tensor, fill: torch.Tensor, prior_logits: Optional[torch.Tensor],
                 free_label: int) -> torch.Tensor:
        """Column features of the two candidates (see the class docstring).

        Args:
            keep (torch.Tensor): ``(B, X, Y, Z)`` uint8 last frame without agents.
            fill (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoded fill per step.
            prior_logits (torch.Tensor, optional): ``(B, F, X, Y)`` the reveal gate's logits
                (None: zero).
            free_label (int): Free class.

        Returns:
            torch.Tensor: ``(B, F, len(FEATURES), X, Y)`` float32.
        """
        b, f, nx, ny, nz = fill.shape
        occ_keep = (keep != free_label)[:, None].expand(b, f, nx, ny, nz)
        occ_fill = fill != free_label
        z = torch.arange(nz, device=fill.device, dtype=torch.float32)

        def low(o):
            return torch.where(o.any(-1), (o * (nz - z)).argmax(-1).float() / nz, -1.0)

        def high(o):
            return torch.where(o.any(-1), (o * (z + 1)).argmax(-1).float() / nz, -1.0)

        prior = torch.zeros(b, f, nx, ny, device=fill.device) if prior_logits is None else \
            prior_logits.float()
        step = torch.arange(1, f + 1, device=fill.device, dtype=torch.float32) / f
        feats = [prior, occ_keep.sum(-1) / nz, occ_fill.sum(-1) / nz,
                 (occ_keep != occ_fill).sum(-1) / nz, low(occ_keep), low(occ_fill),
                 high(occ_keep), high(occ_fill), step.view(1, f, 1, 1).expand(b, f, nx, ny)]
        return torch.stack([x.float() for x in feats], dim=2)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Choice logits (> 0: keep the last frame's column).

        Args:
            feats (torch.Tensor): ``(B, F, C, X, Y)`` from :meth:`features`.

        Returns:
            torch.Tensor: ``(B, F, X, Y)`` logits: the prior plus the learned correction.
        """
        b, f = feats.shape[:2]
        delta = self.net(feats.flatten(0, 1))[:, 0].view(b, f, *feats.shape[-2:])
        return feats[:, :, 0] + delta

    def loss(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> dict:
        """Weighted binary cross-entropy of the choice.

        Args:
            logits (torch.Tensor): ``(B, F, X, Y)``.
            target (torch.Tensor): ``(B, F, X, Y)`` float in ``{0, 1}``
                (:func:`reveal_choice_targets`).
            weight (torch.Tensor): ``(B, F, X, Y)`` float column weights.

        Returns:
            dict[str, torch.Tensor]: ``loss_reveal_choice`` (weighted mean; zero without
            weight) and ``reveal_choice_acc`` (weighted accuracy of the ``> 0`` decision).
        """
        total = weight.sum().clamp(min=1.0)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction='none')
        loss = self.loss_weight * (bce * weight).sum() / total
        with torch.no_grad():
            acc = (((logits > 0).float() == target).float() * weight).sum() / total
        return dict(loss_reveal_choice=loss, reveal_choice_acc=acc)
