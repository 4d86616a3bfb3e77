"""Per-cell motion targets of the moving agents of a window (BEV agent flow).

The supervision of :class:`~projects.aerialworld.models.AgentMotionHead`: for every BEV cell
of the last history frame that lies on a moving agent (vehicle, pedestrian, drone), the
displacement of that point of the agent at each future step, in the last history frame's ego
coordinates. This is the per-cell future-displacement target of MotionNet (P. Wu, S. Chen,
D. Metaxas, "MotionNet: Joint Perception and Motion Prediction for Autonomous Driving Based on
Bird's Eye View Maps", CVPR 2020), built from the traffic annotations the PLATEAU converter
writes with each frame (``<session>/annotations/<frame>.json``, track ids and boxes; see
:func:`projects.aerialworld.converters.traffic_boxes.annotation_record`).
"""
import json
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from projects.common.structures.occupancy_warp import check_point_cloud_range
from projects.registry import TRANSFORMS
from .loading import InvalidSampleError, _get_paths


def _read_agents(path: str) -> Tuple[Tuple[float, float, float], Dict[int, tuple]]:
    """Ego pose ``(x, y, yaw)`` and ``{track_id: (cx, cy, yaw, length, width)}`` (site frame).

    Raises:
        FileNotFoundError: If ``path`` is missing.
        InvalidSampleError: If it is not an annotation record (message names the file and key).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'agent annotation file not found: {path}')
    try:
        with open(path) as f:
            rec = json.load(f)
        ego = rec['ego']
        ego_pose = (float(ego['x']), float(ego['y']), float(ego['yaw']))
        agents = {}
        for a in rec['agents']:
            agents[int(a['track_id'])] = (float(a['center'][0]), float(a['center'][1]),
                                          float(a['yaw']), float(a['size'][0]),
                                          float(a['size'][1]))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise InvalidSampleError(f'agent annotation file {path} is not a traffic annotation '
                                 f'record (needs ego.x/y/yaw and agents[].track_id/center/'
                                 f'yaw/size): {type(err).__name__}: {err}') from err
    return ego_pose, agents


def _to_ego(ego: Tuple[float, float, float], x: np.ndarray, y: np.ndarray,
            yaw: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Site-frame positions / headings in the ego frame ``ego = (x, y, yaw)``."""
    c, s = np.cos(ego[2]), np.sin(ego[2])
    dx, dy = x - ego[0], y - ego[1]
    return c * dx + s * dy, -s * dx + c * dy, yaw - ego[2]


@TRANSFORMS.register_module()
class LoadAgentFlow(BaseTransform):
    """BEV displacement targets of the moving agents, from the window's annotations.

    For each agent box of the last history frame ``L = num_history - 1`` and each future step
    ``f = 1..F``, the agent's rigid planar motion from frame ``L`` to ``L + f`` (both boxes
    expressed in frame ``L``'s ego coordinates) is applied to the centres of the BEV cells the
    box covers (footprint grown by ``margin``): ``p_f = c_f + R(yaw_f) R(-yaw_L) (p - c_L)``;
    the target is ``p_f - p`` (metres). Cells on no agent, and steps where the agent has left
    the annotations, are masked out. An agent that turns therefore gives each of its cells its
    own displacement (the rotation is in the target).

    Adds ``results['agent_flow']`` float32 ``(F, 2, X, Y)`` (x, y displacement, metres, in the
    ego frame of frame ``L``) and ``results['agent_flow_mask']`` bool ``(F, X, Y)``.

    Args:
        point_cloud_range (Sequence[float]): ``[x_min, y_min, z_min, x_max, y_max, z_max]``
            (metres) of the ego grid.
        grid_size (Sequence[int]): ``(X, Y, Z)`` voxels.
        margin (float): Growth of each footprint (metres) so that every voxel the box
            touches gets a target. Defaults to 0.4 (half a 0.8 m voxel).

    Raises:
        ValueError: On a malformed range or grid.
        KeyError: If the results have no ``ann_paths`` (an index without annotations).
        FileNotFoundError / InvalidSampleError: On a missing / malformed annotation file.
    """

    def __init__(self, point_cloud_range: Sequence[float], grid_size: Sequence[int],
                 margin: float = 0.4) -> None:
        rng = check_point_cloud_range(point_cloud_range, 'LoadAgentFlow: point_cloud_range')
        if len(grid_size) != 3 or min(int(g) for g in grid_size) < 1:
            raise ValueError(f'LoadAgentFlow: grid_size must be (X, Y, Z), got {grid_size}')
        self.point_cloud_range = rng
        self.grid_size = tuple(int(g) for g in grid_size)
        self.margin = float(margin)
        nx, ny = self.grid_size[:2]
        xs = rng[0] + (np.arange(nx) + 0.5) * (rng[3] - rng[0]) / nx
        ys = rng[1] + (np.arange(ny) + 0.5) * (rng[4] - rng[1]) / ny
        self._cx, self._cy = np.meshgrid(xs, ys, indexing='ij')  # (X, Y) cell centres

    def transform(self, results: dict) -> dict:
        """Compute the targets of one window.

        Args:
            results (dict): Needs ``ann_paths`` (T paths), ``num_history`` and
                ``num_future``.

        Returns:
            dict: ``results`` with ``agent_flow`` and ``agent_flow_mask``.
        """
        paths: List[str] = _get_paths(results, 'ann_paths', type(self).__name__)
        hist, fut = int(results['num_history']), int(results['num_future'])
        if len(paths) < hist + fut or any(p is None for p in paths[hist - 1:hist + fut]):
            raise KeyError(f'LoadAgentFlow: the window needs an annotation path for frames '
                           f'{hist - 1}..{hist + fut - 1} (ann_path in the index; data '
                           f'converted with traffic), got {paths}')
        nx, ny = self.grid_size[:2]
        flow = np.zeros((fut, 2, nx, ny), np.float32)
        mask = np.zeros((fut, nx, ny), bool)
        ego_l, agents_l = _read_agents(paths[hist - 1])
        future = [_read_agents(p)[1] for p in paths[hist:hist + fut]]
        for tid, (ax, ay, ayaw, length, width) in agents_l.items():
            cx, cy, cyaw = _to_ego(ego_l, np.float64(ax), np.float64(ay), np.float64(ayaw))
            cos, sin = np.cos(cyaw), np.sin(cyaw)
            dx, dy = self._cx - cx, self._cy - cy
            u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # cell centre in the box frame
            on = (np.abs(u) <= 0.5 * length + self.margin) & \
                (np.abs(v) <= 0.5 * width + self.margin)
            if not on.any():
                continue
            for f, agents_f in enumerate(future):
                if tid not in agents_f:
                    continue
                bx, by, byaw = agents_f[tid][:3]
                fx, fy, fyaw = _to_ego(ego_l, np.float64(bx), np.float64(by), np.float64(byaw))
                c2, s2 = np.cos(fyaw), np.sin(fyaw)
                px = fx + c2 * u[on] - s2 * v[on]
                py = fy + s2 * u[on] + c2 * v[on]
                flow[f, 0][on] = px - self._cx[on]
                flow[f, 1][on] = py - self._cy[on]
                mask[f][on] = True
        results['agent_flow'] = flow
        results['agent_flow_mask'] = mask
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(point_cloud_range={self.point_cloud_range}, '
                f'grid_size={self.grid_size}, margin={self.margin})')
