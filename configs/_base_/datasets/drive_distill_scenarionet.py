# ScenarioNet nuScenes v1.0-mini, 16 history + 64 future poses at 10 Hz, split by scene
# (built by tools/data_converter/scenarionet_to_drive.py):
#   train: infos_train_fit.pkl      7 of the 8 official mini_train scenes
#   val:   infos_train_holdout.pkl  scene-0757, carved from mini_train (checkpoint selection,
#                                   early stopping)
#   test:  infos_val.pkl            the 2 official mini_val scenes, never seen by any training
#                                   decision (tested once with the selected checkpoint)
dataset_type = 'DriveDistillDataset'
data_root = '{{ fileDirname }}/../../../data/drive_distill/scenarionet/'
num_history = 16
num_future = 64
# the modality transform and the packed keys are set by each student config
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
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='infos_train_fit.pkl',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='infos_train_holdout.pkl',
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='infos_val.pkl',
                 pipeline=test_pipeline, test_mode=True))
val_evaluator = dict(type='TrajectoryMetric', dt=0.1, nuscenes_2hz=True)
test_evaluator = val_evaluator
