# AerialWorld with the 6-DoF pose branch: the finetune_tokyo recipe (Tokyo PLATEAU sessions,
# DESIGN grid 200 x 200 x 121 at 0.4 m x 0.4 m x 1.25 m, 4 history + 6 future frames at 2 Hz,
# two stages) with the world model predicting per step the 13-D 6-DoF ego motion
# [dx, dy, dz, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz] (translation and orientation in the
# previous frame's gravity-aligned frame, velocities; see docs/aerialworld_6dof.md) instead of
# the planar [dx, dy, dz, dyaw].        python tools/train.py configs/finetune_6dof.py
_base_ = ['./finetune_tokyo.py', './_base_/models/aerialworld_6dof_pose_losses.py']

model = dict(
    pose_mode='6dof',
    # pose_dims follows pose_mode (13); the rotation head uses the continuous 6-D
    # representation (Zhou et al., CVPR 2019; the transformer's default rotation_repr) turned
    # into a unit quaternion. The copy prior warp of finetune_tokyo uses the planar part (dx,
    # dy, yaw of the quaternion).
    # 6-DoF pose losses (replacing the planar smooth-L1 of the base): translation per step in
    # metres, geodesic rotation angle in radians (1 rad weighs like 1 m), velocities (m/s,
    # rad/s) as auxiliary targets with the linear part down-weighted. The occupancy and token
    # losses stay the base's.
    head=dict(pose_losses={{_base_.pose_losses_6dof}}),
)
