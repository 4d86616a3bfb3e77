# KITTI raw drives (left colour camera image_02, OXTS at 10 Hz): actions = (forward speed m/s,
# yaw rate rad/s), the trapezoidal mean of the OXTS packets of each interval. The bundled data
# (data/kitti_tiny) is one 7-frame snippet of 2011_09_26_drive_0023: train and val are the
# same drive here (a smoke-scale set; with a full KITTI raw tree, name disjoint `drives` per
# split). Frames are resized to 64 x 208 (KITTI's 3.3 : 1 aspect, divisible by the stride 8).
data_root = '{{ fileDirname }}/../../../data/kitti_tiny/'
sequence_length = 4
frame_skip = 1
train_pipeline = [
    dict(type='LoadVideoFrames'),
    # A mirrored drive turns the other way: the flip negates the yaw rate (action dim 1).
    dict(type='VideoAugmentation', brightness=0.2, contrast=0.2, crop_scale=(0.8, 1.0),
         flip_prob=0.5, flip_action_dims=[1]),
    dict(type='ResizeVideo', size=(64, 208)),
    dict(type='PackVideoInputs'),
]
test_pipeline = [
    dict(type='LoadVideoFrames'),
    dict(type='ResizeVideo', size=(64, 208)),
    dict(type='PackVideoInputs'),
]
_dataset = dict(type='KittiRawVideoDataset', data_root=data_root,
                drives=['2011_09_26_drive_0023_sync'], camera='image_02',
                sequence_length=sequence_length, frame_skip=frame_skip)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**_dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**_dataset, test_mode=True, clip_stride=1, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VideoPredictionMetric')
test_evaluator = val_evaluator
