"""Datasets of projects.video_world (registered on import)."""
from .sampler import CurriculumSampler
from .sources import (bridge_sequences, find_generic_scenes, find_kitti_raw_drives,
                      kitti_raw_drive_sequence, nuscenes_front_sequences, read_generic_scene,
                      read_kitti_oxts)
from .video_dataset import (BridgeVideoDataset, GenericVideoDataset, KittiRawVideoDataset,
                            NuScenesVideoDataset, VideoSequenceDataset, aggregate_actions)

__all__ = [
    'CurriculumSampler', 'bridge_sequences', 'find_generic_scenes', 'find_kitti_raw_drives',
    'kitti_raw_drive_sequence', 'nuscenes_front_sequences', 'read_generic_scene',
    'read_kitti_oxts', 'BridgeVideoDataset', 'GenericVideoDataset', 'KittiRawVideoDataset',
    'NuScenesVideoDataset', 'VideoSequenceDataset', 'aggregate_actions'
]
