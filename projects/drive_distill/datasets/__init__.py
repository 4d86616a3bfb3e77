"""projects.drive_distill.datasets: index-file datasets.

The checkpoint hooks live in :mod:`projects.drive_distill.hooks`.
"""
from .drive_dataset import DriveDistillDataset

__all__ = ['DriveDistillDataset']
