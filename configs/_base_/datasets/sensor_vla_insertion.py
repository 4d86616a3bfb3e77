# Generated needle-insertion episodes: rendered top-view images, GENERATED OCT A-scans
# (projects/sensor_vla/synthetic.py), the real screw-driving Fz trace as the force channel.
# Make them with:
#   python tools/data_converter/make_insertion_episodes.py --out-dir data/sensor_vla/insertion
#   python tools/analysis_tools/compute_action_stats.py data/sensor_vla/insertion/train.json \
#       --out data/sensor_vla/insertion/action_stats.json
data_root = 'data/sensor_vla/insertion/'
action_stats = data_root + 'action_stats.json'
chunk_size = 8
sensor_window = 650  # 1 s at 650 Hz
sensor_decimate = 10  # CPU config: 65 samples per window (65 Hz)

train_pipeline = [
    dict(type='LoadVLAStep', chunk_size=chunk_size, window=sensor_window, sensor_channels=1026,
         decimate=sensor_decimate),
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
