# Camera-only LLM for CPU runs on DriveLM: a small mmdet ResNet-18 (16 base channels, random
# init, trained with lr_vision) per camera, VATVision over the 6 cameras, the vision adapter
# into a tiny randomly initialised Qwen2 (real Qwen2 BPE tokenizer) with LoRA.
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
    camera_encoder=dict(type='CameraEncoder', out_dim=128,
                        backbone=dict(type='mmdet.ResNet', depth=18, base_channels=16,
                                      out_indices=(3, ), norm_eval=False,
                                      norm_cfg=dict(type='BN', requires_grad=True)),
                        backbone_channels=128),
    vat_vision=dict(type='VATVision', d_model=128, n_queries=24, n_layers=1, n_heads=4,
                    max_tokens_per_cam=64),
    vision_adapter=dict(type='SensorTokenProjector'),
    losses=[dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)],
    generation=dict(max_new_tokens=40, do_sample=False),
    text_only_baseline=True)
