"""projects.aerialworld.models."""
