# Camera student, 110m preset (ResNet-50 12-channel stem, d_model 768), on the real nuScenes
# demo keyframe (4 cameras) with the logged ego future of scene-0061 as the label
# (data/drive_distill/camera_demo, built by projects.drive_distill.converters.camera_demo).
# A smoke-scale run: a few iterations on CPU.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/drive_distill_camera_110m.py',
]
model_name = 'camera_110m'
data_root = '{{ fileDirname }}/../../data/drive_distill/camera_demo/'
pipeline = [
    dict(type='LoadSeedSample'),
    dict(type='PackDriveInputs', input_keys=('frames',)),
]
train_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='DriveDistillDataset', data_root=data_root, ann_file='infos.pkl',
                 pipeline=pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='DriveDistillDataset', data_root=data_root, ann_file='infos.pkl',
                 pipeline=pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='TrajectoryMetric', dt=0.1)
test_evaluator = val_evaluator
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='ProgressLoggerHook', interval=1),
    checkpoint=dict(type='SeededCheckpointHook', by_epoch=False, interval=4, max_keep_ckpts=1,
                    filename_tmpl='drive_distill_' + model_name + '_seed{seed}_iter_{}.pth'))
