"""Raster map of a traffic area and drivable corridors through open ground.

Part of the traffic simulation (:mod:`.traffic`); the lane graph built on it is in
:mod:`.traffic_roads`. Everything is 2-D on a raster of the traffic area (cell size
``resolution``, default 0.25 m):

* :class:`TrafficMap`: obstacles (building / structure footprints, their top heights) and the
  road polygons, either from shapely polygons or from a :class:`~.mesh.SceneMesh`.
* :func:`derive_corridors`: where a site has no road polygons, drivable corridors from the open
  ground: the medial axis (Blum, 1967; ``skimage.morphology.medial_axis``) of the ground free of
  obstacles, kept where its distance to every obstacle is at least ``min_clearance``, widened
  to a corridor of half-width ``min(clearance - sidewalk, max_half_width)``.
* :func:`box_clearance_ok`: whether oriented boxes keep a margin from a region's edge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import shapely
from scipy.ndimage import binary_dilation, distance_transform_edt
from skimage.morphology import medial_axis

__all__ = ['TrafficMap', 'derive_corridors', 'box_clearance_ok']


@dataclass
class TrafficMap:
    """Raster map of a traffic area.

    Attributes:
        area (np.ndarray): (4,) float64 xmin, ymin, xmax, ymax (m, site frame).
        resolution (float): cell size (m).
        obstacle (np.ndarray): (NX, NY) bool cells covered by a structure footprint.
        obstacle_top (np.ndarray): (NX, NY) float32 highest structure surface (m; 0 where none).
        road (np.ndarray): (NX, NY) bool cells inside a road polygon (all False without roads).
        ground_height (Callable | None): ``(N, 2) -> (N,)`` ground z (m); None = 0.
        obstacle_geometry (shapely geometry | None): the footprints as polygons, when known.
    """

    area: np.ndarray
    resolution: float
    obstacle: np.ndarray
    obstacle_top: np.ndarray
    road: np.ndarray
    ground_height: Optional[Callable] = None
    obstacle_geometry: Optional[object] = None

    @property
    def shape(self) -> Tuple[int, int]:
        """(NX, NY) raster shape."""
        return self.obstacle.shape

    def cell_centres(self) -> Tuple[np.ndarray, np.ndarray]:
        """(NX,) and (NY,) float64 x / y of the cell centres."""
        r = self.resolution
        return (self.area[0] + (np.arange(self.shape[0]) + 0.5) * r,
                self.area[1] + (np.arange(self.shape[1]) + 0.5) * r)

    def to_cell(self, xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Cell indices (clipped to the raster) of points (N, 2)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        i = np.clip(((xy[:, 0] - self.area[0]) / self.resolution).astype(np.int64), 0,
                    self.shape[0] - 1)
        j = np.clip(((xy[:, 1] - self.area[1]) / self.resolution).astype(np.int64), 0,
                    self.shape[1] - 1)
        return i, j

    def ground(self, xy: np.ndarray) -> np.ndarray:
        """Ground height (N,) at points (N, 2)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        return np.zeros(len(xy)) if self.ground_height is None else self.ground_height(xy)

    @classmethod
    def from_polygons(cls, area: Sequence[float], buildings: Sequence = (),
                      heights: Optional[Sequence[float]] = None, roads=None,
                      resolution: float = 0.25, ground_height=None) -> 'TrafficMap':
        """Rasterise shapely footprints and road polygons.

        Args:
            area (Sequence[float]): (4,) xmin, ymin, xmax, ymax (m).
            buildings (Sequence): shapely (Multi)Polygons of structure footprints.
            heights (Sequence[float], optional): top height of each footprint (m; default 10).
            roads: shapely (Multi)Polygon of the roads, or None.
            resolution (float): cell size (m).
            ground_height (Callable, optional): ground z of points.

        Returns:
            TrafficMap: the map (a cell is an obstacle when its centre or any part of it lies in
            a footprint: footprints are grown by half a cell diagonal before the test).
        """
        area = np.asarray(area, np.float64)
        nx_, ny_ = (int(np.ceil((area[2] - area[0]) / resolution)),
                    int(np.ceil((area[3] - area[1]) / resolution)))
        xs = area[0] + (np.arange(nx_) + 0.5) * resolution
        ys = area[1] + (np.arange(ny_) + 0.5) * resolution
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        obstacle = np.zeros((nx_, ny_), bool)
        top = np.zeros((nx_, ny_), np.float32)
        grow = resolution * 0.7072
        for k, b in enumerate(buildings):
            inside = shapely.contains_xy(b.buffer(grow), gx, gy)
            obstacle |= inside
            h = 10.0 if heights is None else float(heights[k])
            top[inside] = np.maximum(top[inside], h)
        road = (shapely.contains_xy(roads, gx, gy) if roads is not None and not roads.is_empty
                else np.zeros_like(obstacle))
        geom = shapely.unary_union(list(buildings)) if len(buildings) else None
        return cls(area, float(resolution), obstacle, top, road, ground_height, geom)

    @classmethod
    def from_scene(cls, scene, area: Sequence[float], resolution: float = 0.25,
                   min_obstacle_height: float = 0.3) -> 'TrafficMap':
        """Raster map of a :class:`~.mesh.SceneMesh` over ``area``.

        Obstacles are the cells whose highest surface (vertical ray casting of every mesh,
        :meth:`~.mesh.SceneMesh.surface_height_map`) lies more than ``min_obstacle_height``
        above the ground (buildings, bridges, furniture), dilated by one cell; roads are the
        cell centres inside ``scene.road_area`` (``tran:Road`` polygons).

        Args:
            scene (SceneMesh): the site.
            area (Sequence[float]): (4,) xmin, ymin, xmax, ymax (m).
            resolution (float): cell size (m).
            min_obstacle_height (float): metres above the ground that make a structure.

        Returns:
            TrafficMap: the map.
        """
        area = np.asarray(area, np.float64)
        dsm, _ = scene.surface_height_map(area, resolution)
        nx_, ny_ = dsm.shape
        xs = area[0] + (np.arange(nx_) + 0.5) * resolution
        ys = area[1] + (np.arange(ny_) + 0.5) * resolution
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        ground = scene.ground_height(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(nx_, ny_)
        obstacle = binary_dilation(dsm - ground > min_obstacle_height, iterations=1)
        top = np.where(obstacle, dsm, 0.0).astype(np.float32)
        roads = scene.road_area
        road = (shapely.contains_xy(roads, gx, gy) if roads is not None
                else np.zeros_like(obstacle))
        return cls(area, float(resolution), obstacle, top, road,
                   scene.ground_height if scene.has_tin else None)


def box_clearance_ok(dist: Callable[[np.ndarray], np.ndarray], centers: np.ndarray,
                     yaw: np.ndarray, length: float, width: float, margin: float
                     ) -> np.ndarray:
    """Whether oriented boxes keep ``margin`` from the edge of a region.

    The box is covered by disks of radius ``sqrt((w/2)^2 + (d/2)^2)`` centred on its long axis
    ``d <= w/2`` apart; the box is inside when the region's distance-to-edge at every disk centre
    is at least that radius plus ``margin``.

    Args:
        dist (Callable): ``(N, 2) -> (N,)`` distance (m) to the region's edge (0 outside).
        centers (np.ndarray): (N, 2) box centres (m).
        yaw (np.ndarray): (N,) headings (rad).
        length (float): box length (m).
        width (float): box width (m).
        margin (float): extra clearance (m).

    Returns:
        np.ndarray: (N,) bool.
    """
    centers = np.asarray(centers, np.float64).reshape(-1, 2)
    n_pts = max(2, int(np.ceil(max(length - width, 0.0) / (0.5 * width))) + 1)
    offs = np.linspace(-0.5 * max(length - width, 0.0), 0.5 * max(length - width, 0.0), n_pts)
    spacing = offs[1] - offs[0] if n_pts > 1 else 0.0
    radius = np.hypot(0.5 * width, max(0.5 * spacing, 0.5 * min(length, width)))
    d = np.stack([np.cos(yaw), np.sin(yaw)], -1)
    pts = centers[:, None] + offs[None, :, None] * d[:, None]
    ok = dist(pts.reshape(-1, 2)).reshape(len(centers), n_pts) >= radius + margin
    return ok.all(1)


# ----------------------------------------------------------------------------- corridors
def derive_corridors(tmap: TrafficMap, min_clearance: float = 5.0, sidewalk: float = 2.0,
                     max_half_width: float = 5.0) -> np.ndarray:
    """Drivable corridors through the open ground of a map without road polygons.

    Args:
        tmap (TrafficMap): the map (only ``obstacle`` is used; the raster border counts as an
            obstacle, so corridors stay inside the area).
        min_clearance (float): skeleton cells closer than this to an obstacle (m) are dropped.
        sidewalk (float): ground left between a corridor and the obstacles (m).
        max_half_width (float): half-width of the widest corridor (m).

    Returns:
        np.ndarray: (NX, NY) bool corridor cells.
    """
    free = ~tmap.obstacle.copy()
    free[[0, -1], :] = False
    free[:, [0, -1]] = False
    skel, dist = medial_axis(free, return_distance=True, rng=0)  # seeded tie-breaking
    dist = dist * tmap.resolution
    skel &= dist >= min_clearance
    if not skel.any():
        return np.zeros_like(free)
    d_skel, (ii, jj) = distance_transform_edt(~skel, return_indices=True)
    half = np.minimum(dist[ii, jj] - sidewalk, max_half_width)
    return (d_skel * tmap.resolution <= half) & free
