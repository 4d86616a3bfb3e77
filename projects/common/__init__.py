"""projects.common."""
