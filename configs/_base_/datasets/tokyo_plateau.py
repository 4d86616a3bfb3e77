# Tokyo PLATEAU occupancy sessions with moving traffic (built from data/plateau/ by
# tools/install.sh, tools/data_converter/prepare_bundled_data.py; see README). Paths are
# relative to this file so configs work from any working directory.
#
# Two val sets in one val index (each frame record names its `val_set`, packed into every
# sample's metainfo): 'heldout_session' (sessions of the training tiles kept out of training)
# and 'heldout_tile' (sessions on a tile, ota_53392633, that no training session sees).
# OccupancyMetric logs the combined table and one per set (keys '<set>/IoU@6', ...).
dataset_type = 'AerialWorldDataset'
data_root = '{{ fileDirname }}/../../../data/tokyo/'
# The PLATEAU classes with traffic (projects/aerialworld/datasets/classes.py,
# PLATEAU_TRAFFIC_CLASSES): the static city, then the moving agents, free last.
class_names = ('other', 'building', 'bridge', 'road', 'terrain', 'city_furniture',
               'vehicle', 'pedestrian', 'drone', 'free')
num_classes = len(class_names)
free_label = num_classes - 1
# Classes that move on their own (dynamic/IoU, dynamic/mIoU of the metric) and the ones that
# do not (the copy-through decoder warps only these: configs set
# model.copy_decode.static_classes from it).
dynamic_classes = [6, 7, 8]
static_classes = [0, 1, 2, 3, 4, 5]
meta_keys = ('session', 'frame_indices', 'timestamps', 'sample_idx', 'num_history',
             'num_future', 'free_label', 'num_classes', 'val_set')
point_cloud_range = [-40.0, -40.0, -2.0, 40.0, 40.0, 150.0]
voxel_size = [0.4, 0.4, 1.25]
grid_size = [200, 200, 121]
num_history = 4
num_future = 6

train_pipeline = [
    dict(type='LoadOccupancySequence', expected_shape=grid_size, num_classes=num_classes),
    dict(type='LoadPoseSequence'),
    dict(type='PackOccupancyInputs', meta_keys=meta_keys),
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
# another grid need no override here). One table per val set (the samples' 'val_set') after
# the combined one.
val_evaluator = dict(type='OccupancyMetric', num_classes=num_classes, free_label=free_label,
                     class_names=class_names, dynamic_classes=dynamic_classes,
                     set_key='val_set')
test_evaluator = val_evaluator
