# Video world model on a KITTI raw drive (real images, OXTS speed / yaw-rate actions), a few
# iterations on the bundled 7-frame snippet (smoke scale: 4-frame clips, 2 observed + 2
# predicted; train and val are the same drive, so no held-out claim).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/video_world_small.py',
    '../_base_/datasets/video_world_kitti_raw.py',
    '../_base_/schedules/video_world_iter.py',
]
model = dict(
    # Rough scale of urban driving (speed ~ 10 m/s, yaw rate ~ 0.1 rad/s).
    data_preprocessor=dict(type='VideoDataPreprocessor', action_mean=[8.0, 0.0],
                           action_std=[4.0, 0.1]),
    dynamics=dict(action_dim=2))
max_iters = 20
optim_wrapper = dict(optimizer=dict(lr=1e-3), accumulative_counts=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=5, end=max_iters,
         T_max=max_iters - 5, eta_min=1e-6),
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
