"""Hooks of projects.video_world (registered on import)."""
from .video_vis_hook import VideoWorldVisualizationHook, rollout_grid

__all__ = ['VideoWorldVisualizationHook', 'rollout_grid']
