"""projects.drive_distill.hooks: checkpoint naming with the seed, testing the best checkpoint."""
from .checkpoint_hooks import SeededCheckpointHook, TestBestCheckpointHook

__all__ = ['SeededCheckpointHook', 'TestBestCheckpointHook']
