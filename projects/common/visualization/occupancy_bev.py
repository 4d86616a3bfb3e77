"""BEV renderers of semantic occupancy grids: palettes, top-surface class and height images.

Conventions in :mod:`.occupancy_vis` (the overview).
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

VIEWS = ('class', 'height', '3d')
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Anchor colours of the height colour map (low -> high): dark blue, blue, cyan, green,
# yellow, orange, dark red. Piecewise-linear, perceptually ordered enough for a legend.
_HEIGHT_ANCHORS = np.array([
    (48, 18, 59), (65, 105, 225), (40, 190, 220), (90, 210, 90), (240, 220, 40),
    (245, 130, 30), (150, 20, 10)
], dtype=np.float64)


# --------------------------------------------------------------------------- helpers
def _as_array(volume, name: str, ndim: int) -> np.ndarray:
    """Return ``volume`` as an integer numpy array with ``ndim`` dimensions.

    Args:
        volume (np.ndarray | torch.Tensor): Label volume.
        name (str): Name used in error messages.
        ndim (int): Required number of dimensions.

    Raises:
        TypeError: Non-integer dtype.
        ValueError: Wrong number of dimensions or an empty axis.
    """
    if hasattr(volume, 'detach'):  # torch.Tensor, without importing torch here
        volume = volume.detach().cpu().numpy()
    arr = np.asarray(volume)
    if arr.ndim != ndim:
        raise ValueError(f'{name} must have {ndim} dimensions, got shape {arr.shape}')
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f'{name} must hold integer class labels, got dtype {arr.dtype}')
    if 0 in arr.shape:
        raise ValueError(f'{name} has an empty axis: shape {arr.shape}')
    return arr


def _labels_present(arr: np.ndarray, free_label: int) -> np.ndarray:
    """Sorted distinct non-free labels of ``arr`` (only the non-free voxels are counted)."""
    values = arr[arr != free_label]
    if values.size == 0:
        return values.astype(np.int64)
    if values.dtype.kind == 'u' and values.dtype.itemsize <= 2:
        return np.flatnonzero(np.bincount(values))
    return np.unique(values)


def _hsv_to_rgb(h: np.ndarray, s: float, v: float) -> np.ndarray:
    """Vectorised HSV -> RGB for hues ``h`` in [0, 1); returns ``(N, 3)`` floats in [0, 1]."""
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    vv = np.full_like(h, v)
    pp = np.broadcast_to(p, h.shape)
    table = np.stack([
        np.stack([vv, t, pp], -1), np.stack([q, vv, pp], -1), np.stack([pp, vv, t], -1),
        np.stack([pp, q, vv], -1), np.stack([t, pp, vv], -1), np.stack([vv, pp, q], -1)
    ], 0)
    return table[i, np.arange(h.size)]


def default_palette(num_classes: int, free_label: Optional[int] = None) -> np.ndarray:
    """Deterministic distinct colours for ``num_classes`` labels.

    Hues are spread by the golden ratio so neighbouring labels differ; the free label (if
    given) is white.

    Args:
        num_classes (int): Number of labels (>= 1).
        free_label (int, optional): Label drawn white.

    Returns:
        np.ndarray: ``(num_classes, 3)`` uint8 RGB.
    """
    if num_classes < 1:
        raise ValueError(f'default_palette: num_classes must be >= 1, got {num_classes}')
    hues = (np.arange(num_classes) * 0.618033988749895 + 0.08) % 1.0
    rgb = np.round(_hsv_to_rgb(hues, 0.65, 0.9) * 255).astype(np.uint8)
    if free_label is not None and 0 <= free_label < num_classes:
        rgb[free_label] = 255
    return rgb


def _palette_array(palette, num_labels: int, free_label: Optional[int]) -> np.ndarray:
    """Return ``palette`` as a ``(K, 3)`` uint8 array with ``K >= num_labels``.

    Raises:
        ValueError: ``palette`` is not ``(K, 3)`` or has fewer colours than labels used.
    """
    if palette is None:
        return default_palette(max(num_labels, (free_label or 0) + 1), free_label)
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ValueError(f'palette must be a sequence of RGB triples, got shape {pal.shape}')
    if pal.shape[0] < num_labels:
        raise ValueError(f'palette has {pal.shape[0]} colours but the volume holds label '
                         f'{num_labels - 1}; pass a palette with one colour per class')
    return np.clip(pal, 0, 255).astype(np.uint8)


def _bev_orient(img: np.ndarray) -> np.ndarray:
    """(X, Y, ...) grid -> image: forward (+x) up, left (+y) left."""
    return np.ascontiguousarray(img[::-1, ::-1])


# --------------------------------------------------------------------------- BEV
def top_occupied(occ, free_label: int) -> Tuple[np.ndarray, np.ndarray]:
    """Index and label of the top-most non-free voxel of every ``(x, y)`` column.

    Args:
        occ (np.ndarray | torch.Tensor): ``(X, Y, Z)`` integer labels.
        free_label (int): Label of empty space.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``top`` int64 ``(X, Y)``, the z index of the highest
        occupied voxel (-1 for an empty column), and ``label`` ``(X, Y)`` of the same dtype
        as ``occ``, its class (``free_label`` for an empty column).
    """
    occ = _as_array(occ, 'occ', 3)
    occupied = occ != free_label
    depth = occ.shape[2]
    top = (depth - 1 - np.argmax(occupied[..., ::-1], axis=-1)).astype(np.int64)
    has = occupied.any(-1)
    top[~has] = -1
    label = np.take_along_axis(occ, np.clip(top, 0, None)[..., None], axis=-1)[..., 0].copy()
    label[~has] = free_label
    return top, label


def top_heights(occ, free_label: int, voxel_size: Optional[Sequence[float]] = None,
                point_cloud_range: Optional[Sequence[float]] = None) -> np.ndarray:
    """Height of the top-most occupied voxel of every column.

    Args:
        occ (np.ndarray | torch.Tensor): ``(X, Y, Z)`` integer labels.
        free_label (int): Label of empty space.
        voxel_size (Sequence[float], optional): ``(dx, dy, dz)`` metres. Needed for metres.
        point_cloud_range (Sequence[float], optional): ``(x0, y0, z0, x1, y1, z1)`` metres.

    Returns:
        np.ndarray: float64 ``(X, Y)``: the voxel *centre* height
        ``z0 + (k + 0.5) * dz`` in metres when both grid arguments are given, otherwise the
        z index ``k``; NaN for empty columns.
    """
    top, _ = top_occupied(occ, free_label)
    height = top.astype(np.float64)
    if voxel_size is not None and point_cloud_range is not None:
        height = point_cloud_range[2] + (height + 0.5) * voxel_size[2]
    height[top < 0] = np.nan
    return height


def bev_class_image(occ, free_label: int, palette=None,
                    background: Sequence[int] = (255, 255, 255),
                    shade_by_height: bool = False) -> np.ndarray:
    """Bird's-eye view coloured by the class of the top-most occupied voxel per column.

    Args:
        occ (np.ndarray | torch.Tensor): ``(X, Y, Z)`` integer labels.
        free_label (int): Label of empty space.
        palette (Sequence[Sequence[int]], optional): RGB (0..255) per label. Defaults to
            :func:`default_palette`.
        background (Sequence[int]): RGB of empty columns. Defaults to white.
        shade_by_height (bool): Darken lower columns (brightness 0.55..1 over the grid
            height) so buildings stand out. Defaults to False (pure palette colours).

    Returns:
        np.ndarray: ``(X, Y, 3)`` uint8 RGB, forward up, left on the left.
    """
    occ = _as_array(occ, 'occ', 3)
    top, label = top_occupied(occ, free_label)
    pal = _palette_array(palette, int(occ.max()) + 1, free_label)
    return _class_image(top, label, occ.shape[2], pal, background, shade_by_height)


def _class_image(top, label, depth, pal, background=(255, 255, 255), shade_by_height=False):
    """BEV class image from :func:`top_occupied` results (see :func:`bev_class_image`)."""
    img = pal[label.astype(np.int64)]
    if shade_by_height:
        shade = 0.55 + 0.45 * np.clip(top, 0, None) / max(depth - 1, 1)
        img = np.round(img * shade[..., None]).astype(np.uint8)
    img[top < 0] = np.asarray(background, dtype=np.uint8)
    return _bev_orient(img)


def height_colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (NaN allowed) to RGB with the built-in height colour map.

    Args:
        values (np.ndarray): Any shape, float; clipped to [0, 1]; NaN maps to black.

    Returns:
        np.ndarray: ``values.shape + (3,)`` uint8 RGB.
    """
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0, 1.0)
    pos = v * (len(_HEIGHT_ANCHORS) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(_HEIGHT_ANCHORS) - 2)
    frac = (pos - lo)[..., None]
    rgb = _HEIGHT_ANCHORS[lo] * (1 - frac) + _HEIGHT_ANCHORS[lo + 1] * frac
    return np.round(rgb).astype(np.uint8)


def _default_height_range(depth: int, voxel_size, point_cloud_range) -> Tuple[float, float]:
    if voxel_size is not None and point_cloud_range is not None:
        return float(point_cloud_range[2]), float(point_cloud_range[2] + depth * voxel_size[2])
    return 0.0, float(depth - 1)


def bev_height_image(occ, free_label: int, voxel_size: Optional[Sequence[float]] = None,
                     point_cloud_range: Optional[Sequence[float]] = None,
                     height_range: Optional[Sequence[float]] = None,
                     background: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """Bird's-eye view coloured by the height of the top-most occupied voxel per column.

    Args:
        occ (np.ndarray | torch.Tensor): ``(X, Y, Z)`` integer labels.
        free_label (int): Label of empty space.
        voxel_size (Sequence[float], optional): ``(dx, dy, dz)`` metres.
        point_cloud_range (Sequence[float], optional): ``(x0, y0, z0, x1, y1, z1)`` metres.
            With ``voxel_size`` heights are metres, otherwise z indices.
        height_range (Sequence[float], optional): ``(low, high)`` mapped to the two ends of
            the colour map (same unit as the heights). Defaults to the grid's z extent.
        background (Sequence[int]): RGB of empty columns. Defaults to white.

    Returns:
        np.ndarray: ``(X, Y, 3)`` uint8 RGB, forward up, left on the left.

    Raises:
        ValueError: ``height_range`` is empty (``high <= low``).
    """
    occ = _as_array(occ, 'occ', 3)
    top, _ = top_occupied(occ, free_label)
    return _height_image(top, occ.shape[2], voxel_size, point_cloud_range, height_range,
                         background)


def _height_image(top, depth, voxel_size=None, point_cloud_range=None, height_range=None,
                  background=(255, 255, 255)):
    """BEV height image from :func:`top_occupied` indices (see :func:`bev_height_image`)."""
    height = top.astype(np.float64)
    if voxel_size is not None and point_cloud_range is not None:
        height = point_cloud_range[2] + (height + 0.5) * voxel_size[2]
    height[top < 0] = np.nan
    low, high = height_range if height_range is not None else _default_height_range(
        depth, voxel_size, point_cloud_range)
    if high <= low:
        raise ValueError(f'bev_height_image: height_range must be (low, high) with high > low, '
                         f'got {height_range}')
    img = height_colormap((height - low) / (high - low))
    img[np.isnan(height)] = np.asarray(background, dtype=np.uint8)
    return _bev_orient(img)
