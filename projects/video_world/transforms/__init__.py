"""Transforms of projects.video_world (registered on import)."""
from .video_transforms import LoadVideoFrames, PackVideoInputs, ResizeVideo, VideoAugmentation

__all__ = ['LoadVideoFrames', 'PackVideoInputs', 'ResizeVideo', 'VideoAugmentation']
