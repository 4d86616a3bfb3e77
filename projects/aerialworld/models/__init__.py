"""AerialWorld models: VQ-VAE occupancy tokenizer, causal world transformer, top model.

The data preprocessor (``data_preprocessor.py``) is registered separately through the
registry's ``locations``.
"""
from .aerialworld import AerialWorld
from .vqvae import OccVQVAE, VectorQuantizer
from .world_transformer import MultiScaleSpatialMixer, OccWorldTransformer, WorldBlock

__all__ = [
    'AerialWorld', 'OccVQVAE', 'VectorQuantizer', 'OccWorldTransformer',
    'MultiScaleSpatialMixer', 'WorldBlock'
]
