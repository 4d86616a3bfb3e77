"""Shared data structures and geometry: 13-D pose helpers."""
from .pose import (EGO_MOTION_DIM, POSE_DIM, accumulate_ego_motion, ego_motion_from_poses,
                   wrap_angle, yaw_from_quaternion, yaw_to_quaternion)

__all__ = [
    'POSE_DIM', 'EGO_MOTION_DIM', 'wrap_angle', 'yaw_from_quaternion', 'yaw_to_quaternion',
    'ego_motion_from_poses', 'accumulate_ego_motion'
]
