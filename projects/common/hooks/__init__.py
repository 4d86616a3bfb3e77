"""Hooks shared by all systems."""
from .checkpoint_compat import (CheckpointCompatHook, history_buffers_to_plain,
                                plain_to_history_buffers)
from .fault_tolerance import SignalCheckpointHook
from .rng_state import RNGStateHook, capture_rng_state, restore_rng_state
from .stage_switch import TrainStageSwitchHook
from .collapse_monitor import OccupancyCollapseHook
from .visualization_hook import OccupancyVisualizationHook
# Registers OccupancyVisualizer in VISUALIZERS (whose `locations` are the hook modules).
from projects.common.visualization import OccupancyVisualizer  # noqa: E402,F401

__all__ = ['CheckpointCompatHook', 'SignalCheckpointHook', 'TrainStageSwitchHook',
           'history_buffers_to_plain',
           'plain_to_history_buffers']
__all__ += ['RNGStateHook', 'capture_rng_state', 'restore_rng_state']
__all__ += ['OccupancyCollapseHook', 'OccupancyVisualizationHook', 'OccupancyVisualizer']
