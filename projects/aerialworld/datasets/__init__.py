"""projects.aerialworld.datasets: AerialWorld datasets and classes.

The hooks moved to :mod:`projects.aerialworld.hooks`; they are re-exported here for old imports.
"""
from .aerialworld_dataset import AerialWorldDataset
from .classes import PLATEAU_CLASSES, PLATEAU_FREE_LABEL
from ..hooks import InvalidSampleReportHook, find_datasets_with_invalid_counter
from .occ3d_dataset import LoadIndexPoses, LoadOccupancyMaskSequence, Occ3DDataset

__all__ = [
    'AerialWorldDataset', 'PLATEAU_CLASSES', 'PLATEAU_FREE_LABEL',
    'InvalidSampleReportHook', 'find_datasets_with_invalid_counter',
    'Occ3DDataset', 'LoadIndexPoses', 'LoadOccupancyMaskSequence'
]
