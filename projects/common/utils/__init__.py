"""projects.common.utils."""
