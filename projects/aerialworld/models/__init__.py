"""AerialWorld models: VQ-VAE occupancy tokenizer, causal world transformer, forecast head,
pose codec, copy-through decoder and the top model.

The data preprocessor (``data_preprocessor.py``) is registered separately through the
registry's ``locations``.
"""
from .aerialworld import AerialWorld
from .copy_decoder import CopyThroughDecoder
from .forecast_head import OccForecastHead
from .pose_codec import PoseCodec
from .token_cache import TokenCache
from .vector_quantizer import VectorQuantizer
from .vqvae import OccVQVAE
from .world_transformer import MultiScaleSpatialMixer, OccWorldTransformer, WorldBlock

__all__ = [
    'AerialWorld', 'OccVQVAE', 'VectorQuantizer', 'OccWorldTransformer',
    'MultiScaleSpatialMixer', 'WorldBlock', 'OccForecastHead', 'PoseCodec',
    'CopyThroughDecoder', 'TokenCache'
]
