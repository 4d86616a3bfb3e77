# Sensor VLA with a tiny randomly initialised Qwen2.5-VL (hidden 64, 2 language + 2 vision
# layers, the real Qwen2.5 vocabulary) for CPU runs and tests. Real users load a checkpoint
# folder instead: see configs/sensor_vla/qwen2.5_vl_3b_lora_sensor.py.
tiny_qwen2_5_vl = dict(
    text_config=dict(vocab_size=151936, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     max_position_embeddings=2048,
                     rope_parameters=dict(rope_type='default', rope_theta=10000.0,
                                          mrope_section=[2, 3, 3])),
    vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4,
                       out_hidden_size=64, patch_size=14, spatial_merge_size=2,
                       temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]))

model = dict(
    type='SensorVLA',
    data_preprocessor=dict(type='VLADataPreprocessor'),
    vl_backbone=dict(type='QwenVLBackbone', model_config=tiny_qwen2_5_vl,
                     model_type='qwen2_5_vl', finetune_vl='none',
                     min_pixels=56 * 56, max_pixels=56 * 56, max_text_tokens=24),
    sensor_encoder=dict(type='SensorEncoder', input_channels=1026, temporal_length=650,
                        output_dim=64, conv_channels=(32, 32, 64, 64),
                        num_transformer_layers=2, num_heads=4, dropout=0.1),
    fusion=dict(type='SensorFusion', strategy='none', num_heads=4),
    action_head=dict(
        type='L1RegressionActionHead',
        expert=dict(type='ActionExpert', dim=128, chunk_size=8, num_layers=2, num_heads=4,
                    dropout=0.1),
        losses=[dict(type='WeightedActionL1Loss', loss_weight=1.0)]),
    action_normalizer=dict(type='ActionNormalizer', stats=None, mode='mean_std'),
    use_prev_action=False)
