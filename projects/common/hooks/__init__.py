"""Hooks shared by all systems."""
from .checkpoint_compat import (CheckpointCompatHook, history_buffers_to_plain,
                                plain_to_history_buffers)
from .collapse_monitor import OccupancyCollapseHook
from .fault_tolerance import SignalCheckpointHook
from .progress import ProgressLoggerHook, format_duration
from .rng_state import RNGStateHook, capture_rng_state, restore_rng_state
from .train_stage import TrainStageCheckpointHook
from .visualization_hook import OccupancyVisualizationHook
# Registers OccupancyVisualizer in VISUALIZERS (whose `locations` are the hook modules).
from projects.common.visualization import OccupancyVisualizer  # noqa: E402,F401

__all__ = ['CheckpointCompatHook', 'SignalCheckpointHook', 'TrainStageCheckpointHook',
           'ProgressLoggerHook', 'format_duration', 'history_buffers_to_plain',
           'plain_to_history_buffers', 'RNGStateHook', 'capture_rng_state',
           'restore_rng_state', 'OccupancyCollapseHook', 'OccupancyVisualizationHook',
           'OccupancyVisualizer']
