# Stage 2 (configs/worldmodel_tokyo.py) with fully sharded data parallel training, for world
# models that do not fit one GPU: parameters, gradients and optimizer state are sharded over
# the processes (MMEngine FlexibleRunner + FSDPStrategy).
#   tools/dist_train.sh configs/worldmodel_tokyo_fsdp.py 8 \
#       --cfg-options model.tokenizer_ckpt=work_dirs/vqvae_tokyo/iter_8000.pth
# Needs a distributed launch (tools/dist_train.sh; nccl on GPUs, gloo on CPU-only machines).
# Scale the transformer with model.transformer.d_model / num_blocks.
_base_ = ['./worldmodel_tokyo.py']

# tools/train.py builds MMEngine's FlexibleRunner for this (instead of FaultTolerantRunner).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='projects.DeviceAgnosticFSDP',
        # Each world-transformer block is its own FSDP unit (gathered just for its forward
        # and backward); the frozen tokenizer, the embeddings and the heads stay in the root
        # unit, because AerialWorld calls tokenizer methods other than forward.
        auto_wrap_policy=dict(type='projects.module_class_wrap_policy',
                              module_classes=['WorldBlock']),
        # Keep the original parameters: the root unit mixes the frozen tokenizer
        # (requires_grad=False) with trainable parameters, which flat parameters without
        # use_orig_params reject, and the optimizer sees the usual named parameters.
        use_orig_params=True,
        sharding_strategy='FULL_SHARD',
        # bf16 compute and communication on CUDA, float32 gradient reduction and buffers;
        # ignored (float32) on CPU-only machines.
        mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32',
                             buffer_dtype='float32')),
    # One consolidated checkpoint on rank 0 (tools/test.py, worldmodel_tokyo.py and
    # --load-from read it like any other); 'local' would write one shard per rank.
    state_dict_cfg='full')
# Gradient clipping over all shards (FSDP clip_grad_norm_), non-finite guard as in the base.
optim_wrapper = dict(type='FSDPOptimWrapper')
