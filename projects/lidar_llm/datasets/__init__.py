"""Datasets of projects.lidar_llm (registered on import)."""
from .mixed_nu_dataset import CAMERA_ORDER, MixedNuDataset
from .samplers import LengthGroupedSampler, SampleGroupedSampler

__all__ = ['MixedNuDataset', 'LengthGroupedSampler', 'SampleGroupedSampler', 'CAMERA_ORDER']
