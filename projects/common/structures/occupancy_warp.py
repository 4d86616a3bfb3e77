"""Rigid warping of ego-centred semantic occupancy grids between frames.

A static scene seen from a moved ego is the old grid resampled at the new voxel centres: for a
target voxel centre ``c`` (target ego frame), its position in the source ego frame is
``p = R_z(yaw) c + t`` with ``[t_x, t_y, t_z, yaw]`` the pose of the target frame expressed in
the source frame (as :func:`projects.common.structures.pose.accumulate_ego_motion` returns
it). This is the ego-pose warp of static voxels used by occupancy forecasters such as
DFIT-OccWorld (Zhang et al., "An Efficient Occupancy World Model via Decoupled Dynamic Flow
and Image-assisted Training", arXiv:2412.13772, 2024).

The resampling is nearest-neighbour (labels are categorical) with
:func:`torch.nn.functional.grid_sample`; voxels whose source lies outside the source grid are
reported invalid and get ``fill_label``.
"""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

Z_REFERENCES = ('ground', 'ego')


def check_point_cloud_range(point_cloud_range, owner: str) -> list:
    """Validate a grid range and return it as six floats.

    Args:
        point_cloud_range (Sequence[float]): ``[x_min, y_min, z_min, x_max, y_max, z_max]``
            (metres).
        owner (str): The config field or class named in the error (e.g.
            ``'copy_decode.point_cloud_range'``).

    Returns:
        list[float]: The six bounds.

    Raises:
        ValueError: If it is None, not six numbers, or some max is not above its min.
    """
    try:
        rng = [float(v) for v in point_cloud_range]
    except (TypeError, ValueError):
        rng = []
    if len(rng) != 6 or not all(rng[i + 3] > rng[i] for i in range(3)):
        raise ValueError(f'{owner} must be [x_min, y_min, z_min, x_max, y_max, z_max] '
                         f'(metres) with max > min, got {point_cloud_range}')
    return rng


def warp_occupancy(occ: torch.Tensor,
                   rel_pose: torch.Tensor,
                   point_cloud_range: Sequence[float],
                   fill_label: int,
                   z_reference: str = 'ground') -> Tuple[torch.Tensor, torch.Tensor]:
    """Resample source-frame occupancy at the voxel centres of a moved ego frame.

    Args:
        occ (torch.Tensor): ``(B, X, Y, Z)`` integer labels (uint8 or long) of the source
            frame, ego-centred, x forward along the ego heading, y left, z up.
        rel_pose (torch.Tensor): ``(B, 4)`` float ``[x, y, z, yaw]`` of the target ego frame
            in the source ego frame (metres, radians; yaw counter-clockwise about +z).
        point_cloud_range (Sequence[float]): ``[x_min, y_min, z_min, x_max, y_max, z_max]``
            of the grid in its ego frame (metres); the voxel size is range / grid size.
        fill_label (int): Label of target voxels whose source lies outside the source grid
            (typically the free class).
        z_reference (str): ``'ground'`` when the grid's z is height above a fixed ground
            datum (the translation's z is ignored, the warp is planar), ``'ego'`` when z is
            relative to the ego (the z translation shifts the grid). Defaults to ``'ground'``.

    Returns:
        tuple: ``warped`` ``(B, X, Y, Z)`` with ``occ``'s dtype, and ``valid`` ``(B, X, Y, Z)``
        bool, True where the source voxel lies inside the source grid.

    Raises:
        ValueError: On bad shapes, a ``point_cloud_range`` that is not 6 increasing bounds, or
            an unknown ``z_reference``.
    """
    if occ.dim() != 4:
        raise ValueError(f'warp_occupancy: occ must be (B, X, Y, Z), got {tuple(occ.shape)}')
    b, nx, ny, nz = occ.shape
    if rel_pose.shape != (b, 4):
        raise ValueError(f'warp_occupancy: rel_pose must be ({b}, 4) [x, y, z, yaw], got '
                         f'{tuple(rel_pose.shape)}')
    rng = check_point_cloud_range(point_cloud_range, 'warp_occupancy: point_cloud_range')
    if z_reference not in Z_REFERENCES:
        raise ValueError(f'warp_occupancy: z_reference must be one of {Z_REFERENCES}, got '
                         f'{z_reference!r}')
    dev = occ.device
    pose = rel_pose.to(device=dev, dtype=torch.float32)
    sizes = (nx, ny, nz)
    # Target voxel centres in metres, (X, Y, Z) each.
    centres = [rng[k] + (torch.arange(n, device=dev, dtype=torch.float32) + 0.5) *
               ((rng[k + 3] - rng[k]) / n) for k, n in enumerate(sizes)]
    cx, cy = centres[0][:, None], centres[1][None, :]  # (X, 1), (1, Y)
    cos = torch.cos(pose[:, 3]).view(b, 1, 1)
    sin = torch.sin(pose[:, 3]).view(b, 1, 1)
    px = cos * cx - sin * cy + pose[:, 0].view(b, 1, 1)  # (B, X, Y)
    py = sin * cx + cos * cy + pose[:, 1].view(b, 1, 1)
    dz = pose[:, 2] if z_reference == 'ego' else torch.zeros_like(pose[:, 2])
    pz = centres[2].view(1, nz) + dz.view(b, 1)  # (B, Z)

    def _norm(p: torch.Tensor, k: int) -> torch.Tensor:
        # grid_sample, align_corners=False: -1 / +1 are the outer edges of the first / last voxel
        return 2.0 * (p - rng[k]) / (rng[k + 3] - rng[k]) - 1.0

    gx = _norm(px, 0)[..., None].expand(b, nx, ny, nz)
    gy = _norm(py, 1)[..., None].expand(b, nx, ny, nz)
    gz = _norm(pz, 2)[:, None, None, :].expand(b, nx, ny, nz)
    # 5-D input (B, C, D=X, H=Y, W=Z); the grid's last dim is ordered (W, H, D).
    grid = torch.stack([gz, gy, gx], dim=-1)
    src = torch.stack([occ.float(), torch.ones_like(occ, dtype=torch.float32)], dim=1)
    out = F.grid_sample(src, grid, mode='nearest', padding_mode='zeros', align_corners=False)
    valid = out[:, 1] > 0.5
    warped = torch.where(valid, out[:, 0].round(), torch.full_like(out[:, 0], fill_label))
    return warped.to(occ.dtype), valid
