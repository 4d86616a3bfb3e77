# The loaders of tokyo_plateau.py with the static PLATEAU class list (no traffic: free = 6):
# for data converted without traffic, and for datasets whose labels are mapped into that list
# (UAVScenes, configs/_base_/datasets/uavscenes.py). No dynamic classes, no per-set val tables
# unless the index records name a val_set.
_base_ = ['./tokyo_plateau.py']
class_names = ('other', 'building', 'bridge', 'road', 'terrain', 'city_furniture', 'free')
num_classes = len(class_names)
free_label = num_classes - 1
dynamic_classes = []
static_classes = [0, 1, 2, 3, 4, 5]

train_pipeline = [
    dict(type='LoadOccupancySequence', expected_shape={{_base_.grid_size}},
         num_classes=num_classes),
    dict(type='LoadPoseSequence'),
    dict(type='PackOccupancyInputs', meta_keys={{_base_.meta_keys}}),
]
test_pipeline = train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, expected_classes=class_names))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, expected_classes=class_names))
test_dataloader = val_dataloader
val_evaluator = dict(num_classes=num_classes, free_label=free_label, class_names=class_names,
                     dynamic_classes=dynamic_classes)
test_evaluator = val_evaluator
