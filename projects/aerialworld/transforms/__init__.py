"""projects.aerialworld.transforms: loading, augmentation and packing."""
from .agent_flow import LoadAgentFlow
from .augmentation import RandomFlipOccupancy, mirror_poses_y
from .formatting import PackOccupancyInputs
from .loading import (InvalidSampleError, LoadLidarSequence,
                      LoadOccupancySequence, LoadPoseSequence,
                      pose_from_json_dict)
from .occ3d import LoadIndexPoses, LoadOccupancyMaskSequence

__all__ = [
    'InvalidSampleError', 'LoadAgentFlow', 'LoadOccupancySequence', 'LoadPoseSequence',
    'LoadLidarSequence', 'PackOccupancyInputs', 'RandomFlipOccupancy',
    'mirror_poses_y', 'pose_from_json_dict', 'LoadIndexPoses', 'LoadOccupancyMaskSequence'
]
