"""projects.aerialworld.datasets: AerialWorld dataset, classes and hooks."""
from .aerialworld_dataset import AerialWorldDataset
from .classes import PLATEAU_CLASSES, PLATEAU_FREE_LABEL
from .hooks import InvalidSampleReportHook, find_datasets_with_invalid_counter

__all__ = [
    'AerialWorldDataset', 'PLATEAU_CLASSES', 'PLATEAU_FREE_LABEL',
    'InvalidSampleReportHook', 'find_datasets_with_invalid_counter'
]
