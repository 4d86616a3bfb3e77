# Runtime shared by every config: hooks, logging, visualisation backends, environment.
default_scope = 'projects'
# Runner with atomic checkpoint writes (temporary file + rename).
runner_type = 'FaultTolerantRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # The first 5 iterations one by one, then every 10; after 3 timed iterations one line with
    # the measured s/iter and the projected wall time of the whole run (ProgressLoggerHook).
    logger=dict(type='ProgressLoggerHook', interval=10, first_iters=5, estimate_iters=3,
                log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=200, max_keep_ckpts=3,
                    save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# CheckpointCompatHook keeps checkpoints loadable with torch.load(weights_only=True) (--resume);
# SignalCheckpointHook writes a checkpoint when the job receives SIGTERM, then stops;
# RNGStateHook stores the random generator states so --resume continues exactly. A config that
# replaces this list keeps these three (the FaultTolerantRunner warns when RNGStateHook is
# missing).
custom_hooks = [dict(type='CheckpointCompatHook'), dict(type='SignalCheckpointHook'),
                dict(type='RNGStateHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/train.py switches to gloo without CUDA
)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
