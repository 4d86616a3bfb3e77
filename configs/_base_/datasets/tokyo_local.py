# The seed's local test grid (50 x 50 x 30, 0.8 m x 0.8 m x 1 m voxels, z = -5..25 m above
# ground) built from the same bundled Tokyo PLATEAU tiles by tools/install.sh
# (data/tokyo_local). Classes (with traffic), window lengths, loaders and the two val sets
# (held-out sessions, held-out tile) as tokyo_plateau.py.
_base_ = ['./tokyo_plateau.py']
data_root = '{{ fileDirname }}/../../../data/tokyo_local/'
point_cloud_range = [-20.0, -20.0, -5.0, 20.0, 20.0, 25.0]
voxel_size = [0.8, 0.8, 1.0]
grid_size = [50, 50, 30]

train_pipeline = [
    dict(type='LoadOccupancySequence', expected_shape=grid_size,
         num_classes={{_base_.num_classes}}),
    dict(type='LoadPoseSequence'),
    dict(type='PackOccupancyInputs', meta_keys={{_base_.meta_keys}}),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline, expected_grid_size=grid_size))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=test_pipeline, expected_grid_size=grid_size))
test_dataloader = val_dataloader
