"""projects.drive_distill.models: scene encoders, the waypoint decoder and the student."""
from .encoders import CameraBEVEncoder, RasterSceneEncoder, TokenEncoder, VectorSceneEncoder
from .student import DrivingStudent, WaypointDecoder

__all__ = ['VectorSceneEncoder', 'RasterSceneEncoder', 'CameraBEVEncoder', 'TokenEncoder',
           'DrivingStudent', 'WaypointDecoder']
