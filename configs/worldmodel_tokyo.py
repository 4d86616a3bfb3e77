# Stage 2 alone: train the world model (token forecasting + pose branch) with a frozen
# tokenizer loaded from a stage-1 checkpoint (configs/vqvae_tokyo.py).
_base_ = ['./finetune_tokyo.py']
max_iters = 12000
train_cfg = dict(max_iters=max_iters, val_interval=2000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=1e-6, by_epoch=False, begin=0,
         end=max_iters),
]
model = dict(train_stage='world',
             tokenizer_ckpt='{{ fileDirname }}/../work_dirs/vqvae_tokyo/iter_8000.pth')
custom_hooks = [dict(type='CheckpointCompatHook'), dict(type='InvalidSampleReportHook'),
                dict(type='SignalCheckpointHook')]
