"""3-D renderer of semantic occupancy grids (vectorised z-buffered face splatting).

Conventions in :mod:`.occupancy_vis` (the overview).
"""
import math
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .occupancy_bev import _as_array, _labels_present, _palette_array


# --------------------------------------------------------------------------- 3-D
def downsample_labels(occ, factor: Union[int, Sequence[int]], free_label: int) -> np.ndarray:
    """Coarsen a label volume by integer factors, keeping thin structures.

    A coarse voxel is occupied when any of its fine voxels is; its label is the most
    frequent non-free label among them (ties: the smaller label). Axes that do not divide
    are padded with free space.

    Args:
        occ (np.ndarray | torch.Tensor): ``(X, Y, Z)`` integer labels.
        factor (int | Sequence[int]): Factor for all axes or per axis ``(fx, fy, fz)``.
        free_label (int): Label of empty space.

    Returns:
        np.ndarray: ``(ceil(X/fx), ceil(Y/fy), ceil(Z/fz))`` labels, dtype of ``occ``.

    Raises:
        ValueError: A factor below 1.
    """
    occ = _as_array(occ, 'occ', 3)
    f = (int(factor),) * 3 if np.isscalar(factor) else tuple(int(v) for v in factor)
    if len(f) != 3 or min(f) < 1:
        raise ValueError(f'downsample_labels: factor must be >= 1 per axis, got {factor}')
    if f == (1, 1, 1):
        return occ
    shape = [int(math.ceil(s / k)) for s, k in zip(occ.shape, f)]
    padded = np.full([s * k for s, k in zip(shape, f)], free_label, dtype=occ.dtype)
    padded[:occ.shape[0], :occ.shape[1], :occ.shape[2]] = occ
    blocks = padded.reshape(shape[0], f[0], shape[1], f[1], shape[2], f[2])
    labels = [int(c) for c in _labels_present(occ, free_label)]
    out = np.full(shape, free_label, dtype=occ.dtype)
    if not labels:
        return out
    counts = np.stack([(blocks == c).sum(axis=(1, 3, 5), dtype=np.int32) for c in labels])
    best = np.argmax(counts, axis=0)
    occupied = counts.max(axis=0) > 0
    out[occupied] = np.asarray(labels, dtype=occ.dtype)[best[occupied]]
    return out


def auto_downsample(grid_size: Sequence[int], max_xy: int = 100) -> Tuple[int, int, int]:
    """Downsampling factors that bring the horizontal grid to at most ``max_xy`` cells.

    The z factor is 1 (aerial grids are already coarse in z). For example a 200 x 200 x 121
    grid gives ``(2, 2, 1)`` with the default ``max_xy=100``; 50 x 50 x 30 gives ``(1, 1, 1)``.
    """
    f = max(1, int(math.ceil(max(grid_size[0], grid_size[1]) / float(max_xy))))
    return (f, f, 1)


def _camera(elevation: float, azimuth: float):
    """Unit vectors (towards camera, screen right, screen up) in the ego frame."""
    el, az = math.radians(elevation), math.radians(azimuth)
    c = np.array([-math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), math.sin(el)])
    r = np.array([math.sin(az), -math.cos(az), 0.0])
    up = np.cross(c, r)
    return c, r, up


def _exposed(occupied: np.ndarray, axis: int, sign: int) -> np.ndarray:
    """Occupied voxels whose neighbour in direction ``sign`` along ``axis`` is free/outside."""
    neighbour = np.zeros_like(occupied)
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    if sign > 0:
        src[axis], dst[axis] = slice(1, None), slice(None, -1)
    else:
        src[axis], dst[axis] = slice(None, -1), slice(1, None)
    neighbour[tuple(dst)] = occupied[tuple(src)]
    return occupied & ~neighbour


def voxel_render(occ, free_label: int, palette=None,
                 voxel_size: Optional[Sequence[float]] = None, width: int = 400,
                 elevation: float = 40.0, azimuth: float = 35.0,
                 downsample: Union[int, Sequence[int]] = 1, z_max: Optional[int] = None,
                 background: Sequence[int] = (255, 255, 255), edge_shade: float = 0.8,
                 draw_bounds: bool = True, sample_spacing: float = 0.6) -> np.ndarray:
    """Orthographic 3-D render of the non-free voxels (vectorised z-buffer splatting).

    The camera looks from behind (-x), to the right (-y) and above; ``azimuth`` turns it from
    straight behind towards the right, ``elevation`` lifts it from the horizon. The canvas
    size only depends on the grid shape, ``voxel_size``, the angles, ``width`` and ``z_max``,
    so renders of frames of one grid tile into panels.

    Args:
        occ (np.ndarray | torch.Tensor): ``(X, Y, Z)`` integer labels.
        free_label (int): Label of empty space (not drawn).
        palette (Sequence[Sequence[int]], optional): RGB per label. Defaults to
            :func:`default_palette`.
        voxel_size (Sequence[float], optional): ``(dx, dy, dz)`` metres, for true proportions.
            Defaults to cubes.
        width (int): Output width in pixels (>= 16). Defaults to 400.
        elevation (float): Camera elevation in degrees, (0, 90]. Defaults to 40.
        azimuth (float): Camera azimuth in degrees from straight behind towards the right,
            [0, 90]. Defaults to 35.
        downsample (int | Sequence[int]): Coarsen the volume first (:func:`downsample_labels`);
            the voxel size grows accordingly. Defaults to 1.
        z_max (int, optional): Only the z indices below ``z_max`` (of the *input* grid) are
            drawn and the canvas ends there (crops empty sky of tall grids). Defaults to all.
        background (Sequence[int]): RGB background. Defaults to white.
        edge_shade (float): Brightness factor of face borders, (0, 1]. Defaults to 0.8.
        draw_bounds (bool): Outline the grid's ground rectangle. Defaults to True.
        sample_spacing (float): Spacing of the face samples in pixels (< 1 avoids holes).
            Defaults to 0.6.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB with ``W == width``.

    Raises:
        ValueError: Out-of-range angles, width or spacing.
    """
    return _voxel_render(occ, free_label, palette, voxel_size, width, elevation, azimuth,
                         downsample, z_max, background, edge_shade, draw_bounds,
                         sample_spacing)[0]


def _voxel_render(occ, free_label: int, palette=None,
                  voxel_size: Optional[Sequence[float]] = None, width: int = 400,
                  elevation: float = 40.0, azimuth: float = 35.0,
                  downsample: Union[int, Sequence[int]] = 1, z_max: Optional[int] = None,
                  background: Sequence[int] = (255, 255, 255), edge_shade: float = 0.8,
                  draw_bounds: bool = True, sample_spacing: float = 0.6
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`voxel_render`, also returning the sorted labels visible in the image."""
    occ = _as_array(occ, 'occ', 3)
    if not 0.0 < elevation <= 90.0 or not 0.0 <= azimuth <= 90.0:
        raise ValueError(f'voxel_render: need 0 < elevation <= 90 and 0 <= azimuth <= 90, got '
                         f'elevation={elevation}, azimuth={azimuth}')
    if width < 16 or not 0.0 < sample_spacing <= 1.0:
        raise ValueError(f'voxel_render: need width >= 16 and 0 < sample_spacing <= 1, got '
                         f'width={width}, sample_spacing={sample_spacing}')
    pal = _palette_array(palette, int(occ.max()) + 1, free_label).astype(np.float32)
    if z_max is not None:
        occ = occ[:, :, :max(1, int(z_max))]
    factor = (int(downsample),) * 3 if np.isscalar(downsample) else tuple(downsample)
    occ = downsample_labels(occ, factor, free_label)
    vs = np.asarray(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0), dtype=np.float64)
    vs = vs * np.asarray(factor, dtype=np.float64)
    c, r, up = _camera(elevation, azimuth)

    # Canvas from the grid's bounding box (independent of the content).
    extent = np.asarray(occ.shape, dtype=np.float64) * vs
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * extent
    cu, cv = corners @ r, corners @ up
    margin = 4
    scale = (width - 2 * margin) / max(cu.max() - cu.min(), 1e-9)
    height = int(math.ceil((cv.max() - cv.min()) * scale)) + 2 * margin
    u0, v1 = cu.min(), cv.max()
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = np.asarray(background, dtype=np.uint8)

    def to_pixels(points):
        col = np.round((points @ r - u0) * scale + margin).astype(np.int64)
        row = np.round((v1 - points @ up) * scale + margin).astype(np.int64)
        return row, col

    if draw_bounds:
        ground = np.array([[0, 0, 0], [extent[0], 0, 0], [extent[0], extent[1], 0],
                           [0, extent[1], 0]])
        rows, cols = to_pixels(ground)
        pts = np.stack([cols, rows], -1).reshape(-1, 1, 2).astype(np.int32)
        cv2.polylines(img, [pts], isClosed=True, color=(190, 190, 190), thickness=1,
                      lineType=cv2.LINE_AA)
        # Forward arrow along +x from the grid centre line's rear end.
        tail = np.array([[0.0, extent[1] / 2, 0], [extent[0] * 0.12, extent[1] / 2, 0]])
        rows, cols = to_pixels(tail)
        cv2.arrowedLine(img, (int(cols[0]), int(rows[0])), (int(cols[1]), int(rows[1])),
                        (120, 120, 120), 1, cv2.LINE_AA, tipLength=0.3)

    occupied = occ != free_label
    if not occupied.any():
        return img, np.zeros(0, dtype=np.int64)
    shades = {0: 0.78, 1: 0.62, 2: 1.0}  # face brightness by normal axis (x, y, z)
    all_pix, all_depth, all_label, all_shade = [], [], [], []
    for axis in range(3):
        sign = 1 if c[axis] > 1e-9 else (-1 if c[axis] < -1e-9 else 0)
        if sign == 0:
            continue  # faces parallel to the view direction are invisible
        ijk = np.argwhere(_exposed(occupied, axis, sign))
        if ijk.size == 0:
            continue
        labels = occ[ijk[:, 0], ijk[:, 1], ijk[:, 2]].astype(np.int64)
        anchor = ijk * vs
        if sign > 0:
            anchor[:, axis] += vs[axis]
        # Sample grid on the face, spanned by the two other axes.
        a, b = [ax for ax in range(3) if ax != axis]
        ea, eb = np.zeros(3), np.zeros(3)
        ea[a], eb[b] = vs[a], vs[b]
        na = max(1, int(math.ceil(math.hypot(ea @ r, ea @ up) * scale / sample_spacing)))
        nb = max(1, int(math.ceil(math.hypot(eb @ r, eb @ up) * scale / sample_spacing)))
        ta, tb = (np.arange(na) + 0.5) / na, (np.arange(nb) + 0.5) / nb
        offsets = (ta[:, None, None] * ea + tb[None, :, None] * eb).reshape(-1, 3)  # (S, 3)
        border = np.zeros((na, nb), dtype=bool)
        if na >= 3:
            border[[0, -1], :] = True
        if nb >= 3:
            border[:, [0, -1]] = True
        shade = np.where(border.reshape(-1), shades[axis] * edge_shade,
                         shades[axis]).astype(np.float32)
        # The projection is affine: project anchors and offsets separately, then add.
        col = np.round(((anchor @ r)[:, None] + (offsets @ r)[None] - u0) * scale
                       + margin).astype(np.int64)
        row = np.round((v1 - (anchor @ up)[:, None] - (offsets @ up)[None]) * scale
                       + margin).astype(np.int64)
        depth = (anchor @ c)[:, None] + (offsets @ c)[None]
        inside = (row >= 0) & (row < height) & (col >= 0) & (col < width)
        all_pix.append((row * width + col)[inside])
        all_depth.append(depth[inside])
        all_label.append(np.broadcast_to(labels[:, None], depth.shape)[inside])
        all_shade.append(np.broadcast_to(shade[None], depth.shape)[inside])
    if not all_pix:
        return img, np.zeros(0, dtype=np.int64)
    pix = np.concatenate(all_pix)
    order = np.lexsort((np.concatenate(all_depth), pix))  # per pixel, nearest sample last
    pix_sorted = pix[order]
    last = np.ones(pix_sorted.size, dtype=bool)
    last[:-1] = pix_sorted[1:] != pix_sorted[:-1]
    keep = order[last]
    labels = np.concatenate(all_label)[keep]
    colour = pal[labels] * np.concatenate(all_shade)[keep][:, None]
    img.reshape(-1, 3)[pix[keep]] = np.clip(np.round(colour), 0, 255).astype(np.uint8)
    return img, np.flatnonzero(np.bincount(labels))
