"""projects.drive_distill.datasets."""
