"""projects.common.metrics: evaluation metrics (all ``BaseMetric``)."""
from .action_metric import ActionMetric
from .occupancy_metric import OccupancyMetric, accumulate_ego_motion

__all__ = ['ActionMetric', 'OccupancyMetric', 'accumulate_ego_motion']
