"""projects.aerialworld.transforms."""
