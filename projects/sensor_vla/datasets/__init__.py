"""projects.sensor_vla.datasets: the integrated episode dataset and the balanced sampler."""
from .integrated_dataset import BalancedSensorSampler, IntegratedDataset, balanced_repeat_factor

__all__ = ['IntegratedDataset', 'BalancedSensorSampler', 'balanced_repeat_factor']
