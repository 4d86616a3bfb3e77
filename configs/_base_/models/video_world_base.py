# Video world model at the seed's sizes (configs/model/base.yaml of the seed): encoder stages
# [64, 128, 256, 512] + 4-head spatial attention -> latent_dim 256; FiLM + 4-layer ConvGRU,
# hidden_dim 512, dropout 0.1; decoder stages [512, 256, 128, 64] with PixelShuffle -> tanh.
# Total stride 16: 256 x 256 frames give the seed's 16 x 16 latent (decoder init_size 16).
latent_dim = 256
action_dim = 4
model = dict(
    type='VideoWorldModel',
    num_context=2,
    train_rollout='open_loop',
    gradient_checkpointing=False,
    data_preprocessor=dict(type='VideoDataPreprocessor'),
    encoder=dict(type='VideoFrameEncoder', stage_channels=[64, 128, 256, 512],
                 strides=[1, 2, 2, 2], stem_stride=2, latent_dim=latent_dim, num_heads=4),
    dynamics=dict(type='FiLMRecurrentDynamics', latent_dim=latent_dim, action_dim=action_dim,
                  hidden_dim=512, num_layers=4, dropout=0.1, cell='gru'),
    head=dict(
        type='VideoPredictionHead',
        composite=True,
        decoder=dict(type='PixelShuffleDecoder', latent_dim=latent_dim,
                     stage_channels=[512, 256, 128, 64], stride=16),
        losses=[
            dict(type='ReconstructionLoss', loss_weight=1.0),
            dict(type='HorizonWeightedPredictionLoss', loss_weight=1.0,
                 horizon_weighting='linear'),
            # vgg_checkpoint=None: falls back to 1 - MS-SSIM (torchmetrics), logged.
            dict(type='PerceptualLoss', loss_weight=0.1, vgg_checkpoint=None),
            dict(type='LatentRegularizationLoss', loss_weight=0.01),
            dict(type='LatentConsistencyLoss', loss_weight=0.1),
        ]),
)
