"""Learned keep-or-decode choice for newly revealed space that looks at both candidates."""
import time
from typing import Callable, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from projects.registry import MODELS

#: Column features of :meth:`RevealChooser.features`, in channel order.
FEATURES = ('prior_logit', 'keep_count', 'fill_count', 'differ_count', 'keep_low', 'fill_low',
            'keep_high', 'fill_high', 'step')
#: The context features appended with ``context=True``: the kept-everywhere static forecast
#: outside the revealed columns (occupied voxels, lowest, highest; zero / -1 inside them) and
#: the revealed mask.
CONTEXT_FEATURES = ('view_count', 'view_low', 'view_high', 'revealed')


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
    With ``context=True`` four more channels show the scene around the revealed columns
    (:data:`CONTEXT_FEATURES`: the forecast outside them, so the net can continue the
    ground and building edges it borders). Trained on the model's own decoded rollouts of
    training windows with the IoU-cost-sensitive targets of :func:`reveal_choice_targets` (the
    learned choice between copying and generating of a pointer-generator network, A. See et
    al., ACL 2017, conditioned on what is generated): in the world and joint stages every
    ``interval`` iterations, and/or, with ``fit_cfg``, once on the final model by
    :class:`~projects.aerialworld.hooks.RevealChooserFitHook` (:meth:`fit`). The final fit
    sees the rollouts of the model it serves; the in-loop training sees those of a model
    still changing, with the world model's decaying learning rate, and measured far weaker
    (configs/README.md, tenth session).

    Args:
        channels (int): Width of the hidden layers. Defaults to 16.
        interval (int): Train on every ``interval``-th training iteration only (the rollout
            costs about as much as a world-model step); 0: never in the training loop (only
            by the final fit). Defaults to 1.
        loss_weight (float): Weight of ``loss_reveal_choice``. Defaults to 1.0.
        fp_weight (float): Cost of a false voxel relative to a missed one in the targets
            (:func:`reveal_choice_targets`). Defaults to 0.6.
        context (bool): Add the :data:`CONTEXT_FEATURES` channels. Defaults to False.
        fit_cfg (dict, optional): Final fit on the trained model's rollouts
            (:class:`~projects.aerialworld.hooks.RevealChooserFitHook`): ``num_windows``
            (training windows rolled out, default 256), ``rollout_batch_size`` (4),
            ``steps`` (AdamW steps, 1200), ``batch_size`` (windows per step, 8), ``lr``
            (2e-3), ``seed`` (0). None: no final fit. Defaults to None.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On ``channels < 1``, ``interval < 0`` or an unknown ``fit_cfg`` key.
    """

    FIT_DEFAULTS = dict(num_windows=256, rollout_batch_size=4, steps=1200, batch_size=8,
                        lr=2e-3, seed=0)

    def __init__(self, channels: int = 16, interval: int = 1, loss_weight: float = 1.0,
                 fp_weight: float = 0.6, context: bool = False,
                 fit_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if int(channels) < 1 or int(interval) < 0:
            raise ValueError(f'reveal_chooser: channels must be >= 1 and interval >= 0, got '
                             f'{channels} and {interval}')
        unknown = set(fit_cfg or {}) - set(self.FIT_DEFAULTS)
        if unknown:
            raise ValueError(f'reveal_chooser.fit_cfg: unknown keys {sorted(unknown)}; '
                             f'expected some of {sorted(self.FIT_DEFAULTS)}')
        c = int(channels)
        self.interval = int(interval)
        self.loss_weight = float(loss_weight)
        self.fp_weight = float(fp_weight)
        self.context = bool(context)
        self.fit_cfg = None if fit_cfg is None else dict(self.FIT_DEFAULTS, **fit_cfg)
        cin = len(FEATURES) + (len(CONTEXT_FEATURES) if self.context else 0)
        self.net = nn.Sequential(
            nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, 1, 1))
        self.reset_choice()

    def reset_choice(self) -> None:
        """Fresh weights: default init of the hidden layers, zero last layer (the untrained
        chooser is the prior)."""
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    @staticmethod
    @torch.no_grad()
    def features(keep: torch.Tensor, fill: torch.Tensor, prior_logits: Optional[torch.Tensor],
                 free_label: int, view: Optional[torch.Tensor] = None,
                 revealed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Column features of the two candidates (see the class docstring).

        Args:
            keep (torch.Tensor): ``(B, X, Y, Z)`` uint8 last frame without agents.
            fill (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoded fill per step.
            prior_logits (torch.Tensor, optional): ``(B, F, X, Y)`` the reveal gate's logits
                (None: zero).
            free_label (int): Free class.
            view (torch.Tensor, optional): ``(B, F, X, Y, Z)`` uint8 static forecast with
                every revealed column kept (``CopyThroughDecoder.reveal_candidates``); with
                ``revealed`` ``(B, F, X, Y)`` bool adds the :data:`CONTEXT_FEATURES`.

        Returns:
            torch.Tensor: ``(B, F, C, X, Y)`` float32, ``C = len(FEATURES)`` (+
            ``len(CONTEXT_FEATURES)`` with ``view``).

        Raises:
            ValueError: If only one of ``view`` and ``revealed`` is given.
        """
        if (view is None) != (revealed is None):
            raise ValueError('RevealChooser.features: view and revealed go together')
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
        if view is not None:
            occ_view = view != free_label
            seen = (~revealed).float()
            feats += [occ_view.sum(-1) / nz * seen, low(occ_view) * seen - revealed.float(),
                      high(occ_view) * seen - revealed.float(), revealed.float()]
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

    def fit(self, feats: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
            steps: int = 1200, batch_size: int = 8, lr: float = 2e-3, seed: int = 0,
            log: Optional[Callable[[str], None]] = None) -> dict:
        """Fit the chooser from fresh weights on stored rollouts (the final fit).

        AdamW (no weight decay) at a constant ``lr`` on the weighted cross-entropy of
        :meth:`loss`, ``batch_size`` windows drawn at random per step. Deterministic for a
        ``seed`` (the global RNG state is left as it was).

        Args:
            feats (torch.Tensor): ``(N, F, C, X, Y)`` from :meth:`features`.
            target (torch.Tensor): ``(N, F, X, Y)`` float targets
                (:func:`reveal_choice_targets`).
            weight (torch.Tensor): ``(N, F, X, Y)`` float weights.
            steps (int): Optimizer steps. Defaults to 1200.
            batch_size (int): Windows per step. Defaults to 8.
            lr (float): Learning rate. Defaults to 2e-3.
            seed (int): Seed of the initial weights and the draws. Defaults to 0.
            log (callable, optional): Called with a progress line (with an ETA) every
                200 steps.

        Returns:
            dict: ``loss_reveal_choice`` and ``reveal_choice_acc`` of the whole set after
            the fit (floats), and ``seconds``.

        Raises:
            ValueError: On mismatched shapes or ``N == 0``.
        """
        n = feats.shape[0]
        if n == 0 or target.shape != weight.shape or target.shape != feats[:, :, 0].shape:
            raise ValueError(f'RevealChooser.fit: feats (N, F, C, X, Y), target and weight '
                             f'(N, F, X, Y) with N > 0 expected, got {tuple(feats.shape)}, '
                             f'{tuple(target.shape)}, {tuple(weight.shape)}')
        start = time.time()
        was_training = self.training
        self.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.reset_choice()
            opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.0)
            for it in range(int(steps)):
                idx = torch.randint(0, n, (min(int(batch_size), n),))
                loss = self.loss(self(feats[idx]), target[idx], weight[idx])
                opt.zero_grad()
                loss['loss_reveal_choice'].backward()
                opt.step()
                if log is not None and ((it + 1) % 200 == 0 or it + 1 == steps):
                    per = (time.time() - start) / (it + 1)
                    log(f'reveal chooser fit: step {it + 1}/{steps}, loss '
                        f'{float(loss["loss_reveal_choice"]):.4f}, ETA '
                        f'{per * (steps - it - 1):.0f} s')
        self.train(was_training)
        with torch.no_grad():
            out = self.loss(self(feats), target, weight)
        return dict({k: float(v) for k, v in out.items()}, seconds=time.time() - start)
