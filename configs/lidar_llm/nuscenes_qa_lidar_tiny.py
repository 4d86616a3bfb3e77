# Grounded LiDAR QA on the real nuScenes keyframes, on a CPU: tiny Qwen2 + LoRA, pillar
# encoder + VATLiDAR trained end to end, text-only twin trained on the same batches; the
# final table on the held-out keyframes shows the model, the text-only model and the
# per-template answer prior.
_base_ = ['../_base_/default_runtime.py', '../_base_/models/lidar_llm_tiny.py',
          '../_base_/datasets/lidar_llm_nuscenes_qa.py', '../_base_/schedules/lidar_llm_iter.py']
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=160,
                                     max_keep_ckpts=2, save_last=True))
