# Vector student (agent tracks + real map polylines) with the unicycle head on the 10 real
# nuScenes v1.0-mini scenes (ScenarioNet): 8 train / 2 held-out scenes. CPU: ~15 min.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/drive_distill_scenarionet.py',
    '../_base_/schedules/drive_distill_iter.py',
]
model_name = 'vector_unicycle'
seed = 0
randomness = dict(seed=seed, deterministic=False)
num_modes = 1
model = dict(
    type='DrivingStudent',
    encoder=dict(type='VectorSceneEncoder', dim=128, num_layers=2, num_heads=4),
    dim=128, num_decoder_layers=2, num_heads=4, num_waypoints=64, num_history=16,
    num_modes=num_modes, head_type='unicycle', dt=0.1,
    traj_loss=dict(type='TrajectoryLoss', position_loss='l2', yaw_weight=0.3),
    action_loss=dict(type='ActionLoss', action_scale=(1.0, 0.05), smooth_weight=0.1,
                     loss_weight=0.05))
default_hooks = dict(
    checkpoint=dict(type='SeededCheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_last=True,
                    filename_tmpl='drive_distill_' + model_name + '_seed{seed}_iter_{}.pth'))
custom_hooks = [
    dict(type='CheckpointCompatHook'),
    # EMA of the weights (decay 0.999 = momentum 0.001); validation/test use the EMA weights
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, priority=49),
    dict(type='EarlyStoppingHook', monitor='traj/ADE', rule='less', patience=4,
         min_delta=0.01),
]
