# BridgeData V2 (RLDS TFRecords, real WidowX robot video with the recorded 7-D actions),
# bundled in data/bridge. The bundled train and val files hold the SAME 25 episodes, so the
# split is by episode (every 5th episode in sorted key order is held out: 20 train / 5 val
# episodes, 3 camera views each). Clips of 10 frames (whole episodes); actions are
# standardised with the training episodes' statistics (see tools/data_converter/
# bridge_to_video.py --stats).
data_root = '{{ fileDirname }}/../../../data/bridge/'
tfrecord_files = ['bridge_dataset-train.tfrecord-00000-of-00001',
                  'bridge_dataset-val.tfrecord-00000-of-00001']
views = ('image_0', 'image_1', 'image_2')
sequence_length = 10
frame_skip = 1
train_pipeline = [
    dict(type='LoadVideoFrames'),
    # Bridge actions live in the robot base frame, not the camera's: a mirrored image has
    # no well-defined mirrored action, so no flip here.
    dict(type='VideoAugmentation', brightness=0.1, contrast=0.1, crop_scale=(0.9, 1.0),
         flip_prob=0.0),
    dict(type='ResizeVideo', size=(64, 64)),
    dict(type='PackVideoInputs'),
]
test_pipeline = [
    dict(type='LoadVideoFrames'),
    dict(type='ResizeVideo', size=(64, 64)),
    dict(type='PackVideoInputs'),
]
_dataset = dict(type='BridgeVideoDataset', data_root=data_root, tfrecord_files=tfrecord_files,
                views=views, sequence_length=sequence_length, frame_skip=frame_skip,
                val_every=5)
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**_dataset, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(**_dataset, split='val', test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='VideoPredictionMetric')
test_evaluator = val_evaluator
