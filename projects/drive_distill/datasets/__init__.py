"""projects.drive_distill.datasets: index-file datasets and the seeded checkpoint hook."""
from .drive_dataset import DriveDistillDataset
from .hooks import SeededCheckpointHook, TestBestCheckpointHook

__all__ = ['DriveDistillDataset', 'SeededCheckpointHook', 'TestBestCheckpointHook']
