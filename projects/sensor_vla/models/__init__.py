"""Models of projects.sensor_vla (registered on import)."""
