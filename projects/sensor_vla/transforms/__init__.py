"""projects.sensor_vla.transforms: loading and packing of episode steps."""
from .loading import LoadVLAStep, PackVLAInputs, VLADataError

__all__ = ['LoadVLAStep', 'PackVLAInputs', 'VLADataError']
