"""projects.aerialworld.datasets: AerialWorld datasets and classes.

Transforms live in :mod:`projects.aerialworld.transforms`, hooks in
:mod:`projects.aerialworld.hooks`.
"""
from .aerialworld_dataset import AerialWorldDataset
from .classes import PLATEAU_CLASSES, PLATEAU_FREE_LABEL
from .occ3d_dataset import Occ3DDataset

__all__ = ['AerialWorldDataset', 'PLATEAU_CLASSES', 'PLATEAU_FREE_LABEL', 'Occ3DDataset']
