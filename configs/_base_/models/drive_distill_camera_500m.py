# Camera student preset 500m: ResNet-101 with a 12-channel stem (4 frames x RGB per camera),
# d_model 1280, BEV projection, 10 decoder layers over 64 waypoint queries, 8 BEV encoder layers.
model = dict(
    type='DrivingStudent',
    encoder=dict(
        type='CameraBEVEncoder',
        backbone=dict(type='mmdet.ResNet', depth=101, in_channels=12, out_indices=(3,),
                      norm_eval=False, with_cp=True),
        backbone_channels=2048, dim=1280, cam_yaws=(0.0, 55.0, -55.0, 180.0),
        cam_hfovs=(64.0, 64.0, 64.0, 110.0), depth_bins=(2.0, 60.0, 30), bev_size=16,
        bev_range=64.0, num_layers=8, num_heads=8, with_cp=True),
    dim=1280, num_decoder_layers=10, num_heads=8, num_waypoints=64, num_history=16, num_modes=1,
    head_type='unicycle', dt=0.1, with_cp=True,
    traj_loss=dict(type='TrajectoryLoss', position_loss='l2', yaw_weight=0.3),
    action_loss=dict(type='ActionLoss', action_scale=(1.0, 0.05), smooth_weight=0.1,
                     loss_weight=0.05),
    reasoning_loss=dict(type='InfoNCELoss', temperature=0.07, loss_weight=0.1, warmup_iters=500),
    reasoning_dim=384)
