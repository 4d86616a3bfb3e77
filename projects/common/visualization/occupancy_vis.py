"""Renderers for semantic occupancy grids (numpy + OpenCV, no matplotlib).

Every function takes label volumes ``(X, Y, Z)`` (any integer dtype; numpy arrays or CPU torch
tensors) in the codebase's ego frame (x forward, y left, z up, see
``docs/aerialworld_data_and_model_contract.md``) and returns RGB ``uint8`` images.

Image conventions:

* **BEV images** (:func:`bev_class_image`, :func:`bev_height_image`) are ``(X, Y, 3)``: image
  row 0 is the far end of the grid (largest x, forward is up) and column 0 is the largest y
  (left is left), so the image reads like a map seen from above with the vehicle facing up.
* **3-D render** (:func:`voxel_render`): an orthographic oblique projection seen from behind,
  to the right and above the grid (``azimuth`` / ``elevation``). Only the voxel faces that
  face the camera and border free space are drawn; each face is splatted as a dense set of
  sample points and a z-buffer keeps the nearest one per pixel (a vectorised painter's
  algorithm: one ``lexsort`` over all samples, no Python loop over voxels). Faces are shaded
  by orientation (top brightest) and darkened along their borders so single voxels stay
  visible. This was chosen over matplotlib's ``Axes3D.voxels``, which builds one polygon per
  face in Python and needs tens of seconds for a 200 x 200 x 121 frame; the numpy render is
  deterministic (same input, same pixels) and takes well under a second at that size.
* **Panels** (:func:`compose_panel`, :func:`compose_forecast_panel`) tile such images: one
  column per future step, one row per source (GT / prediction / baseline) and view, with
  labels and a legend drawn by OpenCV's Hershey font.

Modules: :mod:`.occupancy_bev` (palettes and BEV images), :mod:`.occupancy_render` (3-D render
and label downsampling), :mod:`.occupancy_panels` (panels); this module re-exports them.
"""
from .occupancy_bev import (VIEWS, bev_class_image, bev_height_image, default_palette,
                            height_colormap, top_heights, top_occupied)
from .occupancy_panels import compose_forecast_panel, compose_panel, draw_forecast_sample
from .occupancy_render import auto_downsample, downsample_labels, voxel_render

__all__ = [
    'VIEWS', 'default_palette', 'top_occupied', 'top_heights', 'bev_class_image',
    'bev_height_image', 'height_colormap', 'downsample_labels', 'auto_downsample',
    'voxel_render', 'compose_panel', 'compose_forecast_panel', 'draw_forecast_sample'
]
