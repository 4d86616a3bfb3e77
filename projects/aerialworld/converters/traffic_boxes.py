"""Oriented 3-D agent boxes: overlap tests, point containment, voxelisation, LiDAR meshes, JSON.

Part of the traffic simulation (:mod:`.traffic`). A box is centre ``(x, y, z)`` (m, site frame,
z above the ground datum), size ``(l, w, h)`` (m, length along the heading) and yaw (rad,
counter-clockwise from east); boxes are upright (no roll / pitch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['AgentBoxes', 'box_corners_xy', 'boxes_overlap_xy', 'points_in_boxes',
           'box_meshes', 'voxelise_boxes', 'annotation_record']


@dataclass
class AgentBoxes:
    """The agent boxes of one instant.

    Attributes:
        centers (np.ndarray): (N, 3) float64 box centres (m, site frame).
        sizes (np.ndarray): (N, 3) float64 length, width, height (m).
        yaw (np.ndarray): (N,) float64 heading (rad, counter-clockwise from east).
        velocity (np.ndarray): (N, 3) float64 m/s, site frame.
        labels (np.ndarray): (N,) int64 semantic label (index in the traffic class list,
            :data:`projects.aerialworld.datasets.classes.PLATEAU_TRAFFIC_CLASSES`).
        track_ids (np.ndarray): (N,) int64 track identity (constant over an agent's life).
        types (list[str]): (N,) agent type (``car``, ``bus``, ``pedestrian``, ``drone``).
    """

    centers: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    yaw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    velocity: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    types: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.yaw)

    def corners_xy(self) -> np.ndarray:
        """(N, 4, 2) float64 footprint corners (counter-clockwise)."""
        return box_corners_xy(self.centers[:, :2], self.sizes[:, 0], self.sizes[:, 1],
                              self.yaw)


def box_corners_xy(centers: np.ndarray, length: np.ndarray, width: np.ndarray,
                   yaw: np.ndarray) -> np.ndarray:
    """Footprint corners of oriented rectangles.

    Args:
        centers (np.ndarray): (N, 2) float centres (m).
        length (np.ndarray): (N,) extent along the heading (m).
        width (np.ndarray): (N,) extent across it (m).
        yaw (np.ndarray): (N,) heading (rad).

    Returns:
        np.ndarray: (N, 4, 2) float64 corners, counter-clockwise from rear-right.
    """
    centers = np.asarray(centers, np.float64).reshape(-1, 2)
    hl = 0.5 * np.asarray(length, np.float64).reshape(-1)
    hw = 0.5 * np.asarray(width, np.float64).reshape(-1)
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.stack([np.stack([-hl, -hw], -1), np.stack([hl, -hw], -1),
                      np.stack([hl, hw], -1), np.stack([-hl, hw], -1)], 1)  # (N, 4, 2)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], 1)  # (N, 2, 2)
    return np.einsum('nij,nkj->nki', rot, local) + centers[:, None]


def boxes_overlap_xy(a: np.ndarray, b: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Pairwise overlap of convex quadrilaterals by the separating-axis theorem.

    Two rectangles are disjoint iff their projections onto one of the four edge normals are
    disjoint (Gottschalk et al., "OBBTree", SIGGRAPH 1996, in 2-D).

    Args:
        a (np.ndarray): (N, 4, 2) corners.
        b (np.ndarray): (M, 4, 2) corners.
        margin (float): projections closer than this (m) count as overlapping.

    Returns:
        np.ndarray: (N, M) bool, True where the footprints overlap (touching counts when
        ``margin > 0``).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), bool)
    axes_a = a[:, [1, 2]] - a[:, [0, 1]]  # two edge directions per box (N, 2, 2)
    axes_b = b[:, [1, 2]] - b[:, [0, 1]]
    axes_a /= np.linalg.norm(axes_a, axis=-1, keepdims=True)
    axes_b /= np.linalg.norm(axes_b, axis=-1, keepdims=True)
    sep = np.zeros((len(a), len(b)), bool)
    for axes, from_a in ((axes_a, True), (axes_b, False)):
        for k in range(2):
            ax = axes[:, k]  # (N or M, 2)
            if from_a:
                pa = np.einsum('nci,ni->nc', a, ax)[:, None, :]  # (N, 1, 4)
                pb = np.einsum('mci,ni->nmc', b, ax)  # (N, M, 4)
            else:
                pa = np.einsum('nci,mi->nmc', a, ax)
                pb = np.einsum('mci,mi->mc', b, ax)[None]
            sep |= ((pa.max(-1) + margin < pb.min(-1)) | (pb.max(-1) + margin < pa.min(-1)))
    return ~sep


def points_in_boxes(points: np.ndarray, boxes: AgentBoxes, tol: float = 1e-6) -> np.ndarray:
    """Index of the box containing each point.

    Args:
        points (np.ndarray): (P, 3) float points (m, site frame).
        boxes (AgentBoxes): N boxes.
        tol (float): points this far (m) outside a face still count as inside.

    Returns:
        np.ndarray: (P,) int64 box index, -1 outside every box (the first box wins).
    """
    points = np.asarray(points, np.float64).reshape(-1, 3)
    out = np.full(len(points), -1, np.int64)
    for n in range(len(boxes)):
        d = points - boxes.centers[n]
        c, s = np.cos(boxes.yaw[n]), np.sin(boxes.yaw[n])
        u = c * d[:, 0] + s * d[:, 1]
        v = -s * d[:, 0] + c * d[:, 1]
        half = 0.5 * boxes.sizes[n] + tol
        inside = (np.abs(u) <= half[0]) & (np.abs(v) <= half[1]) & (np.abs(d[:, 2]) <= half[2])
        out[inside & (out < 0)] = n
    return out


_CUBE = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                  [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], np.float64) * 0.5
_CUBE_FACES = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
                        [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]],
                       np.int64)


def box_meshes(boxes: AgentBoxes) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed triangle meshes of the boxes (12 outward-facing triangles each).

    Args:
        boxes (AgentBoxes): N boxes.

    Returns:
        tuple: ``vertices`` (8N, 3) float64, ``faces`` (12N, 3) int64, ``box_of_face``
        (12N,) int64 box index of every face.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
    local = _CUBE[None] * boxes.sizes[:, None]  # (N, 8, 3)
    c, s = np.cos(boxes.yaw)[:, None], np.sin(boxes.yaw)[:, None]
    world = np.stack([c * local[..., 0] - s * local[..., 1],
                      s * local[..., 0] + c * local[..., 1], local[..., 2]], -1)
    world += boxes.centers[:, None]
    faces = (_CUBE_FACES[None] + 8 * np.arange(n)[:, None, None]).reshape(-1, 3)
    return world.reshape(-1, 3), faces, np.repeat(np.arange(n), 12)


def voxelise_boxes(occ: np.ndarray, boxes: AgentBoxes, point_cloud_range: Sequence[float],
                   voxel_size: Sequence[float], ego_xy: Sequence[float], ego_yaw: float,
                   free_label: int, z_offset: float = 0.0) -> np.ndarray:
    """Write agent labels into an ego-centred occupancy grid, over free voxels only.

    Every voxel a box occupies gets the box's label unless the static scene already holds it:
    the box is sampled on a lattice (spacing at most half the smallest voxel side, faces
    included) and each voxel containing a sample is marked.

    Args:
        occ (np.ndarray): (X, Y, Z) uint8 labels, modified in place.
        boxes (AgentBoxes): the agents (site frame).
        point_cloud_range (Sequence[float]): (6,) grid range (m, x / y relative to the ego, z
            in the grid's z reference).
        voxel_size (Sequence[float]): (3,) metres.
        ego_xy (Sequence[float]): (2,) ego position in the site frame (m).
        ego_yaw (float): ego heading (rad); the grid's x axis points along it.
        free_label (int): label of empty space (only such voxels are written).
        z_offset (float): subtracted from world z to get grid z (0 for ground-referenced grids).

    Returns:
        np.ndarray: (N,) int64 number of voxels labelled per box.
    """
    r = np.asarray(point_cloud_range, np.float64)
    vs = np.asarray(voxel_size, np.float64)
    X, Y, Z = occ.shape
    step = 0.5 * vs.min()
    counts = np.zeros(len(boxes), np.int64)
    c0, s0 = np.cos(ego_yaw), np.sin(ego_yaw)
    for n in range(len(boxes)):
        size = boxes.sizes[n]
        # faces included, pulled in by 0.1 mm so a face on a voxel boundary stays out of the
        # next voxel
        axes = [np.linspace(-0.5, 0.5, max(2, int(np.ceil(size[k] / step)) + 1))
                * max(size[k] - 2e-4, 0.0) for k in range(3)]
        u, v, w = np.meshgrid(*axes, indexing='ij')
        c, s = np.cos(boxes.yaw[n]), np.sin(boxes.yaw[n])
        wx = boxes.centers[n, 0] + c * u - s * v - ego_xy[0]
        wy = boxes.centers[n, 1] + s * u + c * v - ego_xy[1]
        ex = c0 * wx + s0 * wy  # world -> ego (rotate by -ego_yaw)
        ey = -s0 * wx + c0 * wy
        ez = boxes.centers[n, 2] + w - z_offset
        i = np.floor((ex - r[0]) / vs[0]).astype(np.int64).ravel()
        j = np.floor((ey - r[1]) / vs[1]).astype(np.int64).ravel()
        k = np.floor((ez - r[2]) / vs[2]).astype(np.int64).ravel()
        ok = (i >= 0) & (i < X) & (j >= 0) & (j < Y) & (k >= 0) & (k < Z)
        if not ok.any():
            continue
        flat = np.unique((i[ok] * Y + j[ok]) * Z + k[ok])
        view = occ.reshape(-1)
        flat = flat[view[flat] == free_label]
        view[flat] = boxes.labels[n]
        counts[n] = flat.size
    return counts


def annotation_record(boxes: AgentBoxes, timestamp: float, class_names: Sequence[str],
                      ego_xy: Sequence[float], ego_z: float, ego_yaw: float,
                      num_lidar_pts: Optional[np.ndarray] = None,
                      num_voxels: Optional[np.ndarray] = None, extra: Optional[dict] = None
                      ) -> dict:
    """The per-frame annotation JSON (nuScenes ``sample_annotation``-like, one file per frame).

    Args:
        boxes (AgentBoxes): the agents at the frame.
        timestamp (float): seconds from the session start.
        class_names (Sequence[str]): label -> class name.
        ego_xy (Sequence[float]): (2,) ego position (m, site frame).
        ego_z (float): ego height (m).
        ego_yaw (float): ego heading (rad).
        num_lidar_pts (np.ndarray, optional): (N,) LiDAR returns on each box.
        num_voxels (np.ndarray, optional): (N,) voxels labelled with each box.
        extra (dict, optional): further top-level keys.

    Returns:
        dict: ``timestamp``, ``frame`` (``'site'``), ``box_convention``, ``agents``: a list with
        per agent ``track_id``, ``class``, ``label``, ``type``, ``center`` [x, y, z] and
        ``velocity`` [vx, vy, vz] (site frame), ``size`` [l, w, h], ``yaw``, ``rotation``
        (quaternion [w, x, y, z]), ``center_ego`` and ``yaw_ego`` (the ego grid's frame: x along
        the ego heading, z unchanged), ``velocity_ego``, ``num_lidar_pts``, ``num_voxels``.
    """
    c0, s0 = np.cos(ego_yaw), np.sin(ego_yaw)
    agents = []
    for n in range(len(boxes)):
        cx, cy, cz = (float(v) for v in boxes.centers[n])
        dx, dy = cx - ego_xy[0], cy - ego_xy[1]
        vx, vy, vz = (float(v) for v in boxes.velocity[n])
        yaw = float(boxes.yaw[n])
        rec = {
            'track_id': int(boxes.track_ids[n]),
            'class': class_names[int(boxes.labels[n])], 'label': int(boxes.labels[n]),
            'type': boxes.types[n], 'center': [cx, cy, cz],
            'size': [float(v) for v in boxes.sizes[n]], 'yaw': yaw,
            'rotation': [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))],
            'velocity': [vx, vy, vz],
            'center_ego': [float(c0 * dx + s0 * dy), float(-s0 * dx + c0 * dy), cz],
            'yaw_ego': float(np.angle(np.exp(1j * (yaw - ego_yaw)))),
            'velocity_ego': [float(c0 * vx + s0 * vy), float(-s0 * vx + c0 * vy), vz],
        }
        if num_lidar_pts is not None:
            rec['num_lidar_pts'] = int(num_lidar_pts[n])
        if num_voxels is not None:
            rec['num_voxels'] = int(num_voxels[n])
        agents.append(rec)
    out = {'timestamp': float(timestamp), 'frame': 'site',
           'box_convention': 'center [x, y, z] m (z above the ground datum), size [l, w, h] m '
                             '(l along yaw), yaw rad counter-clockwise from east',
           'ego': {'x': float(ego_xy[0]), 'y': float(ego_xy[1]), 'z': float(ego_z),
                   'yaw': float(ego_yaw)},
           'agents': agents}
    if extra:
        out.update(extra)
    return out
