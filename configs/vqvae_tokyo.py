# Stage 1 alone: train the VQ-VAE occupancy tokenizer on the Tokyo full grid (the two-stage
# loop of finetune_tokyo with the switch at the end of the run: every iteration is a tokenizer
# iteration). Then:
#   python tools/train.py configs/worldmodel_tokyo.py \
#       --cfg-options model.tokenizer_ckpt=work_dirs/vqvae_tokyo/iter_8000.pth
_base_ = ['./finetune_tokyo.py']
train_cfg = dict(max_iters=8000, switch_ratio=1.0, val_interval=8000)
