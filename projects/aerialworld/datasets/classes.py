"""Semantic classes of the AerialWorld PLATEAU occupancy data.

The label of a voxel is the index of its class in :data:`PLATEAU_CLASSES`; ``free`` is always
the last class (:data:`PLATEAU_FREE_LABEL`). This module is the single definition used by the
PLATEAU converter, the datasets, the model and the metrics.
"""

#: Class names, in label order. ``free`` (empty space) is last.
PLATEAU_CLASSES = ('other', 'building', 'bridge', 'road', 'terrain',
                   'city_furniture', 'free')

#: Label of empty space (``PLATEAU_CLASSES.index('free')``).
PLATEAU_FREE_LABEL = 6

#: Number of classes including ``free``.
PLATEAU_NUM_CLASSES = len(PLATEAU_CLASSES)

#: RGB colour (0..255) per class, same order as :data:`PLATEAU_CLASSES`, for visualisation.
PLATEAU_PALETTE = (
    (150, 150, 150),  # other: grey
    (230, 120, 60),   # building: orange
    (160, 60, 200),   # bridge: purple
    (60, 60, 60),     # road: dark grey
    (110, 180, 80),   # terrain: green
    (240, 210, 40),   # city_furniture: yellow
    (255, 255, 255),  # free: white (usually not drawn)
)

assert PLATEAU_CLASSES[PLATEAU_FREE_LABEL] == 'free'
assert len(PLATEAU_PALETTE) == len(PLATEAU_CLASSES)

#: Classes of the moving agents of the traffic simulation (``converters/traffic.py``).
PLATEAU_DYNAMIC_CLASSES = ('vehicle', 'pedestrian', 'drone')

#: Class names of PLATEAU data converted with traffic: the static classes, then the dynamic
#: ones, ``free`` still last. Labels 0..5 mean the same in both lists; data converted without
#: traffic keeps :data:`PLATEAU_CLASSES` (``free`` = 6), data with traffic uses this list
#: (``free`` = 9). The index metainfo names the list (``classes``, ``free_label``) and
#: :func:`plateau_classes` is the one place that picks it.
PLATEAU_TRAFFIC_CLASSES = PLATEAU_CLASSES[:-1] + PLATEAU_DYNAMIC_CLASSES + ('free',)

#: Label of empty space in data with traffic (``PLATEAU_TRAFFIC_CLASSES.index('free')``).
PLATEAU_TRAFFIC_FREE_LABEL = len(PLATEAU_TRAFFIC_CLASSES) - 1

#: Colours of :data:`PLATEAU_TRAFFIC_CLASSES`.
PLATEAU_TRAFFIC_PALETTE = PLATEAU_PALETTE[:-1] + (
    (220, 30, 30),    # vehicle: red
    (30, 120, 230),   # pedestrian: blue
    (0, 200, 200),    # drone: cyan
) + PLATEAU_PALETTE[-1:]

assert PLATEAU_TRAFFIC_CLASSES[PLATEAU_TRAFFIC_FREE_LABEL] == 'free'
assert PLATEAU_TRAFFIC_CLASSES[:PLATEAU_FREE_LABEL] == PLATEAU_CLASSES[:PLATEAU_FREE_LABEL]
assert len(PLATEAU_TRAFFIC_PALETTE) == len(PLATEAU_TRAFFIC_CLASSES)


def plateau_classes(traffic: bool):
    """Class list, free label and palette of PLATEAU data with or without traffic.

    Args:
        traffic (bool): True for data converted with moving agents.

    Returns:
        tuple: ``(classes, free_label, palette)``: :data:`PLATEAU_TRAFFIC_CLASSES`, 9 and
        :data:`PLATEAU_TRAFFIC_PALETTE` with traffic, else :data:`PLATEAU_CLASSES`, 6 and
        :data:`PLATEAU_PALETTE`.
    """
    if traffic:
        return PLATEAU_TRAFFIC_CLASSES, PLATEAU_TRAFFIC_FREE_LABEL, PLATEAU_TRAFFIC_PALETTE
    return PLATEAU_CLASSES, PLATEAU_FREE_LABEL, PLATEAU_PALETTE


# ----------------------------------------------------------------------------- UAVScenes
#: Class ids of the UAVScenes release (Wang et al., ICCV 2025; ``cmap.py`` of the release):
#: id -> name. Ids without a name in the release (7, 8, 12, 21, 22, 23, 25) are kept as
#: ``'unnamed_<id>'``. Per-point LiDAR labels (``interval*_LIDAR_label_id``) use these ids.
UAVSCENES_CLASSES = {
    0: 'background', 1: 'roof', 2: 'dirt_motor_road', 3: 'paved_motor_road', 4: 'river',
    5: 'pool', 6: 'bridge', 7: 'unnamed_7', 8: 'unnamed_8', 9: 'container', 10: 'airstrip',
    11: 'traffic_barrier', 12: 'unnamed_12', 13: 'green_field', 14: 'wild_field',
    15: 'solar_board', 16: 'umbrella', 17: 'transparent_roof', 18: 'car_park',
    19: 'paved_walk', 20: 'sedan', 21: 'unnamed_21', 22: 'unnamed_22', 23: 'unnamed_23',
    24: 'truck', 25: 'unnamed_25',
}

#: UAVScenes class name -> AerialWorld class name (:data:`PLATEAU_CLASSES`). Rationale:
#: roofs are the visible part of buildings; every drivable or walkable paved surface
#: (roads, airstrip, car park, walkway) is ``road``; open ground and water surfaces are
#: ``terrain`` (AerialWorld has no water class) except pools, which are built structures
#: (``other``); small street objects are ``city_furniture``; vehicles, containers, unnamed
#: ids and background are ``other``. Never ``free``: a labelled point is occupied.
UAVSCENES_TO_AERIALWORLD = {
    'background': 'other', 'roof': 'building', 'transparent_roof': 'building',
    'dirt_motor_road': 'road', 'paved_motor_road': 'road', 'airstrip': 'road',
    'car_park': 'road', 'paved_walk': 'road', 'river': 'terrain', 'green_field': 'terrain',
    'wild_field': 'terrain', 'pool': 'other', 'bridge': 'bridge',
    'traffic_barrier': 'city_furniture', 'umbrella': 'city_furniture',
    'solar_board': 'city_furniture', 'container': 'other', 'sedan': 'other', 'truck': 'other',
    'unnamed_7': 'other', 'unnamed_8': 'other', 'unnamed_12': 'other', 'unnamed_21': 'other',
    'unnamed_22': 'other', 'unnamed_23': 'other', 'unnamed_25': 'other',
}

#: Occ3D-nuScenes semantic classes in label order (the OccWorld release uses the same order);
#: ``free`` (17) is last, as in our convention (DESIGN.md §4).
OCC3D_NUSCENES_CLASSES = (
    'others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle', 'motorcycle',
    'pedestrian', 'traffic_cone', 'trailer', 'truck', 'driveable_surface', 'other_flat',
    'sidewalk', 'terrain', 'manmade', 'vegetation', 'free')
OCC3D_FREE_LABEL = len(OCC3D_NUSCENES_CLASSES) - 1  # 17

assert set(UAVSCENES_TO_AERIALWORLD) == set(UAVSCENES_CLASSES.values())
assert set(UAVSCENES_TO_AERIALWORLD.values()) <= set(PLATEAU_CLASSES) - {'free'}

__all__ = ['PLATEAU_CLASSES', 'PLATEAU_FREE_LABEL', 'PLATEAU_NUM_CLASSES', 'PLATEAU_PALETTE',
           'PLATEAU_DYNAMIC_CLASSES', 'PLATEAU_TRAFFIC_CLASSES', 'PLATEAU_TRAFFIC_FREE_LABEL',
           'PLATEAU_TRAFFIC_PALETTE', 'plateau_classes',
           'UAVSCENES_CLASSES', 'UAVSCENES_TO_AERIALWORLD', 'OCC3D_NUSCENES_CLASSES',
           'OCC3D_FREE_LABEL']
