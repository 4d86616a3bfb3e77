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
# The grid of _base_/datasets/uavscenes.py, named here because the model below uses it.
point_cloud_range = [-40.0, -40.0, -10.0, 40.0, 40.0, 50.0]
grid_size = {{_base_.grid_size}}

# 20000 iterations: the tokenizer for the first 8000 (0.4), then the world model.
train_cfg = dict(max_iters=20000, switch_ratio=0.4)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=0),
]
model = dict(
    tokenizer_frames=4,  # tokenizer stage reconstructs 4 random frames per window (memory)
    # Copy-through decoding of rollouts (z is height above the ground datum, as for PLATEAU).
    copy_decode=dict(point_cloud_range=point_cloud_range, z_reference='ground'),
    # 120 height slices -> 30 before folding height into channels (as finetune_tokyo: 121 -> 31)
    tokenizer=dict(grid_size=grid_size, z_reduction=4, z_embed_dim=8, base_channels=64,
                   channel_mults=(1, 2, 4), num_res_blocks=2, num_codes=512, code_dim=128,
                   with_cp=True),
    transformer=dict(d_model=128, num_blocks=4, num_heads=8, max_frames=10,
                     spatial_scales=(1, 2, 4), copy_prior=6.0, pose_residual=True,
                     copy_warp_range=[point_cloud_range[0], point_cloud_range[1],
                                      point_cloud_range[3], point_cloud_range[4]]))
val_dataloader = dict(dataset=dict(window_stride=5))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=1000))
