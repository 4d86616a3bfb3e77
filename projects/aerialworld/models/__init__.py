"""AerialWorld models: VQ-VAE occupancy tokenizer, causal world transformer, forecast head,
pose codec, copy-through decoder, agent motion head, reveal chooser, data preprocessor and
the top model."""
from .aerialworld import AerialWorld
from .agent_motion import AgentMotionHead
from .copy_decoder import CopyThroughDecoder
from .data_preprocessor import OccupancyDataPreprocessor
from .forecast_head import OccForecastHead
from .pose_codec import PoseCodec
from .reveal_chooser import RevealChooser
from .token_cache import TokenCache
from .vector_quantizer import VectorQuantizer
from .vqvae import OccVQVAE
from .world_transformer import MultiScaleSpatialMixer, OccWorldTransformer, WorldBlock

__all__ = [
    'AerialWorld', 'AgentMotionHead', 'OccVQVAE', 'VectorQuantizer', 'OccWorldTransformer',
    'MultiScaleSpatialMixer', 'WorldBlock', 'OccForecastHead', 'PoseCodec',
    'CopyThroughDecoder', 'TokenCache', 'OccupancyDataPreprocessor', 'RevealChooser'
]
