"""The driving-policy student: scene encoder → DETR-style waypoint decoder → trajectory heads.

Shapes: ``B`` batch, ``K`` modes, ``T`` waypoints (64 at 10 Hz), ``H`` history steps (16),
``D`` d_model. Trajectories are ``[x, y, yaw]`` in the ego frame at t0 (metres, radians).
"""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch.utils.checkpoint import checkpoint

from projects.common.structures.trajectory import (estimate_velocity_ls, unicycle_inverse,
                                                   unicycle_rollout)
from projects.registry import MODELS

__all__ = ['DrivingStudent', 'WaypointDecoder']

HEAD_TYPES = ('unicycle', 'direct', 'discrete')


class WaypointDecoder(nn.Module):
    """DETR-style decoder (Carion et al. 2020): T waypoint queries × K modes attend to memory.

    Query ``(k, t)`` = waypoint embedding ``t`` + mode embedding ``k`` + the ego-history token
    (ego conditioning). Modes are decoded independently (self-attention among the T waypoints
    of one mode), so the cost is linear in K.

    Args:
        dim (int): d_model.
        num_layers (int): decoder layers.
        num_heads (int): heads.
        num_queries (int): T.
        num_modes (int): K.
        ffn_ratio (int): FFN width ratio.
        dropout (float): dropout.
        with_cp (bool): gradient checkpointing of each layer in training.
    """

    def __init__(self, dim, num_layers, num_heads, num_queries=64, num_modes=1, ffn_ratio=4,
                 dropout=0.0, with_cp=False):
        super().__init__()
        self.query_embed = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.mode_embed = nn.Parameter(torch.randn(num_modes, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(dim, num_heads, ffn_ratio * dim, dropout,
                                       activation='gelu', batch_first=True, norm_first=True)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.with_cp = with_cp
        self.num_modes = num_modes

    def forward(self, memory, memory_mask, ego_token):
        """Decode.

        Args:
            memory (Tensor): (B, N, D) scene tokens.
            memory_mask (Tensor): (B, N) bool, True = valid.
            ego_token (Tensor): (B, D).

        Returns:
            Tensor: (B, K, T, D).
        """
        bsz = memory.shape[0]
        k = self.num_modes
        q = (self.query_embed[None, None] + self.mode_embed[None, :, None]
             + ego_token[:, None, None])
        q = q.flatten(0, 1)  # (B*K, T, D)
        mem = memory.repeat_interleave(k, 0)
        pad = (~memory_mask).repeat_interleave(k, 0)
        for layer in self.layers:
            if self.with_cp and self.training and q.requires_grad:
                q = checkpoint(layer, q, mem, None, None, None, pad, use_reentrant=False)
            else:
                q = layer(q, mem, memory_key_padding_mask=pad)
        return self.norm(q).view(bsz, k, *q.shape[1:])


@MODELS.register_module()
class DrivingStudent(BaseModel):
    """Trajectory student distilled from a driving VLA teacher (or the logged future).

    Heads (``head_type``):

    * ``'unicycle'``: per waypoint (acceleration, curvature), scaled by ``action_scale`` and
      integrated with the trapezoidal unicycle rollout from ``v0`` (ridge least-squares speed
      of the ego history) — zero output is a constant-speed straight line. Auxiliary
      :class:`ActionLoss` against the teacher actions obtained by the inverse rollout.
    * ``'direct'``: per waypoint ``(x, y, sin ψ, cos ψ)`` (positions × ``position_scale``).
    * ``'discrete'``: per waypoint and action channel, logits over ``num_bins`` bins spanning
      ``action_range``; the expected action is integrated like the unicycle head; auxiliary
      :class:`DiscreteActionLoss` (label smoothing) on the binned teacher actions.

    Multi-modality: with ``num_modes = K > 1`` the decoder emits K trajectories and mode
    logits; the trajectory loss is ``multimodal_loss`` (``WTALoss`` or ``MixtureNLLLoss``,
    the latter with a log-σ head); with K = 1 it is ``traj_loss``. Auxiliary action losses use
    the best mode (minimum ADE). A reasoning head predicts a ``reasoning_dim`` embedding trained
    with ``reasoning_loss`` (InfoNCE) against the teacher's chain-of-causation embedding when
    the batch carries ``coc_embedding``.

    Args:
        encoder (dict): scene encoder config (``VectorSceneEncoder``, ``RasterSceneEncoder``,
            ``CameraBEVEncoder``).
        dim (int): d_model.
        num_decoder_layers (int): decoder layers.
        num_heads (int): heads.
        num_waypoints (int): T (64).
        num_history (int): H (16).
        num_modes (int): K.
        head_type (str): ``'unicycle'`` | ``'direct'`` | ``'discrete'``.
        dt (float): waypoint step (s).
        action_scale (tuple[float]): output scale of (acceleration m/s², curvature 1/m).
        action_range (tuple[tuple[float]]): ((a_min, a_max), (κ_min, κ_max)) of the bins.
        num_bins (int): bins per action channel.
        position_scale (float): output scale of the direct head (metres).
        traj_loss (dict): single-mode trajectory loss.
        multimodal_loss (dict | None): ``WTALoss`` / ``MixtureNLLLoss`` config (K > 1).
        action_loss (dict | None): auxiliary loss of the unicycle head.
        discrete_loss (dict | None): loss of the discrete head.
        reasoning_loss (dict | None): InfoNCE config; None disables the reasoning head.
        reasoning_dim (int): teacher embedding size (384).
        dropout (float): dropout of the decoder layers (regularises the small-data students).
        with_cp (bool): gradient checkpointing in the decoder.
        data_preprocessor (dict | None): see :class:`mmengine.model.BaseModel`.
        init_cfg (dict | None): initialisation config.

    Raises:
        ValueError: on an unknown ``head_type`` or a multi-modal config without
            ``multimodal_loss``.
    """

    def __init__(self, encoder, dim=128, num_decoder_layers=2, num_heads=4, num_waypoints=64,
                 num_history=16, num_modes=1, head_type='unicycle', dt=0.1,
                 action_scale=(1.0, 0.05), action_range=((-5.0, 5.0), (-0.25, 0.25)),
                 num_bins=41, position_scale=20.0,
                 traj_loss=dict(type='TrajectoryLoss', yaw_weight=0.3),
                 multimodal_loss=None,
                 action_loss=dict(type='ActionLoss', loss_weight=0.1),
                 discrete_loss=dict(type='DiscreteActionLoss', label_smoothing=0.1),
                 reasoning_loss=None, reasoning_dim=384, dropout=0.0, with_cp=False,
                 data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if head_type not in HEAD_TYPES:
            raise ValueError(f'DrivingStudent.head_type must be one of {HEAD_TYPES}, got '
                             f'{head_type!r}')
        if num_modes > 1 and multimodal_loss is None:
            raise ValueError('DrivingStudent: num_modes > 1 needs multimodal_loss '
                             "(dict(type='WTALoss') or dict(type='MixtureNLLLoss'))")
        self.encoder = MODELS.build(encoder)
        self.ego_mlp = nn.Sequential(nn.Linear(num_history * 6, dim), nn.LayerNorm(dim),
                                     nn.GELU(), nn.Linear(dim, dim))
        self.decoder = WaypointDecoder(dim, num_decoder_layers, num_heads, num_waypoints,
                                       num_modes, dropout=dropout, with_cp=with_cp)
        self.head_type = head_type
        self.num_modes = num_modes
        self.num_bins = num_bins
        self.dt = dt
        self.position_scale = position_scale
        out = {'unicycle': 2, 'direct': 4, 'discrete': 2 * num_bins}[head_type]
        self.traj_head = nn.Linear(dim, out)
        nn.init.zeros_(self.traj_head.weight)
        nn.init.zeros_(self.traj_head.bias)
        self.register_buffer('action_scale', torch.tensor(action_scale).float(), persistent=False)
        rng = torch.tensor(action_range).float()
        self.register_buffer('bin_centres', torch.stack(
            [torch.linspace(lo, hi, num_bins) for lo, hi in rng]), persistent=False)
        self.mode_head = nn.Linear(dim, 1) if num_modes > 1 else None
        mm_type = (multimodal_loss or {}).get('type', '')
        self.sigma_head = nn.Linear(dim, 2) if 'NLL' in mm_type else None
        self.traj_loss = MODELS.build(traj_loss)
        self.multimodal_loss = MODELS.build(multimodal_loss) if num_modes > 1 else None
        self.action_loss = (MODELS.build(action_loss)
                            if action_loss and head_type == 'unicycle' else None)
        self.discrete_loss = (MODELS.build(discrete_loss)
                              if discrete_loss and head_type == 'discrete' else None)
        if reasoning_loss is not None:
            self.reasoning_head = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(),
                                                nn.Linear(dim, reasoning_dim))
            self.reasoning_loss = MODELS.build(reasoning_loss)
        else:
            self.reasoning_head, self.reasoning_loss = None, None

    # ------------------------------------------------------------------ core
    def initial_speed(self, hist_xy):
        """Signed speed at t0 along the ego heading (m/s), (B,), from the history."""
        return estimate_velocity_ls(hist_xy.float(), dt=self.dt)[..., 0]

    def forward_features(self, inputs):
        """Encode and decode; return a dict of raw outputs.

        Returns:
            dict: ``traj`` (B, K, T, 3), ``mode_logits`` (B, K), optional ``actions``
            (B, K, T, 2), ``action_logits`` (B, K, T, 2, C), ``log_sigma`` (B, K, T, 2),
            ``reasoning`` (B, reasoning_dim), ``v0`` (B,).
        """
        tokens, mask = self.encoder(inputs)
        ego = self.ego_mlp(inputs['ego_hist'].float().flatten(1))
        memory = torch.cat([ego[:, None], tokens], 1)
        mem_mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], 1)
        feats = self.decoder(memory, mem_mask, ego)  # (B, K, T, D)
        v0 = self.initial_speed(inputs['hist_xy'])
        out = dict(v0=v0)
        raw = self.traj_head(feats)
        if self.head_type == 'unicycle':
            actions = raw * self.action_scale
        elif self.head_type == 'discrete':
            logits = raw.view(*raw.shape[:-1], 2, self.num_bins)
            out['action_logits'] = logits
            actions = (torch.softmax(logits, -1) * self.bin_centres).sum(-1)
        if self.head_type == 'direct':
            yaw = torch.atan2(raw[..., 2], raw[..., 3] + 1.0)  # zero output → yaw 0
            out['traj'] = torch.cat([raw[..., :2] * self.position_scale, yaw[..., None]], -1)
        else:
            out['actions'] = actions
            roll = unicycle_rollout(actions, v0[:, None].expand(actions.shape[:2]), self.dt)
            out['traj'] = roll[..., :3]
        if self.mode_head is not None:
            out['mode_logits'] = self.mode_head(feats.mean(2)).squeeze(-1)
        else:
            out['mode_logits'] = feats.new_zeros(feats.shape[:2])
        if self.sigma_head is not None:
            out['log_sigma'] = self.sigma_head(feats)
        if self.reasoning_head is not None:
            pooled = (memory * mem_mask[..., None]).sum(1) / mem_mask.sum(1, keepdim=True)
            out['reasoning'] = self.reasoning_head(torch.cat([ego, pooled], -1))
        return out

    def forward(self, inputs, data_samples=None, mode='tensor'):
        """MMEngine entry point.

        Args:
            inputs (dict[str, Tensor]): packed modality tensors + ``ego_hist`` (B, H, 6) +
                ``hist_xy`` (B, H, 2).
            data_samples (dict | None): collated targets (``gt_traj`` (B, T, 3), ``gt_mask``,
                ``hist_xy``, ``sample_id``, optional ``coc_embedding`` (B, 384)).
            mode (str): ``'loss'`` | ``'predict'`` | ``'tensor'``.

        Returns:
            dict of losses, list of prediction dicts, or the raw output dict.

        Raises:
            ValueError: on an unknown mode.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        out = self.forward_features(inputs)
        if mode == 'tensor':
            return out
        if mode == 'predict':
            return self.predict(out, data_samples)
        raise ValueError(f'DrivingStudent.forward: unknown mode {mode!r}')

    # ------------------------------------------------------------------ losses
    def teacher_actions(self, data_samples, v0):
        """Teacher controls (B, T, 2): from the pipeline (``ComputeTeacherActions``) when packed,
        else computed here from the label trajectory by the regularised inverse rollout."""
        if 'teacher_actions' in data_samples:
            return data_samples['teacher_actions'].float()
        with torch.no_grad():
            return unicycle_inverse(data_samples['gt_traj'][..., :2].float(), v0, self.dt)

    def loss(self, inputs, data_samples):
        """Training losses of a batch (MMEngine ``BaseModel.loss`` signature).

        Args:
            inputs (dict[str, Tensor]): As :meth:`forward`.
            data_samples (dict): Collated targets, as :meth:`forward`.

        Returns:
            dict[str, Tensor]: See :meth:`loss_by_feat`.
        """
        return self.loss_by_feat(self.forward_features(inputs), data_samples)

    def loss_by_feat(self, out, data_samples):
        """Losses of the outputs of :meth:`forward_features` (see the class docstring).

        Args:
            out (dict[str, Tensor]): :meth:`forward_features` output.
            data_samples (dict): Collated targets (``gt_traj`` (B, T, 3), ``gt_mask``...).

        Returns:
            dict[str, Tensor]: ``loss_traj`` and, as configured, ``loss_action``,
            ``loss_discrete``, ``loss_reasoning``.
        """
        gt = data_samples['gt_traj'].float()
        mask = data_samples.get('gt_mask')
        traj = out['traj']
        losses = {}
        with torch.no_grad():
            ade = torch.linalg.norm(traj[..., :2] - gt[:, None, :, :2], dim=-1).mean(-1)
            best = ade.argmin(1)
        batch = torch.arange(gt.shape[0], device=gt.device)
        if self.num_modes == 1:
            losses['loss_traj'] = self.traj_loss(traj[:, 0], gt, mask)
        elif self.sigma_head is not None:
            losses['loss_traj'] = self.multimodal_loss(traj, out['mode_logits'],
                                                       out['log_sigma'], gt, mask)
        else:
            losses['loss_traj'] = self.multimodal_loss(traj, out['mode_logits'], gt, mask)
        if self.action_loss is not None or self.discrete_loss is not None:
            target = self.teacher_actions(data_samples, out['v0'])
            if self.action_loss is not None:
                losses['loss_action'] = self.action_loss(out['actions'][batch, best], target,
                                                         mask)
            if self.discrete_loss is not None:
                centres = self.bin_centres  # (2, C)
                bins = (target[..., None] - centres).abs().argmin(-1)
                losses['loss_discrete'] = self.discrete_loss(out['action_logits'][batch, best],
                                                             bins, mask)
        if self.reasoning_head is not None and 'coc_embedding' in data_samples:
            losses['loss_reasoning'] = self.reasoning_loss(out['reasoning'],
                                                           data_samples['coc_embedding'].float())
        return losses

    # ------------------------------------------------------------------ predict
    def predict(self, out, data_samples):
        """Return one dict per sample for :class:`TrajectoryMetric` (CPU tensors)."""
        probs = torch.softmax(out['mode_logits'], -1)
        top = probs.argmax(-1)
        batch = torch.arange(probs.shape[0], device=probs.device)
        pred = out['traj'][batch, top]
        results = []
        for i in range(probs.shape[0]):
            item = dict(pred_traj=pred[i].detach().cpu(),
                        gt_traj=data_samples['gt_traj'][i].detach().cpu(),
                        hist_xy=data_samples['hist_xy'][i].detach().cpu(),
                        sample_id=data_samples['sample_id'][i])
            if self.num_modes > 1:
                item['pred_modes'] = out['traj'][i].detach().cpu()
                item['mode_probs'] = probs[i].detach().cpu()
            results.append(item)
        return results
