# CPU-sized video world model (the seed's architecture, narrower): encoder stages
# [16, 32, 64] (stride 8) + 4-head spatial attention -> latent 64; FiLM + 2 ConvGRU layers of
# 64 channels; decoder stages [64, 32, 16] with PixelShuffle -> tanh and a compositing mask
# starting near copy-the-previous-frame (sigmoid(3) = 0.95). Only the observed frames are
# reconstructed with gradients (recon_frames='context'). The prediction term is an MSE
# (PSNR is an MSE measure; the seed base keeps L1).
_base_ = ['./video_world_base.py']
latent_dim = 64
model = dict(
    recon_frames='context',
    encoder=dict(stage_channels=[16, 32, 64], strides=[1, 2, 2], stem_stride=2,
                 blocks_per_stage=1, latent_dim=latent_dim, num_heads=4),
    dynamics=dict(latent_dim=latent_dim, hidden_dim=64, num_layers=2, dropout=0.1),
    head=dict(
        decoder=dict(latent_dim=latent_dim, stage_channels=[64, 32, 16], stride=8,
                     mask_bias_init=3.0),
        losses=[
            dict(type='ReconstructionLoss', loss_weight=1.0),
            dict(type='HorizonWeightedPredictionLoss', loss_weight=1.0, kind='mse',
                 horizon_weighting='linear'),
            dict(type='PerceptualLoss', loss_weight=0.1, vgg_checkpoint=None),
            dict(type='LatentRegularizationLoss', loss_weight=0.01),
            dict(type='LatentConsistencyLoss', loss_weight=0.1),
        ]))
