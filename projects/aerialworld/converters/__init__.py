"""PLATEAU CityGML -> AerialWorld semantic occupancy converter.

Modules: :mod:`.citygml` (robust CityGML reading and validation), :mod:`.geodesy` (pyproj
local frames), :mod:`.scene` (overview of the scene simulation: :mod:`.mesh` sites and semantic
meshes, :mod:`.grid` the global voxel grid, :mod:`.lidar` LiDAR ray casting),
:mod:`.trajectories` (drone / rover trajectories and 13-D poses), :mod:`.plateau_to_occ`
(pipeline and session / index writer), :mod:`.traffic` (moving agents: :mod:`.traffic_agents`
types and options, :mod:`.traffic_map` raster map, :mod:`.traffic_roads` lane graph,
:mod:`.traffic_vehicles` vehicle rules, :mod:`.traffic_boxes` boxes). :mod:`.uavscenes`:
UAVScenes LiDAR sequences -> sessions.
"""
from .citygml import (CityGMLError, CityGMLReader, CityObject, ParsedCityGML, Polygon3D,
                      read_citygml)
from .geodesy import (DEFAULT_TARGET_CRS, LocalFrame, project_latlon,
                      select_plane_rectangular_zone, site_crs)
from .nuscenes_occ import (NuScenesOccConfig, NuScenesOccConverter, NuScenesSequenceError,
                           convert_nuscenes_sequence)
from .plateau_to_occ import (CONVERTER_VERSION, INDEX_FILES, ConverterConfig,
                             PlateauOccupancyConverter, SessionPlan, config_hash,
                             convert_plateau, find_gml_files, pose_record, write_frame,
                             write_index)
from .scene import (CATEGORY_PRIORITY, GRID_PRESETS, LIDAR_PRESETS, GlobalSemanticGrid,
                    GridSpec, LidarSimulator, LidarSpec, SceneMesh, SiteObjects,
                    group_into_sites, triangulate_polygon3d)
from .trajectories import (DRONE_KINDS, ROVER_KIND, SurfaceModel, Trajectory,
                           drone_trajectory, rover_trajectory)
from .uavscenes import (UAVSCENES_GRID, UAVScenesConfig, UAVScenesConverter, UAVScenesError,
                        convert_uavscenes, find_sequences, map_labels, read_sampleinfos,
                        read_scan, trajectory_from_poses, voxelize_labels)

__all__ = [
    'CityGMLError', 'CityGMLReader', 'CityObject', 'ParsedCityGML', 'Polygon3D',
    'read_citygml', 'DEFAULT_TARGET_CRS', 'LocalFrame', 'project_latlon',
    'select_plane_rectangular_zone', 'site_crs', 'CONVERTER_VERSION',
    'INDEX_FILES', 'ConverterConfig', 'PlateauOccupancyConverter', 'SessionPlan',
    'config_hash', 'convert_plateau', 'find_gml_files', 'pose_record', 'write_frame',
    'write_index', 'CATEGORY_PRIORITY', 'GRID_PRESETS', 'LIDAR_PRESETS', 'GlobalSemanticGrid',
    'GridSpec', 'LidarSimulator', 'LidarSpec', 'SceneMesh', 'SiteObjects', 'group_into_sites',
    'triangulate_polygon3d', 'DRONE_KINDS', 'ROVER_KIND', 'SurfaceModel', 'Trajectory',
    'drone_trajectory', 'rover_trajectory', 'NuScenesOccConfig', 'NuScenesOccConverter',
    'NuScenesSequenceError', 'convert_nuscenes_sequence', 'UAVSCENES_GRID', 'UAVScenesConfig',
    'UAVScenesConverter', 'UAVScenesError', 'convert_uavscenes', 'find_sequences', 'map_labels',
    'read_sampleinfos', 'read_scan', 'trajectory_from_poses', 'voxelize_labels'
]
