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

__all__ = ['PLATEAU_CLASSES', 'PLATEAU_FREE_LABEL', 'PLATEAU_NUM_CLASSES', 'PLATEAU_PALETTE']
