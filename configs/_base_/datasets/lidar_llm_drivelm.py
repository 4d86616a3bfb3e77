# DriveLM-nuScenes QA with the 6 real camera images per key frame (data/drivelm), split by
# scene (index written by tools/data_converter/drivelm_to_qa.py).
data_root = 'data/'
qa_root = 'lidar_llm/drivelm/'
img_size = (96, 160)
train_pipeline = [dict(type='LoadMultiViewImages', img_size=img_size, cache_size=60),
                  dict(type='PackLidarQAInputs')]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=16, num_workers=0,
    # length-grouped batches: 14.9 % padded LLM positions per batch on DriveLM against 52 %
    # for random batches (tools/analysis_tools/benchmark_lidar_llm.py); with 5 training key
    # frames a batch still holds at most 5 distinct frames (their cameras run once each)
    sampler=dict(type='LengthGroupedSampler', batch_size=16),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedNuDataset', data_root=data_root, use_vision=True,
                 ann_file=qa_root + 'drivelm_train.json', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=0,
    sampler=dict(type='LengthGroupedSampler', batch_size=32, shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedNuDataset', data_root=data_root, use_vision=True,
                 ann_file=qa_root + 'drivelm_val.json', pipeline=test_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='DrivingQAMetric',
                     prior_ann_file=data_root + qa_root + 'drivelm_train.json',
                     language=True, meteor=True)
test_evaluator = val_evaluator
