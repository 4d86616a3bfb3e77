"""Forecast head of AerialWorld: the losses of both stages and the packing of predictions."""
import copy
import inspect
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import BaseDataElement
from torch.utils.checkpoint import checkpoint

from projects.registry import MODELS
from ..structures import OccDataSample
from .pose_codec import PoseCodec

#: What a loss entry of ``losses`` can apply to (``target`` key) and the loss-dict names.
#:
#: * ``'token'``: next-token logits ``(N, K, h, w)`` vs codes ``(N, h, w)`` -> ``loss_token``;
#: * ``'recon'``: tokenizer reconstruction logits ``(N, C, X, Y, Z)`` vs labels ->
#:   ``loss_recon_<name>``;
#: * ``'pred'``: occupancy decoded from the world model's expected codes vs the true future
#:   labels -> ``loss_pred_<name>``;
#: * ``'occupancy'``: both ``'recon'`` and ``'pred'``;
#: * ``'pose'``, ``'rot'``, ``'vel'``: the parts of the ego motion given by
#:   :meth:`PoseCodec.loss_parts` -> ``loss_pose``, ``loss_rot``, ``loss_vel``.
LOSS_TARGETS = ('token', 'recon', 'pred', 'occupancy', 'pose', 'rot', 'vel')
_OCC_TARGETS = ('recon', 'pred', 'occupancy')

#: The OccWorld losses (focal + Dice + mean matching on decoded occupancy, token
#: cross-entropy, smooth-L1 ego motion); configs state their own list.
DEFAULT_HEAD = dict(
    type='OccForecastHead',
    losses=[
        dict(type='TokenCrossEntropyLoss', target='token', loss_weight=1.0),
        dict(type='OccupancyFocalLoss', target='occupancy', name='focal', alpha=0.99,
             gamma=2.0, loss_weight=1.0),
        dict(type='OccupancyDiceLoss', target='occupancy', name='dice', loss_weight=1.0),
        dict(type='MeanMatchingLoss', target='occupancy', name='mm', loss_weight=10.0),
    ],
    pose_losses=[dict(type='mmdet.SmoothL1Loss', target='pose', loss_weight=1.0)])


@MODELS.register_module()
class OccForecastHead(BaseModule):
    """Losses and prediction packing of the AerialWorld world model.

    The head owns every loss of the two OccWorld stages (W. Zheng et al., arXiv:2311.16038,
    2023): the tokenizer's reconstruction losses (e.g. focal, Lin et al. 2017; Dice,
    Milletari et al. 2016; mean matching; cross-entropy), the world model's next-token
    cross-entropy, occupancy losses on the frames decoded from its expected code vectors and
    the ego-motion losses, configured as one list::

        losses=[
            dict(type='TokenCrossEntropyLoss', target='token', loss_weight=1.0),
            dict(type='OccupancyFocalLoss', target='occupancy', name='focal', alpha=0.99,
                 gamma=2.0, loss_weight=1.0),
            dict(type='TokenCrossEntropyLoss', target='recon', name='ce', loss_weight=1.0),
        ],
        pose_losses=[dict(type='mmdet.SmoothL1Loss', target='pose', loss_weight=1.0)]

    The ego-motion losses are a list of their own (``pose_losses``) because they follow
    ``pose_mode`` (``'6dof'`` adds rotation and velocity parts) while the occupancy and token
    losses do not: a 6-DoF config replaces only ``pose_losses``. Each entry is a loss config
    plus ``target`` (one of :data:`LOSS_TARGETS`) and, for
    occupancy targets, ``name`` (the suffix of ``loss_recon_<name>`` / ``loss_pred_<name>``).
    Losses whose constructor takes ``free_label`` get the model's free class when the entry
    does not set it. The VQ codebook loss belongs to the tokenizer (``tokenizer.loss_vq``).

    Args:
        losses (Sequence[dict]): Token and occupancy losses (see above); pose entries are
            accepted here too.
        pose_losses (Sequence[dict], optional): Ego-motion losses (targets ``'pose'``,
            ``'rot'``, ``'vel'`` only). Defaults to None (none besides those in ``losses``).
        num_classes (int): Semantic classes including free.
        free_label (int): Free class index in ``[0, num_classes)``.
        pose_mode (str): ``'planar4'`` or ``'6dof'`` (:class:`PoseCodec`). Defaults to
            ``'planar4'``.
        checkpoint_losses (bool | int): Compute every occupancy loss under activation
            checkpointing (``torch.utils.checkpoint``): its intermediates are recomputed in the
            backward pass one loss at a time instead of being kept. An int turns it on for
            logits of at least that many elements. Defaults to False: the occupancy and token
            losses of :mod:`projects.common.losses` already reduce large batches in
            checkpointed chunks of samples (``max_chunk_elements``), which bounds their memory
            further (one chunk's intermediates at a time, 4x less for 4 full-grid frames);
            turn it on for other losses on full aerial grids.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On an unknown ``target``, an occupancy entry without ``name``, two entries
            giving the same loss name, or a pose part the ``pose_mode`` does not have (the
            message names ``loss_rot`` / ``loss_vel`` and the entry index).
    """

    def __init__(self,
                 losses: Sequence[dict],
                 num_classes: int,
                 free_label: int,
                 pose_mode: str = 'planar4',
                 pose_losses: Optional[Sequence[dict]] = None,
                 checkpoint_losses: Union[bool, int] = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.checkpoint_losses = checkpoint_losses
        if not 0 <= free_label < num_classes:
            raise ValueError(f'OccForecastHead: free_label={free_label} outside [0, '
                             f'{num_classes})')
        self.num_classes = int(num_classes)
        self.free_label = int(free_label)
        self.codec = PoseCodec(pose_mode)
        parts = self.codec.loss_parts_available
        self.loss_modules = torch.nn.ModuleDict()
        self._entries: List[tuple] = []  # (target, key of loss_modules)
        seen = set()
        entries = [(f'head.losses[{i}]', e) for i, e in enumerate(losses or ())]
        entries += [(f'head.pose_losses[{i}]', e) for i, e in enumerate(pose_losses or ())]
        for where, entry in entries:
            entry = copy.deepcopy(dict(entry))
            target = entry.pop('target', None)
            name = entry.pop('name', None)
            if target not in LOSS_TARGETS:
                raise ValueError(f'{where} ({entry.get("type")}): target must be one '
                                 f'of {LOSS_TARGETS}, got {target!r}')
            if where.startswith('head.pose_losses') and target not in ('pose', 'rot', 'vel'):
                raise ValueError(f"{where} ({entry.get('type')}): pose_losses entries must "
                                 f"target 'pose', 'rot' or 'vel', got {target!r}")
            if target in _OCC_TARGETS:
                if not name:
                    raise ValueError(f'{where} ({entry.get("type")}): occupancy '
                                     f"losses need a 'name' (loss_recon_<name> / "
                                     f'loss_pred_<name>)')
                stages = ('recon', 'pred') if target == 'occupancy' else (target, )
                keys = [f'loss_{s}_{name}' for s in stages]
            else:
                if target in ('pose', 'rot', 'vel') and target not in parts:
                    raise ValueError(f'{where} ({entry.get("type")}) targets '
                                     f"'{target}' (loss_{target}), which pose_mode="
                                     f'{pose_mode!r} does not have (parts: {parts}); '
                                     f"loss_rot / loss_vel need pose_mode='6dof'")
                keys = [f'loss_{target}']
            dup = seen.intersection(keys)
            if dup:
                raise ValueError(f'{where}: {sorted(dup)} is configured twice')
            seen.update(keys)
            if self._accepts(entry.get('type'), 'free_label'):
                entry.setdefault('free_label', self.free_label)
            module_key = keys[0] if len(keys) == 1 else f'loss_{name}'
            self.loss_modules[module_key] = MODELS.build(entry)
            for key in keys:
                self._entries.append((target if target != 'occupancy' else key.split('_')[1],
                                      key, module_key))

    @staticmethod
    def _accepts(loss_type, arg: str) -> bool:
        """Whether the registered loss class ``loss_type`` has an ``__init__`` arg ``arg``."""
        cls = loss_type if inspect.isclass(loss_type) else MODELS.get(loss_type)
        if cls is None:
            return False
        return arg in inspect.signature(cls.__init__).parameters

    def has_losses(self, target: str) -> bool:
        """Whether any loss applies to ``target`` (``'recon'``, ``'pred'``, ``'token'``...)."""
        return any(t == target for t, _, _ in self._entries)

    def _add_losses(self, target: str, pred: torch.Tensor, gt: torch.Tensor,
                    losses: Dict[str, torch.Tensor]) -> None:
        """Add every configured loss of ``target`` to ``losses`` (in config order)."""
        limit = self.checkpoint_losses
        big = bool(limit) if isinstance(limit, bool) else pred.numel() >= int(limit)
        ckpt = big and target in _OCC_TARGETS and pred.requires_grad and torch.is_grad_enabled()
        for t, key, module_key in self._entries:
            if t != target:
                continue
            module = self.loss_modules[module_key]
            losses[key] = checkpoint(module, pred, gt, use_reentrant=False) if ckpt else \
                module(pred, gt)

    # ------------------------------------------------------------------ losses
    def occupancy_losses(self, logits: torch.Tensor, target: torch.Tensor,
                         stage: str) -> Dict[str, torch.Tensor]:
        """Occupancy losses and logging scalars of logits vs labels.

        Args:
            logits (torch.Tensor): ``(N, C, X, Y, Z)`` float.
            target (torch.Tensor): ``(N, X, Y, Z)`` integer labels.
            stage (str): ``'recon'`` (tokenizer) or ``'pred'`` (world model).

        Returns:
            dict[str, torch.Tensor]: ``loss_<stage>_<name>`` per configured loss, plus
            ``<stage>_iou`` (occupied = not free) and ``<stage>_acc`` (voxel accuracy).
        """
        losses: Dict[str, torch.Tensor] = {}
        self._add_losses(stage, logits, target, losses)
        self._add_voxel_scores(stage, self._voxel_counts(logits, target).sum(0), target.numel(),
                               losses)
        return losses

    @torch.no_grad()
    def _voxel_counts(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample ``[intersection, union, correct]`` voxel counts ``(N, 3)`` of the
        argmax of logits ``(N, C, *spatial)`` against labels ``(N, *spatial)`` (occupied =
        not free)."""
        pred = logits.movedim(1, -1).argmax(-1)  # class dim innermost in the frame path
        pred_occ, gt_occ = pred != self.free_label, target != self.free_label
        return torch.stack([(pred_occ & gt_occ).flatten(1).sum(1),
                            (pred_occ | gt_occ).flatten(1).sum(1),
                            (pred == target.long()).flatten(1).sum(1)], 1)

    @staticmethod
    def _add_voxel_scores(stage: str, counts: torch.Tensor, numel: int,
                          losses: Dict[str, torch.Tensor]) -> None:
        """``<stage>_iou`` and ``<stage>_acc`` from batch counts ``(3,)`` (see
        :meth:`_voxel_counts`) of ``numel`` voxels."""
        losses[f'{stage}_iou'] = counts[0].float() / counts[1].clamp(min=1)
        losses[f'{stage}_acc'] = counts[2].float() / numel

    @staticmethod
    def _add_vq_terms(vq_loss: torch.Tensor, indices: torch.Tensor, num_codes: int,
                      losses: Dict[str, torch.Tensor]) -> None:
        """``loss_vq`` and ``code_usage`` (fraction of the ``num_codes`` codes used)."""
        losses['loss_vq'] = vq_loss
        used = torch.unique(indices).numel()
        losses['code_usage'] = torch.tensor(used / num_codes, device=vq_loss.device)

    def loss_reconstruction(self, logits: torch.Tensor, target: torch.Tensor,
                            vq_loss: torch.Tensor, indices: torch.Tensor,
                            num_codes: int) -> Dict[str, torch.Tensor]:
        """Tokenizer-stage losses.

        Args:
            logits (torch.Tensor): ``(N, C, X, Y, Z)`` reconstruction logits.
            target (torch.Tensor): ``(N, X, Y, Z)`` integer labels.
            vq_loss (torch.Tensor): Scalar codebook + commitment loss of the tokenizer.
            indices (torch.Tensor): ``(N, h, w)`` long codes (for ``code_usage``).
            num_codes (int): Codebook size ``K``.

        Returns:
            dict[str, torch.Tensor]: ``loss_recon_<name>``..., ``recon_iou``, ``recon_acc``,
            ``loss_vq`` and ``code_usage`` (fraction of codes used in the batch).
        """
        losses = self.occupancy_losses(logits, target, 'recon')
        self._add_vq_terms(vq_loss, indices, num_codes, losses)
        return losses

    def loss_tokenizer(self, tokenizer: torch.nn.Module,
                       occ: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Tokenizer-stage losses of ``tokenizer`` reconstructing ``occ``.

        With ``tokenizer.checkpoint_frames > 0`` and every ``'recon'`` loss decomposable into
        per-sample terms (``batch_context`` / ``sample_terms`` taking ``normalized`` /
        ``reduce_terms``, as the losses of :mod:`projects.common.losses`), the losses are
        computed frame by frame inside the tokenizer's checkpointed chunks
        (:meth:`OccVQVAE.forward_terms`), so the logits of all frames never exist at once,
        from one ``log_softmax`` of each frame's logits shared by all losses; otherwise the
        whole batch is reconstructed (``forward_train``) and :meth:`loss_reconstruction`
        applies. Both give the same dict,
        values and gradients.

        Args:
            tokenizer (nn.Module): An :class:`OccVQVAE`.
            occ (torch.Tensor): ``(N, X, Y, Z)`` integer labels.

        Returns:
            dict[str, torch.Tensor]: See :meth:`loss_reconstruction`.
        """
        entries = [(key, self.loss_modules[module_key]) for t, key, module_key in self._entries
                   if t == 'recon']
        framewise = getattr(tokenizer, 'checkpoint_frames', 0) > 0 and all(
            hasattr(m, 'sample_terms') and getattr(m, 'decomposable', True)
            and 'normalized' in inspect.signature(m.sample_terms).parameters
            for _, m in entries)
        if not framewise:
            out = tokenizer.forward_train(occ)
            return self.loss_reconstruction(out['logits'], occ, out['vq_loss'], out['indices'],
                                            tokenizer.num_codes)
        contexts = [m.batch_context(occ, tokenizer.num_classes) for _, m in entries]

        def terms_fn(logits: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
            """Per-frame loss terms and ``[intersection, union, correct]`` voxel counts."""
            # log-probabilities once for every loss (over the class dimension, which is the
            # innermost in memory: no transposing copy); same values and gradients
            log_probs = F.log_softmax(logits.movedim(1, -1), dim=-1).movedim(-1, 1)
            terms = {key: m.sample_terms(log_probs, target, normalized=True, **ctx)
                     for (key, m), ctx in zip(entries, contexts)}
            del log_probs
            terms['_counts'] = self._voxel_counts(logits, target)
            return terms

        out = tokenizer.forward_terms(occ, terms_fn)
        terms = out['terms']
        losses = {key: m.reduce_terms(terms[key]) for key, m in entries}
        self._add_voxel_scores('recon', terms['_counts'].sum(0), occ.numel(), losses)
        self._add_vq_terms(out['vq_loss'], out['indices'], tokenizer.num_codes, losses)
        return losses

    def token_losses(self, logits: torch.Tensor, tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Teacher-forced next-token losses.

        Args:
            logits (torch.Tensor): ``(B, T, K, h, w)`` token logits of every frame (frame t
                predicts frame t + 1; the last frame's logits are unused).
            tokens (torch.Tensor): ``(B, T, h, w)`` long codes of the window.

        Returns:
            dict[str, torch.Tensor]: ``loss_token`` (when configured), ``acc_token`` and
            ``acc_token_copy_last`` (accuracy of repeating the previous frame's codes).
        """
        b, t, k, h, w = logits.shape
        pred_logits, target = logits[:, :-1], tokens[:, 1:]
        losses: Dict[str, torch.Tensor] = {}
        self._add_losses('token', pred_logits.reshape(b * (t - 1), k, h, w),
                         target.reshape(b * (t - 1), h, w), losses)
        with torch.no_grad():
            losses['acc_token'] = (pred_logits.argmax(2) == target).float().mean()
            losses['acc_token_copy_last'] = (tokens[:, :-1] == target).float().mean()
        return losses

    def pose_losses(self, pred: torch.Tensor, gt: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Ego-motion losses and logging scalars of predicted vs true motion.

        Args:
            pred (torch.Tensor): ``(B, N, D)`` predicted per-step motion.
            gt (torch.Tensor): ``(B, N, D)`` true per-step motion.

        Returns:
            dict[str, torch.Tensor]: ``loss_pose`` / ``loss_rot`` / ``loss_vel`` as
            configured, ``pose_l2`` (m) and, for ``'6dof'``, ``rot_err_deg``.
        """
        losses: Dict[str, torch.Tensor] = {}
        pred_parts, gt_parts = self.codec.loss_parts(pred), self.codec.loss_parts(gt)
        for part in pred_parts:
            self._add_losses(part, pred_parts[part], gt_parts[part], losses)
        losses.update(self.codec.stats(pred, gt))
        return losses

    # ------------------------------------------------------------------ predictions
    def pack_predictions(self, data_samples: Optional[Sequence[BaseDataElement]],
                         fields: Dict[str, torch.Tensor], source: str,
                         default_meta: dict) -> List[OccDataSample]:
        """One :class:`OccDataSample` per sample with CPU copies of ``fields``.

        Args:
            data_samples (Sequence[BaseDataElement], optional): Input samples; their metainfo
                is copied (``default_meta`` is used where there is none).
            fields (dict[str, torch.Tensor]): Batch-first tensors; keys ending in ``_occ``
                become uint8 ``(F, X, Y, Z)``, the others float32 ``(F, D)``.
            source (str): ``metainfo['pred_source']`` (``'rollout'``, ``'reconstruction'``,
                ``'plan'``).
            default_meta (dict): Metainfo of samples without an input sample (e.g.
                ``num_history``, ``num_future``, ``free_label``, ``num_classes``,
                ``pose_mode``).

        Returns:
            list[OccDataSample]: One per batch element.
        """
        b = next(iter(fields.values())).shape[0]
        results = []
        for i in range(b):
            if data_samples is not None and i < len(data_samples):
                meta = dict(data_samples[i].metainfo)
            else:
                meta = {k: v for k, v in default_meta.items() if k != 'pose_mode'}
            meta['pred_source'] = source
            meta['pose_mode'] = self.codec.mode
            sample = OccDataSample(metainfo=meta)
            for key, value in fields.items():
                value = value[i]
                value = value.to(torch.uint8) if key.endswith('_occ') else value.float()
                setattr(sample, key, value.contiguous().cpu())
            results.append(sample)
        return results
