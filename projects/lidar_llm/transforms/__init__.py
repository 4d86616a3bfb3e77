"""Transforms of projects.lidar_llm (registered on import)."""
from .loading import (LoadBEVFeature, LoadBEVObjects, LoadBEVSemantics, LoadLiDARPoints,
                      LoadMultiViewImages, PackLidarQAInputs, bev_semantic_map)

__all__ = ['LoadLiDARPoints', 'LoadBEVFeature', 'LoadMultiViewImages', 'LoadBEVObjects',
           'LoadBEVSemantics', 'bev_semantic_map', 'PackLidarQAInputs']
