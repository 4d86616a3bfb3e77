"""Models of projects.lidar_llm (registered on import)."""
from .aux_heads import (BEVSemanticHead, CenterHeatmapHead, ReadoutAnswerHead, SectorCountHead,
                        centre_heatmap, sector_counts)
from .data_preprocessor import LidarLLMDataPreprocessor
from .encoders import CameraEncoder, PointsBEVEncoder
from .lidar_llm import IGNORE_INDEX, LidarLLM, build_causal_lm
from .readout import QuestionAwareReadout
from .optim import TrainableParamsOptimWrapperConstructor
from .tokenizer import build_qwen2_tokenizer, build_tokenizer
from .vat import (VIEW_NAMES, SensorTokenProjector, VATBlock, VATLiDAR, VATVision,
                  bev_cell_centres, bev_view_ids)

__all__ = ['LidarLLMDataPreprocessor', 'CameraEncoder', 'PointsBEVEncoder', 'LidarLLM',
           'IGNORE_INDEX', 'build_causal_lm', 'build_qwen2_tokenizer', 'build_tokenizer',
           'VIEW_NAMES', 'SensorTokenProjector', 'VATBlock', 'VATLiDAR', 'VATVision',
           'bev_cell_centres', 'bev_view_ids', 'TrainableParamsOptimWrapperConstructor',
           'SectorCountHead', 'sector_counts', 'QuestionAwareReadout', 'BEVSemanticHead',
           'CenterHeatmapHead', 'centre_heatmap', 'ReadoutAnswerHead']
