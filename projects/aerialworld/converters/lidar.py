"""Spinning-LiDAR simulation against a site's semantic meshes (Open3D / Embree ray casting).

Part of the scene simulation (:mod:`.scene` gives the overview).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import open3d as o3d

from .mesh import CATEGORY_LABEL, SceneMesh, _raycasting_scene
from .traffic_boxes import AgentBoxes, box_meshes

#: LiDAR reflectivity per class label of
#: :data:`projects.aerialworld.datasets.classes.PLATEAU_TRAFFIC_CLASSES` (the static labels
#: 0..5 are the same in both class lists; free is never hit), in [0, 1].
REFLECTIVITY = np.array([0.40, 0.60, 0.50, 0.15, 0.35, 0.75, 0.55, 0.30, 0.45, 0.0],
                        dtype=np.float32)


# ----------------------------------------------------------------------------- LiDAR
@dataclass(frozen=True)
class LidarSpec:
    """A spinning multi-beam LiDAR.

    Attributes:
        elevations_deg (tuple): (2,) lowest and highest beam elevation (deg, 0 = horizontal in
            the body frame, positive up).
        num_beams (int): beams (rings).
        azimuth_steps (int): firings per revolution.
        max_range (float): metres; farther returns are misses and dropped.
        mount (tuple): (3,) sensor position in the body frame (m).
    """

    elevations_deg: Tuple[float, float] = (-25.0, 15.0)
    num_beams: int = 32
    azimuth_steps: int = 1024
    max_range: float = 100.0
    mount: Tuple[float, float, float] = (0.0, 0.0, 1.8)

    def directions(self) -> np.ndarray:
        """(num_beams * azimuth_steps, 3) float64 unit ray directions in the body frame."""
        el = np.deg2rad(np.linspace(self.elevations_deg[0], self.elevations_deg[1],
                                    self.num_beams))
        az = np.linspace(-np.pi, np.pi, self.azimuth_steps, endpoint=False)
        e, a = np.meshgrid(el, az, indexing='ij')
        return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)],
                        -1).reshape(-1, 3)


#: Sensor presets: a 32-beam spinning LiDAR on the rover roof, and the same sensor type on a
#: drone with a downward vertical field of view and a longer range.
LIDAR_PRESETS = {
    'rover': LidarSpec((-25.0, 15.0), 32, 1024, 100.0, (0.0, 0.0, 1.8)),
    'drone': LidarSpec((-85.0, -5.0), 32, 1024, 150.0, (0.0, 0.0, -0.1)),
}


class LidarSimulator:
    """Ray-cast LiDAR sweeps against a site's semantic meshes (Open3D / Embree).

    Args:
        scene (SceneMesh): the site.
    """

    def __init__(self, scene: SceneMesh):
        cats = list(scene.meshes)
        self._scene = _raycasting_scene([scene.meshes[c] for c in cats])
        self._labels = np.array([CATEGORY_LABEL[c] for c in cats], np.int64)
        self._dirs: Dict[LidarSpec, np.ndarray] = {}

    def scan(self, position: np.ndarray, rotation: np.ndarray, spec: LidarSpec
             ) -> Tuple[np.ndarray, np.ndarray]:
        """One sweep from a body pose.

        Args:
            position (np.ndarray): (3,) body origin in the site frame (m).
            rotation (np.ndarray): (3, 3) body-to-world rotation matrix.
            spec (LidarSpec): the sensor.

        Returns:
            tuple: ``points`` (N, 4) float32 x, y, z (m, body frame) and intensity in [0, 1];
            ``labels`` (N,) uint8 class label of the surface hit. Misses are dropped.
        """
        points, labels, _ = self.scan_with_agents(position, rotation, spec, None)
        return points, labels

    def scan_with_agents(self, position: np.ndarray, rotation: np.ndarray, spec: LidarSpec,
                         agents: Optional[AgentBoxes]
                         ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One sweep from a body pose through the static scene and moving agent boxes.

        The boxes (:func:`.traffic_boxes.box_meshes`) go into a per-sweep Open3D scene; each
        ray keeps the nearer of its static and agent hits.

        Args:
            position (np.ndarray): (3,) body origin in the site frame (m).
            rotation (np.ndarray): (3, 3) body-to-world rotation matrix.
            spec (LidarSpec): the sensor.
            agents (AgentBoxes | None): moving agents at the sweep's time (labels in the
                traffic class list).

        Returns:
            tuple: ``points`` (N, 4) float32 (as :meth:`scan`), ``labels`` (N,) uint8 and
            ``box_index`` (N,) int64: the agent box each return hit (-1: static scene).
        """
        if spec not in self._dirs:
            self._dirs[spec] = spec.directions()
        d_body = self._dirs[spec]
        rot = np.asarray(rotation, np.float64)
        origin = np.asarray(position, np.float64) + rot @ np.asarray(spec.mount, np.float64)
        d_world = d_body @ rot.T
        rays = np.empty((len(d_world), 6), np.float32)
        rays[:, :3] = origin
        rays[:, 3:] = d_world
        res = self._scene.cast_rays(o3d.core.Tensor(rays))
        t = res['t_hit'].numpy()
        labels_all = self._labels[np.minimum(res['geometry_ids'].numpy().astype(np.int64),
                                             len(self._labels) - 1)]
        normals_all = res['primitive_normals'].numpy()
        box_all = np.full(len(t), -1, np.int64)
        if agents is not None and len(agents):
            v, f, box_of_face = box_meshes(agents)
            dyn = o3d.t.geometry.RaycastingScene()
            dyn.add_triangles(o3d.core.Tensor(v.astype(np.float32)),
                              o3d.core.Tensor(f.astype(np.uint32)))
            rd = dyn.cast_rays(o3d.core.Tensor(rays))
            td = rd['t_hit'].numpy()
            nearer = np.isfinite(td) & (td < t)
            t = np.where(nearer, td, t)
            box_all[nearer] = box_of_face[rd['primitive_ids'].numpy()[nearer].astype(np.int64)]
            labels_all = np.where(nearer, agents.labels[np.maximum(box_all, 0)], labels_all)
            normals_all = np.where(nearer[:, None], rd['primitive_normals'].numpy(),
                                   normals_all)
        hit = np.isfinite(t) & (t <= spec.max_range)
        t = t[hit].astype(np.float64)
        normals = normals_all[hit].astype(np.float64)
        labels = labels_all[hit]
        cos_inc = np.abs(np.einsum('ij,ij->i', normals, d_world[hit]))
        intensity = np.clip(REFLECTIVITY[labels] * (0.2 + 0.8 * cos_inc), 0.0, 1.0)
        pts_body = np.asarray(spec.mount)[None] + d_body[hit] * t[:, None]
        out = np.empty((len(t), 4), np.float32)
        out[:, :3] = pts_body
        out[:, 3] = intensity
        return out, labels.astype(np.uint8), box_all[hit]
