"""Motion of the moving agents: a MotionNet-style BEV head for AerialWorld.

OccWorld's tokens are 1.6 m (``test_local``) or coarser: a pedestrian or a drone is a few voxels
and does not survive the VQ bottleneck, and a world model that warps static voxels by the ego
motion (DFIT-OccWorld, H. Zhang et al., arXiv:2412.13772, 2024) must move the dynamic ones by
their own motion. DFIT-OccWorld predicts a per-voxel flow of the dynamic voxels; as in
MotionNet (P. Wu, S. Chen, D. Metaxas, CVPR 2020) this head predicts it per BEV cell from the
sequence of past occupancy frames, each first aligned to the last frame by the known ego
motion, with a small spatio-temporal 2-D U-Net, and regresses the future displacement of
every cell for every future step. :class:`CopyThroughDecoder` then moves the last frame's
dynamic voxels by it.
"""
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from scipy import ndimage

from projects.common.structures.occupancy_warp import (Z_REFERENCES, check_point_cloud_range,
                                                       warp_occupancy)
from projects.registry import MODELS
from .copy_decoder import component_mean
from .pose_codec import PoseCodec
from .reveal_chooser import reveal_choice_targets


FLOW_MODES = ('per_step', 'kinematic')
REVEAL_TARGETS = ('exact', 'rollout')


@MODELS.register_module()
class AgentMotionHead(BaseModule):
    """Per-cell future displacement of the moving agents from ego-aligned past occupancy.

    Input of the network: for each of the ``H`` history frames, its occupancy warped into the
    last history frame's ego frame (:func:`warp_occupancy`, so static structure lines up and
    only agents move between the channels), reduced to a BEV map of ``num_classes - 1``
    class-presence channels (a class is present in a column when any voxel of the column has
    it) plus the warp's validity, giving ``H * num_classes`` input channels at the grid's
    full ``(X, Y)`` resolution. A two-level 2-D U-Net (``mmcv`` ``ConvModule``s with group
    norm) maps them to ``2 * num_future`` channels: the ``(dx, dy)`` displacement (metres, in
    the last history frame's ego coordinates) of the point on that cell at each future step.
    The last layer starts at zero, so the untrained head predicts agents that stay where they
    are (the ego-motion-warp baseline).

    With ``reveal_gate=True`` the same network also answers, per future step and cell, whether
    the space the ego will newly see there is what the last frame holds at the same grid
    index (the column the constant-velocity warp baseline keeps where it has no source): one
    logit per step, trained with binary cross-entropy on the cells that the true ego motion
    reveals, with target "the static part of the true future column equals the last frame's
    column". The copy-through decoder keeps the last frame's column where the gate says so
    (probability > 0.5) and decodes the VQ tokens elsewhere: a learned choice between copying
    and generating, as the pointer-generator gate of A. See et al. (ACL 2017). For it the
    input also holds the history frames as observed (not aligned, so a column that stays the
    same in the moving ego frame shows as such) and the last observed ego motion (4
    channels), ``H * (2 * num_classes - 1) + 4`` channels in all.

    Args:
        num_classes (int): Semantic classes including free.
        free_label (int): Free class.
        num_history (int): History frames ``H`` the input stacks.
        num_future (int): Future steps ``F`` predicted.
        point_cloud_range (Sequence[float]): ``[x_min, y_min, z_min, x_max, y_max, z_max]``
            (metres) of the grid.
        z_reference (str): ``'ground'`` or ``'ego'`` (see :func:`warp_occupancy`). Defaults to
            ``'ground'``.
        pose_mode (str): ``'planar4'`` or ``'6dof'`` (:class:`PoseCodec`). Defaults to
            ``'planar4'``.
        channels (int): Width of the first level (the second has twice). Defaults to 32.
        reveal_gate (bool): Also predict the copy gate of newly revealed space (above).
            Defaults to False.
        motion_state (bool): Also classify each agent cell as moving or not (MotionNet's
            state estimation head): one logit, binary cross-entropy against "the cell moves
            more than ``moving_threshold`` metres by some supervised step"; at inference the
            flow of cells classified as not moving is set to zero, so a parked or waiting
            agent is kept exactly where it is instead of drifting with a small regression
            error. Defaults to False.
        moving_threshold (float): Displacement (metres) above which a cell counts as moving.
            Defaults to 0.5.
        flow_mode (str): How the network's output becomes the per-step flow. ``'per_step'``
            (MotionNet): ``2 * num_future`` channels, one ``(dx, dy)`` per future step.
            ``'kinematic'``: 4 channels, a per-cell velocity ``v`` (metres per step) and
            acceleration ``a`` (metres per step squared), and the displacement at step ``f``
            is ``v f + a f^2 / 2`` (constant-acceleration point motion): every step shares
            the same two vectors, so each training window supervises them ``F`` times and a
            far step cannot ask for a displacement the near steps contradict. Defaults to
            ``'per_step'``.
        velocity_prior (bool): Track the agents through the history and start from their
            constant velocity (needs ``flow_mode='kinematic'`` and ``static_classes``). In
            every history frame as observed, the moving-class voxels are grouped per class
            into 8-connected BEV components (:func:`scipy.ndimage.label`) whose centroids
            (metres) are carried into the last frame's ego coordinates by the known ego
            motion (no resampling, so a parked agent keeps its centroid up to its own
            voxelisation); consecutive frames are associated greedily by centroid distance,
            one to one, within ``track_radius`` of the class (CenterPoint's greedy
            closest-centre tracking with per-class distance gates, T. Yin, X. Zhou,
            P. Krahenbuhl, CVPR 2021), and the velocity (metres per step) is the
            least-squares slope of the centroid over the last ``track_frames`` frames of the
            track: a constant-velocity motion model (SORT, Bewley et al., ICIP 2016) fitted to
            more than two noisy positions. Its ``(vx, vy, matched)`` maps and the track's speed
            over each of its last ``track_frames - 1`` steps (so a braking or starting agent
            shows as such) are input channels, and the network's velocity output is added to
            it (residual on the kinematic prior, as the pose branch's ``pose_residual``): the
            untrained head forecasts every tracked agent at constant velocity. Defaults to
            False.
        static_classes (Sequence[int], optional): Classes that never move (the copy-through
            decoder's ``static_classes``); the others except free are tracked. Needed by
            ``velocity_prior``. Defaults to None.
        continue_gate (bool): With ``velocity_prior``: per future step and tracked cell, a
            logit saying whether the agent goes on moving (its forecast displacement is used)
            or stays where it is (zero flow), trained with binary cross-entropy against
            "the forecast point is closer to the true future point than the current one"
            (the choice between a motion model and a stationary one per step, as in an
            interacting-multiple-model tracker, Blom and Bar-Shalom, IEEE TAC 1988, with a
            learned hard switch). The logits are averaged over each agent (8-connected
            component of tracked cells, :meth:`agent_mean`), so an agent goes on or stops
            as a whole. In eval mode the flow of tracked cells whose gate says "stays" is
            zero. Defaults to False.
        flow_residual (bool): With ``velocity_prior``: the network's velocity and
            acceleration are added to the tracked velocity. False: no learned flow, the
            tracked constant velocity is used as it is (only the gates learn). Defaults to
            True.
        reveal_target (str): Target of the reveal gate. ``'exact'``: "the static part of the
            true future column equals the last frame's column" (:meth:`gate_targets`; needs
            only the window). ``'rollout'``: in the world and joint stages, the model's own
            rollout of the training window is decoded as at inference and the gate learns,
            per revealed column, which of the two fills has the lower IoU cost against the
            true future (missed voxels plus 0.6 times false ones), each column weighted by
            the difference (:meth:`rollout_gate_targets`; cost-sensitive classification, the
            costs being the column's IoU errors), so it keeps the last column where this
            run's decoder fills worse and decodes where the decoder is better. The tokenizer
            stage (no world model yet) uses ``'exact'``. Defaults to ``'exact'``.
        track_radius (float | Sequence[float]): Largest centroid displacement (metres per
            step) of an association, one for all tracked classes or one per tracked class
            (in class order; e.g. the class's top speed times the frame interval plus a
            voxel). Defaults to 8.0.
        track_frames (int, optional): History frames (at least 2) of the velocity fit; None:
            all ``num_history``. Defaults to None.
        loss_gate (dict): Loss of the gate logits (an ``mmdet`` loss with ``weight`` and
            ``avg_factor``). Defaults to ``mmdet.CrossEntropyLoss`` with ``use_sigmoid``.
        loss_flow (dict): Regression loss of the masked cells (an ``mmdet`` loss taking
            ``weight`` and ``avg_factor``). Defaults to ``mmdet.SmoothL1Loss`` (beta 0.5 m).
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On a bad ``free_label``, ``point_cloud_range`` or ``z_reference``.
    """

    def __init__(self,
                 num_classes: int,
                 free_label: int,
                 num_history: int,
                 num_future: int,
                 point_cloud_range: Sequence[float],
                 z_reference: str = 'ground',
                 pose_mode: str = 'planar4',
                 channels: int = 32,
                 loss_flow: dict = dict(type='mmdet.SmoothL1Loss', beta=0.5, loss_weight=1.0),
                 reveal_gate: bool = False,
                 motion_state: bool = False,
                 moving_threshold: float = 0.5,
                 flow_mode: str = 'per_step',
                 velocity_prior: bool = False,
                 static_classes: Optional[Sequence[int]] = None,
                 track_radius: Union[float, Sequence[float]] = 8.0,
                 track_frames: Optional[int] = None,
                 continue_gate: bool = False,
                 flow_residual: bool = True,
                 reveal_target: str = 'exact',
                 loss_gate: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
                                        loss_weight=1.0),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0 <= free_label < num_classes:
            raise ValueError(f'AgentMotionHead: free_label={free_label} outside [0, '
                             f'{num_classes})')
        rng = check_point_cloud_range(point_cloud_range, 'agent_motion.point_cloud_range')
        if z_reference not in Z_REFERENCES:
            raise ValueError(f'agent_motion.z_reference must be one of {Z_REFERENCES}, got '
                             f'{z_reference!r}')
        if flow_mode not in FLOW_MODES:
            raise ValueError(f'agent_motion.flow_mode must be one of {FLOW_MODES}, got '
                             f'{flow_mode!r}')
        self.flow_mode = flow_mode
        self.velocity_prior = bool(velocity_prior)
        self.tracked_classes = []
        if self.velocity_prior:
            if flow_mode != 'kinematic' or static_classes is None:
                raise ValueError("agent_motion.velocity_prior needs flow_mode='kinematic' and "
                                 'static_classes (which classes are tracked)')
            static = {int(c) for c in static_classes}
            self.tracked_classes = [k for k in range(num_classes)
                                    if k not in static and k != free_label]
        radius = ([float(track_radius)] * len(self.tracked_classes)
                  if isinstance(track_radius, (int, float)) else [float(r) for r in track_radius])
        if (self.velocity_prior and len(radius) != len(self.tracked_classes)) or \
                not all(r > 0 for r in radius):
            raise ValueError(f'agent_motion.track_radius must be a positive number or one per '
                             f'tracked class {self.tracked_classes}, got {track_radius!r}')
        self.track_radius = radius
        if track_frames is None:
            track_frames = num_history
        if not 2 <= int(track_frames) <= num_history:
            raise ValueError(f'agent_motion.track_frames must be in [2, num_history='
                             f'{num_history}] or None, got {track_frames!r}')
        self.track_frames = int(track_frames)
        if (continue_gate or not flow_residual) and not self.velocity_prior:
            raise ValueError('agent_motion.continue_gate / flow_residual=False need '
                             'velocity_prior=True')
        self.continue_gate = bool(continue_gate)
        self.flow_residual = bool(flow_residual)
        self.num_classes = int(num_classes)
        self.free_label = int(free_label)
        self.num_history = int(num_history)
        self.num_future = int(num_future)
        self.point_cloud_range = rng
        self.z_reference = z_reference
        self.codec = PoseCodec(pose_mode)
        c = int(channels)
        norm = dict(type='GN', num_groups=8)
        act = dict(type='ReLU', inplace=True)
        self.reveal_gate = bool(reveal_gate)
        if reveal_target not in REVEAL_TARGETS:
            raise ValueError(f'agent_motion.reveal_target must be one of {REVEAL_TARGETS}, got '
                             f'{reveal_target!r}')
        self.reveal_target = reveal_target
        in_ch = self.num_history * self.num_classes
        if self.reveal_gate:
            in_ch += self.num_history * (self.num_classes - 1) + 4
        if self.velocity_prior:
            in_ch += 3 + self.track_frames - 1

        def conv(i, o, stride=1, dilation=1):
            return ConvModule(i, o, 3, stride=stride, padding=dilation, dilation=dilation,
                              norm_cfg=norm, act_cfg=act)

        self.enc1 = nn.Sequential(conv(in_ch, c), conv(c, c))
        self.enc2 = nn.Sequential(conv(c, 2 * c, stride=2), conv(2 * c, 2 * c),
                                  conv(2 * c, 2 * c, dilation=2))
        self.enc3 = nn.Sequential(conv(2 * c, 2 * c, stride=2), conv(2 * c, 2 * c, dilation=2),
                                  conv(2 * c, 2 * c, dilation=4))
        self.dec2 = nn.Sequential(conv(4 * c, 2 * c), conv(2 * c, 2 * c))
        self.dec1 = nn.Sequential(conv(3 * c, c), conv(c, c))
        self.out = nn.Conv2d(c, 4 if flow_mode == 'kinematic' else 2 * self.num_future, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        if self.velocity_prior and not self.flow_residual:
            self.out = None  # the tracked velocity is used as it is
        self.loss_flow = MODELS.build(loss_flow)
        if self.reveal_gate:
            self.gate_out = nn.Conv2d(c, self.num_future, 1)
        if self.continue_gate:
            self.continue_out = nn.Conv2d(c, self.num_future, 1)
        if self.reveal_gate or motion_state or self.continue_gate:
            self.loss_gate = MODELS.build(loss_gate)
        self.motion_state = bool(motion_state)
        self.moving_threshold = float(moving_threshold)
        if self.motion_state:
            self.state_out = nn.Conv2d(c, 1, 1)

    def class_presence(self, occ: torch.Tensor) -> torch.Tensor:
        """``(B, X, Y, num_classes)`` bool: which classes each column of ``(B, X, Y, Z)`` holds."""
        out = torch.zeros(*occ.shape[:3], self.num_classes, dtype=torch.bool,
                          device=occ.device)
        return out.scatter_(3, occ.long(), True)

    @torch.no_grad()
    def bev_input(self, occ_history: torch.Tensor, motion_history: torch.Tensor
                  ) -> torch.Tensor:
        """Ego-aligned BEV class-presence stack of the history.

        Args:
            occ_history (torch.Tensor): ``(B, H, X, Y, Z)`` integer labels.
            motion_history (torch.Tensor): ``(B, H, D)`` per-frame motion (frame ``k``
                relative to ``k - 1``; :meth:`PoseCodec.frame_motion`).

        Returns:
            torch.Tensor: ``(B, C_in, X, Y)`` float: per frame the presence of every non-free
            class and the warp's validity (``H * num_classes`` channels in ``{0, 1}``); with
            ``reveal_gate`` also the presence in the frames as observed and the last ego
            motion (metres, radians).

        Raises:
            ValueError: If the history length is not ``num_history``.
        """
        b, h = occ_history.shape[:2]
        if h != self.num_history:
            raise ValueError(f'AgentMotionHead: expected {self.num_history} history frames, '
                             f'got {h}')
        keep = torch.tensor([k for k in range(self.num_classes) if k != self.free_label],
                            device=occ_history.device)
        bits = torch.arange(len(keep), device=occ_history.device)
        chans, observed, rels = [], [], []
        for k in range(h):
            raw = self.class_presence(occ_history[:, k])[..., keep]  # (B, X, Y, K)
            present = raw
            valid = torch.ones(raw.shape[:3], dtype=torch.bool, device=raw.device)
            rel = None
            if k < h - 1:
                # pose of the last frame in frame k: the motions of frames k+1 .. h-1
                rel = self.codec.accumulate(motion_history[:, k + 1:])[:, -1]
                if self.z_reference == 'ground':
                    # planar warp: warping the columns' class sets (bit-packed into one
                    # integer label per column) equals warping the voxels, at 1/Z the cost
                    code = (raw.long() << bits).sum(-1, keepdim=True)  # (B, X, Y, 1)
                    code, valid = warp_occupancy(code, rel, self.point_cloud_range, 0,
                                                 'ground')
                    present, valid = ((code >> bits) & 1).bool(), valid[..., 0]
                else:
                    occ, valid = warp_occupancy(occ_history[:, k], rel, self.point_cloud_range,
                                                self.free_label, self.z_reference)
                    present, valid = self.class_presence(occ)[..., keep], valid.any(-1)
            observed.append(raw)
            rels.append(rel)
            chans.append(present.permute(0, 3, 1, 2))
            chans.append(valid[:, None])
            if self.reveal_gate:
                chans.append(raw.permute(0, 3, 1, 2))
        x = torch.cat(chans, dim=1).float()
        if self.reveal_gate:
            last = self.codec.to_planar(motion_history[:, -1:])[:, 0].to(x.dtype)  # (B, 4)
            x = torch.cat([x, last[:, :, None, None].expand(-1, -1, *x.shape[-2:])], dim=1)
        if self.velocity_prior:
            cols = [int((keep == c).nonzero()) for c in self.tracked_classes]
            n = self.track_frames  # <= num_history == h (checked above)
            tracks = self.track_velocity([o[..., cols] for o in observed[h - n:]], rels[h - n:])
            x = torch.cat([x, tracks.to(x.dtype)], dim=1)
        return x

    @torch.no_grad()
    def track_velocity(self, presence: Sequence[torch.Tensor],
                       rel_poses: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
        """Constant-velocity maps of the agents tracked through a few observed frames.

        See ``velocity_prior`` for the method.

        Args:
            presence (Sequence[torch.Tensor]): Per frame, oldest first, ``(B, X, Y, K)`` bool
                presence of the ``K`` tracked classes in the frame as observed (its own ego
                grid).
            rel_poses (Sequence[torch.Tensor | None]): Per frame, ``(B, 4)`` float
                ``[x, y, z, yaw]`` of the last frame's ego in that frame (metres, radians;
                :func:`warp_occupancy`'s convention); None for the last frame.

        Returns:
            torch.Tensor: ``(B, N + 2, X, Y)`` float for ``N`` frames: the track's speed
            (metres per step) over each of the ``N - 1`` steps, oldest first (0 before the
            track starts), then ``vx``, ``vy`` (metres per step, last frame's ego axes), on
            the cells of every component of the last frame tracked over at least two frames,
            and ``matched`` (1 there, else 0). A cell in components of several classes takes
            the last class's.

        Raises:
            ValueError: If ``presence`` and ``rel_poses`` differ in length or hold fewer
                than two frames.
        """
        if len(presence) != len(rel_poses) or len(presence) < 2:
            raise ValueError(f'AgentMotionHead.track_velocity: needs >= 2 frames and one '
                             f'pose per frame, got {len(presence)} and {len(rel_poses)}')
        b, nx, ny, k = presence[-1].shape
        rng = self.point_cloud_range
        size = np.array([(rng[3] - rng[0]) / nx, (rng[4] - rng[1]) / ny])
        origin = np.array([rng[0], rng[1]])
        frames = [p.cpu().numpy() for p in presence]
        poses = [None if r is None else r.detach().cpu().double().numpy() for r in rel_poses]
        steps = len(presence) - 1
        out = np.zeros((b, steps + 3, nx, ny), dtype=np.float32)
        eight = np.ones((3, 3), dtype=bool)
        for i in range(b):
            for c in range(k):
                labels, centres = [], []
                for f, pose in zip(frames, poses):
                    lab, n = ndimage.label(f[i, :, :, c], structure=eight)
                    cen = np.zeros((0, 2))
                    if n:
                        cen = (np.array(ndimage.center_of_mass(np.ones_like(lab), lab,
                                                               range(1, n + 1))) + 0.5) * size
                        cen = cen + origin
                        if pose is not None:  # into the last frame: R(yaw)^T (p - t)
                            cos, sin = np.cos(pose[i, 3]), np.sin(pose[i, 3])
                            d = cen - pose[i, :2]
                            cen = np.stack([cos * d[:, 0] + sin * d[:, 1],
                                            cos * d[:, 1] - sin * d[:, 0]], axis=-1)
                    labels.append(lab)
                    centres.append(cen)
                links = [self._associate(centres[f + 1], centres[f], self.track_radius[c])
                         for f in range(len(frames) - 1)]
                for a in range(len(centres[-1])):
                    track, cur = [centres[-1][a]], a
                    for f in range(len(frames) - 2, -1, -1):
                        cur = links[f].get(cur)
                        if cur is None:
                            break
                        track.append(centres[f][cur])
                    if len(track) < 2:
                        continue
                    pos = np.array(track[::-1])  # (n, 2) oldest first
                    t = np.arange(len(pos), dtype=np.float64)
                    t -= t.mean()
                    vel = (t[:, None] * (pos - pos.mean(0))).sum(0) / (t * t).sum()
                    cells = labels[-1] == a + 1
                    speeds = np.linalg.norm(np.diff(pos, axis=0), axis=-1)  # oldest first
                    for j, speed in enumerate(speeds):
                        out[i, steps - len(speeds) + j][cells] = speed
                    out[i, steps][cells], out[i, steps + 1][cells] = vel
                    out[i, steps + 2][cells] = 1.0
        return torch.from_numpy(out).to(presence[-1].device)

    @staticmethod
    def _associate(later: np.ndarray, earlier: np.ndarray, radius: float) -> dict:
        """Greedy one-to-one association by centroid distance (closest pairs first).

        Args:
            later (np.ndarray): ``(n, 2)`` centroids (metres) of a frame.
            earlier (np.ndarray): ``(m, 2)`` centroids of the frame before, same coordinates.
            radius (float): Largest distance of a pair (metres).

        Returns:
            dict[int, int]: index in ``later`` -> index in ``earlier``.
        """
        links = {}
        if len(later) == 0 or len(earlier) == 0:
            return links
        dist = np.linalg.norm(later[:, None] - earlier[None], axis=-1)
        used = set()
        for flat in np.argsort(dist, axis=None, kind='stable'):
            a, p = divmod(int(flat), len(earlier))
            if dist[a, p] > radius:
                break
            if a in links or p in used:
                continue
            links[a] = p
            used.add(p)
        return links

    def forward(self, occ_history: torch.Tensor, motion_history: torch.Tensor):
        """Predict the agent flow (and the reveal gate).

        Args:
            occ_history (torch.Tensor): ``(B, H, X, Y, Z)`` integer labels.
            motion_history (torch.Tensor): ``(B, H, D)`` per-frame ego motion.

        Returns:
            dict[str, torch.Tensor]: ``flow`` ``(B, F, 2, X, Y)`` float displacement (metres,
            last history frame's ego coordinates) of the point on each cell at future steps
            ``1..F`` (with ``motion_state``, in eval mode, zero on cells classified as not
            moving; with ``continue_gate`` also at the steps where a tracked agent is
            classified as stopped); with ``motion_state`` ``state_logits`` ``(B, X, Y)``; with
            ``reveal_gate`` ``gate_logits`` ``(B, F, X, Y)``; with ``velocity_prior``
            ``tracked`` ``(B, X, Y)`` bool and ``tracked_flow`` ``(B, F, 2, X, Y)`` (every
            tracked agent at its constant velocity, nothing learned: the flow of the
            ``warp_track_occ`` baseline); with ``continue_gate`` ``continue_logits``
            ``(B, F, X, Y)``.
        """
        x = self.bev_input(occ_history, motion_history)
        size = x.shape[-2:]
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([e2, F.interpolate(e3, size=e2.shape[-2:], mode='bilinear',
                                                    align_corners=False)], 1))
        d1 = self.dec1(torch.cat([e1, F.interpolate(d2, size=size, mode='bilinear',
                                                    align_corners=False)], 1))
        out = None if self.out is None else self.out(d1)
        tracked_flow = None
        if self.velocity_prior:  # residual on the tracked constant velocity
            prior = F.pad(x[:, -3:-1], (0, 0, 0, 0, 0, 2))  # (B, 4, X, Y): v, a = 0
            tracked_flow = self.flow_from_output(prior)
            out = prior if out is None else out + prior
        flow = self.flow_from_output(out)
        out = dict(flow=flow)
        if self.velocity_prior:
            out['tracked'] = x[:, -1] > 0  # (B, X, Y) cells of tracked agents
            out['tracked_flow'] = tracked_flow
        if self.continue_gate:
            # one decision per agent: the mean logit of its cells
            cont = self.agent_mean(self.continue_out(d1), out['tracked'])  # (B, F, X, Y)
            out['continue_logits'] = cont
            if not self.training:  # tracked agents that stop keep their place
                keep = (cont > 0) | ~out['tracked'][:, None]
                out['flow'] = out['flow'] * keep.to(flow.dtype)[:, :, None]
        if self.motion_state:
            state = self.state_out(d1)[:, 0]  # (B, X, Y) moving logit
            out['state_logits'] = state
            if not self.training:  # cells classified as not moving keep their place
                out['flow'] = out['flow'] * (state > 0).to(flow.dtype)[:, None, None]
        if self.reveal_gate:
            out['gate_logits'] = self.gate_out(d1)
        return out

    @staticmethod
    def agent_mean(maps: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """Average per-cell maps over each agent (8-connected component of ``cells``).

        Args:
            maps (torch.Tensor): ``(B, C, X, Y)`` float (e.g. one logit per future step).
            cells (torch.Tensor): ``(B, X, Y)`` bool agent cells.

        Returns:
            torch.Tensor: ``(B, C, X, Y)``: on agent cells the mean of ``maps`` over the
            cell's component (differentiable), elsewhere ``maps`` unchanged.
        """
        b, c = maps.shape[:2]
        ids = np.zeros(cells.shape, dtype=np.int64)
        count = 0
        eight = np.ones((3, 3), dtype=bool)
        for i, mask in enumerate(cells.cpu().numpy()):
            lab, n = ndimage.label(mask, structure=eight)
            ids[i][lab > 0] = lab[lab > 0] + count
            count += n
        if count == 0:
            return maps
        ids = torch.from_numpy(ids).to(maps.device).flatten()  # (B*X*Y,) 0 = no agent
        flat = maps.permute(0, 2, 3, 1).reshape(-1, c)
        pooled = torch.where((ids > 0)[:, None], component_mean(flat, ids, count), flat)
        return pooled.view(b, *maps.shape[2:], c).permute(0, 3, 1, 2)

    def flow_from_output(self, out: torch.Tensor) -> torch.Tensor:
        """``(B, F, 2, X, Y)`` flow (metres) from the ``(B, C, X, Y)`` output (``flow_mode``)."""
        b, _, nx, ny = out.shape
        if self.flow_mode == 'per_step':
            return out.reshape(b, self.num_future, 2, nx, ny)
        steps = torch.arange(1, self.num_future + 1, device=out.device, dtype=out.dtype)
        vel, acc = out[:, None, 0:2], out[:, None, 2:4]  # (B, 1, 2, X, Y)
        steps = steps.view(1, -1, 1, 1, 1)
        return vel * steps + acc * (0.5 * steps * steps)

    def loss(self, flow: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
             state_logits: Optional[torch.Tensor] = None) -> dict:
        """Regression loss on the cells of agents (and the motion-state loss).

        Args:
            flow (torch.Tensor): ``(B, F, 2, X, Y)`` prediction.
            target (torch.Tensor): ``(B, F, 2, X, Y)`` :class:`LoadAgentFlow` targets.
            mask (torch.Tensor): ``(B, F, X, Y)`` bool, True on supervised cells.
            state_logits (torch.Tensor, optional): ``(B, X, Y)`` moving logits
                (``motion_state``).

        Returns:
            dict[str, torch.Tensor]: ``loss_agent_flow`` (averaged over the supervised cells
            and both components; zero when a batch has none), ``agent_flow_epe`` (mean
            end-point error of those cells, metres, for logging) and, given
            ``state_logits``, ``loss_motion_state``.

        Raises:
            ValueError: On shape mismatches.
        """
        if flow.shape != target.shape or mask.shape != (flow.shape[:2] + flow.shape[3:]):
            raise ValueError(f'AgentMotionHead.loss: flow {tuple(flow.shape)}, target '
                             f'{tuple(target.shape)} and mask {tuple(mask.shape)} do not '
                             f'match ((B, F, 2, X, Y) and (B, F, X, Y))')
        weight = mask[:, :, None].to(flow.dtype).expand_as(flow)
        count = weight.sum()
        loss = self.loss_flow(flow, target.to(flow.dtype), weight=weight,
                              avg_factor=count.clamp(min=1.0))
        with torch.no_grad():
            epe = (flow - target).norm(dim=2)
            epe = (epe * mask).sum() / mask.sum().clamp(min=1)
        out = dict(loss_agent_flow=loss, agent_flow_epe=epe)
        if state_logits is not None:
            moving = ((target.norm(dim=2) * mask) > self.moving_threshold).any(1)
            out['loss_motion_state'] = self._masked_bce(
                state_logits, moving.to(state_logits.dtype), mask.any(1))[0]  # agent cells
        return out

    def continue_loss(self, logits: torch.Tensor, flow: torch.Tensor, tracked: torch.Tensor,
                      target: torch.Tensor, mask: torch.Tensor) -> dict:
        """Binary cross-entropy of the continue gate on the tracked agent cells.

        Args:
            logits (torch.Tensor): ``(B, F, X, Y)`` continue logits.
            flow (torch.Tensor): ``(B, F, 2, X, Y)`` the forecast displacement (training mode,
                not gated); the target compares it with staying.
            tracked (torch.Tensor): ``(B, X, Y)`` bool tracked cells.
            target (torch.Tensor): ``(B, F, 2, X, Y)`` true displacement
                (:class:`LoadAgentFlow`).
            mask (torch.Tensor): ``(B, F, X, Y)`` bool supervised cells.

        Returns:
            dict[str, torch.Tensor]: ``loss_continue_gate`` (averaged over the tracked
            supervised cells and steps) and ``continue_gate_acc``.
        """
        with torch.no_grad():
            go = ((flow.detach() - target).norm(dim=2) < target.norm(dim=2)).to(logits.dtype)
        loss, acc = self._masked_bce(logits, go, mask & tracked[:, None])
        return dict(loss_continue_gate=loss, continue_gate_acc=acc)

    @torch.no_grad()
    def gate_targets(self, occ_last: torch.Tensor, occ_future: torch.Tensor,
                     rel_poses: torch.Tensor, dynamic_lut: torch.Tensor):
        """Targets of the reveal gate from the true future.

        Args:
            occ_last (torch.Tensor): ``(B, X, Y, Z)`` integer labels of the last history frame.
            occ_future (torch.Tensor): ``(B, F, X, Y, Z)`` true future labels.
            rel_poses (torch.Tensor): ``(B, F, 4)`` true ``[x, y, z, yaw]`` of each future
                ego frame in the last one.
            dynamic_lut (torch.Tensor): ``(256,)`` bool, True for the moving classes (they are
                set to free on both sides: the agent flow handles them).

        Returns:
            tuple: ``target`` ``(B, F, X, Y)`` float in ``{0, 1}`` (the static part of the
            future column equals the last frame's column at the same index) and ``mask``
            ``(B, F, X, Y)`` bool (columns the true motion reveals: no voxel of the column has
            a source in the last frame).
        """
        free = self.free_label
        last = torch.where(dynamic_lut[occ_last.long()], torch.full_like(occ_last, free),
                           occ_last)
        targets, masks = [], []
        for f in range(occ_future.shape[1]):
            gt = occ_future[:, f]
            gt = torch.where(dynamic_lut[gt.long()], torch.full_like(gt, free), gt)
            _, valid = warp_occupancy(last, rel_poses[:, f], self.point_cloud_range, free,
                                      self.z_reference)
            masks.append(~valid.any(-1))
            targets.append((gt == last).all(-1))
        return torch.stack(targets, 1).float(), torch.stack(masks, 1)

    @torch.no_grad()
    def rollout_gate_targets(self, keep: torch.Tensor, fill: torch.Tensor,
                             revealed: torch.Tensor, occ_future: torch.Tensor,
                             dynamic_lut: torch.Tensor) -> tuple:
        """Cost-sensitive targets of the reveal gate from a decoded rollout
        (``reveal_target='rollout'``).

        :func:`~projects.aerialworld.models.reveal_chooser.reveal_choice_targets`: target
        "keep" where the last frame's column has no higher IoU cost (missed voxels plus 0.6
        times false ones) than the decoded fill, weighted by the difference.

        Args:
            keep (torch.Tensor): ``(B, X, Y, Z)`` uint8 last frame without agents.
            fill (torch.Tensor): ``(B, F, X, Y, Z)`` uint8 decoded fill per step.
            revealed (torch.Tensor): ``(B, F, X, Y)`` bool columns the gate decides.
            occ_future (torch.Tensor): ``(B, F, X, Y, Z)`` true future labels.
            dynamic_lut (torch.Tensor): ``(256,)`` bool, True for the moving classes (free
                in the targets: the agent flow handles them).

        Returns:
            tuple: ``target`` ``(B, F, X, Y)`` float in ``{0, 1}`` and ``weight``
            ``(B, F, X, Y)`` float (zero outside ``revealed``).
        """
        return reveal_choice_targets(keep, fill, revealed, occ_future, dynamic_lut,
                                     self.free_label)

    def _masked_bce(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor):
        """``loss_gate`` of ``logits`` vs ``target`` (same shape) averaged over ``mask`` (bool,
        or float weights), and the (weighted) accuracy of the 0.5 decision there (no
        gradient)."""
        weight = mask.to(logits.dtype)
        loss = self.loss_gate(logits.flatten(), target.flatten(), weight=weight.flatten(),
                              avg_factor=weight.sum().clamp(min=1.0))
        with torch.no_grad():
            acc = (((logits > 0).to(target.dtype) == target).to(weight.dtype) * weight).sum() / \
                weight.sum().clamp(min=1.0)
        return loss, acc

    def gate_loss(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict:
        """Binary cross-entropy of the reveal gate on the revealed cells.

        Args:
            logits (torch.Tensor): ``(B, F, X, Y)`` gate logits.
            target (torch.Tensor): ``(B, F, X, Y)`` float targets (:meth:`gate_targets`).
            mask (torch.Tensor): ``(B, F, X, Y)`` bool revealed cells, or float weights
                (:meth:`rollout_gate_targets`).

        Returns:
            dict[str, torch.Tensor]: ``loss_reveal_gate`` and ``reveal_gate_acc`` (accuracy
            of the 0.5 decision on the revealed cells, weighted like the loss).
        """
        loss, acc = self._masked_bce(logits, target, mask)
        return dict(loss_reveal_gate=loss, reveal_gate_acc=acc)
