"""Copy-through decoding of AerialWorld rollouts (tokens -> voxels, keeping what is known)."""
import inspect
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from scipy import ndimage

from projects.common.structures.occupancy_warp import (Z_REFERENCES, check_point_cloud_range,
                                                       warp_occupancy)
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

    With ``agent_flow`` (the per-cell displacement of the moving agents predicted by
    :class:`~projects.aerialworld.models.AgentMotionHead`) the scene is decomposed into static
    and dynamic voxels as in DFIT-OccWorld: the dynamic voxels of the last frame are removed
    from the static warp and the copy (they leave free space behind), the VQ decoder's dynamic
    labels are not used (objects of a few voxels do not survive the token bottleneck), and
    every dynamic voxel of the last frame is moved by its cell's predicted displacement and the
    ego motion into the new frame (nearest voxel, last write wins; agents do not overlap).
    A zero flow gives agents that stay where they were, as the ego-motion warp does.

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
        rigid_agents (bool): With ``agent_flow``: move each agent as one rigid body. The
            dynamic voxels of the last frame are grouped into 3-D connected components of one
            class (26-connectivity, :func:`scipy.ndimage.label`), and every voxel of a
            component is moved by the mean flow of the component's voxels instead of its own
            cell's flow, so an agent whose cells got slightly different displacements is not
            torn apart: the decoding-time form of MotionNet's spatial consistency constraint
            (the cells of one object share one motion; Wu et al., CVPR 2020, Sec. 3.3).
            Defaults to False.

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
                 same_position: bool = True,
                 rigid_agents: bool = False) -> None:
        super().__init__()
        rng = check_point_cloud_range(point_cloud_range, 'copy_decode.point_cloud_range')
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
        self.rigid_agents = bool(rigid_agents)
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
                decoded: torch.Tensor, motion: torch.Tensor,
                agent_flow: Optional[torch.Tensor] = None,
                fill_gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Copy-through decode one rollout.

        Args:
            occ_last (torch.Tensor): ``(B, X, Y, Z)`` uint8 labels of the last history frame.
            tokens_last (torch.Tensor): ``(B, h, w)`` long codes of that frame.
            tokens (torch.Tensor): ``(B, F, h, w)`` long predicted codes.
            decoded (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoder output of ``tokens``.
            motion (torch.Tensor): ``(B, F, D)`` predicted (or planned) per-step ego motion
                (``D`` = 4 or 13 by ``pose_mode``; metres, radians).
            agent_flow (torch.Tensor, optional): ``(B, F', 2, X, Y)`` displacement (metres,
                last frame's ego coordinates) of the point on each cell at steps ``1..F'``
                (``F' >= F``; see the class docstring). Needs ``static_classes``.
            fill_gate (torch.Tensor, optional): ``(B, F, X, Y)`` bool, with ``agent_flow``
                only: where the warp has no source, keep the last frame's static column at
                the same index instead of the decoder's (the learned reveal gate of
                :class:`~projects.aerialworld.models.AgentMotionHead`).

        Returns:
            torch.Tensor: ``(B, F, X, Y, Z)`` uint8 labels.

        Raises:
            ValueError: If ``agent_flow`` is given without ``static_classes`` or with a wrong
                shape.
        """
        if agent_flow is not None:
            return self._forward_with_flow(occ_last, tokens_last, tokens, decoded, motion,
                                           agent_flow, fill_gate)
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

    def _forward_with_flow(self, occ_last, tokens_last, tokens, decoded, motion, agent_flow,
                           fill_gate=None):
        """Static / dynamic decomposed decoding (see :meth:`forward`)."""
        if self._dynamic_lut is None:
            raise ValueError('CopyThroughDecoder: agent_flow needs copy_decode.static_classes '
                             '(which classes move)')
        b, nx, ny, nz = occ_last.shape
        fut = motion.shape[1]
        if agent_flow.dim() != 5 or agent_flow.shape[0] != b or agent_flow.shape[1] < fut or \
                tuple(agent_flow.shape[2:]) != (2, nx, ny):
            raise ValueError(f'CopyThroughDecoder: agent_flow must be ({b}, >={fut}, 2, {nx}, '
                             f'{ny}), got {tuple(agent_flow.shape)}')
        rel = self.codec.accumulate(motion)  # (B, F, 4) [x, y, z, yaw] in the last frame
        free = self.free_label
        dynamic = self._dynamic_lut[occ_last.long()]
        static_last = torch.where(dynamic, torch.full_like(occ_last, free), occ_last)
        # the dynamic voxels of the last frame: batch, x, y, z index and label
        bi, xi, yi, zi = dynamic.nonzero(as_tuple=True)
        labels = occ_last[bi, xi, yi, zi]
        rng = self.point_cloud_range
        size = [(rng[k + 3] - rng[k]) / n for k, n in enumerate((nx, ny))]
        cx = rng[0] + (xi.float() + 0.5) * size[0]
        cy = rng[1] + (yi.float() + 0.5) * size[1]
        voxel_flow = agent_flow[bi, :fut, :, xi, yi].float()  # (N, F, 2)
        if self.rigid_agents and labels.numel():
            voxel_flow = self._rigid_mean(occ_last, dynamic, (bi, xi, yi, zi), voxel_flow)
        frames = []
        for f in range(fut):
            if decoded is None:  # no-learning forecast: static voxels kept where no source
                frames.append(self._move_agents(
                    self._warp_static(static_last, rel[:, f], static_last), rel[:, f], labels,
                    (bi, xi, yi, zi), cx, cy, voxel_flow[:, f]))
                continue
            out = self._static_fill(static_last, tokens_last, tokens[:, f], decoded[:, f])
            if fill_gate is not None:
                out = torch.where(fill_gate[:, f, :, :, None], static_last, out)
            out = self._warp_static(static_last, rel[:, f], out)
            frames.append(self._move_agents(out, rel[:, f], labels, (bi, xi, yi, zi), cx, cy,
                                            voxel_flow[:, f]))
        return torch.stack(frames, dim=1)

    def _without_agents(self, occ: torch.Tensor) -> torch.Tensor:
        """``occ`` (uint8 labels, any shape) with the dynamic classes set to free."""
        return torch.where(self._dynamic_lut[occ.long()], torch.full_like(occ, self.free_label),
                           occ)

    def _static_fill(self, static_last: torch.Tensor, tokens_last: torch.Tensor,
                     tokens: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """What one step's decoding puts where the static warp has no source (before the
        reveal gate): the decoded labels without dynamic classes, and with ``same_position``
        the last frame's static voxels under tokens predicted unchanged.

        Args:
            static_last (torch.Tensor): ``(B, X, Y, Z)`` uint8, the last frame without agents.
            tokens_last (torch.Tensor): ``(B, h, w)`` long codes of the last frame.
            tokens (torch.Tensor): ``(B, h, w)`` long predicted codes of the step.
            decoded (torch.Tensor): ``(B, X, Y, Z)`` uint8 decoding of ``tokens``.

        Returns:
            torch.Tensor: ``(B, X, Y, Z)`` uint8.
        """
        nx, ny = static_last.shape[1:3]
        out = self._without_agents(decoded)
        if self.same_position:
            same = (tokens == tokens_last).repeat_interleave(self.stride, 1)
            same = same.repeat_interleave(self.stride, 2)[:, :nx, :ny, None]
            out = torch.where(same, static_last, out)
        return out

    @torch.no_grad()
    def reveal_candidates(self, occ_last: torch.Tensor, tokens_last: torch.Tensor,
                          tokens: torch.Tensor, decoded: torch.Tensor,
                          motion: torch.Tensor) -> tuple:
        """The two fills the reveal gate chooses between, per step, and where it chooses.

        Args:
            occ_last (torch.Tensor): ``(B, X, Y, Z)`` uint8 labels of the last history frame.
            tokens_last (torch.Tensor): ``(B, h, w)`` long codes of that frame.
            tokens (torch.Tensor): ``(B, F, h, w)`` long predicted codes.
            decoded (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoding of ``tokens``.
            motion (torch.Tensor): ``(B, F, D)`` the rollout's per-step ego motion.

        Returns:
            tuple: ``keep`` ``(B, X, Y, Z)`` uint8 (the last frame's static voxels, the
            gate's "keep" fill), ``fill`` ``(B, F, X, Y, Z)`` uint8 (the decoded fill,
            :meth:`_static_fill`), ``revealed`` ``(B, F, X, Y)`` bool (columns the warp by
            ``motion`` has no source for: where the gate decides) and ``view`` ``(B, F, X,
            Y, Z)`` uint8 (the static forecast with every revealed column kept: the warped
            last frame where it has a source, ``keep`` elsewhere; the context around the
            revealed columns).

        Raises:
            ValueError: Without ``static_classes``.
        """
        if self._dynamic_lut is None:
            raise ValueError('CopyThroughDecoder: the reveal gate needs '
                             'copy_decode.static_classes (which classes move)')
        free = self.free_label
        keep = self._without_agents(occ_last)
        rel = self.codec.accumulate(motion)
        fills, revealed, views = [], [], []
        for f in range(tokens.shape[1]):
            fills.append(self._static_fill(keep, tokens_last, tokens[:, f], decoded[:, f]))
            warped, valid = warp_occupancy(keep, rel[:, f], self.point_cloud_range, free,
                                           self.z_reference)
            revealed.append(~valid.any(-1))
            views.append(torch.where(valid, warped, keep))
        return keep, torch.stack(fills, 1), torch.stack(revealed, 1), torch.stack(views, 1)

    def _warp_static(self, static_last: torch.Tensor, rel: torch.Tensor,
                     fill: torch.Tensor) -> torch.Tensor:
        """The static voxels warped to the ego pose ``rel`` ``(B, 4)``; ``fill`` ``(B, X, Y,
        Z)`` where the warp has no source."""
        warped, valid = warp_occupancy(static_last, rel, self.point_cloud_range,
                                       self.free_label, self.z_reference)
        return torch.where(valid, warped, fill)

    def _move_agents(self, out: torch.Tensor, rel: torch.Tensor, labels: torch.Tensor,
                     index: tuple, cx: torch.Tensor, cy: torch.Tensor,
                     flow: torch.Tensor) -> torch.Tensor:
        """Write the last frame's dynamic voxels, moved by ``flow`` ``(N, 2)`` (metres) and
        seen from the ego pose ``rel`` ``(B, 4)``, into ``out`` ``(B, X, Y, Z)`` (in place;
        nearest voxel, last write wins)."""
        if not labels.numel():
            return out
        bi, xi, yi, zi = index
        nx, ny, nz = out.shape[1:]
        rng = self.point_cloud_range
        size = [(rng[k + 3] - rng[k]) / n for k, n in enumerate((nx, ny, nz))]
        pose = rel[bi].float()  # (N, 4) the new ego in the last frame
        px = cx + flow[:, 0] - pose[:, 0]
        py = cy + flow[:, 1] - pose[:, 1]
        cos, sin = torch.cos(pose[:, 3]), torch.sin(pose[:, 3])
        qx, qy = cos * px + sin * py, -sin * px + cos * py
        ii = torch.floor((qx - rng[0]) / size[0]).long()
        jj = torch.floor((qy - rng[1]) / size[1]).long()
        kk = zi
        if self.z_reference == 'ego':
            qz = rng[2] + (zi.float() + 0.5) * size[2] - pose[:, 2]
            kk = torch.floor((qz - rng[2]) / size[2]).long()
        inside = (ii >= 0) & (ii < nx) & (jj >= 0) & (jj < ny) & (kk >= 0) & (kk < nz)
        out[bi[inside], ii[inside], jj[inside], kk[inside]] = labels[inside]
        return out

    @torch.no_grad()
    def warp_with_agents(self, occ_last: torch.Tensor, motion: torch.Tensor,
                         agent_flow: torch.Tensor) -> torch.Tensor:
        """A forecast without tokens: the static warp plus agents moved by a given flow.

        The static voxels of the last frame are warped by the ego motion and kept where the
        warp has no source (as the CV-warp baseline does); the dynamic voxels are moved by
        ``agent_flow`` (as in :meth:`forward`, with ``rigid_agents`` applied). With the
        constant-velocity flow of tracked agents this is the no-learning
        ``warp_track_occ`` baseline of :class:`~projects.aerialworld.models.AerialWorld`.

        Args:
            occ_last (torch.Tensor): ``(B, X, Y, Z)`` uint8 labels of the last history frame.
            motion (torch.Tensor): ``(B, F, D)`` per-step ego motion.
            agent_flow (torch.Tensor): ``(B, F', 2, X, Y)`` displacement (metres), ``F' >= F``.

        Returns:
            torch.Tensor: ``(B, F, X, Y, Z)`` uint8 labels.

        Raises:
            ValueError: Without ``static_classes`` or on a wrong ``agent_flow`` shape.
        """
        return self._forward_with_flow(occ_last, None, None, None, motion, agent_flow)

    @staticmethod
    def _rigid_mean(occ_last: torch.Tensor, dynamic: torch.Tensor, index: tuple,
                    voxel_flow: torch.Tensor) -> torch.Tensor:
        """Replace each dynamic voxel's flow by the mean flow of its agent (``rigid_agents``).

        Args:
            occ_last (torch.Tensor): ``(B, X, Y, Z)`` uint8 labels.
            dynamic (torch.Tensor): ``(B, X, Y, Z)`` bool, the dynamic voxels.
            index (tuple): ``(bi, xi, yi, zi)`` long ``(N,)`` indices of the dynamic voxels
                (``dynamic.nonzero`` order).
            voxel_flow (torch.Tensor): ``(N, F, 2)`` float flow of those voxels.

        Returns:
            torch.Tensor: ``(N, F, 2)`` the mean flow of each voxel's connected component of
            one class (26-connected in 3-D).
        """
        occ = occ_last.cpu().numpy()
        dyn = dynamic.cpu().numpy()
        ids = np.zeros(occ.shape, dtype=np.int64)
        structure = np.ones((3, 3, 3), dtype=bool)
        count = 0
        for b in range(occ.shape[0]):
            for c in np.unique(occ[b][dyn[b]]):
                comp, n = ndimage.label(occ[b] == c, structure=structure)
                ids[b][comp > 0] = comp[comp > 0] + count
                count += n
        bi, xi, yi, zi = index
        comp = torch.from_numpy(ids).to(voxel_flow.device)[bi, xi, yi, zi]  # (N,) in 1..count
        return component_mean(voxel_flow.flatten(1), comp, count).view_as(voxel_flow)


def component_mean(values: torch.Tensor, ids: torch.Tensor, count: int) -> torch.Tensor:
    """Replace each row by the mean of the rows with the same component id.

    Args:
        values (torch.Tensor): ``(N, C)`` float.
        ids (torch.Tensor): ``(N,)`` long component ids in ``[0, count]``.
        count (int): Largest id.

    Returns:
        torch.Tensor: ``(N, C)``, differentiable in ``values``.
    """
    total = values.new_zeros(count + 1, values.shape[1]).index_add_(0, ids, values)
    num = values.new_zeros(count + 1).index_add_(0, ids, torch.ones_like(ids, dtype=values.dtype))
    return (total / num.clamp(min=1)[:, None])[ids]


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
