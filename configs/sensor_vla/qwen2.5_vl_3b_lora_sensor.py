# Real-user config: Qwen2.5-VL-3B-Instruct from a local folder, LoRA (r 16, alpha 32,
# dropout 0.05), bf16 weights and autocast, gradient checkpointing, DDP
# (tools/dist_train.sh CONFIG GPUS), the seed's sizes: sensor stream (650, 1026) projected to
# the VL hidden size (2048 for the 3B model), concat fusion, 8-step chunks, batch 1 per GPU
# with 8 accumulation steps, per-group learning rates and the warm-up / hold / cosine
# schedule of _base_/schedules/sensor_vla_iter.py, sensor samples x2 loss weight, balanced
# sampling of the sensor sessions.
#
# Data: your sensor sessions and camera-only sessions in the episode format of
# docs/sensor_vla.md (two index files below), action statistics from
# tools/analysis_tools/compute_action_stats.py, then (frozen VL only) the cache:
#   python tools/misc/build_vl_cache.py configs/sensor_vla/qwen2.5_vl_3b_lora_sensor.py
#
# CPU smoke test with the tiny backbone swapped in (2 iterations):
#   python tools/train.py configs/sensor_vla/qwen2.5_vl_3b_lora_sensor.py --cfg-options \
#     model.vl_backbone.model_path=None model.vl_backbone.model_config=tiny \
#     model.vl_backbone.torch_dtype=float32 model.sensor_encoder.output_dim=64 \
#     train_cfg.max_iters=2 --amp   (--amp: bf16 autocast on CPU, AmpOptimWrapper on CUDA)
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/sensor_vla_iter.py']

vl_model_path = 'checkpoints/Qwen2.5-VL-3B-Instruct'
data_root = 'data/sensor_vla/insertion/'
action_stats = data_root + 'action_stats.json'

model = dict(
    type='SensorVLA',
    data_preprocessor=dict(type='VLADataPreprocessor'),
    vl_backbone=dict(type='QwenVLBackbone', model_path=vl_model_path, model_type='qwen2_5_vl',
                     finetune_vl='lora', lora=dict(r=16, lora_alpha=32, lora_dropout=0.05),
                     unfreeze_last_n=2, min_pixels=56 * 56, max_pixels=256 * 28 * 28,
                     max_text_tokens=64, gradient_checkpointing=True, torch_dtype='bfloat16'),
    sensor_encoder=dict(type='SensorEncoder', input_channels=1026, temporal_length=650,
                        output_dim=2048, conv_channels=(64, 128, 256, 256),
                        num_transformer_layers=2, num_heads=8, dropout=0.1),
    fusion=dict(type='SensorFusion', strategy='concat', num_heads=8),
    action_head=dict(
        type='L1RegressionActionHead',
        expert=dict(type='ActionExpert', dim=512, chunk_size=8, num_layers=4, num_heads=8,
                    dropout=0.1),
        losses=[dict(type='WeightedActionL1Loss', loss_weight=1.0)]),
    action_normalizer=dict(type='ActionNormalizer', stats=action_stats, mode='mean_std'),
    use_prev_action=False)

_pipeline = [dict(type='LoadVLAStep', chunk_size=8, window=650, sensor_channels=1026),
             dict(type='PackVLAInputs')]
train_dataloader = dict(
    batch_size=1, num_workers=4, persistent_workers=True,
    sampler=dict(type='BalancedSensorSampler', sensor_ratio=0.5, shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='IntegratedDataset', data_root=data_root, ann_file='train.json',
                 sensor_loss_weight=2.0, pipeline=_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='IntegratedDataset', data_root=data_root, ann_file='val.json',
                 test_mode=True, pipeline=_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ActionMetric', stats=action_stats)
test_evaluator = val_evaluator

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16', accumulative_counts=8)
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
custom_hooks = [dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
                dict(type='RNGStateHook'), dict(type='VLATrainingStatsHook'),
                # re-warm the learning rate after --resume (see docs/sensor_vla.md)
                dict(type='ResumeLRWarmupHook', warmup_iters={{_base_.resume_warmup_iters}})]
