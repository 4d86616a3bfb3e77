"""Shared tiny AerialWorld configs and synthetic batches for the model tests."""
import copy

import torch

TINY_GRID = (10, 10, 6)
TINY_CLASSES = 4

TINY_TOKENIZER = dict(
    type='OccVQVAE',
    num_classes=TINY_CLASSES,
    grid_size=TINY_GRID,
    class_embed_dim=4,
    base_channels=16,
    channel_mults=(1, 2),
    num_res_blocks=1,
    num_codes=32,
    code_dim=16)

TINY_TRANSFORMER = dict(
    type='OccWorldTransformer', d_model=32, num_blocks=2, num_heads=2, max_frames=8,
    pose_hidden=32)


def head_cfg(**pose_losses) -> dict:
    """``OccForecastHead`` config with the default OccWorld losses.

    Args:
        **pose_losses: ``target -> loss config`` (``pose``, ``rot``, ``vel``) replacing the
            default smooth-L1 ``pose`` loss, e.g. ``rot=dict(type='GeodesicRotationLoss')``.
    """
    from projects.aerialworld.models.aerialworld import DEFAULT_HEAD
    head = copy.deepcopy(DEFAULT_HEAD)
    if pose_losses:
        head['pose_losses'] = [dict(cfg, target=target) for target, cfg in pose_losses.items()]
    return head


def tiny_model_cfg(**overrides) -> dict:
    """A tiny ``AerialWorld`` config (10x10x6 grid, 4 classes, 2 history + 2 future)."""
    cfg = dict(
        type='AerialWorld',
        num_classes=TINY_CLASSES,
        num_history=2,
        num_future=2,
        train_stage='tokenizer',
        tokenizer=copy.deepcopy(TINY_TOKENIZER),
        transformer=copy.deepcopy(TINY_TRANSFORMER),
        data_preprocessor=None)
    cfg.update(overrides)
    return cfg


def synthetic_batch(batch: int = 2, frames: int = 4, grid=TINY_GRID, num_classes=TINY_CLASSES,
                    seed: int = 0) -> dict:
    """A structured synthetic window: columns of classes on a free background moving in x.

    Returns:
        dict: ``occupancy`` uint8 ``(B, T, X, Y, Z)``, ``poses`` float32 ``(B, T, 13)``
        (ego moving 1 m per frame along x with identity orientation).
    """
    g = torch.Generator().manual_seed(seed)
    x, y, z = grid
    free = num_classes - 1
    occ = torch.full((batch, frames, x, y, z), free, dtype=torch.uint8)
    for b in range(batch):
        for _ in range(3):
            cx = int(torch.randint(0, x - 2, (1, ), generator=g))
            cy = int(torch.randint(0, y - 2, (1, ), generator=g))
            height = int(torch.randint(1, z, (1, ), generator=g))
            cls = int(torch.randint(0, free, (1, ), generator=g))
            for t in range(frames):
                sx = max(cx - t, 0)
                occ[b, t, sx:sx + 2, cy:cy + 2, :height] = cls
        occ[b, :, :, :, 0] = 0  # ground
    poses = torch.zeros(batch, frames, 13)
    poses[..., 3] = 1.0
    poses[..., 0] = torch.arange(frames, dtype=torch.float32)
    return dict(occupancy=occ, poses=poses)
