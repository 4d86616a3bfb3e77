# nuScenes semantic occupancy sessions on the Occ3D grid (200 x 200 x 16, 0.4 m voxels,
# [-40, -40, -1, 40, 40, 5.4] m in the ego frame, 18 classes with free = 17), built from the
# 11 real bundled keyframes in data/nuscenes_seq by tools/install.sh
# (tools/data_converter/prepare_bundled_data.py -> data/nuscenes_occ). See
# docs/aerialworld_nuscenes.md.
# One real scene only: the same session is in the train and the val index (metainfo
# `split_note`); val measures fit, not generalisation.
dataset_type = 'AerialWorldDataset'
data_root = '{{ fileDirname }}/../../../data/nuscenes_occ/'
class_names = ('others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle',
               'motorcycle', 'pedestrian', 'traffic_cone', 'trailer', 'truck',
               'driveable_surface', 'other_flat', 'sidewalk', 'terrain', 'manmade',
               'vegetation', 'free')
num_classes = len(class_names)
free_label = num_classes - 1
point_cloud_range = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]
voxel_size = [0.4, 0.4, 0.4]
grid_size = [200, 200, 16]
# 11 keyframes at 2 Hz: windows of 4 history + 6 future frames (2 windows per pass).
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
    num_workers=1,
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
    num_workers=1,
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

# Model beside the no-learning baselines (copy-last, constant-velocity ego-motion warp, planned-
# pose warp), IoU split into visible / newly revealed voxels (grid range and z reference 'ego'
# from the index metainfo). Dynamic classes: the movable objects bicycle, bus, car,
# construction_vehicle, motorcycle, pedestrian, trailer, truck.
val_evaluator = dict(type='OccupancyMetric', num_classes=num_classes, free_label=free_label,
                     class_names=class_names, dynamic_classes=[2, 3, 4, 5, 6, 7, 9, 10])
test_evaluator = val_evaluator
