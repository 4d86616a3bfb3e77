# Grounded LiDAR QA from the real nuScenes boxes of data/nuscenes_seq (11 keyframes; the
# last 2 held out) and data/nuscenes_frame (1 keyframe, train); index written by
# tools/data_converter/nuscenes_qa_from_boxes.py (see docs/lidar_llm.md).
data_root = 'data/'
qa_root = 'lidar_llm/nuscenes_qa/'
train_pipeline = [dict(type='LoadLiDARPoints', load_dim=5, use_dim=4),
                  dict(type='PackLidarQAInputs')]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=16, num_workers=0,
    sampler=dict(type='SampleGroupedSampler', batch_size=16, questions_per_sample=8),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedNuDataset', data_root=data_root,
                 ann_file=qa_root + 'nuscenes_qa_train.json', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=48, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedNuDataset', data_root=data_root,
                 ann_file=qa_root + 'nuscenes_qa_val.json', pipeline=test_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='DrivingQAMetric',
                     prior_ann_file=data_root + qa_root + 'nuscenes_qa_train.json',
                     language=True, meteor=False)
test_evaluator = val_evaluator
