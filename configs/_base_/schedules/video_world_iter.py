# Seed training recipe of the video world model (configs/training/base.yaml of the seed):
# AdamW (lr 1e-4, weight decay 0.01, betas 0.9/0.999) with per-module learning rates
# (encoder 1e-5, dynamics 1e-4, decoder 1e-4) through paramwise_cfg.custom_keys, gradient
# clipping at 1.0, gradient accumulation 4 (effective batch 64 at batch 16), 1000-iteration
# linear warm-up then cosine decay to 1e-6. `--amp` switches to AmpOptimWrapper on CUDA
# (bf16 autocast on CPU).
max_iters = 20000
warmup_iters = 1000
base_lr = 1e-4
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.01, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=4,
    paramwise_cfg=dict(custom_keys={
        'encoder': dict(lr_mult=0.1),        # 1e-5
        'dynamics': dict(lr_mult=1.0),       # 1e-4
        'head.decoder': dict(lr_mult=1.0),   # 1e-4
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
