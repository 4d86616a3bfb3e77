"""Transforms of projects.lidar_llm (registered on import)."""
from .loading import (LoadBEVFeature, LoadBEVObjects, LoadLiDARPoints, LoadMultiViewImages,
                      PackLidarQAInputs)

__all__ = ['LoadLiDARPoints', 'LoadBEVFeature', 'LoadMultiViewImages', 'LoadBEVObjects',
           'PackLidarQAInputs']
