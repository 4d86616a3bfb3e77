"""Semantic meshes of PLATEAU sites: triangulation, site clustering and :class:`SceneMesh`.

Part of the scene simulation (:mod:`.scene` gives the overview): :func:`group_into_sites`
clusters the city objects of one tile by horizontal proximity, :meth:`SceneMesh.build`
triangulates every polygon (earcut on its best-fit plane) into one trimesh per semantic class in
the site's local metric frame (:mod:`.geodesy`), synthesises a flat ground where there is no
terrain TIN (with terrain plinths under raised building bases) and drapes the roads onto the
ground; only ``tran:Road`` objects make the rovers' road area (railways, tracks and squares are
labelled ``road`` but are not driven on). :mod:`.grid` voxelises a :class:`SceneMesh`,
:mod:`.lidar` ray-casts it; moving objects can be added as further meshes of the same classes.
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

from projects.aerialworld.datasets.classes import PLATEAU_CLASSES
from .citygml import DRIVABLE_KINDS, CityObject, ParsedCityGML
from .geodesy import LocalFrame, project_latlon, site_crs

logger = logging.getLogger(__name__)

#: Label of every category (index in :data:`PLATEAU_CLASSES`).
CATEGORY_LABEL = {name: i for i, name in enumerate(PLATEAU_CLASSES)}
#: Categories in ascending priority: where two classes claim a voxel the later one wins.
CATEGORY_PRIORITY = ('other', 'terrain', 'road', 'building', 'bridge', 'city_furniture')
#: Short PLATEAU codes used in site names.
CATEGORY_CODE = {'building': 'bldg', 'bridge': 'brid', 'road': 'tran', 'terrain': 'dem',
                 'city_furniture': 'frn', 'other': 'misc'}

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
        target_crs (str): the metric CRS of ``projected`` (chosen for the site's location,
            see :func:`.geodesy.site_crs`).
    """

    name: str
    objects: List[CityObject]
    projected: List[List[List[np.ndarray]]]
    sources: List[str]
    target_crs: str = 'EPSG:6677'


def _project_objects(objects: Sequence[CityObject], target_crs: str
                     ) -> List[List[List[np.ndarray]]]:
    """Rings of every polygon of ``objects`` projected to ``target_crs`` (one pyproj call)."""
    rings = [r for o in objects for poly in o.polygons for r in [poly.exterior] + poly.interiors]
    sizes = [len(r) for r in rings]
    split = np.split(project_latlon(np.concatenate(rings), target_crs), np.cumsum(sizes)[:-1])
    projected, k = [], 0
    for o in objects:
        obj_polys = []
        for poly in o.polygons:
            n = 1 + len(poly.interiors)
            obj_polys.append(split[k:k + n])
            k += n
        projected.append(obj_polys)
    return projected


def _latlon_centre(objects: Sequence[CityObject]) -> Tuple[float, float]:
    """Centre (lat, lon) in degrees of the bounding box of the objects' exteriors."""
    ll = np.concatenate([poly.exterior[:, :2] for o in objects for poly in o.polygons])
    c = 0.5 * (ll.min(0) + ll.max(0))
    return float(c[0]), float(c[1])


def group_into_sites(tile_name: str, parsed: Sequence[ParsedCityGML], gap_m: float = 300.0,
                     frame: str = 'zone') -> List[SiteObjects]:
    """Cluster the objects of a tile into sites by horizontal proximity.

    Two objects belong to the same site when their projected xy bounding boxes are at most
    ``gap_m`` apart (single linkage). Clustering uses the metric CRS of the whole tile; each
    site is then projected to the CRS chosen for its own location (:func:`.geodesy.site_crs`).

    Args:
        tile_name (str): tile (folder) name used as the site name prefix.
        parsed (Sequence[ParsedCityGML]): the tile's parsed files.
        gap_m (float): linkage distance in metres.
        frame (str): ``'zone'`` (JGD2011 plane rectangular zone of the site), ``'local'``
            (transverse Mercator centred on the site) or an explicit projected CRS.

    Returns:
        list[SiteObjects]: sites ordered by name.
    """
    objects = [o for p in parsed for o in p.objects]
    if not objects:
        return []
    tile_crs = site_crs(frame, *_latlon_centre(objects))
    projected = _project_objects(objects, tile_crs)
    boxes = []
    for obj_polys in projected:
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
        site_objects = [objects[i] for i in idx]
        crs = site_crs(frame, *_latlon_centre(site_objects))
        sites.append(SiteObjects(
            name=f'{tile_name}_{"_".join(codes)}', objects=site_objects,
            projected=([projected[i] for i in idx] if crs == tile_crs
                       else _project_objects(site_objects, crs)),
            sources=sorted({objects[i].source for i in idx}), target_crs=crs))
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
def ground_datum(site: SiteObjects, report: Optional[Counter] = None) -> float:
    """Orthometric height (m) that becomes ``z = 0`` of a site.

    The lowest height of the terrain TIN, the road polygons and the building bases (lowest
    building vertex, i.e. where it meets the ground). Road objects whose heights are all
    zero carry no elevation (PLATEAU LOD1 roads without height survey) and are left out so
    they do not pull the datum down; when a site has none of the above, the lowest vertex of
    any object (zero-height roads included).

    Args:
        site (SiteObjects): the site (``projected`` heights are orthometric metres).
        report (Counter, optional): receives ``road_objects_without_height``.

    Returns:
        float: the datum height (m).
    """
    ground_h = []
    for o, obj in zip(site.objects, site.projected):
        if o.category not in ('terrain', 'road', 'building'):
            continue
        h = np.concatenate([r[0] for r in obj])[:, 2]
        if o.category == 'road' and np.all(np.abs(h) < 1e-6):
            if report is not None:
                report['road_objects_without_height'] += 1
            continue
        ground_h.append(float(h.min()))
    if ground_h:
        return float(min(ground_h))
    return float(min(np.concatenate([r[0] for r in obj])[:, 2].min() for obj in site.projected))


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
        plinths (trimesh.Trimesh | None): ground plinths under raised building bases of a
            site without terrain TIN (their footprints extruded from the datum to the base),
            labelled ``terrain`` and also part of ``meshes['terrain']``; None otherwise.
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
    plinths: Optional[trimesh.Trimesh] = None
    _terrain_scene: Optional[object] = None

    @classmethod
    def build(cls, site: SiteObjects, ground_margin: float = 400.0) -> 'SceneMesh':
        """Triangulate a site into per-class meshes.

        Args:
            site (SiteObjects): the site's objects.
            ground_margin (float): metres by which a synthesised ground plane extends beyond
                the geometry (must cover what frames near the edge see).

        Returns:
            SceneMesh: the meshes.

        Raises:
            ValueError: when the site has no polygon that can be triangulated.
        """
        report: Counter = Counter()
        all_pts = np.concatenate([rings[0] for obj in site.projected for rings in obj])
        datum = ground_datum(site, report)
        frame = LocalFrame.from_projected_points(all_pts, datum, site.target_crs)
        off = np.array([frame.origin_en[0], frame.origin_en[1], datum])
        # without a terrain TIN the plinth under a raised building base is ground, not building
        plinth_is_terrain = not any(o.category == 'terrain' for o in site.objects)

        per_cat: Dict[str, List[Tuple[np.ndarray, np.ndarray]]] = {}
        b_ids: List[np.ndarray] = []
        b_heights, b_centres, roads2d, anchors, plinths = [], [], [], [], []
        for o, obj in zip(site.objects, site.projected):
            drivable = o.category == 'road' and (o.kind in DRIVABLE_KINDS or not o.kind)
            if o.category == 'road' and not drivable:
                report[f'road_objects_not_drivable_{o.kind}'] += 1
            parts = []
            for rings in obj:
                rings_l = [r - off for r in rings]
                tri = triangulate_polygon3d(rings_l[0], rings_l[1:])
                if tri is None:
                    report[f'{o.category}_polygons_degenerate_dropped'] += 1
                    continue
                parts.append(tri)
                if drivable:
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
                if plinth is not None and plinth_is_terrain:
                    report['terrain_plinths_added'] += 1
                    plinths.append(plinth)
                    base = 0.0 if base > 0 else base
                elif plinth is not None:
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
        plinth_mesh = None
        if plinths:
            pv, pf = _merge(plinths)
            good = _triangle_areas(pv, pf) > MIN_FACE_AREA
            if not good.all():
                report['terrain_degenerate_triangles_removed'] += int((~good).sum())
            plinth_mesh = trimesh.Trimesh(pv, pf[good], process=False)
            t = meshes['terrain']
            meshes['terrain'] = trimesh.Trimesh(
                *_merge([(np.asarray(t.vertices), np.asarray(t.faces)),
                         (np.asarray(plinth_mesh.vertices), np.asarray(plinth_mesh.faces))]),
                process=False)
        scene = cls(name=site.name, frame=frame, meshes=meshes,
                    building_ids=np.concatenate(b_ids) if b_ids else np.zeros(0, np.int64),
                    building_heights=np.array(b_heights, np.float64).reshape(-1, 2),
                    building_centres=np.array(b_centres, np.float64).reshape(-1, 2),
                    anchors=np.array(anchors, np.float64).reshape(-1, 2),
                    road_area=shapely.unary_union(roads2d) if roads2d else None,
                    ground_synthesized=synthesized, has_tin=has_tin, ground_extent=ext,
                    content_extent=content, sources=list(site.sources), report=report,
                    plinths=plinth_mesh)
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
