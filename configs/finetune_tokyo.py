# AerialWorld main job: the complete two-stage recipe (VQ-VAE tokenizer, then the world model
# with the tokenizer frozen) on Tokyo PLATEAU occupancy sessions at the seed's full grid
# (200 x 200 x 121, 0.4 m x 0.4 m x 1.25 m, z = 0..150 m above ground), 4 history + 6 future
# frames at 2 Hz.        python tools/train.py configs/finetune_tokyo.py
# Stage-by-stage alternatives: configs/vqvae_tokyo.py then configs/worldmodel_tokyo.py.
# Results and commands: configs/README.md; tuning history: docs/aerialworld_tuning.md.
_base_ = [
    './_base_/aerialworld_runtime.py',
    './_base_/datasets/tokyo_plateau.py',
    './_base_/models/aerialworld.py',
    './_base_/schedules/aerialworld_two_stage.py',
]
# The grid of _base_/datasets/tokyo_plateau.py, named here because the model below indexes it.
point_cloud_range = [-40.0, -40.0, -2.0, 40.0, 40.0, 150.0]

# 20000 iterations: the tokenizer for the first 8000 (0.4), then the world model.
train_cfg = dict(max_iters=20000, switch_ratio=0.4)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=0),
]
model = dict(
    tokenizer_frames=4,  # tokenizer stage reconstructs 4 random frames per window (memory)
    # Copy-through decoding of rollouts (static city, ground-referenced z; see test_local.py).
    copy_decode=dict(point_cloud_range=point_cloud_range, z_reference='ground'),
    tokenizer=dict(z_reduction=4, z_embed_dim=8, base_channels=64, channel_mults=(1, 2, 4),
                   num_res_blocks=2, num_codes=512, code_dim=128, with_cp=True),
    # Motion-compensated copy prior (see configs/test_local.py).
    transformer=dict(d_model=128, num_blocks=4, num_heads=8, max_frames=10,
                     spatial_scales=(1, 2, 4), copy_prior=6.0, pose_residual=True,
                     copy_warp_range=[point_cloud_range[0], point_cloud_range[1],
                                      point_cloud_range[3], point_cloud_range[4]]))
val_dataloader = dict(dataset=dict(window_stride=5))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=1000))
