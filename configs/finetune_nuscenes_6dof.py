# AerialWorld on real nuScenes occupancy (configs/finetune_nuscenes.py: Occ3D grid
# 200 x 200 x 16, 4 history + 6 future keyframes at 2 Hz) with the 6-DoF pose branch: the
# world model predicts per step the 13-D ego motion
# [dx, dy, dz, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz] (translation and orientation in the
# previous frame's gravity-aligned frame, velocities; see docs/aerialworld_6dof.md) instead of
# [dx, dy, dz, dyaw], and the metric adds the rotation error in degrees per step.
#        python tools/train.py configs/finetune_nuscenes_6dof.py
# Train from scratch (load_from = None). The converted OccWorld release checkpoint has 4-D
# pose layers (transformer.pose_encoder / pose_decoder) that do not fit the 13-D branch.
_base_ = ['./finetune_nuscenes.py', './_base_/models/aerialworld_6dof_pose_losses.py']

model = dict(
    pose_mode='6dof',
    # finetune_nuscenes states OccWorld's 4-D pose layers; the 6-DoF branch needs 13 (the
    # rotation head uses the continuous 6-D representation, Zhou et al., CVPR 2019).
    transformer=dict(pose_dims=13),
    # 6-DoF pose losses (replacing the planar smooth-L1 of the base): translation per step in
    # metres, geodesic rotation angle in radians (1 rad weighs like 1 m), velocities (m/s,
    # rad/s) as auxiliary targets with the linear part down-weighted. The occupancy and token
    # losses stay the base's.
    head=dict(pose_losses={{_base_.pose_losses_6dof}}),
)
