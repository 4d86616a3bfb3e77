"""The video world model: per-frame encoder, action-conditioned latent dynamics, decoder."""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel

from projects.registry import MODELS
from projects.video_world.structures import VideoDataSample

__all__ = ['VideoWorldModel']


@MODELS.register_module()
class VideoWorldModel(BaseModel):
    """Action-conditioned video world model (wiring only).

    ``z_t = E(x_t)`` (:class:`VideoFrameEncoder`); ``ẑ_{t+1} = F(z_t', a_t, s_t)``
    (:class:`FiLMRecurrentDynamics`), with ``z_t'`` the encoded observed frame while the
    rollout observes and the previous prediction in open loop; frames come from the head
    (:class:`VideoPredictionHead`: PixelShuffle decoder, compositing, losses).

    Rollouts over a clip of ``T`` frames with ``T - 1`` actions:

    * ``'teacher_forced'``: every step starts from the encoded true frame (one-step
      predictions of frames ``1 .. T-1``).
    * ``'open_loop'``: the first ``num_context`` frames are observed; frames
      ``num_context .. T-1`` are predicted autoregressively from the model's own latents
      (horizons ``1 .. T - num_context``). This is the evaluation protocol.

    Args:
        encoder (dict): Encoder config.
        dynamics (dict): Dynamics config.
        head (dict): Head config (decoder + losses).
        num_context (int): Observed frames in open loop (>= 1). Defaults to 2.
        train_rollout (str): Rollout used by ``loss``: ``'open_loop'`` or
            ``'teacher_forced'``. Defaults to ``'open_loop'`` (what is evaluated).
        gradient_checkpointing (bool): Recompute activations in backward (encoder blocks,
            recurrent steps, decoder stages) to save memory. Defaults to False.
        recon_frames (str): Frames reconstructed (and encoded with gradients) in
            ``loss``: ``'all'`` or ``'context'`` (the observed frames of the open-loop
            rollout; the other frames are encoded without gradients, only as the detached
            targets of the latent-consistency loss, which saves most of the encoder's and
            decoder's backward pass). Defaults to ``'all'``.
        data_preprocessor (dict, optional): :class:`VideoDataPreprocessor` config.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: ``num_context < 1``, unknown ``train_rollout``, or a latent size that
            differs between encoder, dynamics and decoder.
    """

    ROLLOUTS = ('open_loop', 'teacher_forced')

    def __init__(self,
                 encoder: dict,
                 dynamics: dict,
                 head: dict,
                 num_context: int = 2,
                 train_rollout: str = 'open_loop',
                 gradient_checkpointing: bool = False,
                 recon_frames: str = 'all',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='VideoDataPreprocessor')
        if isinstance(data_preprocessor, dict):  # built from our registry (scope-independent)
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if num_context < 1:
            raise ValueError(f'VideoWorldModel: num_context={num_context} must be >= 1')
        if train_rollout not in self.ROLLOUTS:
            raise ValueError(f'VideoWorldModel: train_rollout={train_rollout!r}, expected one '
                             f'of {self.ROLLOUTS}')
        if recon_frames not in ('all', 'context'):
            raise ValueError(f"VideoWorldModel: recon_frames={recon_frames!r}, expected 'all' "
                             "or 'context'")
        self.recon_frames = recon_frames
        self.encoder = MODELS.build(encoder)
        self.dynamics = MODELS.build(dynamics)
        self.head = MODELS.build(head)
        dims = dict(encoder=self.encoder.latent_dim, dynamics=self.dynamics.latent_dim,
                    decoder=self.head.decoder.stem[0].conv.in_channels)
        if len(set(dims.values())) != 1:
            raise ValueError(f'VideoWorldModel: latent_dim differs between parts: {dims}')
        self.num_context = int(num_context)
        self.train_rollout = train_rollout
        self.enable_gradient_checkpointing(gradient_checkpointing)

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Switch gradient checkpointing of every part that supports it (``with_cp``)."""
        for module in self.modules():
            if hasattr(module, 'with_cp'):
                module.with_cp = bool(enabled)
        self.gradient_checkpointing = bool(enabled)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode ``(B, T, 3, H, W)`` frames to latents ``(B, T, C, h, w)``."""
        b, t = frames.shape[:2]
        return self.encoder(frames.flatten(0, 1)).unflatten(0, (b, t))

    def roll(self, latents: torch.Tensor, frames: torch.Tensor, actions: torch.Tensor,
             mode: str) -> Dict[str, torch.Tensor]:
        """Run the dynamics over a clip and decode the predictions.

        Args:
            latents (Tensor): ``(B, T, C, h, w)`` encoder latents of ``frames``.
            frames (Tensor): ``(B, T, 3, H, W)`` in [-1, 1].
            actions (Tensor): ``(B, T - 1, A)``.
            mode (str): ``'open_loop'`` or ``'teacher_forced'``.

        Returns:
            dict: ``pred_latents`` ``(B, T-1, C, h, w)``, ``pred_frames``
            ``(B, T-1, 3, H, W)`` (predictions of frames ``1 .. T-1``), ``horizons``
            ``(T-1,)`` long (rollout step of each prediction).

        Raises:
            ValueError: Unknown mode, ``actions`` not of length ``T - 1``, or an open-loop
                clip with no frame left to predict (``T <= num_context``).
        """
        if mode not in self.ROLLOUTS:
            raise ValueError(f'VideoWorldModel: rollout mode {mode!r}, expected one of '
                             f'{self.ROLLOUTS}')
        t_len = frames.shape[1]
        if actions.shape[1] != t_len - 1:
            raise ValueError(f'VideoWorldModel: {t_len} frames need {t_len - 1} actions, got '
                             f'{actions.shape[1]}')
        if mode == 'open_loop' and t_len <= self.num_context:
            raise ValueError(f'VideoWorldModel: open-loop rollout of {t_len} frames with '
                             f'num_context={self.num_context} predicts nothing')
        state, z_in = None, None
        preds, observed, horizons = [], [], []
        h = 0
        for t in range(t_len - 1):
            obs = mode == 'teacher_forced' or t < self.num_context
            if obs:
                z_in, h = latents[:, t], 0
            h += 1
            z_in, state = self.dynamics(z_in, actions[:, t], state)
            preds.append(z_in)
            observed.append(obs)
            horizons.append(h)
        pred_latents = torch.stack(preds, dim=1)
        rgb, mask = self.head.decode(pred_latents)
        pred_frames = self.head.compose(rgb, mask, frames, observed)
        return dict(pred_latents=pred_latents, pred_frames=pred_frames,
                    horizons=torch.tensor(horizons, device=frames.device))

    def rollout(self, frames: torch.Tensor, actions: torch.Tensor,
                mode: str = 'open_loop', recon_frames: str = 'all') -> Dict[str, torch.Tensor]:
        """Encode, reconstruct and roll out a batch of clips.

        Args:
            frames (Tensor): ``(B, T, 3, H, W)`` float in [-1, 1].
            actions (Tensor): ``(B, T - 1, A)``; action ``t`` moves frame ``t`` to ``t+1``.
            mode (str): ``'open_loop'`` or ``'teacher_forced'``.
            recon_frames (str): ``'all'`` or ``'context'`` (see the class docstring; only
                used with gradients enabled and an open-loop rollout).

        Returns:
            dict: ``frames`` (input), ``latents`` ``(B, T, C, h, w)``, ``recon``
            ``(B, R, 3, H, W)`` reconstructions of ``recon_target`` (the first ``R``
            frames), and the keys of :meth:`roll`. All frames in [-1, 1].
        """
        c = self.num_context
        if recon_frames == 'context' and mode == 'open_loop' and torch.is_grad_enabled():
            ctx = self.encode(frames[:, :c])
            with torch.no_grad():
                future = self.encode(frames[:, c:])
            latents = torch.cat([ctx, future], dim=1)
            recon, _ = self.head.decode(ctx)
            target = frames[:, :c]
        else:
            latents = self.encode(frames)
            recon, _ = self.head.decode(latents)
            target = frames
        out = dict(frames=frames, latents=latents, recon=recon, recon_target=target)
        out.update(self.roll(latents, frames, actions, mode))
        return out

    def forward(self, inputs: dict, data_samples: Optional[List[VideoDataSample]] = None,
                mode: str = 'tensor') -> Union[dict, list, torch.Tensor]:
        """MMEngine entry point.

        Args:
            inputs (dict): ``frames`` ``(B, T, 3, H, W)`` in [-1, 1], ``actions``
                ``(B, T - 1, A)`` and optionally ``shuffled_actions`` (same shape, the
                actions of other clips, used by ``predict``).
            data_samples (list[VideoDataSample], optional): One per clip.
            mode (str): ``'loss'`` (dict of losses), ``'predict'`` (data samples with
                ``gt_frames``, ``recon_frames``, ``pred_frames`` and, with shuffled actions,
                ``pred_frames_shuffled``) or ``'tensor'`` (open-loop predictions of frames
                ``1 .. T-1``, ``(B, T - 1, 3, H, W)``).

        Returns:
            dict | list | Tensor: See ``mode``.

        Raises:
            ValueError: Unknown ``mode``.
        """
        frames, actions = inputs['frames'], inputs['actions']
        if mode == 'loss':
            rollout = self.rollout(frames, actions, self.train_rollout, self.recon_frames)
            return self.head.loss(rollout)
        if mode == 'tensor':
            return self.rollout(frames, actions, 'open_loop')['pred_frames']
        if mode != 'predict':
            raise ValueError(f'VideoWorldModel: unknown mode {mode!r}')
        out = self.rollout(frames, actions, 'open_loop')
        shuffled = None
        if inputs.get('shuffled_actions') is not None:
            shuffled = self.roll(out['latents'], frames, inputs['shuffled_actions'],
                                 'open_loop')['pred_frames']
        if data_samples is None:
            data_samples = [VideoDataSample() for _ in range(frames.shape[0])]
        c = self.num_context
        for i, sample in enumerate(data_samples):
            sample.set_metainfo(dict(num_context=c))
            sample.gt_frames = frames[i].detach()
            sample.gt_actions = actions[i].detach()
            sample.recon_frames = out['recon'][i].detach()
            sample.pred_frames = out['pred_frames'][i, c - 1:].detach()
            if shuffled is not None:
                sample.pred_frames_shuffled = shuffled[i, c - 1:].detach()
        return data_samples
