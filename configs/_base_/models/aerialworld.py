# AerialWorld: VQ-VAE occupancy tokenizer + causal spatio-temporal world transformer + pose
# branch (OccWorld, Zheng et al. 2023, adapted to aerial grids). Sizes here are the full-grid
# defaults; configs override the grid and widths.
model = dict(
    type='AerialWorld',
    num_classes=7,
    free_label=6,
    num_history=4,
    num_future=6,
    train_stage='tokenizer',  # TrainStageSwitchHook moves it to 'world' (tokenizer frozen)
    data_preprocessor=dict(type='OccupancyDataPreprocessor'),
    # World stage: codes of the frozen tokenizer, encoded once per frame and tokenizer weights
    # (keyed by both hashes) and read back instead of re-encoding every frame at every step.
    token_cache=dict(cache_dir='work_dirs/token_cache'),
    tokenizer=dict(
        type='OccVQVAE',
        num_classes=7,
        free_label=6,
        grid_size=[200, 200, 121],
        class_embed_dim=8,
        z_reduction=4,  # 121 -> 31 height slices before folding height into channels
        base_channels=64,
        channel_mults=(1, 2, 4),  # two stride-2 stages: 4x down, attention at the lowest
        num_res_blocks=1,
        # Channel LayerNorm before the output convolutions: GroupNorm there erases grids that
        # are uniformly roof or ground (see OccVQVAE.out_norm).
        out_norm='layer',
        num_codes=512,
        code_dim=128,
        beta=0.25,
        with_cp=True),
    transformer=dict(
        type='OccWorldTransformer',
        d_model=256,
        num_blocks=4,
        num_heads=8,
        max_frames=16),
    # The forecast head owns every loss (target: what it applies to; see OccForecastHead).
    # Reconstruction / decoded prediction: the seed's occupancy losses (focal, dice,
    # mean-matching, on both the tokenizer reconstruction and the world model's decoded
    # forecast) plus semantic cross-entropy on the reconstruction (class identity, e.g. road
    # vs terrain); next-token cross-entropy; smooth-L1 on the ego motion.
    head=dict(
        type='OccForecastHead',
        losses=[
            dict(type='TokenCrossEntropyLoss', target='token', loss_weight=1.0),
            dict(type='OccupancyFocalLoss', target='occupancy', name='focal', alpha=0.99,
                 gamma=2.0, loss_weight=1.0),
            dict(type='OccupancyDiceLoss', target='occupancy', name='dice', loss_weight=1.0),
            dict(type='MeanMatchingLoss', target='occupancy', name='mm', loss_weight=10.0),
            dict(type='TokenCrossEntropyLoss', target='recon', name='ce', loss_weight=1.0),
            dict(type='mmdet.SmoothL1Loss', target='pose', loss_weight=1.0),
        ]),
)
