# Vector student (agent tracks + real map polylines) with the unicycle head on the 10 real
# nuScenes v1.0-mini scenes (ScenarioNet): 7 scenes fitted, 1 train scene (scene-0757) for
# checkpoint selection, the 2 official mini_val scenes held out and tested once at the end
# with the selected checkpoint (TestBestCheckpointHook). CPU (2 cores): ~15 min.
#
# The unicycle head integrates (acceleration, curvature) from the least-squares speed of the
# ego history, so a zero output is the constant-velocity extrapolation and the network learns
# a residual on top of it (its output layer is zero-initialised).
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
    encoder=dict(type='VectorSceneEncoder', dim=128, num_layers=2, num_heads=4, dropout=0.1),
    dim=128, num_decoder_layers=2, num_heads=4, num_waypoints=64, num_history=16,
    num_modes=num_modes, head_type='unicycle', dt=0.1, dropout=0.1,
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
    # EMA of the weights (decay 0.999 = momentum 0.001); validation/test use the EMA weights
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, priority=49),
    # stop when the selection-split FDE has not improved for 5 validations (500 iterations)
    dict(type='EarlyStoppingHook', monitor='traj/FDE', rule='less', patience=5,
         min_delta=0.01),
    # the held-out table: test the best-on-validation checkpoint once training ends
    dict(type='TestBestCheckpointHook', metric='traj/FDE'),
]
