# Stage 1 alone: train the VQ-VAE occupancy tokenizer on the Tokyo full grid.
# Then: python tools/train.py configs/worldmodel_tokyo.py \
#           --cfg-options model.tokenizer_ckpt=work_dirs/vqvae_tokyo/iter_8000.pth
_base_ = ['./finetune_tokyo.py']
max_iters = 8000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=1e-6, by_epoch=False, begin=0,
         end=max_iters),
]
model = dict(train_stage='tokenizer')
custom_hooks = [dict(type='CheckpointCompatHook'), dict(type='InvalidSampleReportHook'),
                dict(type='SignalCheckpointHook')]
