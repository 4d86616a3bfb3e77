# Acceptance run of the video world model on real robot video: BridgeData V2 (bundled RLDS
# TFRecords), 64 x 64 frames, 10-frame clips (whole episodes), 2 observed context frames and
# 8 open-loop predicted frames driven by the recorded 7-D actions. Held-out val episodes
# (5 of 25, split by episode) are evaluated against copy-last and shuffled actions.
#
# CPU-sized model (configs/_base_/models/video_world_small.py; the seed's sizes are in
# configs/video_world/seed_base.py) and recipe: batch 4, no accumulation, a higher learning
# rate and a shorter warm-up than the seed's (1e-4 after 1000 warm-up iterations would not
# move in a 12-minute CPU budget), and the encoder at the same rate as the rest (the seed's
# 0.1 encoder multiplier assumes a pretrained encoder; this one starts from scratch).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/video_world_small.py',
    '../_base_/datasets/video_world_bridge.py',
    '../_base_/schedules/video_world_iter.py',
]
model = dict(
    data_preprocessor=dict(
        type='VideoDataPreprocessor',
        # Training-episode statistics (BridgeVideoDataset split='train').
        action_mean=[0.0020, -0.0011, -0.0038, -0.0104, -0.0049, -0.0085, 0.8181],
        action_std=[0.0049, 0.0055, 0.0075, 0.0374, 0.0288, 0.0404, 0.3803]),
    dynamics=dict(action_dim=7),
    # Prediction loss: MSE plus an SSIM term (Zhao et al. 2017 mix, alpha = 0.3; see
    # HorizonWeightedPredictionLoss). MSE alone blurs the moving arm into the prediction
    # (PSNR above copy-last, SSIM below it).
    head=dict(losses=[
        dict(type='ReconstructionLoss', loss_weight=1.0),
        dict(type='HorizonWeightedPredictionLoss', loss_weight=1.0, kind='mse',
             ssim_weight=0.3, horizon_weighting='linear'),
        dict(type='PerceptualLoss', loss_weight=0.1, vgg_checkpoint=None),
        dict(type='LatentRegularizationLoss', loss_weight=0.01),
        dict(type='LatentConsistencyLoss', loss_weight=0.1),
    ]))
train_dataloader = dict(batch_size=4)
max_iters = 400
warmup_iters = 20
optim_wrapper = dict(
    optimizer=dict(lr=2e-3),
    accumulative_counts=1,
    paramwise_cfg=dict(custom_keys={'encoder': dict(lr_mult=1.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=1e-6),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
# TensorBoard / work-dir image grids (ground truth / reconstruction / prediction per step) and
# weight / gradient histograms (projects/video_world/hooks).
custom_hooks = [
    dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
    dict(type='RNGStateHook'),
    dict(type='VideoWorldVisualizationHook', interval=100, num_samples=2),
]
