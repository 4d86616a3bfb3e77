# AerialWorld on real nuScenes occupancy: the OccWorld-compatible model layout (tokenizer
# identical to the OccWorld release VAE, world transformer 128 wide / 6 blocks / 8 heads; the
# checkpoint converter projects/aerialworld/model_converters/occworld.py reads it from here) on the
# occupancy built from the 11 bundled real keyframes (data/nuscenes_occ, Occ3D grid
# 200 x 200 x 16). Windows: 4 history + 6 future frames at 2 Hz (OccWorld uses 5 + 6; 11
# keyframes leave 2 windows of 10 frames, the release protocol would leave 1).
#        python tools/train.py configs/finetune_nuscenes.py
#
# Weights: trains from scratch (tokenizer stage, then the world model, one command). To
# fine-tune the public OccWorld release instead, convert it with
#   python tools/model_converters/occworld_to_mmembodied.py latest.pth \
#       checkpoints/occworld/occworld_nuscenes_mmembodied.pth
# then run with
#   --cfg-options load_from=checkpoints/occworld/occworld_nuscenes_mmembodied.pth \
#                 train_cfg.switch_ratio=0
# (switch at iteration 0: the converted tokenizer is kept frozen and only the world model
# trains). See docs/aerialworld_nuscenes.md.
_base_ = [
    './_base_/aerialworld_runtime.py',
    './_base_/datasets/nuscenes_occ.py',
    './_base_/models/aerialworld.py',
    './_base_/schedules/aerialworld_two_stage.py',
]
# Values of _base_/datasets/nuscenes_occ.py, named here because the model below uses them.
point_cloud_range = {{_base_.point_cloud_range}}
grid_size = {{_base_.grid_size}}
num_classes = {{_base_.num_classes}}
free_label = {{_base_.free_label}}

# 2000 iterations: the tokenizer for the first 1000 (0.5), then the world model.
train_cfg = dict(max_iters=2000, switch_ratio=0.5, val_interval=500)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=0),
]
# The OccWorld release layout (the converter's occworld_model_cfg() reads it from here), with
# num_history 4 (see above) and the base's other model keys (train_stage 'tokenizer': from
# scratch; tokenizer_frames 4).
model = dict(
    num_classes=num_classes,
    free_label=free_label,
    # Copy-through decoding of rollouts: only the static classes (barrier, traffic cone and
    # the surfaces / manmade / vegetation, ids 1, 8, 11-16) are warped by the ego motion;
    # vehicles, pedestrians and 'others' come from the VQ decoder. Occ3D's z moves with the ego.
    copy_decode=dict(point_cloud_range=point_cloud_range, z_reference='ego',
                     static_classes=[1, 8, 11, 12, 13, 14, 15, 16]),
    # OccWorld's tokenizer and transformer as stated (no motion-compensated copy prior, no
    # residual pose branch): _delete_ drops the Tokyo model's keys these do not name.
    tokenizer=dict(
        _delete_=True, type='OccVQVAE',
        num_classes=num_classes, free_label=free_label, grid_size=grid_size,
        class_embed_dim=8, z_reduction=1, base_channels=64, channel_mults=(1, 2, 4),
        num_res_blocks=2, num_codes=512, code_dim=128, beta=1.0, attn_at_lowest=True,
        attn_heads=1, out_norm=None, with_cp=True),
    transformer=dict(
        _delete_=True, type='OccWorldTransformer',
        d_model=128, num_blocks=6, num_heads=8, mlp_ratio=4.0, max_frames=16, pose_dims=4,
        pose_hidden=128, token_embed='codebook', spatial_scales=(1, 2, 4),
        spatial_mode='attn'))
default_hooks = dict(checkpoint=dict(interval=500))
