# The seed's training configuration for real users (nuScenes-style camera video at 256 x 256,
# seed configs/training/base.yaml + configs/model/base.yaml): encoder [64, 128, 256, 512],
# latent 256, 4-layer ConvGRU with 512 channels, decoder [512, 256, 128, 64]; batch 16, AMP
# (run with --amp: AmpOptimWrapper on CUDA), gradient accumulation 4, per-module learning
# rates 1e-5 / 1e-4 / 1e-4, 1000-iteration warm-up + cosine to 1e-6, clip 1.0, curriculum
# by action magnitude. Point the dataset at your own data (here the nuScenes loader; set
# data_root / version / scenes), e.g.
#   python tools/train.py configs/video_world/seed_base.py --amp \
#       --cfg-options train_dataloader.dataset.data_root=data/nuscenes \
#       train_dataloader.dataset.version=v1.0-mini ...
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/video_world_base.py',
    '../_base_/datasets/video_world_nuscenes_front.py',
    '../_base_/schedules/video_world_iter.py',
]
model = dict(
    data_preprocessor=dict(type='VideoDataPreprocessor', action_mean=[5.0, 0.0],
                           action_std=[3.0, 0.01]),
    dynamics=dict(action_dim=2))
_resize = dict(type='ResizeVideo', size=(256, 256))
train_dataloader = dict(
    batch_size=16, num_workers=4, persistent_workers=True, pin_memory=True,
    sampler=dict(type='CurriculumSampler', start_fraction=0.3, ramp_passes=10),
    dataset=dict(pipeline=[
        dict(type='LoadVideoFrames'),
        dict(type='VideoAugmentation', brightness=0.2, contrast=0.2, crop_scale=(0.8, 1.0),
             flip_prob=0.5, flip_action_dims=[1]),
        _resize, dict(type='PackVideoInputs')]))
val_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadVideoFrames'), _resize,
                                             dict(type='PackVideoInputs')]))
test_dataloader = val_dataloader
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=5000, max_keep_ckpts=3))
# TensorBoard / work-dir image grids (ground truth / reconstruction / prediction per step) and
# weight / gradient histograms (projects/video_world/hooks).
custom_hooks = [
    dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='VideoWorldVisualizationHook', interval=1000, num_samples=2),
]
