"""Transforms of projects.video_world (registered on import)."""
