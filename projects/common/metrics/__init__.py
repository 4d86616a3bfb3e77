"""projects.common.metrics."""
