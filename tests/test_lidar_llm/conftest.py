"""Shared fixtures of the LiDAR-Vision LLM tests: one tiny model per test session."""
import pytest
import torch

TINY_QWEN2 = dict(model_type='qwen2', hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=512, tie_word_embeddings=True)
LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
                            'down_proj'])


def tiny_model_cfg(**overrides):
    cfg = dict(type='LidarLLM', llm=dict(config=TINY_QWEN2, embedding_std=0.15),
               tokenizer=dict(type='Qwen2BPE'),
               lora=LORA,
               vat_lidar=dict(type='VATLiDAR', c_in=8, d_model=32, n_queries=12, n_layers=1,
                              n_heads=4, bev_range=(-10, -10, 10, 10), view_masked=True),
               text_only_baseline=True, generation=dict(max_new_tokens=6),
               data_preprocessor=dict(type='LidarLLMDataPreprocessor'))
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope='session')
def tiny_model():
    from mmengine.registry import init_default_scope

    import projects.lidar_llm.models  # noqa: F401
    from projects.registry import MODELS
    torch.set_num_threads(1)
    init_default_scope('projects')
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg())
