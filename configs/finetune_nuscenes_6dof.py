# AerialWorld on real nuScenes occupancy (configs/finetune_nuscenes.py: Occ3D grid
# 200 x 200 x 16, 4 history + 6 future keyframes at 2 Hz) with the 6-DoF pose branch: the
# world model predicts per step the 13-D ego motion
# [dx, dy, dz, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz] (translation and orientation in the
# previous frame's gravity-aligned frame, velocities; see docs/aerialworld_6dof.md) instead of
# [dx, dy, dz, dyaw], and the metric adds the rotation error in degrees per step.
#        python tools/train.py configs/finetune_nuscenes_6dof.py
# Train from scratch (load_from = None). The converted OccWorld release checkpoint has 4-D
# pose layers (transformer.pose_encoder / pose_decoder) that do not fit the 13-D branch.
_base_ = ['./finetune_nuscenes.py']

model = dict(
    pose_mode='6dof',
    transformer=dict(pose_dims=13, rotation_repr='6d'),
    # Translation per step in metres (a car moves ~0-8 m per 0.5 s step).
    loss_pose=dict(_delete_=True, type='TranslationLoss', loss_type='smooth_l1', beta=1.0,
                   loss_weight=1.0),
    # Geodesic angle in radians (mostly yaw for a car; roll / pitch are small).
    loss_rot=dict(type='GeodesicRotationLoss', loss_weight=1.0),
    # Velocities as auxiliary targets (m/s, rad/s), linear part down-weighted.
    loss_vel=dict(type='VelocityLoss', loss_type='smooth_l1', beta=1.0, linear_weight=0.2,
                  angular_weight=1.0, loss_weight=0.5),
)
