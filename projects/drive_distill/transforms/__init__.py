"""projects.drive_distill.transforms: window loading, vector / raster / camera inputs, packing."""
from .scene_transforms import (ComputeTeacherActions, LoadScenarioWindow, PackDriveInputs,
                               RandomFlipY, RasterizeScene, VectorizeScene, to_ego_frame)
from .seed_transforms import LoadSeedSample

__all__ = ['ComputeTeacherActions', 'LoadScenarioWindow', 'RandomFlipY', 'VectorizeScene',
           'RasterizeScene', 'PackDriveInputs', 'LoadSeedSample', 'to_ego_frame']
