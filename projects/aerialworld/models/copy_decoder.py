"""Copy-through decoding of AerialWorld rollouts (tokens -> voxels, keeping what is known)."""
import inspect
from typing import Optional, Sequence

import torch
import torch.nn as nn

from projects.common.structures.occupancy_warp import Z_REFERENCES, warp_occupancy
from projects.registry import MODELS
from .pose_codec import PoseCodec


@MODELS.register_module()
class CopyThroughDecoder(nn.Module):
    """Turn rolled-out tokens into voxels, copying what the model predicts unchanged.

    A VQ decoder reconstructs even an unchanged scene only approximately (the codebook is
    lossy), so decoding every forecast token throws away detail the model already observed.
    Per future step ``f`` (all relative to the last history frame):

    1. *Static warp* (ego-pose warping of static voxels, as in DFIT-OccWorld, Zhang et al.,
       arXiv:2412.13772, 2024): every voxel whose centre, moved by the accumulated ego
       motion, falls inside the last observed grid takes that voxel's label
       (:func:`~projects.common.structures.occupancy_warp.warp_occupancy`), unless the source
       label or the decoded label is a dynamic class (not in ``static_classes``).
    2. *Same-position copy* (``same_position=True``): outside the warped part (space the ego
       had not seen from there), a token predicted with the same code as the last frame's
       token at the same ego-relative position keeps the last frame's voxels of that token
       (a copy mechanism in voxel space, cf. CopyNet, Gu et al. 2016).
    3. Everything else comes from the VQ decoder.

    Args:
        point_cloud_range (Sequence[float]): ``[x_min, y_min, z_min, x_max, y_max, z_max]``
            (metres) of the grid in the ego frame.
        num_classes (int): Semantic classes including free.
        free_label (int): Free class index in ``[0, num_classes)``.
        token_stride (int): Voxels per token along x and y (the tokenizer's down-sampling).
        pose_mode (str): ``'planar4'`` or ``'6dof'`` (how to read the motion). Defaults to
            ``'planar4'``.
        z_reference (str): ``'ground'`` (z is height above a fixed datum, planar warp;
            default) or ``'ego'`` (z moves with the ego).
        static_classes (Sequence[int], optional): Classes that do not move (free counts as
            static). None (default): all classes.
        same_position (bool): Step 2 above. Defaults to True.

    Raises:
        ValueError: On a malformed ``point_cloud_range``, an unknown ``z_reference``, class
            ids outside ``[0, num_classes)`` or an unknown ``pose_mode``.
    """

    def __init__(self,
                 point_cloud_range: Sequence[float],
                 num_classes: int,
                 free_label: int,
                 token_stride: int,
                 pose_mode: str = 'planar4',
                 z_reference: str = 'ground',
                 static_classes: Optional[Sequence[int]] = None,
                 same_position: bool = True) -> None:
        super().__init__()
        rng = point_cloud_range
        if rng is None or len(rng) != 6 or not all(rng[i + 3] > rng[i] for i in range(3)):
            raise ValueError('copy_decode.point_cloud_range must be [x_min, y_min, z_min, '
                             f'x_max, y_max, z_max] (m) with max > min, got {rng}')
        if z_reference not in Z_REFERENCES:
            raise ValueError(f'copy_decode.z_reference must be one of {Z_REFERENCES}, got '
                             f'{z_reference!r}')
        if not 0 <= free_label < num_classes:
            raise ValueError(f'CopyThroughDecoder: free_label={free_label} outside [0, '
                             f'{num_classes})')
        self.point_cloud_range = [float(v) for v in rng]
        self.z_reference = z_reference
        self.free_label = int(free_label)
        self.stride = int(token_stride)
        self.same_position = bool(same_position)
        self.codec = PoseCodec(pose_mode)
        self.static_classes = None
        if static_classes is not None:
            static = [int(c) for c in static_classes]
            bad = [c for c in static if not 0 <= c < num_classes]
            if bad:
                raise ValueError(f'copy_decode.static_classes has ids {bad} outside [0, '
                                 f'{num_classes})')
            self.static_classes = static
            dynamic = torch.ones(256, dtype=torch.bool)
            dynamic[static + [self.free_label]] = False
            self.register_buffer('_dynamic_lut', dynamic, persistent=False)
        else:
            self._dynamic_lut = None

    @torch.no_grad()
    def forward(self, occ_last: torch.Tensor, tokens_last: torch.Tensor, tokens: torch.Tensor,
                decoded: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """Copy-through decode one rollout.

        Args:
            occ_last (torch.Tensor): ``(B, X, Y, Z)`` uint8 labels of the last history frame.
            tokens_last (torch.Tensor): ``(B, h, w)`` long codes of that frame.
            tokens (torch.Tensor): ``(B, F, h, w)`` long predicted codes.
            decoded (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoder output of ``tokens``.
            motion (torch.Tensor): ``(B, F, D)`` predicted (or planned) per-step ego motion
                (``D`` = 4 or 13 by ``pose_mode``; metres, radians).

        Returns:
            torch.Tensor: ``(B, F, X, Y, Z)`` uint8 labels.
        """
        rel = self.codec.accumulate(motion)  # (B, F, 4) [x, y, z, yaw] in the last frame
        x, y = occ_last.shape[1:3]
        stride = self.stride
        frames = []
        for f in range(tokens.shape[1]):
            out = decoded[:, f]
            if self.same_position:
                same = (tokens[:, f] == tokens_last).repeat_interleave(stride, 1)
                same = same.repeat_interleave(stride, 2)[:, :x, :y, None]
                out = torch.where(same, occ_last, out)
            warped, use_warp = warp_occupancy(occ_last, rel[:, f], self.point_cloud_range,
                                              self.free_label, self.z_reference)
            if self._dynamic_lut is not None:
                use_warp = use_warp & ~self._dynamic_lut[warped.long()] & \
                    ~self._dynamic_lut[decoded[:, f].long()]
            frames.append(torch.where(use_warp, warped, out))
        return torch.stack(frames, dim=1)


def build_copy_decoder(cfg: dict, **filled) -> nn.Module:
    """Build the ``copy_decode`` config of a model (``type`` defaults to this class).

    Args:
        cfg (dict): User keys (``point_cloud_range``, ``z_reference``, ``static_classes``,
            ``same_position``, optional ``type``).
        **filled: Keys the model fills in (``num_classes``, ``free_label``, ``token_stride``,
            ``pose_mode``).

    Returns:
        nn.Module: The decoder.

    Raises:
        ValueError: On an unknown type or keys the decoder does not take (named).
    """
    cfg = dict(cfg)
    cfg.setdefault('type', 'CopyThroughDecoder')
    cls = MODELS.get(cfg['type'])
    if cls is None:
        raise ValueError(f'copy_decode: unknown type {cfg["type"]!r}')
    known = set(inspect.signature(cls.__init__).parameters) - {'self'} - set(filled)
    unknown = set(cfg) - known - {'type'}
    if unknown:
        raise ValueError(f'copy_decode: unknown keys {sorted(unknown)} (known: {sorted(known)})')
    return MODELS.build(dict(cfg, **filled))
