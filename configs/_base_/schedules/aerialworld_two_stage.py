# Two-stage recipe in one run (TwoStageTrainLoop), as the main job (configs/finetune_tokyo.py)
# runs it: 20000 iterations, the tokenizer for the first `switch_ratio` (0.4: 8000), then the
# world model with the tokenizer frozen. switch_ratio and the cosine follow
# train_cfg.max_iters, so `--cfg-options train_cfg.max_iters=N` (or --max-iters N) scales the
# whole recipe; `train_cfg.switch_iter=K` instead of switch_ratio fixes the switch.
# Linear warm-up, then cosine annealing to eta_min at max_iters.
train_cfg = dict(type='TwoStageTrainLoop', max_iters=20000, switch_ratio=0.4, val_interval=2000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# GuardedOptimWrapper skips steps with a non-finite loss and stops after 5 in a row.
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    max_consecutive_nonfinite=5,
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.95), weight_decay=0.01),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    # no T_max / end: the Runner sets end = train_cfg.max_iters and T_max = end - begin
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=0),
]
# Base batch size for --auto-scale-lr (total over all processes).
auto_scale_lr = dict(enable=False, base_batch_size=4)
# Stage switches leave the frozen tokenizer without gradients.
model_wrapper_cfg = dict(type='projects.DeviceAgnosticDDP', find_unused_parameters=True)
