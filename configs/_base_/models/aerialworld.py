# AerialWorld: VQ-VAE occupancy tokenizer + causal spatio-temporal world transformer + pose
# branch (OccWorld, Zheng et al. 2023, adapted to aerial grids). This is the model the main job
# (configs/finetune_tokyo.py) runs on the full Tokyo grid (200 x 200 x 121, 0.4 m x 0.4 m x
# 1.25 m, z = -2..150 m above the ground datum); other configs state only what they change.
model = dict(
    type='AerialWorld',
    num_classes=7,
    free_label=6,
    num_history=4,
    num_future=6,
    # The stage of a fresh model; TwoStageTrainLoop (train_cfg.switch_ratio / switch_iter)
    # switches it to 'world' (tokenizer frozen) during the run.
    train_stage='tokenizer',
    tokenizer_frames=4,  # tokenizer stage: reconstruct 4 random frames per window (memory)
    # World stage: decode 1 random future frame per step for the decoded-occupancy losses
    # (an estimate of their mean over the 6 future frames): decoding full-grid frames is most
    # of a world step (3.5x faster, 4.7 instead of 7.6 GB; configs/README.md).
    world_occ_loss_samples=1,
    data_preprocessor=dict(type='OccupancyDataPreprocessor'),
    # World stage: codes of the frozen tokenizer, encoded once per frame and tokenizer weights
    # (keyed by both hashes) and read back instead of re-encoding every frame at every step.
    token_cache=dict(cache_dir='work_dirs/token_cache'),
    # Copy-through decoding of rollouts (static city, ground-referenced z): the last observed
    # frame warped by the predicted ego motion where it covers the new grid, observed voxels for
    # tokens predicted unchanged, the VQ decoder for the rest (see CopyThroughDecoder).
    copy_decode=dict(point_cloud_range=[-40.0, -40.0, -2.0, 40.0, 40.0, 150.0],
                     z_reference='ground'),
    tokenizer=dict(
        type='OccVQVAE',
        num_classes=7,
        free_label=6,
        grid_size=[200, 200, 121],
        class_embed_dim=8,
        z_reduction=4,  # 121 -> 31 height slices before folding height into channels
        z_embed_dim=8,
        base_channels=64,
        channel_mults=(1, 2, 4),  # two stride-2 stages: 4x down, attention at the lowest
        num_res_blocks=2,
        # Channel LayerNorm before the output convolutions: GroupNorm there erases grids that
        # are uniformly roof or ground (see OccVQVAE.out_norm).
        out_norm='layer',
        num_codes=512,
        code_dim=128,
        beta=0.25,
        with_cp=True,
        # tokenizer stage: encoder -> quantiser -> decoder -> loss terms one frame at a time
        # under activation checkpointing (peak memory of one frame, see
        # OccVQVAE.checkpoint_frames)
        checkpoint_frames=1),
    # Motion-compensated copy prior (the last frame warped by the ego motion is the starting
    # guess; see OccWorldTransformer.copy_warp_range, in metres: x_min, y_min, x_max, y_max)
    # and a pose branch that starts at constant velocity and learns corrections.
    transformer=dict(
        type='OccWorldTransformer',
        d_model=128,
        num_blocks=4,
        num_heads=8,
        max_frames=10,
        spatial_scales=(1, 2, 4),
        copy_prior=6.0,
        pose_residual=True,
        copy_warp_range=[-40.0, -40.0, 40.0, 40.0]),
    # The forecast head owns every loss (target: what it applies to; see OccForecastHead).
    # Reconstruction / decoded prediction: the seed's occupancy losses (focal, dice,
    # mean-matching, on both the tokenizer reconstruction and the world model's decoded
    # forecast) plus semantic cross-entropy on the reconstruction (class identity, e.g. road
    # vs terrain); next-token cross-entropy. Ego motion (pose_losses, which follow pose_mode):
    # smooth-L1 on the planar motion.
    head=dict(
        type='OccForecastHead',
        losses=[
            dict(type='TokenCrossEntropyLoss', target='token', loss_weight=1.0),
            dict(type='OccupancyFocalLoss', target='occupancy', name='focal', alpha=0.99,
                 gamma=2.0, loss_weight=1.0),
            dict(type='OccupancyDiceLoss', target='occupancy', name='dice', loss_weight=1.0),
            dict(type='MeanMatchingLoss', target='occupancy', name='mm', loss_weight=10.0),
            dict(type='TokenCrossEntropyLoss', target='recon', name='ce', loss_weight=1.0),
        ],
        pose_losses=[dict(type='mmdet.SmoothL1Loss', target='pose', loss_weight=1.0)]),
)
