"""Semantic scenes from PLATEAU objects: sites, meshes, a global voxel grid and ray casting.

Pipeline (all geometry in a site's local metric frame, see :mod:`.geodesy`):

1. :func:`group_into_sites` clusters the city objects of one tile by horizontal proximity.
   Real PLATEAU tiles can hold files of different areas (the bundled road and terrain files lie
   kilometres away from the buildings they are shipped with); one flat world spanning them would
   be mostly void, so every spatial cluster becomes its own *site* with its own frame.
2. :meth:`SceneMesh.build` triangulates every polygon on its best-fit plane with the earcut
   library (holes supported) into one trimesh per semantic class. Without a terrain TIN a flat
   ground plane is synthesised at the datum (logged). Roads are draped onto the ground.
   Buildings whose base lies above the ground stand on a plinth (their footprint extruded down
   to the ground) so the solid reaches the ground.
3. :class:`GlobalSemanticGrid` voxelises the site once per output grid: ground / roads by
   vertical ray casting, surfaces of buildings, bridges and furniture by dense triangle
   sampling, and buildings filled solid (per column, from the lowest to the highest building
   surface). Each frame is then one vectorised gather (:meth:`GlobalSemanticGrid.ego_occupancy`).
4. :class:`LidarSimulator` casts spinning-LiDAR rays with Open3D's Embree ray casting.

The ground datum of a site (``z = 0``) is the lowest height of its terrain TIN, road polygons
and building bases (lowest building vertex, i.e. the ground surface); when a site has none of
those, the lowest vertex of any object.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import mapbox_earcut
import numpy as np
import open3d as o3d
import shapely
import trimesh
from shapely.geometry import Polygon

from projects.aerialworld.datasets.classes import PLATEAU_CLASSES, PLATEAU_FREE_LABEL
from .citygml import CityObject, ParsedCityGML
from .geodesy import DEFAULT_TARGET_CRS, LocalFrame, project_latlon

logger = logging.getLogger(__name__)

#: Label of every category (index in :data:`PLATEAU_CLASSES`).
CATEGORY_LABEL = {name: i for i, name in enumerate(PLATEAU_CLASSES)}
#: Categories in ascending priority: where two classes claim a voxel the later one wins.
CATEGORY_PRIORITY = ('other', 'terrain', 'road', 'building', 'bridge', 'city_furniture')
#: Short PLATEAU codes used in site names.
CATEGORY_CODE = {'building': 'bldg', 'bridge': 'brid', 'road': 'tran', 'terrain': 'dem',
                 'city_furniture': 'frn', 'other': 'misc'}
#: LiDAR reflectivity per class label (free unused), in [0, 1].
REFLECTIVITY = np.array([0.40, 0.60, 0.50, 0.15, 0.35, 0.75, 0.0], dtype=np.float32)

ROAD_DRAPE_OFFSET = 0.02  # m, roads lie this far above the ground (wins LiDAR hits)
MIN_FACE_AREA = 1e-6  # m^2; zero-area triangles (collinear ring points) are removed
GROUND_EPS = 0.05  # m, a surface at height h marks the voxel containing h - GROUND_EPS


# ----------------------------------------------------------------------------- triangulation
def triangulate_polygon3d(exterior: np.ndarray, interiors: Sequence[np.ndarray] = ()
                          ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Triangulate a 3-D polygon (with holes) on its best-fit plane with earcut.

    Args:
        exterior (np.ndarray): (N, 3) float64 open ring, metres, N >= 3.
        interiors (Sequence[np.ndarray]): holes, each (M, 3) float64 open ring.

    Returns:
        tuple | None: ``(vertices (V, 3) float64, faces (F, 3) int64)`` indexing the
        concatenated input rings (the vertices are the input points, not moved onto the plane),
        or None when the polygon is degenerate (collinear points or zero area).
    """
    rings = [np.asarray(exterior, dtype=np.float64)] + [np.asarray(r, np.float64)
                                                        for r in interiors if len(r) >= 3]
    verts = np.concatenate(rings)
    centre = verts.mean(0)
    try:
        _, sv, vt = np.linalg.svd(verts - centre, full_matrices=False)
    except np.linalg.LinAlgError:
        return None
    if sv.size < 2 or sv[1] < 1e-6 * max(sv[0], 1e-12) or sv[1] < 1e-6:
        return None
    uv = (verts - centre) @ vt[:2].T
    ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
    tris = mapbox_earcut.triangulate_float64(uv, ends)
    if tris.size == 0:
        return None
    return verts, tris.reshape(-1, 3).astype(np.int64)


def _triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Areas (F,) of triangles ``faces`` (F, 3) of ``vertices`` (V, 3)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


# ----------------------------------------------------------------------------- sites
@dataclass
class SiteObjects:
    """City objects of one spatial cluster, with their projected polygons.

    Attributes:
        name (str): site name ``<tile>_<codes>`` (e.g. ``ota_haneda_bldg``).
        objects (list[CityObject]): the objects.
        projected (list[list[list[np.ndarray]]]): per object, per polygon, the rings
            (exterior first) as (N, 3) float64 easting, northing, height (m).
        sources (list[str]): files the objects come from.
    """

    name: str
    objects: List[CityObject]
    projected: List[List[List[np.ndarray]]]
    sources: List[str]


def group_into_sites(tile_name: str, parsed: Sequence[ParsedCityGML], gap_m: float = 300.0,
                     target_crs: str = DEFAULT_TARGET_CRS) -> List[SiteObjects]:
    """Cluster the objects of a tile into sites by horizontal proximity.

    Two objects belong to the same site when their projected xy bounding boxes are at most
    ``gap_m`` apart (single linkage).

    Args:
        tile_name (str): tile (folder) name used as the site name prefix.
        parsed (Sequence[ParsedCityGML]): the tile's parsed files.
        gap_m (float): linkage distance in metres.
        target_crs (str): projected CRS.

    Returns:
        list[SiteObjects]: sites ordered by name.
    """
    objects = [o for p in parsed for o in p.objects]
    if not objects:
        return []
    rings = [r for o in objects for poly in o.polygons for r in [poly.exterior] + poly.interiors]
    sizes = [len(r) for r in rings]
    proj_all = project_latlon(np.concatenate(rings), target_crs)
    split = np.split(proj_all, np.cumsum(sizes)[:-1])
    projected, boxes, k = [], [], 0
    for o in objects:
        obj_polys = []
        for poly in o.polygons:
            n = 1 + len(poly.interiors)
            obj_polys.append(split[k:k + n])
            k += n
        projected.append(obj_polys)
        pts = np.concatenate([p[0] for p in obj_polys])
        boxes.append(np.concatenate([pts[:, :2].min(0), pts[:, :2].max(0)]))
    boxes = np.array(boxes)
    # pairwise bbox gap (vectorised), then union-find by connected components
    gx = np.maximum(0, np.maximum(boxes[:, None, 0] - boxes[None, :, 2],
                                  boxes[None, :, 0] - boxes[:, None, 2]))
    gy = np.maximum(0, np.maximum(boxes[:, None, 1] - boxes[None, :, 3],
                                  boxes[None, :, 1] - boxes[:, None, 3]))
    adj = np.hypot(gx, gy) <= gap_m
    from scipy.sparse.csgraph import connected_components
    n_comp, comp = connected_components(adj, directed=False)
    sites = []
    for c in range(n_comp):
        idx = np.flatnonzero(comp == c)
        cats = {objects[i].category for i in idx}
        codes = [CATEGORY_CODE[c_] for c_ in ('building', 'bridge', 'city_furniture', 'road',
                                              'terrain', 'other') if c_ in cats]
        sites.append(SiteObjects(
            name=f'{tile_name}_{"_".join(codes)}', objects=[objects[i] for i in idx],
            projected=[projected[i] for i in idx],
            sources=sorted({objects[i].source for i in idx})))
    sites.sort(key=lambda s: s.name)
    names = Counter(s.name for s in sites)
    seen: Counter = Counter()
    for s in sites:
        if names[s.name] > 1:
            seen[s.name] += 1
            s.name = f'{s.name}{seen[s.name] - 1}'
    if len(sites) > 1:
        logger.info('tile %s: objects fall into %d separate sites (> %.0f m apart): %s',
                    tile_name, len(sites), gap_m, ', '.join(s.name for s in sites))
    return sites


# ----------------------------------------------------------------------------- meshes
@dataclass
class SceneMesh:
    """Semantic triangle meshes of one site in its local frame.

    Attributes:
        name (str): site name.
        frame (LocalFrame): local frame (x east, y north, z above the ground datum; metres).
        meshes (dict[str, trimesh.Trimesh]): one mesh per category present (float64 vertices).
        building_ids (np.ndarray): (F_building,) int64 building index of every face of
            ``meshes['building']`` (plinths included).
        building_heights (np.ndarray): (B, 2) float64 base and top height of every building.
        building_centres (np.ndarray): (B, 2) float64 footprint centroid of every building.
        anchors (np.ndarray): (K, 2) float64 xy centres of the structures (buildings,
            bridges, furniture): points of interest for trajectories.
        road_area (shapely geometry | None): union of the road polygons (xy, local frame).
        ground_synthesized (bool): True when a flat ground plane at the datum was added
            (no terrain TIN, or a TIN that does not cover the site).
        has_tin (bool): True when the site has a real terrain TIN.
        ground_extent (np.ndarray): (4,) xmin, ymin, xmax, ymax of the ground (m).
        content_extent (np.ndarray): (4,) xy bounding box of the non-synthetic geometry (m).
        sources (list[str]): source files.
        report (Counter): triangulation counts (degenerate polygons dropped, ...).
    """

    name: str
    frame: LocalFrame
    meshes: Dict[str, trimesh.Trimesh]
    building_ids: np.ndarray
    building_heights: np.ndarray
    building_centres: np.ndarray
    anchors: np.ndarray
    road_area: Optional[object]
    ground_synthesized: bool
    has_tin: bool
    ground_extent: np.ndarray
    content_extent: np.ndarray
    sources: List[str]
    report: Counter = field(default_factory=Counter)
    _terrain_scene: Optional[object] = None

    @classmethod
    def build(cls, site: SiteObjects, ground_margin: float = 400.0,
              target_crs: str = DEFAULT_TARGET_CRS) -> 'SceneMesh':
        """Triangulate a site into per-class meshes.

        Args:
            site (SiteObjects): the site's objects.
            ground_margin (float): metres by which a synthesised ground plane extends beyond
                the geometry (must cover what frames near the edge see).
            target_crs (str): projected CRS of ``site.projected``.

        Returns:
            SceneMesh: the meshes.

        Raises:
            ValueError: when the site has no polygon that can be triangulated.
        """
        report: Counter = Counter()
        all_pts = np.concatenate([rings[0] for obj in site.projected for rings in obj])
        # datum: lowest terrain / road / building-base height, else lowest vertex
        ground_h = [np.concatenate([r[0] for r in obj])[:, 2].min()
                    for o, obj in zip(site.objects, site.projected)
                    if o.category in ('terrain', 'road', 'building')]
        datum = float(min(ground_h)) if ground_h else float(all_pts[:, 2].min())
        frame = LocalFrame.from_projected_points(all_pts, datum, target_crs)
        off = np.array([frame.origin_en[0], frame.origin_en[1], datum])

        per_cat: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = {}
        b_ids: List[np.ndarray] = []
        b_heights, b_centres, roads2d, anchors = [], [], [], []
        for o, obj in zip(site.objects, site.projected):
            parts = []
            for rings in obj:
                rings_l = [r - off for r in rings]
                tri = triangulate_polygon3d(rings_l[0], rings_l[1:])
                if tri is None:
                    report[f'{o.category}_polygons_degenerate_dropped'] += 1
                    continue
                parts.append(tri)
                if o.category == 'road':
                    try:
                        roads2d.append(Polygon(rings_l[0][:, :2],
                                               [r[:, :2] for r in rings_l[1:]]).buffer(0))
                    except (ValueError, shapely.errors.GEOSException):
                        report['road_polygons_invalid_2d'] += 1
            if not parts:
                report[f'{o.category}_objects_dropped_degenerate'] += 1
                continue
            v, f = _merge(parts)
            if o.category == 'building':
                bi = len(b_heights)
                base, top = float(v[:, 2].min()), float(v[:, 2].max())
                plinth = _plinth(v, f, base)
                if plinth is not None:
                    report['building_plinths_added'] += 1
                    v, f = _merge([(v, f), plinth])
                    base = 0.0 if base > 0 else base
                b_heights.append((base, top))
                b_centres.append(_footprint_centre(v, f))
                b_ids.append(np.full(len(f), bi, np.int64))
            if o.category in ('building', 'bridge', 'city_furniture', 'other'):
                anchors.append(0.5 * (v[:, :2].min(0) + v[:, :2].max(0)))
            per_cat.setdefault(o.category, []).append((v, f))
        if not per_cat:
            raise ValueError(f'site {site.name} ({", ".join(site.sources)}) has no polygon '
                             'that can be triangulated')
        content = np.array([np.inf, np.inf, -np.inf, -np.inf])
        for parts in per_cat.values():
            for v, _ in parts:
                content[:2] = np.minimum(content[:2], v[:, :2].min(0))
                content[2:] = np.maximum(content[2:], v[:, :2].max(0))
        meshes = {}
        for c, p in per_cat.items():
            v, f = _merge(p)
            good = _triangle_areas(v, f) > MIN_FACE_AREA
            if not good.all():
                report[f'{c}_degenerate_triangles_removed'] += int((~good).sum())
            if c == 'building':
                b_ids = [np.concatenate(b_ids)[good]]
            meshes[c] = trimesh.Trimesh(v, f[good], process=False)

        plane_ext = content + np.array([-1, -1, 1, 1]) * ground_margin
        tin_area = float(meshes['terrain'].area_faces.sum()) if 'terrain' in meshes else 0.0
        plane_area = float(np.prod(plane_ext[2:] - plane_ext[:2]))
        synthesized = tin_area < 0.98 * plane_area
        if synthesized:
            gv = np.array([[plane_ext[0], plane_ext[1], 0], [plane_ext[2], plane_ext[1], 0],
                           [plane_ext[2], plane_ext[3], 0], [plane_ext[0], plane_ext[3], 0]],
                          dtype=np.float64)
            plane = (gv, np.array([[0, 1, 2], [0, 2, 3]]))
            if 'terrain' in meshes:
                tin = meshes['terrain']
                meshes['terrain'] = trimesh.Trimesh(
                    *_merge([(np.asarray(tin.vertices), np.asarray(tin.faces)), plane]),
                    process=False)
                logger.info('site %s: the terrain TIN covers %.0f m2 of the %.0f m2 around the '
                            'content; synthesised a flat ground plane at the datum (z = 0) '
                            'below and around it', site.name, tin_area, plane_area)
            else:
                meshes['terrain'] = trimesh.Trimesh(*plane, process=False)
                logger.info('site %s has no terrain TIN: synthesised a flat ground plane at '
                            'the datum (z = 0, %.2f m orthometric) over [%.0f, %.0f] x '
                            '[%.0f, %.0f] m', site.name, datum, *plane_ext[[0, 2, 1, 3]])
        tv = meshes['terrain'].vertices
        ext = np.concatenate([tv[:, :2].min(0), tv[:, :2].max(0)])
        has_tin = tin_area > 0
        scene = cls(name=site.name, frame=frame, meshes=meshes,
                    building_ids=np.concatenate(b_ids) if b_ids else np.zeros(0, np.int64),
                    building_heights=np.array(b_heights, np.float64).reshape(-1, 2),
                    building_centres=np.array(b_centres, np.float64).reshape(-1, 2),
                    anchors=np.array(anchors, np.float64).reshape(-1, 2),
                    road_area=shapely.unary_union(roads2d) if roads2d else None,
                    ground_synthesized=synthesized, has_tin=has_tin, ground_extent=ext,
                    content_extent=content, sources=list(site.sources), report=report)
        if 'road' in meshes:
            scene._drape_roads()
        below = {c: float((m.vertices[:, 2] < -0.5).mean()) for c, m in meshes.items()}
        below = {c: round(100 * b, 1) for c, b in below.items() if b > 0}
        if below:
            logger.info('site %s: share of vertices more than 0.5 m below the ground datum '
                        '(%%): %s', site.name, below)
        logger.info('site %s: %s triangles, datum %.2f m, extent %.0f x %.0f m%s', site.name,
                    {c: len(m.faces) for c, m in meshes.items()}, datum,
                    content[2] - content[0], content[3] - content[1],
                    f'; dropped {dict(report)}' if report else '')
        return scene

    # ------------------------------------------------------------------ ground
    def ground_height(self, xy: np.ndarray) -> np.ndarray:
        """Height of the ground (terrain surface, not roads) below points.

        Args:
            xy (np.ndarray): (N, 2) float local x, y (m).

        Returns:
            np.ndarray: (N,) float64 ground z (m); 0 (the datum) where there is no terrain.
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if not self.has_tin:
            return np.zeros(len(xy))
        if self._terrain_scene is None:
            self._terrain_scene = _raycasting_scene([self.meshes['terrain']])
        top = float(self.meshes['terrain'].vertices[:, 2].max()) + 10.0
        rays = np.zeros((len(xy), 6), np.float32)
        rays[:, :2] = xy
        rays[:, 2] = top
        rays[:, 5] = -1.0
        t = self._terrain_scene.cast_rays(o3d.core.Tensor(rays))['t_hit'].numpy()
        h = top - t.astype(np.float64)
        h[~np.isfinite(h)] = 0.0
        return h

    def _drape_roads(self) -> None:
        """Put the road mesh onto the ground (plus :data:`ROAD_DRAPE_OFFSET`)."""
        road = self.meshes['road']
        if self.has_tin:
            road = road.copy()
            for _ in range(6):  # keep road triangles small so they follow the TIN
                if road.edges_unique_length.max() <= 5.0:
                    break
                road = road.subdivide()
        v = road.vertices.copy()
        v[:, 2] = self.ground_height(v[:, :2]) + ROAD_DRAPE_OFFSET
        self.meshes['road'] = trimesh.Trimesh(v, road.faces, process=False)

    # ------------------------------------------------------------------ queries
    def structure_categories(self) -> List[str]:
        """Categories present other than the ground classes (terrain, road)."""
        ground = ('terrain', 'road')
        return [c for c in CATEGORY_PRIORITY if c in self.meshes and c not in ground]

    def building_footprint(self, index: int):
        """Footprint of building ``index`` (xy union of its non-vertical faces).

        Args:
            index (int): building index (see ``building_ids``).

        Returns:
            shapely geometry | None: (Multi)Polygon in the site frame (m).
        """
        m = self.meshes['building']
        faces = np.asarray(m.faces)[self.building_ids == index]
        return _footprint(np.asarray(m.vertices), faces)

    def max_height(self) -> float:
        """Highest vertex of any mesh (m above the datum)."""
        return float(max(m.vertices[:, 2].max() for m in self.meshes.values()))

    def flight_area(self, margin: float = 20.0) -> np.ndarray:
        """Rectangle in which trajectories may move: the content extent plus a margin.

        Args:
            margin (float): metres added around the xy extent of the real geometry.

        Returns:
            np.ndarray: (4,) float64 xmin, ymin, xmax, ymax (m).
        """
        return self.content_extent + np.array([-1, -1, 1, 1]) * margin

    def surface_height_map(self, area: np.ndarray, resolution: float = 1.0
                           ) -> Tuple[np.ndarray, np.ndarray]:
        """Digital surface model (highest surface per cell) by vertical ray casting.

        Args:
            area (np.ndarray): (4,) xmin, ymin, xmax, ymax (m).
            resolution (float): cell size (m).

        Returns:
            tuple: ``(heights (NX, NY) float32 m, origin (2,) float64)`` where cell (i, j)
            covers ``origin + [i, j] * resolution`` to ``+ resolution``; 0 where nothing is hit.
        """
        nx = max(1, int(np.ceil((area[2] - area[0]) / resolution)))
        ny = max(1, int(np.ceil((area[3] - area[1]) / resolution)))
        xs = area[0] + (np.arange(nx) + 0.5) * resolution
        ys = area[1] + (np.arange(ny) + 0.5) * resolution
        gx, gy = np.meshgrid(xs, ys, indexing='ij')
        scene = _raycasting_scene(list(self.meshes.values()))
        top = self.max_height() + 10.0
        rays = np.zeros((gx.size, 6), np.float32)
        rays[:, 0] = gx.ravel()
        rays[:, 1] = gy.ravel()
        rays[:, 2] = top
        rays[:, 5] = -1.0
        t = scene.cast_rays(o3d.core.Tensor(rays))['t_hit'].numpy()
        h = np.where(np.isfinite(t), top - t, 0.0).astype(np.float32).reshape(nx, ny)
        return h, np.array([area[0], area[1]], np.float64)


def _merge(parts: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    """Concatenate ``(vertices, faces)`` pieces into one vertex / face array."""
    offs = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    return (np.concatenate([v for v, _ in parts]),
            np.concatenate([f + o for (_, f), o in zip(parts, offs)]))


def _footprint(v: np.ndarray, f: np.ndarray):
    """Union of the xy projections of the non-vertical triangles (shapely geometry)."""
    tri = v[f][:, :, :2]
    area2 = np.abs(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]))
    tri = tri[area2 > 1e-4]
    if len(tri) == 0:
        return None
    polys = shapely.polygons(np.concatenate([tri, tri[:, :1]], axis=1))
    fp = shapely.unary_union(polys)
    return fp if not fp.is_empty else None


def _footprint_centre(v: np.ndarray, f: np.ndarray) -> Tuple[float, float]:
    """Centroid of a building's footprint (falls back to the vertex mean)."""
    fp = _footprint(v, f)
    if fp is None or fp.area <= 0:
        return float(v[:, 0].mean()), float(v[:, 1].mean())
    return float(fp.centroid.x), float(fp.centroid.y)


def _plinth(v: np.ndarray, f: np.ndarray, base: float
            ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Footprint extruded from z = 0 to the building base when the base is above the datum."""
    if base <= 0.05:
        return None
    fp = _footprint(v, f)
    if fp is None:
        return None
    fp = fp.buffer(0)
    polys = [fp] if isinstance(fp, Polygon) else list(getattr(fp, 'geoms', []))
    parts = []
    for p in polys:
        if not isinstance(p, Polygon) or p.area < 1e-3:
            continue
        m = trimesh.creation.extrude_polygon(p, base, engine='earcut')
        parts.append((np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)))
    return _merge(parts) if parts else None


def _raycasting_scene(meshes: Sequence[trimesh.Trimesh]):
    """Open3D raycasting scene holding ``meshes`` (geometry id = position in the list)."""
    scene = o3d.t.geometry.RaycastingScene()
    for m in meshes:
        scene.add_triangles(o3d.core.Tensor(np.asarray(m.vertices, np.float32)),
                            o3d.core.Tensor(np.asarray(m.faces, np.uint32)))
    return scene


# ----------------------------------------------------------------------------- voxel grid
@dataclass(frozen=True)
class GridSpec:
    """An ego-centred occupancy grid.

    Attributes:
        point_cloud_range (tuple): (6,) xmin, ymin, zmin, xmax, ymax, zmax in metres
            (x, y relative to the ego, z above the ground datum).
        voxel_size (tuple): (3,) metres.
    """

    point_cloud_range: Tuple[float, ...]
    voxel_size: Tuple[float, ...]

    def __post_init__(self):
        pcr, vs = self.point_cloud_range, self.voxel_size
        if len(pcr) != 6 or len(vs) != 3:
            raise ValueError(f'point_cloud_range needs 6 values and voxel_size 3, got {pcr}, '
                             f'{vs}')
        if any(v <= 0 for v in vs) or any(pcr[i + 3] <= pcr[i] for i in range(3)):
            raise ValueError(f'invalid grid: range {pcr}, voxel {vs}')

    @property
    def grid_size(self) -> Tuple[int, int, int]:
        """(X, Y, Z) voxels, ``floor((max - min) / voxel)`` (with a 1e-6 tolerance)."""
        return tuple(int(np.floor((self.point_cloud_range[i + 3] - self.point_cloud_range[i])
                                  / self.voxel_size[i] + 1e-6)) for i in range(3))

    @property
    def radius(self) -> float:
        """Largest horizontal distance (m) from the ego to a grid corner."""
        r = self.point_cloud_range
        return float(np.hypot(max(abs(r[0]), abs(r[3])), max(abs(r[1]), abs(r[4]))))


#: Named grid presets of the contract doc.
GRID_PRESETS = {
    'tokyo': GridSpec((-40.0, -40.0, -2.0, 40.0, 40.0, 150.0), (0.4, 0.4, 1.25)),
    'test_local': GridSpec((-20.0, -20.0, -5.0, 20.0, 20.0, 25.0), (0.8, 0.8, 1.0)),
}


class GlobalSemanticGrid:
    """World-frame semantic voxel grid of a site, prepared once per output grid.

    The z bins are exactly those of the output grid (z is ground-referenced, so the z index of
    a frame voxel is the z index here); columns above the highest geometry are not stored.

    Args:
        scene (SceneMesh): the site's meshes.
        spec (GridSpec): the output grid (z bins and xy voxel size).
        area (np.ndarray): (4,) xmin, ymin, xmax, ymax (m) to cover; outside it frames read
            free space.
        xy_resolution (float | None): column size (m); default the smaller xy voxel size of
            ``spec`` (must not exceed it).

    Attributes:
        labels (np.ndarray): (GX, GY, NZ) uint8 labels (free = 6), NZ <= spec Z.
        origin (np.ndarray): (2,) float64 xy of the corner of column (0, 0).
        resolution (float): column size (m).
    """

    def __init__(self, scene: SceneMesh, spec: GridSpec, area: np.ndarray,
                 xy_resolution: Optional[float] = None):
        self.spec = spec
        self.scene = scene
        res = float(min(spec.voxel_size[:2]) if xy_resolution is None else xy_resolution)
        if res > min(spec.voxel_size[:2]) + 1e-9:
            raise ValueError(f'xy_resolution {res} must not exceed the voxel size '
                             f'{spec.voxel_size[:2]}')
        self.resolution = res
        self.z_min = float(spec.point_cloud_range[2])
        self.dz = float(spec.voxel_size[2])
        nz_full = spec.grid_size[2]
        top = scene.max_height()
        self.nz = int(np.clip(np.floor((top - self.z_min) / self.dz) + 1, 1, nz_full))
        self.origin = np.floor(np.asarray(area[:2], np.float64) / res) * res
        self.shape2d = (int(np.ceil((area[2] - self.origin[0]) / res)),
                        int(np.ceil((area[3] - self.origin[1]) / res)))
        self.labels = np.full(self.shape2d + (self.nz,), PLATEAU_FREE_LABEL, np.uint8)
        self.counts: Counter = Counter()
        self._voxelise()

    # ------------------------------------------------------------------ preparation
    def _columns(self) -> Tuple[np.ndarray, np.ndarray]:
        gx = self.origin[0] + (np.arange(self.shape2d[0]) + 0.5) * self.resolution
        gy = self.origin[1] + (np.arange(self.shape2d[1]) + 0.5) * self.resolution
        return gx, gy

    def _columns_in(self, box: np.ndarray):
        """Column index range ``(i0, j0, (ni, nj), None)`` of the columns inside ``box``."""
        i0 = int(np.clip(np.floor((box[0] - self.origin[0]) / self.resolution), 0,
                         self.shape2d[0]))
        i1 = int(np.clip(np.ceil((box[2] - self.origin[0]) / self.resolution), 0,
                         self.shape2d[0]))
        j0 = int(np.clip(np.floor((box[1] - self.origin[1]) / self.resolution), 0,
                         self.shape2d[1]))
        j1 = int(np.clip(np.ceil((box[3] - self.origin[1]) / self.resolution), 0,
                         self.shape2d[1]))
        return i0, j0, (max(0, i1 - i0), max(0, j1 - j0)), None

    def _vertical_hits(self, meshes: Sequence[trimesh.Trimesh], box: np.ndarray,
                       all_hits: bool):
        """Vertical rays through the column centres inside ``box``.

        Returns ``(i0, j0, shape, result)``: with ``all_hits`` the per-column min / max hit
        heights (NaN where none), else the first-hit height from above.
        """
        gx, gy = self._columns()
        i0, j0, shape, _ = self._columns_in(box)
        i1, j1 = i0 + shape[0], j0 + shape[1]
        if shape[0] <= 0 or shape[1] <= 0:
            return i0, j0, shape, None
        top = max(float(m.vertices[:, 2].max()) for m in meshes) + 5.0
        cx, cy = np.meshgrid(gx[i0:i1], gy[j0:j1], indexing='ij')
        rays = np.zeros((cx.size, 6), np.float32)
        rays[:, 0] = cx.ravel()
        rays[:, 1] = cy.ravel()
        rays[:, 2] = top
        rays[:, 5] = -1.0
        scene = _raycasting_scene(meshes)
        if not all_hits:
            t = scene.cast_rays(o3d.core.Tensor(rays))['t_hit'].numpy().astype(np.float64)
            return i0, j0, shape, (top - t).reshape(shape)
        lx = scene.list_intersections(o3d.core.Tensor(rays))
        splits = lx['ray_splits'].numpy().astype(np.int64)
        t = lx['t_hit'].numpy().astype(np.float64)
        zmin = np.full(len(rays), np.nan)
        zmax = np.full(len(rays), np.nan)
        has = splits[1:] > splits[:-1]
        if t.size:
            starts = splits[:-1][has]
            zmax[has] = top - np.minimum.reduceat(t, starts)
            zmin[has] = top - np.maximum.reduceat(t, starts)
        return i0, j0, shape, (zmin.reshape(shape), zmax.reshape(shape))

    def _mark_surface_layer(self, i0, j0, heights, label) -> None:
        """Label the voxel containing ``height - GROUND_EPS`` in every column (NaN: none)."""
        k = np.floor((heights - GROUND_EPS - self.z_min) / self.dz)
        ok = np.isfinite(k) & (k >= 0) & (k < self.nz)
        ii, jj = np.nonzero(ok)
        self.labels[ii + i0, jj + j0, k[ok].astype(np.int64)] = label
        self.counts[PLATEAU_CLASSES[label]] += int(ok.sum())

    def _sample_surface(self, mesh: trimesh.Trimesh, label: int) -> None:
        """Label every voxel a triangle passes through (dense lattice sampling).

        Each triangle is sampled on lines parallel to its longest edge, spaced at most
        ``step`` apart, with points at most ``step`` apart on every line, where ``step`` is
        0.45 x the smallest voxel dimension; slivers therefore cost points in proportion to
        their length, not its square.
        """
        v = np.asarray(mesh.vertices, np.float64)
        f = np.asarray(mesh.faces, np.int64)
        if len(f) == 0:
            return
        step = 0.45 * min(self.resolution, self.dz)
        tri = v[f]  # (T, 3, 3)
        e = np.stack([np.linalg.norm(tri[:, (i + 1) % 3] - tri[:, i], axis=1)
                      for i in range(3)], 1)
        longest = e.argmax(1)
        ar = np.arange(len(f))
        a_pt = tri[ar, longest]
        b_pt = tri[ar, (longest + 1) % 3]
        c_pt = tri[ar, (longest + 2) % 3]
        length = e[ar, longest]
        area2 = np.linalg.norm(np.cross(b_pt - a_pt, c_pt - a_pt), axis=1)
        height = area2 / np.maximum(length, 1e-12)
        k1 = np.maximum(1, np.ceil(length / step)).astype(np.int64)
        k2 = np.maximum(1, np.ceil(height / step)).astype(np.int64)
        n = (k1 + 1) * (k2 + 1)
        flat = self.labels.reshape(-1)
        n_marked = 0
        ends = np.cumsum(n)
        start_tri = 0
        budget = 1_000_000
        while start_tri < len(f):
            base = ends[start_tri - 1] if start_tri else 0
            stop = int(np.searchsorted(ends, base + budget, side='right'))
            stop = max(stop, start_tri + 1)
            sl = slice(start_tri, stop)
            counts = n[sl]
            tid = np.repeat(np.arange(start_tri, stop), counts)
            offs = np.repeat(np.cumsum(counts) - counts, counts)
            local = np.arange(int(counts.sum())) - offs
            s_ = (local // (k2[tid] + 1)) / k1[tid]
            w_ = (local % (k2[tid] + 1)) / k2[tid]
            p_ab = a_pt[tid] + s_[:, None] * (b_pt[tid] - a_pt[tid])
            pts = (1 - w_)[:, None] * p_ab + w_[:, None] * c_pt[tid]
            idx = self._flat_index(pts)
            idx = idx[idx >= 0]
            flat[idx] = label
            n_marked += idx.size
            start_tri = stop
        self.counts[PLATEAU_CLASSES[label]] += n_marked

    def _flat_index(self, pts: np.ndarray) -> np.ndarray:
        """Flat index into ``labels`` of points (N, 3) (-1 outside the grid)."""
        i = np.floor((pts[:, 0] - self.origin[0]) / self.resolution).astype(np.int64)
        j = np.floor((pts[:, 1] - self.origin[1]) / self.resolution).astype(np.int64)
        k = np.floor((pts[:, 2] - self.z_min) / self.dz).astype(np.int64)
        ok = ((i >= 0) & (i < self.shape2d[0]) & (j >= 0) & (j < self.shape2d[1]) & (k >= 0)
              & (k < self.nz))
        return np.where(ok, (i * self.shape2d[1] + j) * self.nz + k, -1)

    def _voxelise(self) -> None:
        sc = self.scene
        area = np.array([self.origin[0], self.origin[1],
                         self.origin[0] + self.shape2d[0] * self.resolution,
                         self.origin[1] + self.shape2d[1] * self.resolution])
        # 1. ground: one voxel layer at the terrain surface
        lab = CATEGORY_LABEL
        if not sc.has_tin:  # flat plane at z = 0: no ray casting needed
            box = np.concatenate([np.maximum(area[:2], sc.ground_extent[:2]),
                                  np.minimum(area[2:], sc.ground_extent[2:])])
            i0, j0, shape, _ = self._columns_in(box)
            self._mark_surface_layer(i0, j0, np.zeros(shape), lab['terrain'])
        else:
            i0, j0, _, h = self._vertical_hits([sc.meshes['terrain']], area, False)
            if h is not None:
                self._mark_surface_layer(i0, j0, h, lab['terrain'])
        # 2. roads, draped on the ground
        if 'road' in sc.meshes:
            m = sc.meshes['road']
            box = np.concatenate([m.vertices[:, :2].min(0), m.vertices[:, :2].max(0)])
            i0, j0, _, h = self._vertical_hits([m], box, False)
            if h is not None:
                self._mark_surface_layer(i0, j0, h, lab['road'])
        # 3. other, buildings (solid), bridges, furniture in ascending priority
        for cat in ('other', 'building', 'bridge', 'city_furniture'):
            if cat not in sc.meshes:
                continue
            m = sc.meshes[cat]
            if cat == 'building':
                self._fill_buildings(m)
            self._sample_surface(m, lab[cat])
        logger.info('site %s: global grid %s (%.1f MB) at %.2f m, labelled voxels %s',
                    sc.name, self.labels.shape, self.labels.nbytes / 2**20, self.resolution,
                    dict(self.counts))

    def _fill_buildings(self, mesh: trimesh.Trimesh) -> None:
        """Fill building columns from the lowest to the highest building surface."""
        box = np.concatenate([mesh.vertices[:, :2].min(0), mesh.vertices[:, :2].max(0)])
        i0, j0, shape, res = self._vertical_hits([mesh], box, True)
        if res is None:
            return
        zmin, zmax = res
        has = np.isfinite(zmin)
        kmin = np.floor((np.where(has, zmin, 0) + GROUND_EPS - self.z_min) / self.dz)
        kmax = np.floor((np.where(has, zmax, 0) - GROUND_EPS - self.z_min) / self.dz)
        kr = np.arange(self.nz)
        sub = self.labels[i0:i0 + shape[0], j0:j0 + shape[1]]
        fill = has[..., None] & (kr >= kmin[..., None]) & (kr <= kmax[..., None])
        sub[fill] = CATEGORY_LABEL['building']
        self.counts['building_filled'] += int(fill.sum())

    # ------------------------------------------------------------------ per frame
    def ego_occupancy(self, x: float, y: float, yaw: float) -> np.ndarray:
        """The ego-centred grid of a frame (vectorised gather, no loops over voxels).

        Args:
            x (float): ego x in the site frame (m).
            y (float): ego y in the site frame (m).
            yaw (float): ego heading (rad, counter-clockwise from east); the grid's x axis
                points along it (roll and pitch are not applied).

        Returns:
            np.ndarray: (X, Y, Z) uint8 labels, free = 6 outside the prepared area.
        """
        spec = self.spec
        X, Y, Z = spec.grid_size
        r = spec.point_cloud_range
        vx, vy = spec.voxel_size[:2]
        cx = r[0] + (np.arange(X) + 0.5) * vx
        cy = r[1] + (np.arange(Y) + 0.5) * vy
        c, s = np.cos(yaw), np.sin(yaw)
        wx = x + c * cx[:, None] - s * cy[None, :]
        wy = y + s * cx[:, None] + c * cy[None, :]
        gi = np.floor((wx - self.origin[0]) / self.resolution).astype(np.int64)
        gj = np.floor((wy - self.origin[1]) / self.resolution).astype(np.int64)
        ok = (gi >= 0) & (gi < self.shape2d[0]) & (gj >= 0) & (gj < self.shape2d[1])
        out = np.full((X, Y, Z), PLATEAU_FREE_LABEL, np.uint8)
        nz = min(self.nz, Z)
        out[ok, :nz] = self.labels[gi[ok], gj[ok], :nz]
        return out

    def labels_at(self, points: np.ndarray) -> np.ndarray:
        """Labels of the voxels containing world points.

        Args:
            points (np.ndarray): (N, 3) float local x, y, z (m).

        Returns:
            np.ndarray: (N,) uint8 labels (free outside the grid).
        """
        idx = self._flat_index(np.asarray(points, np.float64).reshape(-1, 3))
        out = np.full(len(idx), PLATEAU_FREE_LABEL, np.uint8)
        out[idx >= 0] = self.labels.reshape(-1)[idx[idx >= 0]]
        return out


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
