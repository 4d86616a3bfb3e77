# AerialWorld on UAVScenes (real drone LiDAR with per-point labels and 6-DoF poses, converted
# by tools/data_converter/uavscenes_to_occ.py): the two-stage recipe of finetune_tokyo on the
# UAVScenes grid of DESIGN.md §3 (200 x 200 x 120, 0.4 m x 0.4 m x 0.5 m, z = -10..50 m above
# the ground datum), 4 history + 6 future key frames (interval5 key frames: 2 Hz).
#     python tools/train.py configs/finetune_uavscenes.py
# Out of the box it trains on data/uavscenes_sample/ (built by tools/install.sh from the
# real-survey fixture in tests/data/uavscenes); set data_root for the converted release:
#     --cfg-options train_dataloader.dataset.data_root=data/uavscenes/ \
#                   val_dataloader.dataset.data_root=data/uavscenes/ \
#                   test_dataloader.dataset.data_root=data/uavscenes/
# See docs/aerialworld_uavscenes.md.
_base_ = [
    './_base_/default_runtime.py',
    './_base_/datasets/uavscenes.py',
    './_base_/models/aerialworld.py',
    './_base_/schedules/aerialworld_two_stage.py',
]
point_cloud_range = [-40.0, -40.0, -10.0, 40.0, 40.0, 50.0]
voxel_size = [0.4, 0.4, 0.5]
grid_size = [200, 200, 120]
max_iters = 20000
switch_iter = 8000
train_cfg = dict(max_iters=max_iters, val_interval=2000)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=1e-6, by_epoch=False, begin=0,
         end=max_iters),
]
model = dict(
    tokenizer_frames=4,  # tokenizer stage reconstructs 4 random frames per window (memory)
    # Copy-through decoding of rollouts (z is height above the ground datum, as for PLATEAU).
    copy_decode=dict(point_cloud_range=point_cloud_range, z_reference='ground'),
    # 120 height slices -> 30 before folding height into channels (as finetune_tokyo: 121 -> 31)
    tokenizer=dict(grid_size=grid_size, z_reduction=4, z_embed_dim=8, base_channels=64,
                   channel_mults=(1, 2, 4), num_res_blocks=2, num_codes=512, code_dim=128,
                   with_cp=True),
    transformer=dict(d_model=128, num_blocks=4, num_heads=8, max_frames=10,
                     spatial_scales=(1, 2, 4), copy_prior=6.0, pose_residual=True,
                     copy_warp_range=[point_cloud_range[0], point_cloud_range[1],
                                      point_cloud_range[3], point_cloud_range[4]]))
train_dataloader = dict(batch_size=1, num_workers=2)
val_dataloader = dict(batch_size=1, num_workers=2, dataset=dict(window_stride=5))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=1000))
custom_hooks = [
    dict(type='CheckpointCompatHook'),
    dict(type='TrainStageSwitchHook', switch_iter=switch_iter),
    dict(type='InvalidSampleReportHook'),
    dict(type='SignalCheckpointHook'),
    dict(type='OccupancyCollapseHook', warn_ratio=0.1),
    dict(type='OccupancyVisualizationHook', max_samples=2, draw_3d=True),
]
visualizer = dict(type='OccupancyVisualizer', point_cloud_range=point_cloud_range,
                  voxel_size=voxel_size)
