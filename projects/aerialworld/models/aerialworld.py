"""AerialWorld: OccWorld-style occupancy world model (tokenizer + causal world transformer).

Training follows OccWorld (W. Zheng et al., arXiv:2311.16038, 2023) in two stages
(``train_stage``): ``'tokenizer'`` trains the VQ-VAE (:class:`OccVQVAE`) to reconstruct every
frame; ``'world'`` freezes it and trains the world transformer (:class:`OccWorldTransformer`)
on teacher-forced next-frame codes, the ego motion and the occupancy decoded from its expected
code vectors ``softmax(logits) @ codebook`` (differentiable w.r.t. the transformer);
``'joint'`` trains both. The model only wires the parts: losses and prediction packing live in
the head (:class:`OccForecastHead`, a ``losses`` list), the pose encoding in
:class:`PoseCodec` (``pose_mode``), copy-through decoding in :class:`CopyThroughDecoder`
(``copy_decode``), cached codes of the frozen tokenizer in :class:`TokenCache`; predictions
are :class:`OccDataSample`\\ s with the fields of
``docs/aerialworld_data_and_model_contract.md``.
"""
import copy
from typing import List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from projects.registry import MODELS
from ..structures import OccDataSample
from .copy_decoder import build_copy_decoder
from .forecast_head import DEFAULT_HEAD
from .pose_codec import POSE_MODES, PoseCodec
from .pretrained import check_pretrained_init
from .reveal_chooser import reveal_choice_targets
from .token_cache import TokenCache

STAGES = ('tokenizer', 'world', 'joint')


@MODELS.register_module()
class AerialWorld(BaseModel):
    """OccWorld-style occupancy world model with a 13-D / 4-D ego-motion branch.

    Input (``docs/aerialworld_data_and_model_contract.md``): ``inputs = {'occupancy': uint8
    (B, T, X, Y, Z), 'poses': float32 (B, T, 13)}``, ``data_samples`` a list of
    ``BaseDataElement`` / :class:`OccDataSample` (metainfo is copied to the predictions) or
    None.

    Args:
        tokenizer (dict): :class:`OccVQVAE` config. ``num_classes`` and ``free_label`` are
            filled in from this model when missing. Pretrained weights come through its
            ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='tokenizer.')``
            (loaded by :meth:`init_weights`, which first checks that the checkpoint fills the
            tokenizer exactly).
        transformer (dict): :class:`OccWorldTransformer` config. ``num_codes``,
            ``token_grid``, ``code_dim`` and ``pose_dims`` are derived from the tokenizer and
            ``pose_mode`` when missing (and must agree when given).
        head (dict): :class:`OccForecastHead` config (its ``losses`` list); ``num_classes``,
            ``free_label`` and ``pose_mode`` are filled in. Defaults to :data:`DEFAULT_HEAD`.
        num_classes (int, optional): Semantic classes including free. Defaults to the
            tokenizer's ``num_classes``.
        free_label (int): Free class; negative counts from the last class. Defaults to -1.
        num_history (int): History frames given to the rollout. Defaults to 4.
        num_future (int): Frames predicted by the rollout. Defaults to 6.
        train_stage (str): ``'tokenizer'``, ``'world'`` or ``'joint'``. Defaults to
            ``'world'``.
        pose_mode (str): ``'planar4'`` (4-D motion ``[dx, dy, dz, dyaw]``) or ``'6dof'``
            (13-D 6-DoF motion); see :class:`PoseCodec`. Defaults to ``'planar4'``.
        world_occ_loss_frames (str): Frames whose decoded prediction gets the head's ``pred``
            occupancy losses in the world stage: ``'future'`` (targets
            ``num_history .. T-1``), ``'all'`` (targets ``1 .. T-1``) or ``'none'``.
            Defaults to ``'future'``.
        world_occ_loss_samples (int, optional): Decode and score only this many randomly
            chosen frames of ``world_occ_loss_frames`` per step (the same frames for every
            sample of the batch; drawn from the run's seed and iteration, so a resumed run
            draws the same frames), the world-stage counterpart of ``tokenizer_frames``: the
            mean of the per-frame terms is then estimated from a sample of the frames, and the
            cost of decoding full-resolution frames (which dominates a full-grid world step)
            drops by ``num_frames / world_occ_loss_samples``. Defaults to None (all frames).
        tokenizer_frames (int, optional): In the tokenizer stage, reconstruct only this many
            randomly chosen frames of each window (saves compute). Defaults to None (all).
        copy_decode (dict, optional): :class:`CopyThroughDecoder` config (``type`` optional;
            ``point_cloud_range`` required, ``z_reference``, ``static_classes``,
            ``same_position``); None (default) decodes every predicted token with the VQ
            decoder, as OccWorld does.
        tokenizer_ckpt (str, optional): Shorthand for the tokenizer's
            ``init_cfg=dict(type='Pretrained', checkpoint=tokenizer_ckpt,
            prefix='tokenizer.')`` (a stage-1 AerialWorld checkpoint). Defaults to None.
        agent_motion (dict, optional): :class:`AgentMotionHead` config (``point_cloud_range``
            required, ``z_reference``, ``channels``, ``loss_flow``; the classes, history,
            future and pose mode are filled in). It is trained in every stage on the
            ``agent_flow`` / ``agent_flow_mask`` targets of
            :class:`~projects.aerialworld.transforms.LoadAgentFlow` (``loss_agent_flow``;
            windows without them skip it), and in predictions its flow moves the last frame's
            dynamic voxels in the copy-through decoding (needs ``copy_decode`` with
            ``static_classes``). Defaults to None.
        seen_classes_only (bool): With ``agent_motion``, the copy-through decoder gets the
            tokens decoded among the classes present in the history only (a decoding rule, not
            learned: a class the scene never showed is not generated in new space). False
            gives it the plain arg-max decoding (to measure the rule's effect). Defaults to
            True.
        reveal_chooser (dict, optional): :class:`RevealChooser` config (needs
            ``agent_motion``): in the copy-through decoding, newly revealed columns are kept
            from the last frame or decoded by a learned choice that sees both candidates
            (instead of the head's reveal gate alone), trained on the model's own decoded
            rollouts of the training windows: in the world and joint stages
            (``loss_reveal_choice``, its ``interval``) and/or once on the final model
            (its ``fit_cfg``, :class:`~projects.aerialworld.hooks.RevealChooserFitHook`).
            Defaults to None.
        token_cache (dict, optional): :class:`TokenCache` arguments (``cache_dir``...): in the
            ``'world'`` stage the frozen tokenizer's codes are read from the cache instead of
            re-encoding every frame at every step. Defaults to None (no cache).
        data_preprocessor (dict | nn.Module, optional): Defaults to
            ``dict(type='OccupancyDataPreprocessor')``; None gives MMEngine's
            ``BaseDataPreprocessor``.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On inconsistent configs (named by field).
    """

    def __init__(self,
                 tokenizer: dict,
                 transformer: dict,
                 head: dict = DEFAULT_HEAD,
                 num_classes: Optional[int] = None,
                 free_label: int = -1,
                 num_history: int = 4,
                 num_future: int = 6,
                 train_stage: str = 'world',
                 pose_mode: str = 'planar4',
                 world_occ_loss_frames: str = 'future',
                 world_occ_loss_samples: Optional[int] = None,
                 tokenizer_frames: Optional[int] = None,
                 copy_decode: Optional[dict] = None,
                 agent_motion: Optional[dict] = None,
                 seen_classes_only: bool = True,
                 reveal_chooser: Optional[dict] = None,
                 tokenizer_ckpt: Optional[str] = None,
                 token_cache: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = dict(
                     type='OccupancyDataPreprocessor'),
                 init_cfg: Optional[dict] = None) -> None:
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if train_stage not in STAGES:
            raise ValueError(f'train_stage must be one of {STAGES}, got {train_stage!r}')
        if num_history < 1 or num_future < 1:
            raise ValueError(f'num_history and num_future must be >= 1, got '
                             f'{num_history} and {num_future}')
        if world_occ_loss_frames not in ('future', 'all', 'none'):
            raise ValueError(f"world_occ_loss_frames must be 'future', 'all' or 'none', got "
                             f'{world_occ_loss_frames!r}')
        if world_occ_loss_samples is not None and world_occ_loss_samples < 1:
            raise ValueError(f'world_occ_loss_samples must be >= 1 or None, got '
                             f'{world_occ_loss_samples}')
        if tokenizer_frames is not None and tokenizer_frames < 1:
            raise ValueError(f'tokenizer_frames must be >= 1 or None, got {tokenizer_frames}')
        self.pose_codec = PoseCodec(pose_mode)

        tok_cfg = copy.deepcopy(dict(tokenizer))
        if num_classes is None:
            if 'num_classes' not in tok_cfg:
                raise ValueError('num_classes must be given in the model or tokenizer config')
            num_classes = tok_cfg['num_classes']
        tok_cfg.setdefault('num_classes', num_classes)
        if tok_cfg['num_classes'] != num_classes:
            raise ValueError(f'tokenizer.num_classes={tok_cfg["num_classes"]} differs from '
                             f'num_classes={num_classes}')
        free = free_label + num_classes if free_label < 0 else free_label
        if not 0 <= free < num_classes:
            raise ValueError(f'free_label={free_label} out of range for num_classes='
                             f'{num_classes}')
        tok_cfg.setdefault('free_label', free)
        if tokenizer_ckpt:
            if tok_cfg.get('init_cfg'):
                raise ValueError('give either tokenizer_ckpt or tokenizer.init_cfg, not both')
            tok_cfg['init_cfg'] = dict(type='Pretrained', checkpoint=tokenizer_ckpt,
                                       prefix='tokenizer.')
        self.tokenizer = MODELS.build(tok_cfg)

        tr_cfg = copy.deepcopy(dict(transformer))
        derived = dict(num_codes=self.tokenizer.num_codes,
                       token_grid=tuple(self.tokenizer.token_grid),
                       code_dim=self.tokenizer.code_dim)
        for key, value in derived.items():
            if key in tr_cfg and tr_cfg[key] is not None:
                given = tuple(tr_cfg[key]) if key == 'token_grid' else tr_cfg[key]
                if given != value:
                    raise ValueError(f'transformer.{key}={given} does not match the '
                                     f'tokenizer ({value}); leave it unset to derive it')
            tr_cfg[key] = value
        pose_dims = POSE_MODES[pose_mode]
        if tr_cfg.get('pose_dims') is None:
            tr_cfg['pose_dims'] = pose_dims
        if int(tr_cfg['pose_dims']) != pose_dims:
            raise ValueError(f'transformer.pose_dims={tr_cfg["pose_dims"]} does not match '
                             f'pose_mode={pose_mode!r} (needs {pose_dims}); leave it unset to '
                             f'derive it')
        self.transformer = MODELS.build(tr_cfg)
        if self.transformer.max_frames < num_history + num_future:
            raise ValueError(f'transformer.max_frames={self.transformer.max_frames} must be '
                             f'>= num_history + num_future = {num_history + num_future}')

        self.head = MODELS.build(dict(copy.deepcopy(dict(head)), num_classes=int(num_classes),
                                      free_label=free, pose_mode=pose_mode))
        self.num_classes = int(num_classes)
        self.free_label = free
        self.num_history = int(num_history)
        self.num_future = int(num_future)
        self.world_occ_loss_frames = world_occ_loss_frames
        self.world_occ_loss_samples = world_occ_loss_samples
        self.tokenizer_frames = tokenizer_frames

        self.copy_decoder = None if copy_decode is None else build_copy_decoder(
            copy_decode, num_classes=self.num_classes, free_label=free,
            token_stride=self.tokenizer.stride, pose_mode=pose_mode)
        self.seen_classes_only = bool(seen_classes_only)
        self.agent_motion = None
        self.reveal_chooser = None
        if reveal_chooser is not None and agent_motion is None:
            raise ValueError('reveal_chooser needs agent_motion (the choice is made in its '
                             'static / dynamic decomposed decoding)')
        if reveal_chooser is not None:
            self.reveal_chooser = MODELS.build(dict(dict(type='RevealChooser'),
                                                    **dict(reveal_chooser)))
        if agent_motion is not None:
            if self.copy_decoder is None or \
                    getattr(self.copy_decoder, 'static_classes', None) is None:
                raise ValueError('agent_motion needs copy_decode with static_classes (the '
                                 'decoder moves the dynamic voxels by the predicted flow)')
            self.agent_motion = MODELS.build(dict(
                dict(type='AgentMotionHead'), **dict(agent_motion),
                num_classes=self.num_classes,
                free_label=free, num_history=self.num_history, num_future=self.num_future,
                pose_mode=pose_mode, static_classes=self.copy_decoder.static_classes))
        self.token_cache = TokenCache(**token_cache) if token_cache else None
        self.train_stage = train_stage
        self.set_stage(train_stage)

    @property
    def pose_mode(self) -> str:
        """str: ``'planar4'`` or ``'6dof'``."""
        return self.pose_codec.mode

    @property
    def pose_dims(self) -> int:
        """int: Dimension ``D`` of the ego-motion vectors (4 or 13)."""
        return self.pose_codec.dims

    # ------------------------------------------------------------------ stages
    def set_stage(self, stage: str) -> None:
        """Switch the training stage.

        ``'world'`` freezes the tokenizer (``requires_grad_(False)`` and eval mode, kept by
        :meth:`train`); ``'tokenizer'`` and ``'joint'`` make it trainable again.

        Args:
            stage (str): ``'tokenizer'``, ``'world'`` or ``'joint'``.

        Raises:
            ValueError: On an unknown stage.
        """
        if stage not in STAGES:
            raise ValueError(f'train_stage must be one of {STAGES}, got {stage!r}')
        self.train_stage = stage
        if stage == 'world':
            self.tokenizer.requires_grad_(False)
            self.tokenizer.eval()
            for param in self.tokenizer.parameters():
                param.grad = None  # stale stage-1 gradients must not reach the optimizer
        else:
            self.tokenizer.requires_grad_(True)
            self.tokenizer.train(self.training)

    def train(self, mode: bool = True) -> 'AerialWorld':
        """Set train/eval mode; the frozen tokenizer stays in eval mode in the world stage.

        Args:
            mode (bool): Training mode. Defaults to True.

        Returns:
            AerialWorld: self.
        """
        super().train(mode)
        if getattr(self, 'train_stage', None) == 'world':
            self.tokenizer.eval()
        return self

    def init_weights(self) -> None:
        """Initialise weights; a ``Pretrained`` tokenizer ``init_cfg`` is checked first.

        MMEngine's ``Pretrained`` initialiser loads non-strictly; the check
        (:func:`~projects.aerialworld.models.pretrained.check_pretrained_init`) raises
        ``RuntimeError`` naming the file and every missing / unexpected / mis-shaped key
        before anything is loaded.
        """
        init_cfg = self.tokenizer.init_cfg
        pretrained = check_pretrained_init(self.tokenizer, init_cfg,
                                           'model.tokenizer.init_cfg (tokenizer_ckpt)')
        super().init_weights()
        if pretrained:
            for cfg in init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]:
                if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
                    print_log(f"Loaded tokenizer weights from {cfg['checkpoint']} "
                              f"(prefix={cfg.get('prefix')!r}, every key matched)",
                              logger='current')

    # ------------------------------------------------------------------ helpers
    def _unpack(self, inputs: dict):
        """Validate and return ``(occ uint8 (B,T,X,Y,Z), poses float (B,T,13))``."""
        if not isinstance(inputs, dict) or 'occupancy' not in inputs or 'poses' not in inputs:
            raise ValueError("AerialWorld: inputs must be a dict with 'occupancy' and 'poses'")
        occ, poses = inputs['occupancy'], inputs['poses']
        if occ.dim() != 5 or tuple(occ.shape[2:]) != self.tokenizer.grid_size:
            raise ValueError(f'AerialWorld: occupancy shape {tuple(occ.shape)} does not match '
                             f'(B, T, *tokenizer.grid_size) with grid_size='
                             f'{self.tokenizer.grid_size}')
        if poses.dim() != 3 or poses.shape[:2] != occ.shape[:2] or poses.shape[2] != 13:
            raise ValueError(f'AerialWorld: poses must be (B, T, 13) matching occupancy, got '
                             f'{tuple(poses.shape)}')
        return occ, poses.float()

    def _tokenizer_losses(self, occ: torch.Tensor) -> dict:
        """Reconstruction + VQ losses over (a subset of) the frames of ``occ``."""
        t = occ.shape[1]
        if self.tokenizer_frames is not None and self.tokenizer_frames < t:
            sel = torch.randperm(t, device=occ.device)[:self.tokenizer_frames]
            occ = occ[:, sel]
        return self.head.loss_tokenizer(self.tokenizer, occ.flatten(0, 1))

    def _tokenize_sequence(self, occ: torch.Tensor) -> torch.Tensor:
        """Token indices ``(B, T, h, w)`` of occupancy ``(B, T, X, Y, Z)`` (no gradient).

        In the ``'world'`` stage with a :class:`TokenCache` the codes come from the cache
        (encoded once per frame content and tokenizer weights).
        """
        b, t = occ.shape[:2]
        flat = occ.flatten(0, 1)
        if self.token_cache is not None and self.train_stage == 'world':
            tokens = self.token_cache.tokenize(self.tokenizer, flat)
        else:
            tokens = self.tokenizer.tokenize(flat)
        return tokens.reshape(b, t, *tokens.shape[1:])

    @staticmethod
    def _iteration_generator() -> Optional[torch.Generator]:
        """A CPU generator seeded by the run's seed and the runner's current iteration.

        Draws made with it depend only on ``(torch.initial_seed(), iteration)``, not on how
        much of the global random stream other code (a stage switch, validation, a resume)
        consumed before, so a resumed run repeats them exactly. None (the global stream)
        outside a runner (no ``iter`` in MMEngine's message hub).
        """
        from mmengine.logging import MessageHub
        hub = MessageHub.get_current_instance()
        it = hub.get_info('iter') if hub is not None else None
        if it is None:
            return None
        seed = (int(torch.initial_seed()) * 1000003 + int(it)) % (2 ** 63 - 1)
        return torch.Generator().manual_seed(seed)

    def _world_losses(self, occ: torch.Tensor, poses: torch.Tensor) -> dict:
        """Teacher-forced next-token, decoded-occupancy and pose losses."""
        b, t = occ.shape[:2]
        if t < 2:
            raise ValueError(f'AerialWorld: the world stage needs T >= 2 frames, got T={t}')
        codec = self.pose_codec
        tokens = self._tokenize_sequence(occ)
        codebook = self.tokenizer.codebook.detach()
        motion_gt = codec.step_motion(poses)  # (B, T-1, D)
        next_motion = torch.cat([motion_gt, codec.no_motion(b, motion_gt)], dim=1)
        logits, motion_pred = self.transformer(tokens, codec.frame_motion(poses), codebook,
                                               next_motion=next_motion)
        losses = self.head.token_losses(logits, tokens)
        # With a constant-velocity pose prior the first frame has no motion to continue
        # (its input motion is zero / identity): supervising it would teach the correction
        # head to produce whole motions from scene features, so it is left out.
        first = 1 if self.transformer.pose_residual and t > 2 else 0
        losses.update(self.head.pose_losses(motion_pred[:, first:-1], motion_gt[:, first:]))
        if self.world_occ_loss_frames != 'none':
            start = max(self.num_history - 1, 0) if self.world_occ_loss_frames == 'future' \
                else 0
            if start < t - 1:
                frames = torch.arange(start, t - 1, device=logits.device)
                k = self.world_occ_loss_samples
                if k is not None and k < len(frames):
                    perm = torch.randperm(len(frames), generator=self._iteration_generator())
                    frames = frames[perm[:k].sort().values.to(frames.device)]
                probs = F.softmax(logits[:, frames], dim=2)  # (B, F, K, h, w)
                soft = torch.einsum('bfkhw,kd->bfdhw', probs, codebook)
                occ_logits = self.tokenizer.decode(soft.flatten(0, 1))
                gt = occ[:, frames + 1].flatten(0, 1)
                losses.update(self.head.occupancy_losses(occ_logits, gt, 'pred'))
        return losses

    # ------------------------------------------------------------------ forward
    def forward(self,
                inputs: dict,
                data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        """Unified entry point (MMEngine convention).

        Args:
            inputs (dict): ``occupancy`` uint8 ``(B, T, X, Y, Z)``, ``poses`` float32
                ``(B, T, 13)``.
            data_samples (list[BaseDataElement], optional): Per-sample meta information.
            mode (str): ``'loss'``, ``'predict'`` or ``'tensor'``.

        Returns:
            dict | list | tuple: ``'loss'``: dict of losses (keys with ``loss``) and logging
            scalars; ``'predict'``: list of :class:`OccDataSample` (see :meth:`predict`);
            ``'tensor'``: ``(token_logits (B, T, K, h, w), ego_motion (B, T, D))`` (``D`` = 4
            or 13 by ``pose_mode``) for the world / joint stages,
            ``dict(logits=(B, T, C, X, Y, Z), indices=(B, T, h, w))`` for the tokenizer stage.

        Raises:
            ValueError: On an unknown mode or malformed inputs.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            occ, poses = self._unpack(inputs)
            if self.train_stage == 'tokenizer':
                b, t = occ.shape[:2]
                out = self.tokenizer.forward_train(occ.flatten(0, 1))
                return dict(logits=out['logits'].reshape(b, t, *out['logits'].shape[1:]),
                            indices=out['indices'].reshape(b, t, *out['indices'].shape[1:]))
            tokens = self._tokenize_sequence(occ)
            return self.transformer(tokens, self.pose_codec.frame_motion(poses),
                                    self.tokenizer.codebook.detach())
        raise ValueError(f"AerialWorld: mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')

    def loss(self, inputs: dict,
             data_samples: Optional[List[BaseDataElement]] = None) -> dict:
        """Training losses of the current stage.

        Args:
            inputs (dict): See :meth:`forward`.
            data_samples (list[BaseDataElement], optional): Unused.

        Returns:
            dict[str, torch.Tensor]: Tokenizer stage: the head's ``loss_recon_<name>``
            losses, ``loss_vq`` and ``recon_iou``, ``recon_acc``, ``code_usage``. World
            stage: ``loss_token``, ``loss_pose`` (``'6dof'``: ``loss_rot``, ``loss_vel``),
            ``loss_pred_<name>`` and ``acc_token``, ``acc_token_copy_last``, ``pose_l2``,
            ``pred_iou``, ``pred_acc`` (``'6dof'``: ``rot_err_deg``). Joint: both. With
            ``agent_motion`` and flow targets in the inputs, in every stage:
            ``loss_agent_flow`` and ``agent_flow_epe``.
        """
        occ, poses = self._unpack(inputs)
        losses = {}
        if self.train_stage in ('tokenizer', 'joint'):
            losses.update(self._tokenizer_losses(occ))
        if self.train_stage in ('world', 'joint'):
            losses.update(self._world_losses(occ, poses))
        if self.agent_motion is not None:
            losses.update(self._agent_motion_losses(occ, poses, inputs))
        if self.reveal_chooser is not None and self.train_stage in ('world', 'joint') and \
                occ.shape[1] >= self.num_history + self.num_future and self._chooser_turn():
            losses.update(self._reveal_choice_loss(occ, poses))
        return losses

    def _chooser_turn(self) -> bool:
        """Whether ``reveal_chooser`` trains at this iteration (its ``interval``; always
        outside a runner)."""
        from mmengine.logging import MessageHub
        hub = MessageHub.get_current_instance()
        it = hub.get_info('iter') if hub is not None else None
        interval = self.reveal_chooser.interval
        return interval > 0 and (it is None or int(it) % interval == 0)

    def _reveal_choice_loss(self, occ: torch.Tensor, poses: torch.Tensor) -> dict:
        """``loss_reveal_choice`` of ``reveal_chooser`` on the decoded rollout of the
        window's history (:meth:`reveal_choice_data`)."""
        feats, target, weight = self.reveal_choice_data(occ, poses)
        return self.reveal_chooser.loss(self.reveal_chooser(feats), target, weight)

    @torch.no_grad()
    def reveal_choice_data(self, occ: torch.Tensor, poses: torch.Tensor) -> tuple:
        """Training data of ``reveal_chooser`` from this model's rollout of windows.

        Args:
            occ (torch.Tensor): ``(B, T, X, Y, Z)`` windows, ``T >= num_history +
                num_future``.
            poses (torch.Tensor): ``(B, T, ...)`` their ego poses.

        Returns:
            tuple: ``feats`` ``(B, F, C, X, Y)`` (:meth:`RevealChooser.features`),
            ``target`` and ``weight`` ``(B, F, X, Y)`` (:func:`reveal_choice_targets`).

        Raises:
            ValueError: Without ``reveal_chooser`` or with too short windows.
        """
        hist, fut = self.num_history, self.num_future
        if self.reveal_chooser is None or occ.shape[1] < hist + fut:
            raise ValueError(f'AerialWorld.reveal_choice_data needs model.reveal_chooser and '
                             f'windows of num_history + num_future = {hist + fut} frames, got '
                             f'{tuple(occ.shape)}')
        frame_motion = self.pose_codec.frame_motion(poses)
        keep, fill, revealed, view = self._rollout_candidates(occ, frame_motion)
        prior = self.agent_motion(occ[:, :hist], frame_motion[:, :hist]).get('gate_logits')
        prior = None if prior is None else self._extend_steps(
            prior[:, :, None], fill.shape[1])[:, :, 0]
        target, weight = reveal_choice_targets(
            keep, fill, revealed, occ[:, hist:hist + fut], self.copy_decoder._dynamic_lut,
            self.free_label, self.reveal_chooser.fp_weight)
        context = (view, revealed) if self.reveal_chooser.context else (None, None)
        feats = self.reveal_chooser.features(keep, fill, prior, self.free_label, *context)
        return feats, target, weight

    def _agent_motion_losses(self, occ: torch.Tensor, poses: torch.Tensor,
                             inputs: dict) -> dict:
        """Losses of ``agent_motion`` at the window's last history frame.

        ``loss_agent_flow`` (and ``loss_motion_state``, ``loss_continue_gate``) need the
        ``agent_flow`` / ``agent_flow_mask`` inputs (skipped without them);
        ``loss_reveal_gate`` (``reveal_gate=True``) is computed from the window's own future
        frames and ego motion.
        """
        hist, fut = self.num_history, self.num_future
        head = self.agent_motion
        codec = self.pose_codec
        frame_motion = codec.frame_motion(poses)
        out = head(occ[:, :hist], frame_motion[:, :hist])
        flow, gate = out['flow'], out.get('gate_logits')
        losses = {}
        if 'agent_flow' in inputs:
            target, mask = (inputs[k] if isinstance(inputs[k], torch.Tensor) else
                            torch.stack(list(inputs[k]))
                            for k in ('agent_flow', 'agent_flow_mask'))
            target = target.to(flow.device)
            mask = mask.to(device=flow.device, dtype=torch.bool)
            losses.update(head.loss(flow, target, mask, out.get('state_logits')))
            if 'continue_logits' in out:
                losses.update(head.continue_loss(out['continue_logits'], flow, out['tracked'],
                                                 target, mask))
        if gate is not None and occ.shape[1] >= hist + fut:
            if head.reveal_target == 'rollout' and self.train_stage in ('world', 'joint'):
                target, mask = self._rollout_gate_targets(occ, frame_motion)
            else:
                rel = codec.accumulate(codec.step_motion(poses)[:, hist - 1:hist - 1 + fut])
                target, mask = head.gate_targets(occ[:, hist - 1], occ[:, hist:hist + fut],
                                                 rel, self.copy_decoder._dynamic_lut)
            losses.update(head.gate_loss(gate, target, mask))
        return losses

    @torch.no_grad()
    def _rollout_gate_targets(self, occ: torch.Tensor, frame_motion: torch.Tensor) -> tuple:
        """Reveal-gate targets from this model's own rollout of the training windows
        (``agent_motion.reveal_target='rollout'``; see
        :meth:`AgentMotionHead.rollout_gate_targets`). The rollout and its decoding are the
        ones of :meth:`predict` (own ego motion, ``seen_classes_only``), in eval mode and
        without gradients.

        Args:
            occ (torch.Tensor): ``(B, T, X, Y, Z)`` window, ``T >= num_history + num_future``.
            frame_motion (torch.Tensor): ``(B, T, D)`` per-frame ego motion.

        Returns:
            tuple: ``target`` and ``weight``, each ``(B, F, X, Y)`` float.
        """
        hist, fut = self.num_history, self.num_future
        keep, fill, revealed, _ = self._rollout_candidates(occ, frame_motion)
        return self.agent_motion.rollout_gate_targets(
            keep, fill, revealed, occ[:, hist:hist + fut], self.copy_decoder._dynamic_lut)

    @torch.no_grad()
    def _rollout_candidates(self, occ: torch.Tensor, frame_motion: torch.Tensor) -> tuple:
        """The two fills of newly revealed space in this model's rollout of a window's
        history, decoded as in :meth:`predict` (own ego motion, ``seen_classes_only``; eval
        mode, no gradients): :meth:`CopyThroughDecoder.reveal_candidates` ``(keep, fill,
        revealed, view)``."""
        hist, fut = self.num_history, self.num_future
        was_training = self.training
        self.eval()
        try:
            history = occ[:, :hist]
            tokens, motion = self.rollout(history, frame_motion[:, :hist], fut)
            fill = self._decode_tokens(tokens, self._seen_classes(history))
            if isinstance(fill, tuple):
                fill = fill[1]
            last = history[:, -1].to(torch.uint8)
            tokens_last = self._tokenize_sequence(last[:, None])[:, 0]
            return self.copy_decoder.reveal_candidates(last, tokens_last, tokens, fill, motion)
        finally:
            self.train(was_training)

    def _seen_classes(self, occ_history: torch.Tensor) -> Optional[torch.Tensor]:
        """``(B, C)`` bool classes present in ``(B, H, X, Y, Z)`` (``seen_classes_only``),
        else None (plain arg-max decoding)."""
        if not self.seen_classes_only:
            return None
        return F.one_hot(occ_history.long().flatten(1), self.num_classes).any(1)

    @torch.no_grad()
    def rollout(self, occ_history: torch.Tensor, motion_history: torch.Tensor,
                num_future: int, planned_motion: Optional[torch.Tensor] = None):
        """Autoregressive rollout of the world model.

        Without a plan the model's own predicted ego motion of every step is fed back (and
        drives the motion-compensated copy prior). With ``planned_motion`` (action-conditioned
        rollout) step ``f`` uses ``planned_motion[:, f]`` instead: as the motion input of the
        new frame and as the ``next_motion`` of the copy-prior warp that predicts it.

        Args:
            occ_history (torch.Tensor): ``(B, H, X, Y, Z)`` integer history occupancy.
            motion_history (torch.Tensor): ``(B, H, D)`` per-frame ego motion of the history
                (see :meth:`PoseCodec.frame_motion`; ``D`` = 4 or 13 by ``pose_mode``).
            num_future (int): Steps ``F`` to predict.
            planned_motion (torch.Tensor, optional): ``(B, F, D)`` ego motion of the future
                frames (frame ``H + f`` relative to ``H + f - 1``). Defaults to None.

        Returns:
            tuple: predicted tokens ``(B, F, h, w)`` long and ego motion ``(B, F, D)`` float
            (the plan itself when one is given).

        Raises:
            ValueError: If ``motion_history`` or ``planned_motion`` has the wrong shape.
        """
        b, hist = occ_history.shape[:2]
        if motion_history.shape != (b, hist, self.pose_dims):
            raise ValueError(f'AerialWorld.rollout: motion_history must be ({b}, {hist}, '
                             f'{self.pose_dims}) for pose_mode={self.pose_mode!r}, got '
                             f'{tuple(motion_history.shape)}')
        plan_shape = (b, num_future, self.pose_dims)
        if planned_motion is not None and planned_motion.shape != plan_shape:
            raise ValueError(f'AerialWorld.rollout: planned_motion must be ({b}, {num_future}, '
                             f'{self.pose_dims}) for pose_mode={self.pose_mode!r}, got '
                             f'{tuple(planned_motion.shape)}')
        return self.transformer.generate(self._tokenize_sequence(occ_history), motion_history,
                                         self.tokenizer.codebook, num_future, planned_motion)

    @torch.no_grad()
    def _decode_tokens(self, tokens: torch.Tensor,
                       allowed: Optional[torch.Tensor] = None):
        """Decode ``(B, F, h, w)`` tokens frame by frame to uint8 labels ``(B, F, X, Y, Z)``.

        With ``allowed`` (``(B, C)`` bool) also returns the labels decoded among the allowed
        classes only (arg-max of the logits over them): ``(plain, restricted)``.
        """
        plain, restricted = [], []
        for f in range(tokens.shape[1]):
            logits = self.tokenizer.decode_indices(tokens[:, f])  # (B, C, X, Y, Z)
            plain.append(logits.argmax(1).to(torch.uint8))
            if allowed is not None:
                masked = logits.masked_fill(~allowed[:, :, None, None, None], float('-inf'))
                restricted.append(masked.argmax(1).to(torch.uint8))
        if allowed is None:
            return torch.stack(plain, dim=1)
        return torch.stack(plain, dim=1), torch.stack(restricted, dim=1)

    def _forecast_fields(self, occ_history: torch.Tensor, tokens: torch.Tensor,
                         motion: torch.Tensor,
                         motion_history: Optional[torch.Tensor] = None,
                         track_motion: Optional[torch.Tensor] = None) -> dict:
        """``pred_occ`` of a rollout (and ``decoded_pred_occ`` with ``copy_decode``).

        Args:
            occ_history (torch.Tensor): ``(B, H, X, Y, Z)`` uint8 history.
            tokens (torch.Tensor): ``(B, F, h, w)`` predicted codes.
            motion (torch.Tensor): ``(B, F, D)`` predicted / planned ego motion.
            motion_history (torch.Tensor, optional): ``(B, H, D)`` per-frame motion of the
                history, the input of ``agent_motion`` (required with it).
            track_motion (torch.Tensor, optional): ``(B, F, D)`` ego motion of the
                no-learning ``warp_track_occ`` baseline (constant velocity), made only with an
                ``agent_motion`` head that tracks agents (``velocity_prior``).

        Returns:
            dict[str, torch.Tensor]: ``pred_occ`` ``(B, F, X, Y, Z)`` uint8 and, with
            ``copy_decode``, ``decoded_pred_occ`` (the plain VQ-decoded forecast); with
            ``agent_motion`` also ``pred_agent_flow`` ``(B, F, 2, X, Y)`` float (metres), and
            with ``track_motion`` and a tracking head ``warp_track_occ`` ``(B, F, X, Y, Z)``.
            With ``agent_motion`` the copy-through decoder gets its flow and reveal gate and
            (``seen_classes_only``) the tokens decoded among the classes seen in the history
            only; ``decoded_pred_occ`` stays the plain decoding.
        """
        if self.copy_decoder is None:
            return dict(pred_occ=self._decode_tokens(tokens))
        last = occ_history[:, -1]
        tokens_last = self._tokenize_sequence(last[:, None])[:, 0]
        fields = {}
        flow = gate = None
        to_copy = decoded = self._decode_tokens(tokens) if self.agent_motion is None else None
        if self.agent_motion is not None:
            # the classes observed in the history: new space is decoded among them
            seen = self._seen_classes(occ_history)
            if seen is not None:
                decoded, to_copy = self._decode_tokens(tokens, allowed=seen)
            else:
                decoded = to_copy = self._decode_tokens(tokens)
            out = self.agent_motion(occ_history, motion_history)
            flow, gate = out['flow'], out.get('gate_logits')
            flow = self._extend_steps(flow, tokens.shape[1])
            fields['pred_agent_flow'] = flow
            if track_motion is not None and 'tracked_flow' in out:
                # no-learning baseline: CV-warp with the tracked agents at constant velocity
                fields['warp_track_occ'] = self.copy_decoder.warp_with_agents(
                    last.to(torch.uint8), track_motion, out['tracked_flow'])
            if gate is not None:
                gate = self._extend_steps(gate[:, :, None], tokens.shape[1])[:, :, 0]
            if self.reveal_chooser is not None:
                keep, fill, revealed, view = self.copy_decoder.reveal_candidates(
                    last.to(torch.uint8), tokens_last, tokens, to_copy, motion)
                context = (view, revealed) if self.reveal_chooser.context else (None, None)
                gate = self.reveal_chooser(self.reveal_chooser.features(
                    keep, fill, gate, self.free_label, *context))
            if gate is not None:
                gate = gate > 0
        pred = self.copy_decoder(last.to(torch.uint8), tokens_last, tokens, to_copy, motion,
                                 agent_flow=flow, fill_gate=gate)
        return dict(pred_occ=pred, decoded_pred_occ=decoded, **fields)

    @staticmethod
    def _extend_steps(flow: torch.Tensor, steps: int) -> torch.Tensor:
        """``(B, F, ...)`` per-step maps (flow, gate logits) cut or extended to ``steps``
        (the last step's increment repeated)."""
        have = flow.shape[1]
        if steps <= have:
            return flow[:, :steps]
        last = flow[:, -1:]
        inc = last - flow[:, -2:-1] if have >= 2 else last
        extra = torch.arange(1, steps - have + 1, device=flow.device, dtype=flow.dtype)
        return torch.cat([flow, last + inc * extra.view(1, -1, 1, 1, 1)], dim=1)

    def _pack(self, data_samples, fields: dict, source: str) -> List[OccDataSample]:
        """The head's :meth:`OccForecastHead.pack_predictions` with this model's defaults."""
        return self.head.pack_predictions(
            data_samples, fields, source,
            dict(num_history=self.num_history, num_future=self.num_future,
                 free_label=self.free_label, num_classes=self.num_classes))

    @torch.no_grad()
    def predict(self, inputs: dict,
                data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[OccDataSample]:
        """Roll out ``num_future`` frames from the ``num_history`` history frames.

        In the ``'tokenizer'`` stage the world model is untrained, so ``pred_occ`` is the
        tokenizer's reconstruction of the true future frames (an upper bound of what the
        world model can reach) and ``pred_ego_motion`` the constant-velocity baseline;
        ``metainfo['pred_source']`` says which (``'rollout'`` or ``'reconstruction'``).

        Args:
            inputs (dict): See :meth:`forward`; needs ``T >= num_history + num_future``.
            data_samples (list[BaseDataElement], optional): Their metainfo is copied.

        Returns:
            list[OccDataSample]: One per sample with CPU tensors ``pred_occ``, ``gt_occ``,
            ``baseline_occ`` uint8 ``(F, X, Y, Z)`` and ``pred_ego_motion``,
            ``gt_ego_motion``, ``baseline_ego_motion`` float32 ``(F, D)`` (``D`` = 4 for
            ``'planar4'``, 13 for ``'6dof'``; the baseline repeats the last history step).
            With ``copy_decode`` (world / joint stage) ``pred_occ`` is the copy-through
            decoded forecast and ``decoded_pred_occ`` uint8 ``(F, X, Y, Z)`` the plain VQ
            decoding of the same tokens. With ``agent_motion.velocity_prior`` (world / joint
            stage) also ``warp_track_occ`` uint8 ``(F, X, Y, Z)``: the no-learning forecast
            of the constant-velocity ego warp with every tracked agent moved on at its
            constant velocity (:meth:`CopyThroughDecoder.warp_with_agents`).

        Raises:
            ValueError: If the window is shorter than ``num_history + num_future``.
        """
        occ, poses = self._unpack(inputs)
        b, t = occ.shape[:2]
        hist, fut = self.num_history, self.num_future
        if t < hist + fut:
            raise ValueError(f'AerialWorld.predict: T={t} < num_history + num_future = '
                             f'{hist + fut}')
        codec = self.pose_codec
        motion = codec.step_motion(poses)  # (B, T-1, D)
        frame_motion = codec.frame_motion(poses)
        gt_occ = occ[:, hist:hist + fut]
        gt_motion = motion[:, hist - 1:hist - 1 + fut]
        last_motion = motion[:, hist - 2:hist - 1] if hist >= 2 else codec.no_motion(b, motion)
        baseline_motion = last_motion.expand(b, fut, self.pose_dims)
        baseline_occ = occ[:, hist - 1:hist].expand(b, fut, *occ.shape[2:])
        if self.train_stage == 'tokenizer':
            source = 'reconstruction'
            pred = dict(pred_occ=self._decode_tokens(self._tokenize_sequence(gt_occ)))
            pred_motion = baseline_motion
        else:
            source = 'rollout'
            tokens, pred_motion = self.rollout(occ[:, :hist], frame_motion[:, :hist], fut)
            pred = self._forecast_fields(occ[:, :hist], tokens, pred_motion,
                                         frame_motion[:, :hist], baseline_motion)
        return self._pack(
            data_samples,
            dict(**pred, gt_occ=gt_occ, baseline_occ=baseline_occ,
                 pred_ego_motion=pred_motion, gt_ego_motion=gt_motion,
                 baseline_ego_motion=baseline_motion), source)

    @torch.no_grad()
    def predict_with_plan(self, inputs: dict, planned_poses: torch.Tensor,
                          data_samples: Optional[List[BaseDataElement]] = None
                          ) -> List[OccDataSample]:
        """Action-conditioned rollout: predict the future occupancy along a planned path.

        The ego motion of the future steps is derived from ``planned_poses`` (with the last
        history pose as the reference, in this model's ``pose_mode``) and fed to
        :meth:`rollout` instead of the model's own motion prediction, so the world model
        answers "what will the scene look like if the ego flies this path". Works in both
        pose modes (``'planar4'`` only uses the planned x, y, z and yaw).

        Args:
            inputs (dict): ``occupancy`` uint8 ``(B, T, X, Y, Z)`` and ``poses`` float
                ``(B, T, 13)`` with ``T >= num_history``; the first ``num_history`` frames are
                the history. When ``T >= num_history + F`` the true future is returned as
                ``gt_occ`` / ``gt_ego_motion`` too.
            planned_poses (torch.Tensor): ``(B, F, 13)`` (or ``(F, 13)``, broadcast over the
                batch) absolute 13-D poses of the future frames, in the same world frame as
                ``inputs['poses']`` (metres, unit quaternions, m/s, rad/s). ``F >= 1`` may
                differ from ``num_future`` (the rollout keeps the last
                ``transformer.max_frames`` frames in its window).
            data_samples (list[BaseDataElement], optional): Their metainfo is copied.

        Returns:
            list[OccDataSample]: One per sample with ``pred_occ`` uint8 ``(F, X, Y, Z)``,
            ``pred_ego_motion`` float32 ``(F, D)`` (the planned motion), ``planned_poses``
            float32 ``(F, 13)``, ``decoded_pred_occ`` with ``copy_decode`` (see
            :meth:`predict`) and, when available, ``gt_occ`` / ``gt_ego_motion``;
            ``metainfo['pred_source'] = 'plan'``.

        Raises:
            ValueError: If the stage is ``'tokenizer'`` (no trained world model), the window
                is shorter than ``num_history``, or ``planned_poses`` is malformed (not
                ``(B, F, 13)``, non-finite, or with a zero quaternion).
        """
        if self.train_stage == 'tokenizer':
            raise ValueError("AerialWorld.predict_with_plan needs the world model: "
                             "train_stage is 'tokenizer'")
        occ, poses = self._unpack(inputs)
        b, t = occ.shape[:2]
        hist = self.num_history
        if t < hist:
            raise ValueError(f'AerialWorld.predict_with_plan: T={t} < num_history={hist}')
        plan = self.pose_codec.check_plan(planned_poses, poses, 'AerialWorld.predict_with_plan')
        fut, codec = plan.shape[1], self.pose_codec
        frame_motion = codec.frame_motion(poses[:, :hist])
        planned_motion = codec.step_motion(torch.cat([poses[:, hist - 1:hist], plan], dim=1))
        tokens, _ = self.rollout(occ[:, :hist], frame_motion, fut,
                                 planned_motion=planned_motion)
        fields = dict(**self._forecast_fields(occ[:, :hist], tokens, planned_motion,
                                              frame_motion),
                      pred_ego_motion=planned_motion, planned_poses=plan)
        if t >= hist + fut:
            fields['gt_occ'] = occ[:, hist:hist + fut]
            fields['gt_ego_motion'] = codec.step_motion(poses)[:, hist - 1:hist - 1 + fut]
        return self._pack(data_samples, fields, 'plan')

    @torch.no_grad()
    def predicted_poses(self, motion: torch.Tensor, start_pose: torch.Tensor) -> torch.Tensor:
        """Absolute 13-D poses of a rollout's 6-DoF motion (``pose_mode='6dof'``).

        Args:
            motion (torch.Tensor): ``(B, F, 13)`` per-step 6-DoF motion (e.g.
                ``pred_ego_motion`` stacked over samples).
            start_pose (torch.Tensor): ``(B, 13)`` pose of the last history frame.

        Returns:
            torch.Tensor: ``(B, F, 13)`` poses in the world frame of ``start_pose``.

        Raises:
            ValueError: In ``'planar4'`` mode or on bad shapes.
        """
        return self.pose_codec.compose(motion, start_pose)
