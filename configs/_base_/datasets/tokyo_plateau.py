# Tokyo PLATEAU occupancy sessions (built from data/plateau/ by tools/install.sh, see README).
# Paths are relative to this file so configs work from any working directory.
dataset_type = 'AerialWorldDataset'
data_root = '{{ fileDirname }}/../../../data/tokyo/'
class_names = ('other', 'building', 'bridge', 'road', 'terrain', 'city_furniture', 'free')
num_classes = len(class_names)
free_label = num_classes - 1
point_cloud_range = [-40.0, -40.0, -2.0, 40.0, 40.0, 150.0]
voxel_size = [0.4, 0.4, 1.25]
grid_size = [200, 200, 121]
num_history = 4
num_future = 6

train_pipeline = [
    dict(type='LoadOccupancySequence', expected_shape=grid_size, num_classes=num_classes),
    dict(type='LoadPoseSequence'),
    dict(type='PackOccupancyInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='aerialworld_infos_train.pkl',
        pipeline=train_pipeline,
        num_history=num_history,
        num_future=num_future,
        expected_grid_size=grid_size,
        expected_classes=class_names,
        test_mode=False))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='aerialworld_infos_val.pkl',
        pipeline=test_pipeline,
        num_history=num_history,
        num_future=num_future,
        expected_grid_size=grid_size,
        expected_classes=class_names,
        test_mode=True))
test_dataloader = val_dataloader

# Model beside the no-learning baselines (copy-last, constant-velocity ego-motion warp, and the
# planned-pose warp of predict_with_plan), IoU split into visible / newly revealed voxels. The
# warps use the grid range and z reference of the dataset's index metainfo (so configs with
# another grid need no override here). dynamic_classes: labels of classes that move on their
# own (dynamic/IoU, dynamic/mIoU); the static PLATEAU city has none.
val_evaluator = dict(type='OccupancyMetric', num_classes=num_classes, free_label=free_label,
                     class_names=class_names, dynamic_classes=[])
test_evaluator = val_evaluator
