# DriveLM QA from the 6 real cameras on a CPU: tiny Qwen2 + LoRA (and, this LLM being random,
# trainable norms and output head), ResNet-18/16 + VATVision (24 queries), text-only twin
# trained on the same batches; validation by generation on the held-out scene (answers file +
# language / match table with the text-only model and the answer prior).
_base_ = ['../_base_/default_runtime.py', '../_base_/models/lidar_llm_vision_tiny.py',
          '../_base_/datasets/lidar_llm_drivelm.py', '../_base_/schedules/lidar_llm_iter.py']
max_iters = 60
warmup_iters = 10
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.02, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=1e-5),
]
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                                     max_keep_ckpts=1, save_last=True))
# the ResNet starts from random weights here: train it at lr 1e-3 (lr_lora 5e-3 x 0.2)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(camera_encoder=dict(lr_mult=0.2))))
