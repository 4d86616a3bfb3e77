"""projects.drive_distill."""
