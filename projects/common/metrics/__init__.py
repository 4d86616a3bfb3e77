"""projects.common.metrics: evaluation metrics (all ``BaseMetric``)."""
from .action_metric import ActionMetric
from .occupancy_metric import OccupancyMetric, accumulate_ego_motion
from .text_metric import DrivingQAMetric
from .trajectory_metric import TrajectoryMetric, trajectory_errors
from .video_metric import VideoPredictionMetric

__all__ = ['ActionMetric', 'OccupancyMetric', 'accumulate_ego_motion', 'VideoPredictionMetric',
           'DrivingQAMetric', 'TrajectoryMetric', 'trajectory_errors']
