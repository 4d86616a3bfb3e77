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
   to the ground) so the solid reaches the ground; without a terrain TIN the plinth is raised
   ground and labelled ``terrain``.
3. :class:`GlobalSemanticGrid` voxelises the site once per output grid: ground / roads by
   vertical ray casting, surfaces of buildings, bridges and furniture by dense triangle
   sampling, and buildings filled solid (per column, from the lowest to the highest building
   surface). Each frame is then one vectorised gather (:meth:`GlobalSemanticGrid.ego_occupancy`).
4. :class:`LidarSimulator` casts spinning-LiDAR rays with Open3D's Embree ray casting.

The ground datum of a site (``z = 0``) is the lowest height of its terrain TIN, road polygons
(those with heights: all-zero roads carry no elevation) and building bases (lowest building
vertex, i.e. the ground surface); when a site has none of those, the lowest vertex of any
object (:func:`.mesh.ground_datum`).

Modules: :mod:`.mesh` (steps 1 and 2), :mod:`.grid` (step 3), :mod:`.lidar` (step 4); this
module re-exports their public names.
"""
from .grid import GRID_PRESETS, GlobalSemanticGrid, GridSpec
from .lidar import LIDAR_PRESETS, REFLECTIVITY, LidarSimulator, LidarSpec
from .mesh import (CATEGORY_CODE, CATEGORY_LABEL, CATEGORY_PRIORITY, GROUND_EPS,
                   MIN_FACE_AREA, ROAD_DRAPE_OFFSET, SceneMesh, SiteObjects, ground_datum,
                   group_into_sites, triangulate_polygon3d)

__all__ = [
    'CATEGORY_CODE', 'CATEGORY_LABEL', 'CATEGORY_PRIORITY', 'GROUND_EPS', 'MIN_FACE_AREA',
    'ROAD_DRAPE_OFFSET', 'REFLECTIVITY', 'SceneMesh', 'SiteObjects', 'ground_datum',
    'group_into_sites',
    'triangulate_polygon3d', 'GRID_PRESETS', 'GlobalSemanticGrid', 'GridSpec', 'LIDAR_PRESETS',
    'LidarSimulator', 'LidarSpec'
]
