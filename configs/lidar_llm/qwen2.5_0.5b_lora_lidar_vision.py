# LiDAR-Vision LLM for real users (the seed's sizes): Qwen2.5-0.5B from a local folder with
# LoRA, VATLiDAR (BEV 256 ch -> 576 queries of 896) on precomputed BEV features, VATVision
# (1536 queries) over a ResNet-50 on the 6 cameras, bf16 autocast, gradient checkpointing,
# DDP (tools/dist_train.sh CONFIG GPUS). Data: nuScenes QA JSON / JSONL (e.g. NuScenes-QA,
# nuCaption, DriveLM converted by tools/data_converter/drivelm_to_qa.py) keyed by
# sample_token, BEV features <sample_token>.npy from tools/data_converter/extract_bev_features.py.
# Set the paths below (or with --cfg-options); nothing is downloaded.
# The sizes are named below; --cfg-options overrides the keys that use them (MMEngine merges
# --cfg-options after the file is parsed, so a top-level name alone changes nothing): see
# configs/lidar_llm/README.md for the 2-iteration CPU run with the tiny LLM swapped in.
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/lidar_llm_iter.py']
model_id = 'checkpoints/Qwen2.5-0.5B'  # local folder with config.json, weights, tokenizer
data_root = 'data/nuscenes/'
train_ann = ['qa/nuscenes_qa_train.json']
val_ann = ['qa/nuscenes_qa_val.json']
feature_dirs = ['bev_feats/train', 'bev_feats/val']
bev_shape = (256, 200, 200)  # (C, H, W) of the BEV feature files
img_size = (448, 800)  # camera images resized to (H, W)
d_llm_sensor = 896  # width of the VATs (the LLM width of Qwen2.5-0.5B)
n_lidar_queries, n_vision_queries = 576, 1536  # 6 view groups each
resnet_depth, resnet_channels = 50, 2048  # camera backbone and its last-stage channels
lora_targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

model = dict(
    type='LidarLLM',
    data_preprocessor=dict(type='LidarLLMDataPreprocessor'),
    tokenizer=dict(type='AutoTokenizer', model_id=model_id),
    llm=dict(model_id=model_id, torch_dtype='bfloat16'),
    lora=dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=lora_targets),
    gradient_checkpointing=True,
    vat_lidar=dict(type='VATLiDAR', c_in=bev_shape[0], d_model=d_llm_sensor,
                   n_queries=n_lidar_queries, n_layers=4,
                   n_heads=8, bev_range=[-51.2, -51.2, 51.2, 51.2]),
    projector=dict(type='SensorTokenProjector'),
    camera_encoder=dict(type='CameraEncoder', out_dim=d_llm_sensor,
                        backbone=dict(type='mmdet.ResNet', depth=resnet_depth, out_indices=(3, ),
                                      frozen_stages=1, norm_eval=True,
                                      norm_cfg=dict(type='BN', requires_grad=False)),
                        backbone_channels=resnet_channels),
    vat_vision=dict(type='VATVision', d_model=d_llm_sensor, n_queries=n_vision_queries,
                    n_layers=4, n_heads=8,
                    max_tokens_per_cam=1024),
    vision_adapter=dict(type='SensorTokenProjector'),
    system_prompt='You are a driving assistant. Answer from the LiDAR and camera input.',
    generation=dict(max_new_tokens=64, do_sample=False),
    text_only_baseline=False)

train_pipeline = [dict(type='LoadBEVFeature', expected_shape=bev_shape),
                  dict(type='LoadMultiViewImages', img_size=img_size),
                  dict(type='PackLidarQAInputs')]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=2, num_workers=4, persistent_workers=True,
    sampler=dict(type='LengthGroupedSampler', batch_size=2, shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedNuDataset', data_root=data_root, ann_file=train_ann,
                 feature_dirs=feature_dirs, use_vision=True, target_field='answer',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='MixedNuDataset', data_root=data_root, ann_file=val_ann,
                 feature_dirs=feature_dirs, use_vision=True, pipeline=test_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='DrivingQAMetric', prior_ann_file=[data_root + a for a in train_ann],
                     language=True, meteor=True)
test_evaluator = val_evaluator

# seed learning rates, bf16 autocast on CUDA (on a CPU run with --amp: bf16 CPU autocast)
lr_vat, lr_vision_vat, lr_lora, lr_vision = 1e-4, 1e-4, 2e-4, 1e-5
max_iters = 20000
warmup_iters = 500
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16',
    constructor='TrainableParamsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=lr_lora, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0), accumulative_counts=4,
    paramwise_cfg=dict(custom_keys={
        'vat_lidar': dict(lr_mult=lr_vat / lr_lora),
        'projector': dict(lr_mult=lr_vat / lr_lora),
        'vat_vision': dict(lr_mult=lr_vision_vat / lr_lora),
        'vision_adapter': dict(lr_mult=lr_vision_vat / lr_lora),
        'camera_encoder': dict(lr_mult=lr_vision / lr_lora)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         T_max=max_iters - warmup_iters, eta_min=1e-6)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000,
                                     max_keep_ckpts=3, save_last=True,
                                     save_best='qa/EM', rule='greater'))
env_cfg = dict(dist_cfg=dict(backend='nccl'))
