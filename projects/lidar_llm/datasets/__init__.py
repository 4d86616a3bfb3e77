"""Datasets of projects.lidar_llm (registered on import)."""
