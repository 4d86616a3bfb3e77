# Stage 2 alone: train the world model (token forecasting + pose branch) with a frozen
# tokenizer loaded from a stage-1 checkpoint (configs/vqvae_tokyo.py): the two-stage loop of
# finetune_tokyo with the switch at iteration 0 (every iteration is a world iteration).
_base_ = ['./finetune_tokyo.py']
train_cfg = dict(max_iters=12000, switch_ratio=0.0)
model = dict(train_stage='world',
             tokenizer_ckpt='{{ fileDirname }}/../work_dirs/vqvae_tokyo/iter_8000.pth')
