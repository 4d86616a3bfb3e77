"""projects.sensor_vla.hooks: per-iteration training statistics and the LR re-warm after resume."""
from .training_hooks import ResumeLRWarmupHook, VLATrainingStatsHook

__all__ = ['VLATrainingStatsHook', 'ResumeLRWarmupHook']
