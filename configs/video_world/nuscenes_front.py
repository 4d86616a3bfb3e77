# Video world model on nuScenes CAM_FRONT through nuscenes-devkit (speed / curvature actions
# from ego_pose). Defaults to the tiny table set of tests/data/nuscenes_front (real images,
# made-up ego poses): a few iterations, trained on scene-front-b, tested on scene-front-a.
# 3-frame clips: 2 observed + 1 predicted (the scenes have 4 and 5 keyframes).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/video_world_small.py',
    '../_base_/datasets/video_world_nuscenes_front.py',
    '../_base_/schedules/video_world_iter.py',
]
model = dict(
    # Rough scale of urban driving (speed ~ 5 m/s, curvature ~ 0.01 1/m).
    data_preprocessor=dict(type='VideoDataPreprocessor', action_mean=[5.0, 0.0],
                           action_std=[3.0, 0.01]),
    dynamics=dict(action_dim=2))
max_iters = 10
optim_wrapper = dict(optimizer=dict(lr=1e-3), accumulative_counts=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=3, end=max_iters,
         T_max=max_iters - 3, eta_min=1e-6),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=max_iters))
# TensorBoard / work-dir image grids (ground truth / reconstruction / prediction per step) and
# weight / gradient histograms (projects/video_world/hooks).
custom_hooks = [
    dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='VideoWorldVisualizationHook', interval=5, num_samples=2),
]
