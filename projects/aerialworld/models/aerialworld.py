"""AerialWorld: OccWorld-style occupancy world model (tokenizer + causal world transformer).

Training follows OccWorld (W. Zheng et al., "OccWorld: Learning a 3D Occupancy World Model
for Autonomous Driving", arXiv:2311.16038, 2023) in two stages, selected by ``train_stage``:

* ``'tokenizer'``: the VQ-VAE (:class:`OccVQVAE`) reconstructs every frame; losses are focal
  (Lin et al. 2017) + Dice (Milletari et al. 2016) + mean matching on the decoded occupancy
  and the VQ codebook/commitment loss (van den Oord et al. 2017).
* ``'world'``: the tokenizer is frozen (no gradients, kept in eval mode); the world
  transformer (:class:`OccWorldTransformer`) is trained by teacher-forced next-frame token
  cross-entropy, an ego-motion regression loss and, to tie tokens to geometry, focal + Dice +
  mean matching on the occupancy decoded from the *expected* code vector
  ``softmax(logits) @ codebook`` through the frozen decoder (differentiable w.r.t. the
  transformer).
* ``'joint'``: both sets of losses, tokenizer trainable.

Evaluation (``mode='predict'``) rolls the world model out autoregressively from the
``num_history`` history frames for ``num_future`` steps and returns the fields of
``docs/aerialworld_data_and_model_contract.md``; :meth:`AerialWorld.predict_with_plan` rolls
out along a given (planned) future pose sequence instead of the predicted ego motion. With
``copy_decode`` the rolled-out tokens are turned into voxels by copy-through decoding (see
:meth:`AerialWorld.copy_through_decode`): the static part of the last observed frame is warped
by the predicted ego motion, and tokens the model predicts unchanged keep their observed
voxels, so only new content goes through the lossy VQ decoder.

Pose branch (``pose_mode``): ``'planar4'`` predicts the 4-D per-step motion
``[dx, dy, dz, dyaw]``; ``'6dof'`` the 13-D 6-DoF motion of
:mod:`projects.common.structures.pose6dof` (translation and orientation in the previous
frame's gravity-aligned frame, velocities), composed into absolute 13-D poses with
:func:`~projects.common.structures.pose6dof.compose_ego_motion_6dof`.
"""
import copy
import pickle
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from projects.common.structures.occupancy_warp import Z_REFERENCES, warp_occupancy
from projects.common.structures.pose import accumulate_ego_motion, ego_motion_from_poses
from projects.common.structures.pose6dof import (MOTION_6DOF_DIM, compose_ego_motion_6dof,
                                                 ego_motion_6dof_from_poses,
                                                 frame_motion_6dof, identity_motion_6dof,
                                                 planar_from_motion_6dof)
from projects.common.structures.rotation import quat_geodesic_distance
from projects.registry import MODELS

STAGES = ('tokenizer', 'world', 'joint')
POSE_MODES = {'planar4': 4, '6dof': MOTION_6DOF_DIM}


def _torch_load_checkpoint(path: str) -> dict:
    """Load a checkpoint with ``weights_only=True`` (safety kept on).

    MMEngine checkpoints of this codebase are written by ``CheckpointCompatHook``, which
    stores the message-hub buffers as plain data; the numpy globals they still need are
    allow-listed process-wide by ``register_checkpoint_safe_globals`` (as ``import projects``
    does).

    Args:
        path (str): Checkpoint file.

    Returns:
        dict: The loaded object.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RuntimeError: If the file holds objects that are not weights-only safe (e.g. a
            checkpoint saved without ``CheckpointCompatHook``).
    """
    from projects.common.utils.checkpoint import register_checkpoint_safe_globals
    register_checkpoint_safe_globals()
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'tokenizer_ckpt={path!r} cannot be loaded with weights_only=True (saved without '
            f'CheckpointCompatHook?). Re-save its state_dict only, e.g. torch.save('
            f'{{"state_dict": ckpt["state_dict"]}}, path). Details: {err}') from err


@MODELS.register_module()
class AerialWorld(BaseModel):
    """OccWorld-style occupancy world model with a 13-D / 4-D ego-motion branch.

    Input (``docs/aerialworld_data_and_model_contract.md``): ``inputs = {'occupancy': uint8
    (B, T, X, Y, Z), 'poses': float32 (B, T, 13)}``, ``data_samples`` a list of
    ``BaseDataElement`` (metainfo is copied to the predictions) or None.

    Args:
        tokenizer (dict): :class:`OccVQVAE` config. ``num_classes`` and ``free_label`` are
            filled in from this model when missing.
        transformer (dict): :class:`OccWorldTransformer` config. ``num_codes``,
            ``token_grid`` and ``code_dim`` are filled in from the tokenizer when missing
            (and must agree with it when given).
        num_classes (int, optional): Semantic classes including free. Defaults to the
            tokenizer's ``num_classes``.
        free_label (int): Free class; negative counts from the last class. Defaults to -1.
        num_history (int): History frames given to the rollout. Defaults to 4.
        num_future (int): Frames predicted by the rollout. Defaults to 6.
        train_stage (str): ``'tokenizer'``, ``'world'`` or ``'joint'``. Defaults to
            ``'world'``.
        loss_token (dict): Next-token loss. Defaults to ``TokenCrossEntropyLoss``.
        loss_vq (dict, optional): Codebook loss config handed to the tokenizer's quantizer
            (default there: ``VQCodebookLoss(beta=0.25)``).
        loss_focal (dict, optional): Focal loss on decoded occupancy
            (``OccupancyFocalLoss(alpha=0.99, gamma=2)``); None disables it.
        loss_dice (dict, optional): Dice loss (``OccupancyDiceLoss``); None disables it.
        loss_mean_matching (dict, optional): ``MeanMatchingLoss(loss_weight=10)``; None
            disables it.
        loss_recon_ce (dict, optional): Extra plain cross-entropy on the tokenizer
            reconstruction, e.g. ``dict(type='mmdet.CrossEntropyLoss')``-like modules taking
            ``(logits, labels)``; use ``dict(type='TokenCrossEntropyLoss')``, which accepts
            any ``(N, C, *)`` logits. Defaults to None.
        loss_pose (dict, optional): Ego-motion loss, e.g. ``dict(type='mmdet.SmoothL1Loss')``
            or ``dict(type='mmdet.MSELoss')``; None disables the pose loss. Applied to the
            whole 4-D motion (``'planar4'``) or to the translation ``[dx, dy, dz]`` (metres)
            of the 6-DoF motion (e.g. ``dict(type='TranslationLoss')``).
        pose_mode (str): ``'planar4'`` (default; 4-D motion ``[dx, dy, dz, dyaw]``, the
            transformer needs ``pose_dims=4``) or ``'6dof'`` (13-D 6-DoF motion, see the
            module docstring; ``transformer.pose_dims`` is set to 13 when missing and must
            be 13 when given).
        loss_rot (dict, optional): Rotation loss on the motion quaternions (``'6dof'``
            only), e.g. ``dict(type='GeodesicRotationLoss')`` (radians). Defaults to None.
        loss_vel (dict, optional): Velocity loss on ``[v (m/s), w (rad/s)]`` (``'6dof'``
            only), e.g. ``dict(type='VelocityLoss')``. Defaults to None.
        world_occ_loss_frames (str): Frames whose decoded prediction gets the occupancy
            losses in the world stage: ``'future'`` (targets ``num_history .. T-1``),
            ``'all'`` (targets ``1 .. T-1``) or ``'none'``. Defaults to ``'future'``.
        tokenizer_frames (int, optional): In the tokenizer stage, reconstruct only this many
            randomly chosen frames of each window (saves compute). Defaults to None (all).
        copy_decode (dict, optional): Copy-through decoding of rollouts (None, the default,
            decodes every predicted token with the VQ decoder, as OccWorld does). Keys:
            ``point_cloud_range`` (6 floats, metres; required: the grid's extent in the ego
            frame), ``z_reference`` (``'ground'``, default: z is height above a fixed datum
            and the warp is planar; ``'ego'``: z moves with the ego), ``static_classes``
            (class ids that do not move, default None: all; free counts as static) and
            ``same_position`` (default True). See :meth:`copy_through_decode`.
        tokenizer_ckpt (str, optional): Stage-1 checkpoint to load the tokenizer from (keys
            ``tokenizer.*`` of an AerialWorld checkpoint, optionally under ``state_dict`` and
            with a ``module.`` prefix, or a bare tokenizer state dict).
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
                 num_classes: Optional[int] = None,
                 free_label: int = -1,
                 num_history: int = 4,
                 num_future: int = 6,
                 train_stage: str = 'world',
                 loss_token: dict = dict(type='TokenCrossEntropyLoss', loss_weight=1.0),
                 loss_vq: Optional[dict] = None,
                 loss_focal: Optional[dict] = dict(
                     type='OccupancyFocalLoss', alpha=0.99, gamma=2.0, loss_weight=1.0),
                 loss_dice: Optional[dict] = dict(type='OccupancyDiceLoss', loss_weight=1.0),
                 loss_mean_matching: Optional[dict] = dict(
                     type='MeanMatchingLoss', loss_weight=10.0),
                 loss_recon_ce: Optional[dict] = None,
                 loss_pose: Optional[dict] = dict(type='mmdet.SmoothL1Loss', loss_weight=1.0),
                 pose_mode: str = 'planar4',
                 loss_rot: Optional[dict] = None,
                 loss_vel: Optional[dict] = None,
                 world_occ_loss_frames: str = 'future',
                 tokenizer_frames: Optional[int] = None,
                 copy_decode: Optional[dict] = None,
                 tokenizer_ckpt: Optional[str] = None,
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
        if pose_mode not in POSE_MODES:
            raise ValueError(f'pose_mode must be one of {tuple(POSE_MODES)}, got {pose_mode!r}')
        if pose_mode != '6dof' and (loss_rot is not None or loss_vel is not None):
            raise ValueError("loss_rot / loss_vel are only used with pose_mode='6dof' (got "
                             f'pose_mode={pose_mode!r})')
        if tokenizer_frames is not None and tokenizer_frames < 1:
            raise ValueError(f'tokenizer_frames must be >= 1 or None, got {tokenizer_frames}')

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
        if loss_vq is not None:
            tok_cfg['loss_vq'] = loss_vq
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

        self.pose_mode = pose_mode
        self.pose_dims = pose_dims
        self.num_classes = int(num_classes)
        self.free_label = free
        self.num_history = int(num_history)
        self.num_future = int(num_future)
        self.world_occ_loss_frames = world_occ_loss_frames
        self.tokenizer_frames = tokenizer_frames

        def _build(cfg, occupancy=False):
            if cfg is None:
                return None
            cfg = copy.deepcopy(dict(cfg))
            if occupancy:
                cfg.setdefault('free_label', free)
            return MODELS.build(cfg)

        self.loss_token = _build(loss_token)
        self.loss_focal = _build(loss_focal, True)
        self.loss_dice = _build(loss_dice, True)
        self.loss_mean_matching = _build(loss_mean_matching, True)
        self.loss_recon_ce = _build(loss_recon_ce)
        self.loss_pose = _build(loss_pose)
        self.loss_rot = _build(loss_rot)
        self.loss_vel = _build(loss_vel)

        self.copy_decode = self._check_copy_decode(copy_decode)
        if self.copy_decode is not None and self.copy_decode['static_classes'] is not None:
            dynamic = torch.ones(256, dtype=torch.bool)
            dynamic[list(self.copy_decode['static_classes']) + [free]] = False
            self.register_buffer('_dynamic_lut', dynamic, persistent=False)
        else:
            self._dynamic_lut = None

        self.tokenizer_ckpt = tokenizer_ckpt
        if tokenizer_ckpt:
            self.load_tokenizer_checkpoint(tokenizer_ckpt)
        self.train_stage = train_stage
        self.set_stage(train_stage)

    def _check_copy_decode(self, cfg: Optional[dict]) -> Optional[dict]:
        """Validate the ``copy_decode`` config and fill in its defaults.

        Args:
            cfg (dict, optional): See the class docstring.

        Returns:
            dict | None: Normalised config.

        Raises:
            ValueError: On unknown keys, a missing or malformed ``point_cloud_range``, an
                unknown ``z_reference`` or class ids outside ``[0, num_classes)``.
        """
        if cfg is None:
            return None
        cfg = dict(cfg)
        known = {'point_cloud_range', 'z_reference', 'static_classes', 'same_position'}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f'copy_decode: unknown keys {sorted(unknown)} (known: '
                             f'{sorted(known)})')
        rng = cfg.get('point_cloud_range')
        if rng is None or len(rng) != 6 or not all(rng[i + 3] > rng[i] for i in range(3)):
            raise ValueError('copy_decode.point_cloud_range must be [x_min, y_min, z_min, '
                             f'x_max, y_max, z_max] (m) with max > min, got {rng}')
        cfg['point_cloud_range'] = [float(v) for v in rng]
        cfg.setdefault('z_reference', 'ground')
        if cfg['z_reference'] not in Z_REFERENCES:
            raise ValueError(f'copy_decode.z_reference must be one of {Z_REFERENCES}, got '
                             f'{cfg["z_reference"]!r}')
        static = cfg.setdefault('static_classes', None)
        if static is not None:
            static = [int(c) for c in static]
            bad = [c for c in static if not 0 <= c < self.num_classes]
            if bad:
                raise ValueError(f'copy_decode.static_classes has ids {bad} outside [0, '
                                 f'{self.num_classes})')
            cfg['static_classes'] = static
        cfg['same_position'] = bool(cfg.setdefault('same_position', True))
        return cfg

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

    def load_tokenizer_checkpoint(self, path: str) -> None:
        """Load tokenizer weights from a stage-1 (or tokenizer-only) checkpoint.

        Accepts a file holding ``{'state_dict': ...}`` or a bare state dict; strips
        ``module.`` (DDP) and then keeps the ``tokenizer.`` keys (if any; otherwise the
        whole dict is taken as the tokenizer's state dict). Loading is strict.

        Args:
            path (str): Checkpoint path.

        Raises:
            FileNotFoundError: If the file does not exist.
            RuntimeError: On missing / unexpected keys or shape mismatches.
        """
        ckpt = _torch_load_checkpoint(path)
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        state = {(k[len('module.'):] if k.startswith('module.') else k): v
                 for k, v in state.items()}
        if any(k.startswith('tokenizer.') for k in state):
            state = {k[len('tokenizer.'):]: v for k, v in state.items()
                     if k.startswith('tokenizer.')}
        try:
            self.tokenizer.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise RuntimeError(f'tokenizer_ckpt={path!r} does not match the tokenizer '
                               f'config: {err}') from err
        print_log(f'Loaded tokenizer weights from {path}', logger='current')

    def init_weights(self) -> None:
        """Initialise weights, then (re)load ``tokenizer_ckpt`` so it is not overwritten."""
        super().init_weights()
        if self.tokenizer_ckpt:
            self.load_tokenizer_checkpoint(self.tokenizer_ckpt)

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

    def _step_motion(self, poses: torch.Tensor) -> torch.Tensor:
        """Per-step ego motion ``(B, T - 1, D)`` of poses ``(B, T, 13)`` (``D`` = pose_dims)."""
        if self.pose_mode == '6dof':
            return ego_motion_6dof_from_poses(poses)
        return ego_motion_from_poses(poses)

    def _no_motion(self, b: int, like: torch.Tensor) -> torch.Tensor:
        """``(B, 1, D)`` "no motion": zeros (4-D) or the identity 6-DoF motion."""
        if self.pose_mode == '6dof':
            return identity_motion_6dof(b, 1, like=like)
        return like.new_zeros(b, 1, 4)

    def _frame_motion(self, poses: torch.Tensor) -> torch.Tensor:
        """Per-frame ego motion ``(B, T, D)`` of poses ``(B, T, 13)``.

        Frame 0 gets zeros in ``'planar4'`` mode and its motion relative to its own
        gravity-aligned frame (its roll / pitch and velocities) in ``'6dof'`` mode.
        """
        if self.pose_mode == '6dof':
            return frame_motion_6dof(poses)
        motion = ego_motion_from_poses(poses)
        return torch.cat([motion.new_zeros(motion.shape[0], 1, 4), motion], dim=1)

    def _pose_losses(self, pred: torch.Tensor, gt: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Pose losses and logging scalars of predicted vs true motion ``(B, N, D)``."""
        losses = {}
        if self.pose_mode == '6dof':
            if self.loss_pose is not None:
                losses['loss_pose'] = self.loss_pose(pred[..., :3], gt[..., :3])
            if self.loss_rot is not None:
                losses['loss_rot'] = self.loss_rot(pred[..., 3:7], gt[..., 3:7])
            if self.loss_vel is not None:
                losses['loss_vel'] = self.loss_vel(pred[..., 7:13], gt[..., 7:13])
            with torch.no_grad():
                losses['rot_err_deg'] = torch.rad2deg(
                    quat_geodesic_distance(pred[..., 3:7], gt[..., 3:7])).mean()
        elif self.loss_pose is not None:
            losses['loss_pose'] = self.loss_pose(pred, gt)
        with torch.no_grad():
            losses['pose_l2'] = (pred[..., :3] - gt[..., :3]).norm(dim=-1).mean()
        return losses

    def _occupancy_losses(self, logits: torch.Tensor, target: torch.Tensor,
                          prefix: str) -> Dict[str, torch.Tensor]:
        """Focal / Dice / mean-matching losses of logits ``(N, C, X, Y, Z)`` vs labels."""
        losses = {}
        if self.loss_focal is not None:
            losses[f'loss_{prefix}_focal'] = self.loss_focal(logits, target)
        if self.loss_dice is not None:
            losses[f'loss_{prefix}_dice'] = self.loss_dice(logits, target)
        if self.loss_mean_matching is not None:
            losses[f'loss_{prefix}_mm'] = self.loss_mean_matching(logits, target)
        with torch.no_grad():
            pred = logits.argmax(1)
            gt = target.long()
            pred_occ, gt_occ = pred != self.free_label, gt != self.free_label
            union = (pred_occ | gt_occ).sum().clamp(min=1)
            losses[f'{prefix}_iou'] = (pred_occ & gt_occ).sum().float() / union
            losses[f'{prefix}_acc'] = (pred == gt).float().mean()
        return losses

    def _tokenizer_losses(self, occ: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Reconstruction + VQ losses over (a subset of) the frames of ``occ``."""
        b, t = occ.shape[:2]
        if self.tokenizer_frames is not None and self.tokenizer_frames < t:
            sel = torch.randperm(t, device=occ.device)[:self.tokenizer_frames]
            occ = occ[:, sel]
        flat = occ.flatten(0, 1)
        out = self.tokenizer.forward_train(flat)
        losses = self._occupancy_losses(out['logits'], flat, 'recon')
        if self.loss_recon_ce is not None:
            losses['loss_recon_ce'] = self.loss_recon_ce(out['logits'], flat.long())
        losses['loss_vq'] = out['vq_loss']
        with torch.no_grad():
            used = torch.unique(out['indices']).numel()
            losses['code_usage'] = torch.tensor(used / self.tokenizer.num_codes,
                                                device=occ.device)
        return losses

    def _tokenize_sequence(self, occ: torch.Tensor) -> torch.Tensor:
        """Token indices ``(B, T, h, w)`` of occupancy ``(B, T, X, Y, Z)`` (no gradient)."""
        b, t = occ.shape[:2]
        tokens = self.tokenizer.tokenize(occ.flatten(0, 1))
        return tokens.reshape(b, t, *tokens.shape[1:])

    def _world_losses(self, occ: torch.Tensor, poses: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Teacher-forced next-token, decoded-occupancy and pose losses."""
        b, t = occ.shape[:2]
        if t < 2:
            raise ValueError(f'AerialWorld: the world stage needs T >= 2 frames, got T={t}')
        tokens = self._tokenize_sequence(occ)
        codebook = self.tokenizer.codebook.detach()
        motion_gt = self._step_motion(poses)  # (B, T-1, D)
        frame_motion = self._frame_motion(poses)
        next_motion = torch.cat([motion_gt, self._no_motion(b, motion_gt)], dim=1)
        logits, motion_pred = self.transformer(tokens, frame_motion, codebook,
                                               next_motion=next_motion)
        k, h, w = logits.shape[2:]
        pred_logits = logits[:, :-1]
        target = tokens[:, 1:]
        losses = dict(loss_token=self.loss_token(
            pred_logits.reshape(b * (t - 1), k, h, w), target.reshape(b * (t - 1), h, w)))
        with torch.no_grad():
            losses['acc_token'] = (pred_logits.argmax(2) == target).float().mean()
            losses['acc_token_copy_last'] = (tokens[:, :-1] == target).float().mean()
        # With a constant-velocity pose prior the first frame has no motion to continue
        # (its input motion is zero / identity): supervising it would teach the correction
        # head to produce whole motions from scene features, so it is left out.
        first = 1 if self.transformer.pose_residual and t > 2 else 0
        losses.update(self._pose_losses(motion_pred[:, first:-1], motion_gt[:, first:]))
        if self.world_occ_loss_frames != 'none':
            start = max(self.num_history - 1, 0) if self.world_occ_loss_frames == 'future' \
                else 0
            if start < t - 1:
                probs = F.softmax(pred_logits[:, start:], dim=2)  # (B, F, K, h, w)
                soft = torch.einsum('bfkhw,kd->bfdhw', probs, codebook)
                occ_logits = self.tokenizer.decode(soft.flatten(0, 1))
                gt = occ[:, start + 1:].flatten(0, 1)
                losses.update(self._occupancy_losses(occ_logits, gt, 'pred'))
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
            scalars; ``'predict'``: list of ``BaseDataElement`` (see :meth:`predict`);
            ``'tensor'``: ``(token_logits (B, T, K, h, w), ego_motion (B, T, D))`` (``D`` = 4
            or 13 by ``pose_mode``) for the
            world / joint stages, ``dict(logits=(B, T, C, X, Y, Z), indices=(B, T, h, w))``
            for the tokenizer stage.

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
            return self.transformer(tokens, self._frame_motion(poses),
                                    self.tokenizer.codebook.detach())
        raise ValueError(f"AerialWorld: mode must be 'loss', 'predict' or 'tensor', got "
                         f'{mode!r}')

    def loss(self, inputs: dict,
             data_samples: Optional[List[BaseDataElement]] = None) -> Dict[str, torch.Tensor]:
        """Training losses of the current stage.

        Args:
            inputs (dict): See :meth:`forward`.
            data_samples (list[BaseDataElement], optional): Unused.

        Returns:
            dict[str, torch.Tensor]: Tokenizer stage: ``loss_recon_focal``,
            ``loss_recon_dice``, ``loss_recon_mm``, ``loss_vq`` (+ ``loss_recon_ce``) and
            ``recon_iou``, ``recon_acc``, ``code_usage``. World stage: ``loss_token``,
            ``loss_pose``, ``loss_pred_focal``, ``loss_pred_dice``, ``loss_pred_mm`` and
            ``acc_token``, ``acc_token_copy_last``, ``pose_l2``, ``pred_iou``, ``pred_acc``
            (``'6dof'``: also ``loss_rot``, ``loss_vel`` when configured and
            ``rot_err_deg``). Joint: both.
        """
        occ, poses = self._unpack(inputs)
        losses = {}
        if self.train_stage in ('tokenizer', 'joint'):
            losses.update(self._tokenizer_losses(occ))
        if self.train_stage in ('world', 'joint'):
            losses.update(self._world_losses(occ, poses))
        return losses

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
                (see :meth:`_frame_motion`; ``D`` = 4 or 13 by ``pose_mode``).
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
        tokens = self._tokenize_sequence(occ_history)
        motion = motion_history.float()
        codebook = self.tokenizer.codebook
        max_t = self.transformer.max_frames
        pred_tokens, pred_motion = [], []
        for f in range(num_future):
            next_motion = None
            if planned_motion is not None:
                # the motion that follows each frame of the window; the last is the plan's
                next_motion = torch.cat([motion[:, 1:], planned_motion[:, f:f + 1].float()],
                                        dim=1)[:, -max_t:]
            logits, mot = self.transformer(tokens[:, -max_t:], motion[:, -max_t:], codebook,
                                           next_motion=next_motion)
            nxt = logits[:, -1].argmax(1)
            nxt_motion = mot[:, -1] if planned_motion is None else planned_motion[:, f].float()
            pred_tokens.append(nxt)
            pred_motion.append(nxt_motion)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            motion = torch.cat([motion, nxt_motion[:, None]], dim=1)
        return torch.stack(pred_tokens, 1), torch.stack(pred_motion, 1)

    @torch.no_grad()
    def _decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Decode ``(B, F, h, w)`` tokens frame by frame to uint8 labels ``(B, F, X, Y, Z)``."""
        frames = [self.tokenizer.decode_indices(tokens[:, f]).argmax(1).to(torch.uint8)
                  for f in range(tokens.shape[1])]
        return torch.stack(frames, dim=1)

    @torch.no_grad()
    def copy_through_decode(self, occ_last: torch.Tensor, tokens_last: torch.Tensor,
                            tokens: torch.Tensor, decoded: torch.Tensor,
                            motion: torch.Tensor) -> torch.Tensor:
        """Turn rolled-out tokens into voxels, copying what the model predicts unchanged.

        A VQ decoder reconstructs even an unchanged scene only approximately (the codebook
        is lossy), so decoding every forecast token throws away detail the model already
        observed. Per future step ``f`` (all relative to the last history frame):

        1. *Static warp* (ego-pose warping of static voxels, as in DFIT-OccWorld, Zhang et
           al., arXiv:2412.13772, 2024): every voxel whose centre, moved by the model's
           accumulated ego motion, falls inside the last observed grid takes that voxel's
           label (:func:`~projects.common.structures.occupancy_warp.warp_occupancy`), unless
           the source label or the decoded label is a dynamic class (not in
           ``copy_decode.static_classes``).
        2. *Same-position copy* (``same_position=True``): outside the warped part (space
           the ego had not seen from there), a token the model predicts with the same code
           as the last frame's token at the same ego-relative position keeps the last
           frame's voxels of that token (a copy mechanism in voxel space, cf. CopyNet, Gu
           et al. 2016).
        3. Everything else comes from the VQ decoder (``decoded``).

        Args:
            occ_last (torch.Tensor): ``(B, X, Y, Z)`` uint8 labels of the last history frame.
            tokens_last (torch.Tensor): ``(B, h, w)`` long codes of that frame.
            tokens (torch.Tensor): ``(B, F, h, w)`` long predicted codes.
            decoded (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoder output of ``tokens``.
            motion (torch.Tensor): ``(B, F, D)`` predicted (or planned) per-step ego motion
                (``D`` = 4 ``[dx, dy, dz, dyaw]`` or 13 for ``pose_mode='6dof'``; metres,
                radians).

        Returns:
            torch.Tensor: ``(B, F, X, Y, Z)`` uint8 labels.

        Raises:
            RuntimeError: If the model was built without ``copy_decode``.
        """
        cfg = self.copy_decode
        if cfg is None:
            raise RuntimeError('AerialWorld.copy_through_decode needs copy_decode in the '
                               'model config')
        planar = motion.float() if self.pose_dims == 4 else \
            planar_from_motion_6dof(motion.float())
        rel = accumulate_ego_motion(planar)  # (B, F, 4) [x, y, z, yaw] in the last frame
        x, y = occ_last.shape[1:3]
        stride = self.tokenizer.stride
        frames = []
        for f in range(tokens.shape[1]):
            out = decoded[:, f]
            if cfg['same_position']:
                same = (tokens[:, f] == tokens_last).repeat_interleave(stride, 1)
                same = same.repeat_interleave(stride, 2)[:, :x, :y, None]
                out = torch.where(same, occ_last, out)
            warped, use_warp = warp_occupancy(occ_last, rel[:, f], cfg['point_cloud_range'],
                                              self.free_label, cfg['z_reference'])
            if self._dynamic_lut is not None:
                use_warp = use_warp & ~self._dynamic_lut[warped.long()] & \
                    ~self._dynamic_lut[decoded[:, f].long()]
            frames.append(torch.where(use_warp, warped, out))
        return torch.stack(frames, dim=1)

    def _forecast_fields(self, occ_history: torch.Tensor, tokens: torch.Tensor,
                         motion: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``pred_occ`` of a rollout (and ``decoded_pred_occ`` with ``copy_decode``).

        Args:
            occ_history (torch.Tensor): ``(B, H, X, Y, Z)`` uint8 history.
            tokens (torch.Tensor): ``(B, F, h, w)`` predicted codes.
            motion (torch.Tensor): ``(B, F, D)`` predicted / planned ego motion.

        Returns:
            dict[str, torch.Tensor]: ``pred_occ`` ``(B, F, X, Y, Z)`` uint8 and, with
            ``copy_decode``, ``decoded_pred_occ`` (the plain VQ-decoded forecast).
        """
        decoded = self._decode_tokens(tokens)
        if self.copy_decode is None:
            return dict(pred_occ=decoded)
        last = occ_history[:, -1]
        tokens_last = self._tokenize_sequence(last[:, None])[:, 0]
        pred = self.copy_through_decode(last.to(torch.uint8), tokens_last, tokens, decoded,
                                        motion)
        return dict(pred_occ=pred, decoded_pred_occ=decoded)

    def _pack_results(self, data_samples, fields: Dict[str, torch.Tensor], source: str,
                      extra_meta: Optional[dict] = None) -> List[BaseDataElement]:
        """One ``BaseDataElement`` per sample with CPU copies of ``fields`` (batch first)."""
        b = next(iter(fields.values())).shape[0]
        results = []
        for i in range(b):
            if data_samples is not None and i < len(data_samples):
                meta = dict(data_samples[i].metainfo)
            else:
                meta = dict(num_history=self.num_history, num_future=self.num_future,
                            free_label=self.free_label, num_classes=self.num_classes)
            meta['pred_source'] = source
            meta['pose_mode'] = self.pose_mode
            meta.update(extra_meta or {})
            sample = BaseDataElement(metainfo=meta)
            for key, value in fields.items():
                value = value[i]
                value = value.to(torch.uint8) if key.endswith('_occ') else value.float()
                setattr(sample, key, value.contiguous().cpu())
            results.append(sample)
        return results

    @torch.no_grad()
    def predict(self, inputs: dict,
                data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        """Roll out ``num_future`` frames from the ``num_history`` history frames.

        In the ``'tokenizer'`` stage the world model is untrained, so ``pred_occ`` is the
        tokenizer's reconstruction of the true future frames (an upper bound of what the
        world model can reach) and ``pred_ego_motion`` the constant-velocity baseline;
        ``metainfo['pred_source']`` says which (``'rollout'`` or ``'reconstruction'``).

        Args:
            inputs (dict): See :meth:`forward`; needs ``T >= num_history + num_future``.
            data_samples (list[BaseDataElement], optional): Their metainfo is copied.

        Returns:
            list[BaseDataElement]: One per sample with CPU tensors ``pred_occ``, ``gt_occ``,
            ``baseline_occ`` uint8 ``(F, X, Y, Z)`` and ``pred_ego_motion``,
            ``gt_ego_motion``, ``baseline_ego_motion`` float32 ``(F, D)`` (``D`` = 4 for
            ``'planar4'``, 13 for ``'6dof'``; the baseline repeats the last history step).
            With ``copy_decode`` (world / joint stage) ``pred_occ`` is the copy-through
            decoded forecast and ``decoded_pred_occ`` uint8 ``(F, X, Y, Z)`` the plain VQ
            decoding of the same tokens.

        Raises:
            ValueError: If the window is shorter than ``num_history + num_future``.
        """
        occ, poses = self._unpack(inputs)
        b, t = occ.shape[:2]
        hist, fut = self.num_history, self.num_future
        if t < hist + fut:
            raise ValueError(f'AerialWorld.predict: T={t} < num_history + num_future = '
                             f'{hist + fut}')
        motion = self._step_motion(poses)  # (B, T-1, D)
        frame_motion = self._frame_motion(poses)
        gt_occ = occ[:, hist:hist + fut]
        gt_motion = motion[:, hist - 1:hist - 1 + fut]
        last_motion = motion[:, hist - 2:hist - 1] if hist >= 2 else self._no_motion(b, motion)
        baseline_motion = last_motion.expand(b, fut, self.pose_dims)
        baseline_occ = occ[:, hist - 1:hist].expand(b, fut, *occ.shape[2:])
        if self.train_stage == 'tokenizer':
            source = 'reconstruction'
            pred = dict(pred_occ=self._decode_tokens(self._tokenize_sequence(gt_occ)))
            pred_motion = baseline_motion
        else:
            source = 'rollout'
            tokens, pred_motion = self.rollout(occ[:, :hist], frame_motion[:, :hist], fut)
            pred = self._forecast_fields(occ[:, :hist], tokens, pred_motion)
        return self._pack_results(
            data_samples,
            dict(**pred, gt_occ=gt_occ, baseline_occ=baseline_occ,
                 pred_ego_motion=pred_motion, gt_ego_motion=gt_motion,
                 baseline_ego_motion=baseline_motion), source)

    @torch.no_grad()
    def predict_with_plan(self, inputs: dict, planned_poses: torch.Tensor,
                          data_samples: Optional[List[BaseDataElement]] = None
                          ) -> List[BaseDataElement]:
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
            list[BaseDataElement]: One per sample with ``pred_occ`` uint8 ``(F, X, Y, Z)``,
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
        plan = torch.as_tensor(planned_poses, dtype=poses.dtype, device=poses.device)
        if plan.dim() == 2:
            plan = plan[None].expand(b, *plan.shape)
        if plan.dim() != 3 or plan.shape[0] != b or plan.shape[1] < 1 or plan.shape[2] != 13:
            raise ValueError(f'AerialWorld.predict_with_plan: planned_poses must be ({b}, F, 13) '
                             f'with F >= 1, got {tuple(plan.shape)}')
        if not torch.isfinite(plan).all():
            raise ValueError('AerialWorld.predict_with_plan: planned_poses has non-finite values')
        if (plan[..., 3:7].norm(dim=-1) < 1e-6).any():
            raise ValueError('AerialWorld.predict_with_plan: planned_poses has a zero '
                             'quaternion (columns 3:7 must be [qw, qx, qy, qz])')
        fut = plan.shape[1]
        frame_motion = self._frame_motion(poses[:, :hist])
        planned_motion = self._step_motion(torch.cat([poses[:, hist - 1:hist], plan], dim=1))
        tokens, _ = self.rollout(occ[:, :hist], frame_motion, fut,
                                 planned_motion=planned_motion)
        fields = dict(**self._forecast_fields(occ[:, :hist], tokens, planned_motion),
                      pred_ego_motion=planned_motion, planned_poses=plan)
        if t >= hist + fut:
            fields['gt_occ'] = occ[:, hist:hist + fut]
            fields['gt_ego_motion'] = self._step_motion(poses)[:, hist - 1:hist - 1 + fut]
        return self._pack_results(data_samples, fields, 'plan')

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
        if self.pose_mode != '6dof':
            raise ValueError("AerialWorld.predicted_poses needs pose_mode='6dof'")
        return compose_ego_motion_6dof(motion.float(), start_pose.float())
