# AerialWorld on UAVScenes (real drone LiDAR with per-point labels and 6-DoF poses, converted
# by tools/data_converter/uavscenes_to_occ.py): the two-stage recipe of finetune_tokyo on the
# UAVScenes grid of DESIGN.md §3 (200 x 200 x 120, 0.4 m x 0.4 m x 0.5 m, z = -10..50 m above
# the ground datum), 4 history + 6 future key frames (interval5 key frames: 2 Hz).
#     python tools/train.py configs/finetune_uavscenes.py
# Out of the box it trains on data/uavscenes_sample/ (built by tools/install.sh from the
# real-survey fixture in tests/data/uavscenes); set data_root for the converted release:
#     --cfg-options train_dataloader.dataset.data_root=data/uavscenes/ \
#                   val_dataloader.dataset.data_root=data/uavscenes/ \
#                   test_dataloader.dataset.data_root=data/uavscenes/
# See docs/aerialworld_uavscenes.md and configs/README.md.
_base_ = [
    './_base_/aerialworld_runtime.py',
    './_base_/datasets/uavscenes.py',
    './_base_/models/aerialworld.py',
    './_base_/schedules/aerialworld_two_stage.py',
]
# The model and the schedule of the bases (the finetune_tokyo recipe: 20000 iterations, the
# tokenizer for the first 8000) on the UAVScenes grid: 200 x 200 x 120 voxels over
# [-40, 40] x [-40, 40] x [-10, 50] m; 120 height slices -> 30 before folding height into
# channels (as finetune_tokyo: 121 -> 31). Copy-through decoding keeps z as height above the
# ground datum, as for PLATEAU.
model = dict(
    copy_decode=dict(point_cloud_range={{_base_.point_cloud_range}}),
    tokenizer=dict(grid_size={{_base_.grid_size}}))
val_dataloader = dict(dataset=dict(window_stride=5))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=1000))
