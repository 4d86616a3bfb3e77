"""projects.aerialworld.datasets."""
