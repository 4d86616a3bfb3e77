"""Hooks shared by all systems."""
from .checkpoint_compat import (CheckpointCompatHook, history_buffers_to_plain,
                                plain_to_history_buffers)
from .stage_switch import TrainStageSwitchHook

__all__ = ['CheckpointCompatHook', 'TrainStageSwitchHook', 'history_buffers_to_plain',
           'plain_to_history_buffers']
