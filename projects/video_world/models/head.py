"""Frame prediction head: decodes latents, composites predictions, owns the losses."""
from typing import List, Optional

import torch
from mmengine.model import BaseModule

from projects.registry import MODELS

__all__ = ['VideoPredictionHead']


@MODELS.register_module()
class VideoPredictionHead(BaseModule):
    """Decoder plus the list of losses of the video world model.

    Predicted frames are composited with the previous frame of the rollout when
    ``composite=True`` (the masked compositing of Finn et al., "Unsupervised Learning for
    Physical Interaction through Video Prediction", NeurIPS 2016)::

        x̂_{t+1} = m ⊙ x_t' + (1 - m) ⊙ tanh(D_rgb(ẑ_{t+1})),   m = sigmoid(D_mask(ẑ_{t+1}))

    where ``x_t'`` (``composite_source='previous'``) is the observed frame for inputs the
    rollout observed and the previous prediction in open loop. With
    ``composite_source='last_observed'``, ``x_t'`` is always the last observed frame (Finn et
    al.'s static-background compositing): the prediction is a residual over the last real
    frame, so pixels the mask keeps stay exactly as sharp as that frame at every horizon,
    instead of being re-blended with the decoder's (smoother) output at every open-loop step.
    A convex combination of values in [-1, 1] stays in [-1, 1]. Reconstructions
    ``D_rgb(E(x_t))`` are never composited.

    Args:
        decoder (dict): :class:`PixelShuffleDecoder` config (``with_mask`` is set from
            ``composite``).
        losses (list[dict]): Loss configs; each is called with the rollout dict.
        composite (bool): Masked compositing. Defaults to True.
        composite_source (str): ``'previous'`` (the previous frame of the rollout) or
            ``'last_observed'``. Defaults to ``'previous'``.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: Two losses share a ``loss_name``, or an unknown ``composite_source``.
    """

    SOURCES = ('previous', 'last_observed')

    def __init__(self, decoder: dict, losses: List[dict], composite: bool = True,
                 composite_source: str = 'previous',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if composite_source not in self.SOURCES:
            raise ValueError(f'VideoPredictionHead: composite_source={composite_source!r}, '
                             f'expected one of {self.SOURCES}')
        decoder = dict(decoder)
        decoder['with_mask'] = composite
        self.decoder = MODELS.build(decoder)
        self.composite = composite
        self.composite_source = composite_source
        self.losses = torch.nn.ModuleList(MODELS.build(cfg) for cfg in losses)
        names = [loss.loss_name for loss in self.losses]
        if len(set(names)) != len(names):
            raise ValueError(f'VideoPredictionHead: duplicate loss names {names}')

    def decode(self, z: torch.Tensor):
        """Decode ``(B, S, C, h, w)`` latents to ``rgb (B, S, 3, H, W)`` and ``mask``
        ``(B, S, 1, H, W)`` (None without compositing)."""
        b, s = z.shape[:2]
        rgb, mask = self.decoder(z.flatten(0, 1))
        rgb = rgb.unflatten(0, (b, s))
        return rgb, (mask.unflatten(0, (b, s)) if mask is not None else None)

    def compose(self, rgb: torch.Tensor, mask: Optional[torch.Tensor], frames: torch.Tensor,
                observed: List[bool]) -> torch.Tensor:
        """Composite decoded predictions of frames ``1 .. S`` with their previous frame.

        Args:
            rgb (Tensor): ``(B, S, 3, H, W)`` decoded predictions of frames ``1 .. S``.
            mask (Tensor, optional): ``(B, S, 1, H, W)``.
            frames (Tensor): ``(B, T, 3, H, W)`` observed frames (``T >= S``).
            observed (list[bool]): ``observed[j]``: the input of prediction ``j`` (frame
                ``j``) is the observed frame; otherwise the previous prediction (which is
                then also the compositing source, unless ``composite_source`` is
                ``'last_observed'``).

        Returns:
            Tensor: ``(B, S, 3, H, W)`` in [-1, 1].
        """
        if not self.composite:
            return rgb
        out = []
        prev = frames[:, 0]
        for j in range(rgb.shape[1]):
            if observed[j]:
                prev = frames[:, j]
            cur = mask[:, j] * prev + (1 - mask[:, j]) * rgb[:, j]
            out.append(cur)
            if self.composite_source == 'previous':
                prev = cur
        return torch.stack(out, dim=1)

    def loss(self, rollout: dict) -> dict:
        """Every configured loss, keyed by its ``loss_name``."""
        return {loss.loss_name: loss(rollout) for loss in self.losses}
