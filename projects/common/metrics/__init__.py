"""projects.common.metrics: evaluation metrics (all ``BaseMetric``)."""
from .occupancy_metric import OccupancyMetric, accumulate_ego_motion

__all__ = ['OccupancyMetric', 'accumulate_ego_motion']
