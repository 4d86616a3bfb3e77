# Sensor VLA on the real BridgeData episodes (no sensor: fusion='none'), L1 regression head,
# tiny random Qwen2.5-VL frozen with its features cached, CPU run of a few minutes.
_base_ = ['../_base_/default_runtime.py', '../_base_/models/sensor_vla_tiny.py',
          '../_base_/datasets/sensor_vla_bridge.py', '../_base_/schedules/sensor_vla_iter.py']

data_root = 'data/sensor_vla/bridge/'
action_stats = data_root + 'action_stats.json'
# The previous action enters as a context token and as an offset on every action query, and
# half of the (frozen, per-sample unique) VL tokens are dropped from the expert's context in
# training: with 17 training episodes the expert otherwise memorises the VL features instead
# of learning from the previous action (measured in configs/sensor_vla/README.md).
model = dict(
    action_normalizer=dict(stats=action_stats),
    use_prev_action=True, prev_action_to_queries=True, vl_token_dropout=0.5,
    vl_cache=dict(cache_dir='data/sensor_vla/cache/vl_tiny', max_bytes=512 * 2**20))

max_iters = 600
warmup_iters = 18
hold_iters = 12
optim_wrapper = dict(optimizer=dict(lr=1e-3), accumulative_counts=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,
         begin=warmup_iters + hold_iters, end=max_iters,
         T_max=max_iters - warmup_iters - hold_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
custom_hooks = [dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
                dict(type='RNGStateHook'), dict(type='VLATrainingStatsHook'),
                # re-warm the learning rate after --resume (see docs/sensor_vla.md)
                dict(type='ResumeLRWarmupHook', warmup_iters=warmup_iters)]
