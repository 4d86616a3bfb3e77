# Camera student preset 110m: ResNet-50 with a 12-channel stem (4 frames x RGB per camera),
# d_model 768, BEV projection, 6 decoder layers over 64 waypoint queries, 2 BEV encoder layers.
model = dict(
    type='DrivingStudent',
    encoder=dict(
        type='CameraBEVEncoder',
        backbone=dict(type='mmdet.ResNet', depth=50, in_channels=12, out_indices=(3,),
                      norm_eval=False, with_cp=False),
        backbone_channels=2048, dim=768, cam_yaws=(0.0, 55.0, -55.0, 180.0),
        cam_hfovs=(64.0, 64.0, 64.0, 110.0), depth_bins=(2.0, 60.0, 30), bev_size=16,
        bev_range=64.0, num_layers=2, num_heads=8, with_cp=False),
    dim=768, num_decoder_layers=6, num_heads=8, num_waypoints=64, num_history=16, num_modes=1,
    head_type='unicycle', dt=0.1, with_cp=False,
    traj_loss=dict(type='TrajectoryLoss', position_loss='l2', yaw_weight=0.3),
    action_loss=dict(type='ActionLoss', action_scale=(1.0, 0.05), smooth_weight=0.1,
                     loss_weight=0.05),
    reasoning_loss=dict(type='InfoNCELoss', temperature=0.07, loss_weight=0.1, warmup_iters=500),
    reasoning_dim=384)
