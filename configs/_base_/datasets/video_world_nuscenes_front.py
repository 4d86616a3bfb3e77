# nuScenes CAM_FRONT sequences through nuscenes-devkit; actions = (speed m/s, curvature 1/m)
# from consecutive ego poses. Defaults to the tiny table set of the tests
# (tests/data/nuscenes_front: the real DriveLM CAM_FRONT keyframes, made-up ego poses); for
# the real dataset set data_root to your nuScenes root, version to 'v1.0-mini' /
# 'v1.0-trainval', and the scene lists of each split. Split by scene.
data_root = '{{ fileDirname }}/../../../tests/data/nuscenes_front/'
version = 'v1.0-tiny'
sequence_length = 3
train_pipeline = [
    dict(type='LoadVideoFrames'),
    # A mirrored drive curves the other way: the flip negates the curvature (action dim 1).
    dict(type='VideoAugmentation', brightness=0.2, contrast=0.2, crop_scale=(0.8, 1.0),
         flip_prob=0.5, flip_action_dims=[1]),
    dict(type='ResizeVideo', size=(64, 112)),
    dict(type='PackVideoInputs'),
]
test_pipeline = [
    dict(type='LoadVideoFrames'),
    dict(type='ResizeVideo', size=(64, 112)),
    dict(type='PackVideoInputs'),
]
_dataset = dict(type='NuScenesVideoDataset', data_root=data_root, version=version,
                camera='CAM_FRONT', sequence_length=sequence_length)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**_dataset, scenes=['scene-front-b'], pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**_dataset, scenes=['scene-front-a'], test_mode=True, clip_stride=1,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VideoPredictionMetric')
test_evaluator = val_evaluator
