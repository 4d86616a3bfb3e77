# Two-stage recipe in one run: tokenizer for `switch_iter` iterations, then the world model
# with the tokenizer frozen (TrainStageSwitchHook). Linear warm-up + cosine annealing.
max_iters = 2000
switch_iter = 800
val_interval = 2000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# GuardedOptimWrapper skips steps with a non-finite loss and stops after 5 in a row.
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    max_consecutive_nonfinite=5,
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=1e-5, by_epoch=False, begin=0,
         end=max_iters),
]
# Base batch size for --auto-scale-lr (total over all processes).
auto_scale_lr = dict(enable=False, base_batch_size=4)
# Stage switches leave the frozen tokenizer without gradients.
model_wrapper_cfg = dict(type='projects.DeviceAgnosticDDP', find_unused_parameters=True)
