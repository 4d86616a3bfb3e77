"""projects.common.structures."""
