# UAVScenes occupancy sessions (DESIGN.md §3 grid: 200 x 200 x 120, 0.4 m x 0.4 m x 0.5 m,
# z = -10..50 m above the sequence's ground datum), written by
# tools/data_converter/uavscenes_to_occ.py. The default data_root is the sample built from the
# real-survey fixture in tests/data/uavscenes by tools/data_converter/prepare_bundled_data.py
# (tools/install.sh runs it); point data_root at your converted release for real training.
# Classes (the static PLATEAU list), window lengths and loaders as tokyo_static.py.
_base_ = ['./tokyo_static.py']  # the PLATEAU class list without traffic
data_root = '{{ fileDirname }}/../../../data/uavscenes_sample/'
point_cloud_range = [-40.0, -40.0, -10.0, 40.0, 40.0, 50.0]
voxel_size = [0.4, 0.4, 0.5]
grid_size = [200, 200, 120]
train_pipeline = [
    dict(type='LoadOccupancySequence', expected_shape=grid_size,
         num_classes={{_base_.num_classes}}),
    dict(type='LoadPoseSequence'),
    dict(type='PackOccupancyInputs'),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline, expected_grid_size=grid_size))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline, expected_grid_size=grid_size))
test_dataloader = val_dataloader
