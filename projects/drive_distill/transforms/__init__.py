"""projects.drive_distill.transforms."""
