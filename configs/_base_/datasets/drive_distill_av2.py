# Argoverse 2 motion forecasting: 50 history (t0 = step 49) + 60 future poses at 10 Hz, focal
# track as the ego, real AV2 vector map. Built by tools/data_converter/av2_to_drive.py.
# Bundled: the one real scenario of data/av2 (infos_val.pkl) serves train / val / test for
# smoke runs. With the full dataset convert train/ and val/ (--split train / --split val) and
# set train_ann = 'infos_train.pkl'; AV2's test split has no future and is not used.
dataset_type = 'DriveDistillDataset'
data_root = '{{ fileDirname }}/../../../data/drive_distill/av2/'
num_history = 50
num_future = 60
train_ann = 'infos_val.pkl'
val_ann = 'infos_val.pkl'
modality_transform = dict(type='VectorizeScene', max_agents=32, max_polylines=96,
                          points_per_polyline=10, spacing=2.0, max_dist=80.0)
input_keys = ('agent_feats', 'agent_mask', 'map_feats', 'map_mask')
train_pipeline = [
    dict(type='LoadScenarioWindow', num_history=num_history, num_future=num_future),
    dict(type='RandomFlipY', prob=0.5),
    dict(type='ComputeTeacherActions', smooth_weight=0.1),
    modality_transform,
    dict(type='PackDriveInputs', input_keys=input_keys),
]
test_pipeline = [
    dict(type='LoadScenarioWindow', num_history=num_history, num_future=num_future),
    modality_transform,
    dict(type='PackDriveInputs', input_keys=input_keys),
]
train_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file=train_ann,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file=val_ann,
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='TrajectoryMetric', dt=0.1, nuscenes_2hz=False)
test_evaluator = val_evaluator
