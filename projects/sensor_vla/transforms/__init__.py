"""Transforms of projects.sensor_vla (registered on import)."""
