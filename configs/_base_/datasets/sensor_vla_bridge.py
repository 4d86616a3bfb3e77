# BridgeData V2 (real WidowX episodes, 4 views 64x64, 7-D delta actions) in the sensor VLA
# episode format. Make it with:
#   python tools/data_converter/bridge_to_vla.py --data-root data/bridge --out-dir data/sensor_vla/bridge
#   python tools/analysis_tools/compute_action_stats.py data/sensor_vla/bridge/train.json \
#       --out data/sensor_vla/bridge/action_stats.json
data_root = 'data/sensor_vla/bridge/'
action_stats = data_root + 'action_stats.json'
chunk_size = 8

train_pipeline = [
    dict(type='LoadVLAStep', chunk_size=chunk_size),
    dict(type='PackVLAInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=16, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='IntegratedDataset', data_root=data_root, ann_file='train.json',
                 sensor_loss_weight=2.0, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='IntegratedDataset', data_root=data_root, ann_file='val.json',
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ActionMetric', stats=action_stats)
test_evaluator = val_evaluator
