"""projects.common.losses."""
