"""projects.drive_distill.models."""
