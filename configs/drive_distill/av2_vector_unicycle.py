# Vector student with the unicycle head on Argoverse 2 motion forecasting (50 history / 60
# future poses at 10 Hz, focal track as ego). The bundled data is one real scenario, enough
# for smoke runs; see configs/_base_/datasets/drive_distill_av2.py for the full dataset.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/drive_distill_av2.py',
    '../_base_/schedules/drive_distill_iter.py',
]
model_name = 'av2_vector_unicycle'
randomness = dict(seed=0, deterministic=False)
model = dict(
    type='DrivingStudent',
    encoder=dict(type='VectorSceneEncoder', dim=128, num_layers=2, num_heads=4, dropout=0.1),
    dim=128, num_decoder_layers=2, num_heads=4, num_waypoints=60, num_history=50,
    num_modes=1, head_type='unicycle', dt=0.1, dropout=0.1,
    traj_loss=dict(type='TrajectoryLoss', position_loss='l2', yaw_weight=0.3),
    action_loss=dict(type='ActionLoss', action_scale=(1.0, 0.05), smooth_weight=0.1,
                     loss_weight=0.05))
default_hooks = dict(
    logger=dict(type='ProgressLoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='SeededCheckpointHook', by_epoch=False, interval=400, max_keep_ckpts=1,
                    save_last=True, save_best='traj/FDE', rule='less',
                    filename_tmpl='drive_distill_' + model_name + '_seed{seed}_iter_{}.pth'))
custom_hooks = [
    dict(type='CheckpointCompatHook'),
    dict(type='SignalCheckpointHook'),
    dict(type='RNGStateHook'),  # exact --resume (the runner no longer adds it silently)
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, priority=49),
    dict(type='TestBestCheckpointHook', metric='traj/FDE'),
]
