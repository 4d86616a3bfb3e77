"""Tiny video world model configs and batches shared by the tests of tests/test_video_world."""
import copy

import torch

import projects

projects.register_all_modules()

TINY_MODEL = dict(
    type='VideoWorldModel',
    num_context=2,
    data_preprocessor=dict(type='VideoDataPreprocessor'),
    encoder=dict(type='VideoFrameEncoder', stage_channels=[8, 16], strides=[1, 2],
                 stem_stride=2, blocks_per_stage=1, latent_dim=16, num_heads=4,
                 norm_cfg=dict(type='GN', num_groups=4)),
    dynamics=dict(type='FiLMRecurrentDynamics', latent_dim=16, action_dim=3, hidden_dim=16,
                  num_layers=2, dropout=0.0, film_hidden=16),
    head=dict(type='VideoPredictionHead',
              decoder=dict(type='PixelShuffleDecoder', latent_dim=16, stage_channels=[16, 8],
                           stride=4, norm_cfg=dict(type='GN', num_groups=4)),
              losses=[dict(type='ReconstructionLoss', loss_weight=1.0),
                      dict(type='HorizonWeightedPredictionLoss', loss_weight=1.0),
                      dict(type='PerceptualLoss', loss_weight=0.1,
                           ms_ssim_betas=(0.5, 0.5), ms_ssim_kernel_size=3),
                      dict(type='LatentRegularizationLoss', loss_weight=0.01),
                      dict(type='LatentConsistencyLoss', loss_weight=0.1)]))


def tiny_model_cfg(**overrides) -> dict:
    """A deep copy of :data:`TINY_MODEL` with top-level keys replaced."""
    cfg = copy.deepcopy(TINY_MODEL)
    cfg.update(overrides)
    return cfg


def build_tiny(**overrides):
    """Build the tiny model (seeded, so tests are deterministic)."""
    from projects.registry import MODELS
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg(**overrides))


def randomize_zero_inits(model, std: float = 0.2) -> None:
    """Give the zero-initialised FiLM generators and dynamics output non-zero weights (an
    untrained model ignores the actions by construction; trained ones do not)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for film in [model.dynamics.film_in, *model.dynamics.films]:
            lin = film.mlp[-1]
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * std)
        out = model.dynamics.out
        out.weight.copy_(torch.randn(out.weight.shape, generator=g) * std)


def synthetic_batch(batch: int = 2, frames: int = 5, size: int = 16, action_dim: int = 3,
                    seed: int = 0) -> dict:
    """Packed-style batch: uint8 frames (T, 3, H, W) and float actions (T - 1, A)."""
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=dict(
        frames=[torch.randint(0, 256, (frames, 3, size, size), generator=g, dtype=torch.uint8)
                for _ in range(batch)],
        actions=[torch.randn(frames - 1, action_dim, generator=g) for _ in range(batch)]))
