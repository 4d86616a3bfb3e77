"""Visualisation of occupancy predictions (renderers and the registered visualizer)."""
from .occupancy_vis import (auto_downsample, bev_class_image, bev_height_image,
                            compose_forecast_panel, compose_panel, default_palette,
                            downsample_labels, draw_forecast_sample, height_colormap,
                            top_heights, top_occupied, voxel_render)
from .occupancy_visualizer import OccupancyVisualizer

__all__ = [
    'OccupancyVisualizer', 'auto_downsample', 'bev_class_image', 'bev_height_image',
    'compose_forecast_panel', 'compose_panel', 'default_palette', 'downsample_labels',
    'draw_forecast_sample', 'height_colormap', 'top_heights', 'top_occupied', 'voxel_render'
]
