"""Models of projects.video_world (registered on import)."""
from .data_preprocessor import VideoDataPreprocessor
from .decoder import PixelShuffleDecoder
from .dynamics import ConvGRUCell, ConvLSTMCell, FiLM, FiLMRecurrentDynamics
from .encoder import SpatialSelfAttention, VideoFrameEncoder, sincos_position_2d
from .head import VideoPredictionHead
from .losses import (HorizonWeightedPredictionLoss, LatentConsistencyLoss,
                     LatentRegularizationLoss, PerceptualLoss, ReconstructionLoss,
                     VGGFeatureExtractor, horizon_weights)
from .world_model import VideoWorldModel

__all__ = [
    'VideoDataPreprocessor', 'PixelShuffleDecoder', 'ConvGRUCell', 'ConvLSTMCell', 'FiLM',
    'FiLMRecurrentDynamics', 'SpatialSelfAttention', 'VideoFrameEncoder', 'sincos_position_2d',
    'VideoPredictionHead', 'HorizonWeightedPredictionLoss', 'LatentConsistencyLoss',
    'LatentRegularizationLoss', 'PerceptualLoss', 'ReconstructionLoss', 'VGGFeatureExtractor',
    'horizon_weights', 'VideoWorldModel'
]
