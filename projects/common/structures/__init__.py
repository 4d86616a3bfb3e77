"""Shared data structures and geometry: 13-D pose, quaternion and 6-DoF motion helpers."""
from .pose import (EGO_MOTION_DIM, POSE_DIM, accumulate_ego_motion, ego_motion_from_poses,
                   wrap_angle, yaw_from_quaternion, yaw_to_quaternion)
from .pose6dof import (MOTION_6DOF_DIM, compose_ego_motion_6dof, ego_motion_6dof_from_poses,
                       frame_motion_6dof, identity_motion_6dof, planar_from_motion_6dof)
from .rotation import (matrix_to_quat, quat_angle, quat_canonical, quat_conjugate,
                       quat_from_yaw, quat_geodesic_distance, quat_multiply, quat_normalize,
                       quat_rotate, quat_to_matrix, quat_yaw, rotation_6d_to_matrix)

__all__ = [
    'POSE_DIM', 'EGO_MOTION_DIM', 'wrap_angle', 'yaw_from_quaternion', 'yaw_to_quaternion',
    'ego_motion_from_poses', 'accumulate_ego_motion', 'MOTION_6DOF_DIM',
    'ego_motion_6dof_from_poses', 'frame_motion_6dof', 'compose_ego_motion_6dof',
    'planar_from_motion_6dof', 'identity_motion_6dof', 'quat_normalize', 'quat_canonical',
    'quat_conjugate', 'quat_multiply', 'quat_rotate', 'quat_to_matrix', 'matrix_to_quat',
    'rotation_6d_to_matrix', 'quat_angle', 'quat_geodesic_distance', 'quat_from_yaw',
    'quat_yaw'
]
