"""projects.aerialworld.converters."""
