# Two-stage recipe, stage 1 (the seed's "Strategy 2"): train on all sessions without the
# sensor (fusion='none', IntegratedDataset(use_sensor=False)). Stage 2:
# insertion_stage2_sensor.py loads this checkpoint and adds the sensor branch.
_base_ = ['../_base_/default_runtime.py', '../_base_/models/sensor_vla_tiny.py',
          '../_base_/datasets/sensor_vla_insertion.py', '../_base_/schedules/sensor_vla_iter.py']

data_root = 'data/sensor_vla/insertion/'
action_stats = data_root + 'action_stats.json'
model = dict(
    fusion=dict(strategy='none'),
    action_normalizer=dict(stats=action_stats),
    vl_cache=dict(cache_dir='data/sensor_vla/cache/vl_tiny', max_bytes=512 * 2**20))
train_dataloader = dict(dataset=dict(use_sensor=False))

max_iters = 200
optim_wrapper = dict(optimizer=dict(lr=1e-3), accumulative_counts=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=6),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=10, end=max_iters,
         T_max=max_iters - 10),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
custom_hooks = [dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
                dict(type='RNGStateHook'), dict(type='VLATrainingStatsHook'),
                # re-warm the learning rate after --resume (see docs/sensor_vla.md)
                dict(type='ResumeLRWarmupHook', warmup_iters=6)]
