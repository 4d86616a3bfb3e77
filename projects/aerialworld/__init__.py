"""projects.aerialworld."""
