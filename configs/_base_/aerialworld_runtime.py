# Runtime of the AerialWorld configs: the shared runtime plus the AerialWorld hooks and the
# occupancy visualizer. Every AerialWorld config inherits this hook list unchanged.
_base_ = ['./default_runtime.py']

custom_hooks = [
    # the three hooks of default_runtime.py (a list replaces its base's list)
    dict(type='CheckpointCompatHook'),
    dict(type='SignalCheckpointHook'),
    dict(type='RNGStateHook'),
    # the model's stage (tokenizer / world) is saved with checkpoints and restored on load
    dict(type='TrainStageCheckpointHook'),
    # windows skipped by the dataset (skip_invalid) are counted per epoch
    dict(type='InvalidSampleReportHook'),
    # warns when the predicted occupancy collapses to all-free / all-occupied
    dict(type='OccupancyCollapseHook', warn_ratio=0.1),
    # GT / prediction / baseline panels of the first validation samples to every vis backend
    dict(type='OccupancyVisualizationHook', max_samples=2, draw_3d=True),
    # (last in the list: `custom_hooks.6` stays the visualization hook in commands)
    # fits model.reveal_chooser on the final model's rollouts after the last iteration (only
    # for models whose reveal_chooser has a fit_cfg; before the last checkpoint is saved)
    dict(type='RevealChooserFitHook'),
]
# Grid (point_cloud_range, voxel_size), classes and palette come from the dataset's metainfo
# (the index written by the converter), so the panels always use the grid of the data.
visualizer = dict(type='OccupancyVisualizer')
