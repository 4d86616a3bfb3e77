# Fusion comparison on the generated insertion episodes (A-scans GENERATED, see
# projects/sensor_vla/synthetic.py; force channel = real F/T trace): the same policy with
# fusion concat / cross_attention / gated / none trained side by side on identical batches
# (FusionComparison, shared frozen tiny Qwen2.5-VL with cached features), one table on the
# held-out episodes. The action's z component depends on the needle-to-tissue distance, which
# only the A-scan shows. No previous-action token here: in these episodes dz_t = 0.7 dz_{t-1},
# so the previous action would give the depth away to the no-sensor policy.
_base_ = ['../_base_/default_runtime.py', '../_base_/models/sensor_vla_tiny.py',
          '../_base_/datasets/sensor_vla_insertion.py', '../_base_/schedules/sensor_vla_iter.py']

data_root = 'data/sensor_vla/insertion/'
action_stats = data_root + 'action_stats.json'
model = dict(
    _delete_=True, type='FusionComparison',
    strategies=('concat', 'cross_attention', 'gated', 'none'),
    policy=dict(
        type='SensorVLA',
        vl_backbone={{_base_.model.vl_backbone}},
        sensor_encoder=dict(type='SensorEncoder', input_channels=1026, temporal_length=65,
                            output_dim=64, conv_channels=(32, 32, 64, 64),
                            num_transformer_layers=2, num_heads=4, dropout=0.1),
        action_head={{_base_.model.action_head}},
        action_normalizer=dict(type='ActionNormalizer', stats=action_stats, mode='mean_std'),
        use_prev_action=False,
        vl_cache=dict(cache_dir='data/sensor_vla/cache/vl_tiny', max_bytes=512 * 2**20)))

max_iters = 250
warmup_iters = 8
hold_iters = 5
optim_wrapper = dict(optimizer=dict(lr=1e-3), accumulative_counts=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False,
         begin=warmup_iters + hold_iters, end=max_iters,
         T_max=max_iters - warmup_iters - hold_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
custom_hooks = [dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
                dict(type='RNGStateHook'), dict(type='VLATrainingStatsHook'),
                # re-warm the learning rate after --resume (see docs/sensor_vla.md)
                dict(type='ResumeLRWarmupHook', warmup_iters=warmup_iters)]
