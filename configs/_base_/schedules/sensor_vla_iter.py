# The seed's optimisation recipe through MMEngine: AdamW, per-group learning rates
# (action expert 1e-4, sensor encoder 5e-4, VL LoRA / unfrozen VL layers 1e-5, vision 5e-6),
# gradient accumulation 8, per-step warm-up (3 %) -> hold (2 %) -> cosine to 1e-6; configs that
# inherit it add ResumeLRWarmupHook(warmup_iters=resume_warmup_iters) to custom_hooks.
max_iters = 2000
warmup_iters = int(0.03 * max_iters)
hold_iters = int(0.02 * max_iters)
# after a resume the learning rate re-warms over this many iterations (ResumeLRWarmupHook)
resume_warmup_iters = warmup_iters
base_lr = 1e-4

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.01, betas=(0.9, 0.95)),
    accumulative_counts=8,
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(custom_keys={
        'sensor_encoder': dict(lr_mult=5.0),   # 5e-4
        '.visual.': dict(lr_mult=0.05),        # 5e-6
        'vl.': dict(lr_mult=0.1),              # 1e-5 (LoRA or unfrozen layers)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,
         begin=warmup_iters + hold_iters, end=max_iters, T_max=max_iters - warmup_iters -
         hold_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
