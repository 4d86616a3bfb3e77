# AdamW with per-module learning rates (paramwise_cfg.custom_keys: the longest matching key
# wins), gradient clipping, linear warm-up then cosine decay; iteration based.
lr_vat = 1e-3         # VATLiDAR, LiDAR projector, pillar encoder
lr_vision_vat = 1e-3  # VATVision, vision adapter
lr_lora = 5e-3        # LoRA of the LLM (and the delimiter token embeddings)
lr_vision = 1e-4      # camera encoder (or its LoRA)
max_iters = 160
warmup_iters = 20
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='TrainableParamsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr_lora, weight_decay=0.01, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=1,
    paramwise_cfg=dict(custom_keys={
        'vat_lidar': dict(lr_mult=lr_vat / lr_lora),
        'projector': dict(lr_mult=lr_vat / lr_lora),
        'lidar_encoder': dict(lr_mult=lr_vat / lr_lora),
        'vat_vision': dict(lr_mult=lr_vision_vat / lr_lora),
        'vision_adapter': dict(lr_mult=lr_vision_vat / lr_lora),
        'camera_encoder': dict(lr_mult=lr_vision / lr_lora),
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.02, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=1e-5),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
