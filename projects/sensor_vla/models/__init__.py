"""projects.sensor_vla.models: registered components of the sensor VLA."""
from .action_norm import ActionNormalizer
from .action_heads import ActionExpert, FlowMatchingActionHead, L1RegressionActionHead
from .fusion import FUSION_STRATEGIES, SensorFusion
from .fusion_comparison import FusionComparison
from .losses import WeightedActionL1Loss, WeightedActionMSELoss
from .sensor_encoder import SensorEncoder
from .sensor_vla import SensorVLA, VLADataPreprocessor
from .vl_backbone import QwenVLBackbone

__all__ = ['ActionNormalizer', 'ActionExpert', 'FlowMatchingActionHead',
           'L1RegressionActionHead', 'FUSION_STRATEGIES', 'SensorFusion', 'FusionComparison',
           'WeightedActionL1Loss', 'WeightedActionMSELoss', 'SensorEncoder', 'SensorVLA',
           'VLADataPreprocessor', 'QwenVLBackbone']
