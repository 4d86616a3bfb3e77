"""projects.common.hooks."""
