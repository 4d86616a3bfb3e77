"""Spinning-LiDAR simulation against a site's semantic meshes (Open3D / Embree ray casting).

Part of the scene simulation (:mod:`.scene` gives the overview).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import open3d as o3d

from .mesh import CATEGORY_LABEL, SceneMesh, _raycasting_scene

#: LiDAR reflectivity per class label (free unused), in [0, 1].
REFLECTIVITY = np.array([0.40, 0.60, 0.50, 0.15, 0.35, 0.75, 0.0], dtype=np.float32)


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
        hit = np.isfinite(t) & (t <= spec.max_range)
        t = t[hit].astype(np.float64)
        gid = res['geometry_ids'].numpy()[hit].astype(np.int64)
        normals = res['primitive_normals'].numpy()[hit].astype(np.float64)
        labels = self._labels[gid]
        cos_inc = np.abs(np.einsum('ij,ij->i', normals, d_world[hit]))
        intensity = np.clip(REFLECTIVITY[labels] * (0.2 + 0.8 * cos_inc), 0.0, 1.0)
        pts_body = np.asarray(spec.mount)[None] + d_body[hit] * t[:, None]
        out = np.empty((len(t), 4), np.float32)
        out[:, :3] = pts_body
        out[:, 3] = intensity
        return out, labels.astype(np.uint8)
