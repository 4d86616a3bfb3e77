# The 6-DoF pose losses of AerialWorld's 13-D ego-motion branch (pose_mode='6dof'), shared by
# finetune_6dof.py, finetune_nuscenes_6dof.py and test_local_6dof.py as
# model.head.pose_losses = {{_base_.pose_losses_6dof}}: translation per step in metres,
# geodesic rotation angle in radians (1 rad weighs like 1 m), velocities (m/s, rad/s) as
# auxiliary targets with the linear part down-weighted.
pose_losses_6dof = [
    dict(type='TranslationLoss', target='pose', loss_type='smooth_l1', beta=1.0,
         loss_weight=1.0),
    dict(type='GeodesicRotationLoss', target='rot', loss_weight=1.0),
    dict(type='VelocityLoss', target='vel', loss_type='smooth_l1', beta=1.0,
         linear_weight=0.2, angular_weight=1.0, loss_weight=0.5),
]
