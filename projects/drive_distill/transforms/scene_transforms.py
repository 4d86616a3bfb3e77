"""Pipeline transforms of the drive-distill students (registered in ``TRANSFORMS``).

A results dict flows through ``Load* → [RandomFlipY] → VectorizeScene | RasterizeScene |
LoadCameraFrames → PackDriveInputs``. Frames: every geometric quantity is expressed in the ego
frame at t0 (x forward, y left, metres; yaw radians), 10 Hz.

Keys written by the loaders (shapes for ``H`` history, ``T`` future steps):

* ``hist_xy`` (H, 2) float32, ``hist_yaw`` (H,) float32 — ego history, last entry is t0.
* ``gt_traj`` (T, 3) float32 — future ``[x, y, yaw]`` (teacher label or logged future).
* ``agents`` dict: ``xy`` (A, H, 2), ``yaw`` (A, H), ``valid`` (A, H) bool, ``type`` (A,),
  ``size`` (A, 2) — other agents over the history window.
* ``map_polylines`` list of (n_i, 2) float arrays and ``map_types`` (L,) int; ``areas`` list of
  drivable-area polygons.
"""
import os.path as osp
from collections import OrderedDict

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from projects.common.structures.trajectory import ego_history_features
from projects.registry import TRANSFORMS

__all__ = ['LoadScenarioWindow', 'RandomFlipY', 'ComputeTeacherActions', 'VectorizeScene',
           'RasterizeScene', 'PackDriveInputs', 'to_ego_frame']

_SCENE_CACHE = OrderedDict()
_SCENE_KEYS = ('ego_xy', 'ego_yaw', 'agent_xy', 'agent_yaw', 'agent_valid', 'agent_type',
               'agent_size', 'map_points', 'map_offsets', 'map_type', 'area_points',
               'area_offsets')


def load_scene(path, cache_size=16):
    """Load (and cache) a scene ``.npz`` written by the converters.

    Args:
        path (str): scene file.
        cache_size (int): scenes kept in the per-process LRU cache.

    Returns:
        dict[str, ndarray]: the arrays (see :mod:`projects.drive_distill.converters.scenarionet`).

    Raises:
        FileNotFoundError: if the file is missing.
        KeyError: if a required key is missing (names the file and key).
        ValueError: if the ego poses are not finite (names the file).
    """
    if path in _SCENE_CACHE:
        _SCENE_CACHE.move_to_end(path)
        return _SCENE_CACHE[path]
    if not osp.isfile(path):
        raise FileNotFoundError(f'scene file not found: {path} (run '
                                'tools/data_converter/scenarionet_to_drive.py or av2_to_drive.py)')
    with np.load(path) as data:
        missing = [k for k in _SCENE_KEYS if k not in data.files]
        if missing:
            raise KeyError(f'{path}: missing keys {missing}')
        scene = {k: data[k] for k in _SCENE_KEYS}
    if not (np.isfinite(scene['ego_xy']).all() and np.isfinite(scene['ego_yaw']).all()):
        raise ValueError(f'{path}: ego poses contain NaN/inf')
    _SCENE_CACHE[path] = scene
    while len(_SCENE_CACHE) > cache_size:
        _SCENE_CACHE.popitem(last=False)
    return scene


def to_ego_frame(xy, origin, yaw0):
    """World → ego frame at t0.

    Args:
        xy (ndarray): (..., 2) world positions (metres).
        origin (ndarray): (2,) ego position at t0.
        yaw0 (float): ego yaw at t0 (radians).

    Returns:
        ndarray: (..., 2) float positions, x forward, y left.
    """
    c, s = np.cos(yaw0), np.sin(yaw0)
    d = np.asarray(xy, np.float64) - origin
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def _wrap(a):
    return np.remainder(a + np.pi, 2 * np.pi) - np.pi


@TRANSFORMS.register_module()
class LoadScenarioWindow(BaseTransform):
    """Cut an ego window (history + future) and the scene context from a scene file.

    Required keys: ``scene_file`` (absolute path), ``t0``. Added: ``hist_xy``, ``hist_yaw``,
    ``gt_traj``, ``gt_mask`` (T,), ``agents``, ``map_polylines``, ``map_types``, ``areas``.

    Args:
        num_history (int): history poses including t0 (16).
        num_future (int): future poses (64).

    Raises:
        ValueError: if the window does not fit in the scene or poses are NaN (names the file).
    """

    def __init__(self, num_history=16, num_future=64):
        self.num_history = num_history
        self.num_future = num_future

    def transform(self, results):
        """Load the window (see the class docstring)."""
        path, t0 = results['scene_file'], int(results['t0'])
        scene = load_scene(path)
        lo, hi = t0 - self.num_history + 1, t0 + self.num_future + 1
        if lo < 0 or hi > len(scene['ego_xy']):
            raise ValueError(f'{path}: window t0={t0} needs steps [{lo}, {hi}) but the scene '
                             f'has {len(scene["ego_xy"])}')
        origin, yaw0 = scene['ego_xy'][t0], float(scene['ego_yaw'][t0])
        ego = to_ego_frame(scene['ego_xy'][lo:hi], origin, yaw0)
        eyaw = _wrap(scene['ego_yaw'][lo:hi] - yaw0)
        h = self.num_history
        results['hist_xy'] = ego[:h].astype(np.float32)
        results['hist_yaw'] = eyaw[:h].astype(np.float32)
        results['gt_traj'] = np.concatenate([ego[h:], eyaw[h:, None]], -1).astype(np.float32)
        results['gt_mask'] = np.ones(self.num_future, bool)
        valid = scene['agent_valid'][:, lo:t0 + 1]
        keep = valid[:, -1] | valid.any(1)
        results['agents'] = dict(
            xy=to_ego_frame(scene['agent_xy'][keep, lo:t0 + 1], origin, yaw0).astype(np.float32),
            yaw=_wrap(scene['agent_yaw'][keep, lo:t0 + 1] - yaw0).astype(np.float32),
            valid=valid[keep], type=scene['agent_type'][keep], size=scene['agent_size'][keep])
        offs = scene['map_offsets']
        pts = to_ego_frame(scene['map_points'], origin, yaw0).astype(np.float32)
        results['map_polylines'] = [pts[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)]
        results['map_types'] = scene['map_type'].astype(np.int64)
        aoffs = scene['area_offsets']
        apts = to_ego_frame(scene['area_points'], origin, yaw0).astype(np.float32)
        results['areas'] = [apts[aoffs[i]:aoffs[i + 1]] for i in range(len(aoffs) - 1)]
        return results


@TRANSFORMS.register_module()
class RandomFlipY(BaseTransform):
    """Mirror the scene about the ego x axis (y → -y, yaw → -yaw) with probability ``prob``.

    Applies to every geometric key present (ego history / future, agents, map, areas,
    teacher trajectories). Camera images are not mirrored, so use it with the vector and
    raster students only.

    Args:
        prob (float): flip probability.
    """

    def __init__(self, prob=0.5):
        self.prob = prob

    def transform(self, results):
        """Flip in place (see the class docstring)."""
        if np.random.rand() >= self.prob:
            return results
        flip = np.array([1.0, -1.0], np.float32)
        results['hist_xy'] = results['hist_xy'] * flip
        results['hist_yaw'] = -results['hist_yaw']
        gt = results['gt_traj'].copy()
        gt[:, 1], gt[:, 2] = -gt[:, 1], -gt[:, 2]
        results['gt_traj'] = gt
        if 'agents' in results:
            ag = dict(results['agents'])
            ag['xy'], ag['yaw'] = ag['xy'] * flip, -ag['yaw']
            results['agents'] = ag
        for key in ('map_polylines', 'areas'):
            if key in results:
                results[key] = [p * flip for p in results[key]]
        results['flipped'] = True
        return results


def _resample(poly, spacing):
    """Resample a polyline at a fixed arc-length spacing (keeps both ends)."""
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] < 1e-6:
        return poly[:1]
    s = np.arange(0.0, arc[-1], spacing)
    s = np.append(s, arc[-1]) if arc[-1] - s[-1] > 1e-3 else s
    return np.stack([np.interp(s, arc, poly[:, 0]), np.interp(s, arc, poly[:, 1])], -1)


@TRANSFORMS.register_module()
class VectorizeScene(BaseTransform):
    """Agent tracks and map polylines as padded tensors with masks (vector student input).

    Agents: the ``max_agents`` nearest to the ego at t0 (by last valid position) within
    ``max_dist``; per history step ``[x, y, sin yaw, cos yaw, length, width, one-hot type (4)]``
    → ``agent_feats`` (A, H, 10) float32, ``agent_mask`` (A, H) bool.
    Map: polylines resampled every ``spacing`` metres and cut into pieces of
    ``points_per_polyline`` points; the ``max_polylines`` pieces nearest to the ego corridor
    (distance to the point ``lookahead`` m ahead, to favour what lies ahead) within
    ``max_dist``; per point ``[x, y, dx, dy, one-hot type (5)]`` → ``map_feats`` (P, L, 9),
    ``map_mask`` (P, L). Coordinates are divided by ``coord_scale``.

    Args:
        max_agents (int): A.
        max_polylines (int): P.
        points_per_polyline (int): L.
        spacing (float): resampling step (metres).
        max_dist (float): crop radius (metres).
        lookahead (float): forward offset of the crop centre (metres).
        coord_scale (float): normalisation of coordinates (metres).
    """

    def __init__(self, max_agents=32, max_polylines=96, points_per_polyline=10, spacing=2.0,
                 max_dist=80.0, lookahead=20.0, coord_scale=50.0):
        self.max_agents = max_agents
        self.max_polylines = max_polylines
        self.points_per_polyline = points_per_polyline
        self.spacing = spacing
        self.max_dist = max_dist
        self.lookahead = lookahead
        self.coord_scale = coord_scale

    def _agents(self, agents, num_hist):
        feats = np.zeros((self.max_agents, num_hist, 10), np.float32)
        mask = np.zeros((self.max_agents, num_hist), bool)
        if len(agents['xy']) == 0:
            return feats, mask
        valid = agents['valid']
        last = valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
        last_xy = agents['xy'][np.arange(len(last)), last]
        dist = np.linalg.norm(last_xy, axis=-1)
        order = [i for i in np.argsort(dist) if dist[i] <= self.max_dist][:self.max_agents]
        for j, i in enumerate(order):
            f = feats[j]
            f[:, :2] = agents['xy'][i] / self.coord_scale
            f[:, 2], f[:, 3] = np.sin(agents['yaw'][i]), np.cos(agents['yaw'][i])
            f[:, 4:6] = agents['size'][i] / 5.0
            f[:, 6 + min(int(agents['type'][i]), 3)] = 1.0
            mask[j] = valid[i]
        feats[~mask] = 0.0
        return feats, mask

    def _map(self, polylines, types):
        n = self.points_per_polyline
        pieces, ptypes, pdist = [], [], []
        centre = np.array([self.lookahead, 0.0])
        for poly, typ in zip(polylines, types):
            if len(poly) < 2 or np.linalg.norm(poly - centre, axis=1).min() > self.max_dist + 50:
                continue
            res = _resample(poly.astype(np.float64), self.spacing)
            for start in range(0, max(len(res) - 1, 1), n - 1):
                piece = res[start:start + n]
                if len(piece) < 2:
                    continue
                d = np.linalg.norm(piece - centre, axis=1).min()
                if d <= self.max_dist:
                    pieces.append(piece)
                    ptypes.append(int(typ))
                    pdist.append(d)
        feats = np.zeros((self.max_polylines, n, 9), np.float32)
        mask = np.zeros((self.max_polylines, n), bool)
        for j, i in enumerate(np.argsort(pdist)[:self.max_polylines]):
            piece = pieces[i]
            k = len(piece)
            direction = np.diff(piece, axis=0, append=piece[-1:] * 2 - piece[-2:-1])
            direction /= np.linalg.norm(direction, axis=1, keepdims=True).clip(1e-6)
            feats[j, :k, :2] = piece / self.coord_scale
            feats[j, :k, 2:4] = direction
            feats[j, :k, 4 + min(ptypes[i], 4)] = 1.0
            mask[j, :k] = True
        return feats, mask

    def transform(self, results):
        """Add ``agent_feats``, ``agent_mask``, ``map_feats``, ``map_mask``."""
        num_hist = len(results['hist_xy'])
        results['agent_feats'], results['agent_mask'] = self._agents(results['agents'], num_hist)
        results['map_feats'], results['map_mask'] = self._map(results['map_polylines'],
                                                              results['map_types'])
        return results


@TRANSFORMS.register_module()
class RasterizeScene(BaseTransform):
    """Draw a BEV raster of the real map polylines and the agent / ego history (OpenCV).

    Channels (uint8, 0/255 or faded by age): 0 drivable area (lane polygons), 1 lane centre
    lines, 2 road lines and edges, 3 agent boxes at t0, 4 agent boxes over the history
    (brighter = more recent), 5 ego history boxes. Image rows run from ``x_range[1]`` (top,
    ahead) to ``x_range[0]``, columns from ``y_range[1]`` (left) to ``y_range[0]``.
    Output ``raster`` (6, H, W) uint8.

    Args:
        x_range (tuple[float]): longitudinal extent (metres).
        y_range (tuple[float]): lateral extent (metres).
        resolution (float): metres per pixel.
        history_stride (int): draw every n-th history step in the history channels.
    """

    def __init__(self, x_range=(-16.0, 80.0), y_range=(-48.0, 48.0), resolution=1.0,
                 history_stride=3):
        self.x_range = x_range
        self.y_range = y_range
        self.resolution = resolution
        self.history_stride = history_stride
        self.height = int(round((x_range[1] - x_range[0]) / resolution))
        self.width = int(round((y_range[1] - y_range[0]) / resolution))

    def _pix(self, xy):
        # 8 bits of sub-pixel precision for cv2 drawing
        row = (self.x_range[1] - xy[..., 0]) / self.resolution
        col = (self.y_range[1] - xy[..., 1]) / self.resolution
        return np.round(np.stack([col, row], -1) * 256).astype(np.int32)

    def _boxes(self, xy, yaw, size):
        c, s = np.cos(yaw), np.sin(yaw)
        half = size / 2.0
        corners = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], np.float32)
        loc = corners[None] * half[:, None, :]
        rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
        return xy[:, None, :] + np.einsum('nij,nkj->nki', rot, loc)

    def transform(self, results):
        """Add ``raster`` (see the class docstring)."""
        img = np.zeros((6, self.height, self.width), np.uint8)
        areas = [self._pix(a) for a in results.get('areas', []) if len(a) >= 3]
        if areas:
            cv2.fillPoly(img[0], areas, 255, lineType=cv2.LINE_AA, shift=8)
        for poly, typ in zip(results['map_polylines'], results['map_types']):
            ch = 1 if typ == 0 else 2
            cv2.polylines(img[ch], [self._pix(poly)], False, 255, 1, cv2.LINE_AA, shift=8)
        ag = results['agents']
        num_hist = len(results['hist_xy'])
        if len(ag['xy']):
            size = np.maximum(ag['size'], 0.5)
            steps = list(range(num_hist - 1, -1, -self.history_stride))
            for step in steps:
                vis = ag['valid'][:, step]
                if not vis.any():
                    continue
                boxes = self._boxes(ag['xy'][vis, step], ag['yaw'][vis, step], size[vis])
                value = int(255 * (step + 1) / num_hist)
                cv2.fillPoly(img[4], list(self._pix(boxes)), value, shift=8)
                if step == num_hist - 1:
                    cv2.fillPoly(img[3], list(self._pix(boxes)), 255, shift=8)
        ego_size = np.array([[4.5, 2.0]], np.float32)
        for step in range(num_hist - 1, -1, -self.history_stride):
            box = self._boxes(results['hist_xy'][step:step + 1], results['hist_yaw'][step:step + 1],
                              ego_size)
            cv2.fillPoly(img[5], list(self._pix(box)), int(255 * (step + 1) / num_hist), shift=8)
        results['raster'] = img
        return results


_ACTION_CACHE = {}


@TRANSFORMS.register_module()
class ComputeTeacherActions(BaseTransform):
    """Teacher unicycle controls of the label trajectory (``teacher_actions`` (T, 2)).

    ``v0`` comes from the ego history (ridge least squares, as the student uses at inference);
    the controls from :func:`~projects.common.structures.trajectory.unicycle_inverse`
    (smoothness-regularised Gauss-Newton). Results are cached per ``sample_id`` (the inverse
    costs tens of milliseconds); a mirrored sample (``flipped``) uses the cached controls with
    the curvature negated, which is exact for the mirror image.

    Args:
        smooth_weight (float): smoothness weight of the inverse.
        dt (float): step (s).
    """

    def __init__(self, smooth_weight=0.1, dt=0.1):
        self.smooth_weight = smooth_weight
        self.dt = dt

    def transform(self, results):
        """Add ``teacher_actions`` (see the class docstring)."""
        from projects.common.structures.trajectory import estimate_velocity_ls, unicycle_inverse
        flipped = results.get('flipped', False)
        key = (str(results.get('sample_id')), self.smooth_weight)
        if key not in _ACTION_CACHE:
            sign = np.array([1.0, -1.0]) if flipped else np.array([1.0, 1.0])
            hist = torch.as_tensor(results['hist_xy'] * sign, dtype=torch.float64)
            gt = torch.as_tensor(results['gt_traj'][:, :2] * sign, dtype=torch.float64)
            v0 = estimate_velocity_ls(hist, dt=self.dt)[..., 0]
            _ACTION_CACHE[key] = unicycle_inverse(gt, v0, self.dt,
                                                  smooth_weight=self.smooth_weight).numpy()
        act = _ACTION_CACHE[key].astype(np.float32).copy()
        if flipped:
            act[:, 1] = -act[:, 1]
        results['teacher_actions'] = act
        return results


@TRANSFORMS.register_module()
class PackDriveInputs(BaseTransform):
    """Pack model inputs and targets into tensors.

    ``inputs``: the keys of ``input_keys`` present in the results (e.g. ``agent_feats``,
    ``agent_mask``, ``map_feats``, ``map_mask``, ``raster``, ``frames``) plus ``ego_hist``
    (H, 6) ``[x, y, sin, cos, vx, vy]`` and ``hist_xy`` (H, 2).
    ``data_samples``: ``gt_traj`` (T, 3), ``gt_mask`` (T,), ``hist_xy``, ``sample_id`` and,
    when present, ``coc_embedding`` (384,).

    Args:
        input_keys (tuple[str]): modality keys to pack.
        dt (float): step (s) for the history velocities.

    Raises:
        KeyError: if none of ``input_keys`` is present (names them).
    """

    def __init__(self, input_keys=('agent_feats', 'agent_mask', 'map_feats', 'map_mask'),
                 dt=0.1):
        self.input_keys = tuple(input_keys)
        self.dt = dt

    def transform(self, results):
        """Return ``dict(inputs=..., data_samples=...)``."""
        present = [k for k in self.input_keys if k in results]
        if not present:
            raise KeyError(f'PackDriveInputs: none of {self.input_keys} in the results '
                           f'(keys: {sorted(results)})')
        hist_xy = torch.as_tensor(results['hist_xy'], dtype=torch.float32)
        hist_yaw = torch.as_tensor(results['hist_yaw'], dtype=torch.float32)
        inputs = {k: torch.as_tensor(np.ascontiguousarray(results[k])) for k in present}
        inputs['ego_hist'] = ego_history_features(hist_xy, hist_yaw, self.dt)
        inputs['hist_xy'] = hist_xy
        gt = torch.as_tensor(results['gt_traj'], dtype=torch.float32)
        samples = dict(gt_traj=gt, hist_xy=hist_xy,
                       gt_mask=torch.as_tensor(results.get('gt_mask', np.ones(len(gt), bool))),
                       sample_id=str(results.get('sample_id', results.get('sample_idx', ''))))
        if 'teacher_actions' in results:
            samples['teacher_actions'] = torch.as_tensor(results['teacher_actions'])
        if 'coc_embedding' in results:
            samples['coc_embedding'] = torch.as_tensor(results['coc_embedding'],
                                                       dtype=torch.float32)
        return dict(inputs=inputs, data_samples=samples)
