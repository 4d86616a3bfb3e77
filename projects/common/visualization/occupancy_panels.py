"""Panels of occupancy renders: tiles of BEV / 3-D images with labels and a legend.

Conventions in :mod:`.occupancy_vis` (the overview).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .occupancy_bev import (_FONT, VIEWS, _as_array, _class_image, _default_height_range,
                            _height_image, _palette_array, height_colormap, top_occupied)
from .occupancy_render import _voxel_render, auto_downsample


# --------------------------------------------------------------------------- panels
def _text_size(text: str, scale: float) -> Tuple[int, int]:
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    return w, h + base


def _put_text(img: np.ndarray, text: str, x: int, y: int, scale: float = 0.45,
              color=(0, 0, 0)) -> None:
    """Draw ``text`` with its top-left corner at ``(x, y)``."""
    _, h = _text_size(text, scale)
    cv2.putText(img, text, (int(x), int(y + h - 3)), _FONT, scale, color, 1, cv2.LINE_AA)


def _resize_nearest(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    height = max(1, int(round(h * width / float(w))))
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)


def _legend(width: int, class_names: Optional[Sequence[str]], palette: np.ndarray,
            free_label: int, used_labels: Sequence[int], height_range=None,
            height_unit: str = 'm') -> np.ndarray:
    """Legend strip: class swatches (labels in ``used_labels``) and the height colour bar."""
    items = []
    for lab in sorted(set(int(v) for v in used_labels)):
        if lab == free_label:
            continue
        name = (class_names[lab] if class_names is not None and lab < len(class_names)
                else f'class {lab}')
        items.append((name, palette[lab]))
    x, y, line_h, scale = 8, 6, 20, 0.42
    positions = []
    for name, _ in items:
        w = 16 + 4 + _text_size(name, scale)[0] + 14
        if x + w > width and x > 8:
            x, y = 8, y + line_h
        positions.append((x, y))
        x += w
    bar_h = 0
    if height_range is not None:
        bar_h = 34
    total_h = (y + line_h if items else 4) + bar_h + 4
    strip = np.full((total_h, width, 3), 255, dtype=np.uint8)
    for (name, colour), (px, py) in zip(items, positions):
        cv2.rectangle(strip, (px, py + 2), (px + 16, py + 16), tuple(int(v) for v in colour), -1)
        cv2.rectangle(strip, (px, py + 2), (px + 16, py + 16), (80, 80, 80), 1)
        _put_text(strip, name, px + 20, py + 2, scale)
    if height_range is not None:
        top = total_h - bar_h
        label = f'height {height_range[0]:g} {height_unit}'
        lw = _text_size(label, scale)[0]
        hw = _text_size(f'{height_range[1]:g} {height_unit}', scale)[0]
        bar_w = max(32, min(width - lw - hw - 40, 360))
        _put_text(strip, label, 8, top + 8, scale)
        x0 = 8 + lw + 8
        ramp = height_colormap(np.linspace(0.0, 1.0, bar_w))[None].repeat(14, 0)
        strip[top + 10:top + 24, x0:x0 + bar_w] = ramp
        _put_text(strip, f'{height_range[1]:g} {height_unit}', x0 + bar_w + 8, top + 8, scale)
    return strip


def compose_panel(rows: Sequence[Tuple[str, object]], free_label: int, palette=None,
                  views: Sequence[str] = ('class', 'height'),
                  voxel_size: Optional[Sequence[float]] = None,
                  point_cloud_range: Optional[Sequence[float]] = None,
                  height_range: Optional[Sequence[float]] = None,
                  class_names: Optional[Sequence[str]] = None,
                  step_labels: Optional[Sequence[str]] = None, title: Optional[str] = None,
                  tile_size: int = 160, render_width: Optional[int] = None,
                  downsample_3d: Union[str, int, Sequence[int]] = 'auto',
                  legend: bool = True, gap: int = 4) -> np.ndarray:
    """Tile renders of several ``(F, X, Y, Z)`` sequences into one labelled image.

    For every view and then every named sequence there is one image row; every column is one
    step ``f`` of the sequences. All sequences must share their shape.

    Args:
        rows (Sequence[tuple[str, array]]): ``(name, volume)`` pairs, volumes ``(F, X, Y, Z)``
            integer labels (numpy or CPU torch).
        free_label (int): Label of empty space.
        palette (Sequence[Sequence[int]], optional): RGB per label.
        views (Sequence[str]): Subset of ``('class', 'height', '3d')``: BEV class image
            (:func:`bev_class_image`), BEV height image (:func:`bev_height_image`) and 3-D
            render (:func:`voxel_render`). Defaults to ``('class', 'height')``.
        voxel_size (Sequence[float], optional): ``(dx, dy, dz)`` metres.
        point_cloud_range (Sequence[float], optional): Grid range, metres.
        height_range (Sequence[float], optional): Colour-map range of the height view.
            Defaults to the occupied height extent of all sequences (lowest to highest
            column top, at least 4 voxels), so low scenes in tall aerial grids still use the
            whole colour map and all tiles of the panel share one scale.
        class_names (Sequence[str], optional): Names for the legend.
        step_labels (Sequence[str], optional): One column header per step. Defaults to
            ``t+1 .. t+F``.
        title (str, optional): Title line.
        tile_size (int): Width of a BEV tile in pixels. Defaults to 160.
        render_width (int, optional): Width of a 3-D tile. Defaults to ``tile_size``.
        downsample_3d (str | int | Sequence[int]): Factor for the 3-D render, or ``'auto'``
            (:func:`auto_downsample`, at most 100 cells across). Defaults to ``'auto'``.
        legend (bool): Append the class / height legend. Defaults to True.
        gap (int): Pixels between tiles. Defaults to 4.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: No rows, an unknown view, mismatched shapes or a wrong number of
            ``step_labels``.
    """
    if not rows:
        raise ValueError('compose_panel: rows is empty')
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise ValueError(f'compose_panel: views must be a non-empty subset of {VIEWS}, '
                         f'got {tuple(views)}')
    seqs = [(name, _as_array(vol, f'rows[{name!r}]', 4)) for name, vol in rows]
    shape = seqs[0][1].shape
    for name, vol in seqs:
        if vol.shape != shape:
            raise ValueError(f'compose_panel: {name!r} has shape {vol.shape}, expected {shape} '
                             f'(like {seqs[0][0]!r})')
    num_steps, grid = shape[0], shape[1:]
    if step_labels is None:
        step_labels = [f't+{i + 1}' for i in range(num_steps)]
    if len(step_labels) != num_steps:
        raise ValueError(f'compose_panel: {len(step_labels)} step_labels for {num_steps} steps')
    max_label = max(int(vol.max()) for _, vol in seqs)
    pal = _palette_array(palette, max(max_label, free_label) + 1, free_label)

    # Top-most voxels of every frame, shared by both BEV views and the ranges below.
    tops = {(r, f): top_occupied(vol[f], free_label)
            for r, (_, vol) in enumerate(seqs) for f in range(num_steps)}
    top_z = max(int(t.max()) for t, _ in tops.values())
    if height_range is None and 'height' in views:
        if top_z < 0:
            height_range = _default_height_range(grid[2], voxel_size, point_cloud_range)
        else:
            low_z = min(int(t[t >= 0].min()) for t, _ in tops.values() if (t >= 0).any())
            high_z = max(top_z + 1, low_z + 4)  # at least 4 voxels of colour range
            metric = voxel_size is not None and point_cloud_range is not None
            if metric:
                height_range = (point_cloud_range[2] + low_z * voxel_size[2],
                                point_cloud_range[2] + high_z * voxel_size[2])
            else:
                height_range = (float(low_z), float(high_z))
    render_width = render_width or tile_size
    z_max = min(grid[2], top_z + 2) if top_z >= 0 else grid[2]
    ds = auto_downsample(grid) if downsample_3d == 'auto' else downsample_3d
    used = set()  # labels visible somewhere in the panel, for the legend

    def tile(view, r, f):
        top, label = tops[(r, f)]
        if view == 'class':
            used.update(np.flatnonzero(np.bincount(label.ravel().astype(np.int64))).tolist())
            return _resize_nearest(_class_image(top, label, grid[2], pal), tile_size)
        if view == 'height':
            return _resize_nearest(_height_image(top, grid[2], voxel_size, point_cloud_range,
                                                 height_range), tile_size)
        img, drawn = _voxel_render(seqs[r][1][f], free_label, pal, voxel_size,
                                   width=render_width, downsample=ds, z_max=z_max)
        used.update(drawn.tolist())
        return img

    view_names = {'class': 'class', 'height': 'height', '3d': '3-D'}
    label_w = max(_text_size(f'{name} {view_names[v]}', 0.45)[0]
                  for name, _ in seqs for v in views) + 12
    header_h = 22
    grid_rows = []  # (label, [tiles])
    for view in views:
        for r, (name, _) in enumerate(seqs):
            grid_rows.append((f'{name} {view_names[view]}',
                              [tile(view, r, f) for f in range(num_steps)]))
    col_w = max(t.shape[1] for _, tiles in grid_rows for t in tiles)
    width = label_w + num_steps * (col_w + gap) + gap
    parts = []
    if title:
        bar = np.full((24, width, 3), 255, dtype=np.uint8)
        _put_text(bar, title, 8, 4, 0.5)
        parts.append(bar)
    head = np.full((header_h, width, 3), 255, dtype=np.uint8)
    for f, text in enumerate(step_labels):
        x = label_w + gap + f * (col_w + gap) + (col_w - _text_size(text, 0.45)[0]) // 2
        _put_text(head, text, x, 3)
    parts.append(head)
    for label, tiles in grid_rows:
        row_h = max(t.shape[0] for t in tiles)
        strip = np.full((row_h + gap, width, 3), 255, dtype=np.uint8)
        _put_text(strip, label, 6, max(0, row_h // 2 - 8))
        for f, t in enumerate(tiles):
            x = label_w + gap + f * (col_w + gap)
            strip[:t.shape[0], x:x + t.shape[1]] = t
            cv2.rectangle(strip, (x - 1, 0), (x + t.shape[1], t.shape[0]), (200, 200, 200), 1)
        parts.append(strip)
    if legend:
        unit = 'm' if voxel_size is not None and point_cloud_range is not None else 'vox'
        parts.append(_legend(width, class_names, pal, free_label, sorted(used),
                             height_range if 'height' in views else None, unit))
    return np.concatenate(parts, axis=0)


def compose_forecast_panel(gt, pred=None, baseline=None, free_label: int = -1,
                           **kwargs) -> np.ndarray:
    """Ground truth beside prediction (and baseline) for every future step.

    Rows are ``GT``, ``Pred`` and ``Baseline`` (those given) for every view, columns the
    future steps. See :func:`compose_panel` for the keyword arguments (``palette``, ``views``,
    ``voxel_size``, ``point_cloud_range``, ``class_names``, ``step_labels``, ``title``, ...).

    Args:
        gt (array): ``(F, X, Y, Z)`` ground-truth labels.
        pred (array, optional): ``(F, X, Y, Z)`` predicted labels.
        baseline (array, optional): ``(F, X, Y, Z)`` baseline labels (e.g. copy-last-frame).
        free_label (int): Label of empty space (required, >= 0).

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB; with ``n`` sequences and ``v`` views it has
        ``n * v`` tile rows and ``F`` tile columns.

    Raises:
        ValueError: ``free_label`` missing or shapes that differ.
    """
    if free_label is None or free_label < 0:
        raise ValueError(f'compose_forecast_panel: free_label must be >= 0, got {free_label}')
    rows = [('GT', gt)]
    if pred is not None:
        rows.append(('Pred', pred))
    if baseline is not None:
        rows.append(('Baseline', baseline))
    return compose_panel(rows, free_label, **kwargs)


def _step_labels(meta: dict, num_steps: int) -> List[str]:
    """``t+k (s)`` column headers from a sample's ``timestamps`` / ``num_history``."""
    ts, hist = meta.get('timestamps'), meta.get('num_history')
    labels = []
    for k in range(num_steps):
        text = f't+{k + 1}'
        if ts is not None and hist is not None and len(ts) >= hist + num_steps and hist >= 1:
            text += f' ({float(ts[hist + k]) - float(ts[hist - 1]):.1f}s)'
        labels.append(text)
    return labels


def draw_forecast_sample(data_sample, free_label: Optional[int] = None, palette=None,
                         class_names: Optional[Sequence[str]] = None,
                         voxel_size: Optional[Sequence[float]] = None,
                         point_cloud_range: Optional[Sequence[float]] = None,
                         views: Sequence[str] = ('class', 'height'), draw_3d: bool = True,
                         draw_gt: bool = True, draw_pred: bool = True,
                         draw_baseline: bool = True, tile_size: int = 160,
                         render_width: int = 240,
                         downsample_3d: Union[str, int, Sequence[int]] = 'auto',
                         height_range: Optional[Sequence[float]] = None
                         ) -> Dict[str, np.ndarray]:
    """Render a model prediction (``pred_occ`` / ``gt_occ`` / ``baseline_occ``) as panels.

    Args:
        data_sample (BaseDataElement | dict): Needs ``gt_occ`` and/or ``pred_occ`` (uint8
            ``(F, X, Y, Z)``); ``baseline_occ`` is optional. Metainfo ``free_label``,
            ``timestamps``, ``num_history``, ``session``, ``frame_indices`` are used if there.
        free_label (int, optional): Overrides the sample's ``free_label``.
        palette, class_names, voxel_size, point_cloud_range, height_range: See
            :func:`compose_panel`.
        views (Sequence[str]): BEV views of the ``'bev'`` panel. Defaults to class + height.
        draw_3d (bool): Also return a ``'3d'`` panel (3-D render per step). Defaults to True.
        draw_gt, draw_pred, draw_baseline (bool): Which rows to draw.
        tile_size (int): BEV tile width. Defaults to 160.
        render_width (int): 3-D tile width. Defaults to 240.
        downsample_3d (str | int | Sequence[int]): See :func:`compose_panel`.

    Returns:
        dict[str, np.ndarray]: ``{'bev': image}`` and, with ``draw_3d``, ``'3d': image``
        (RGB uint8).

    Raises:
        KeyError: The sample has none of the requested fields.
        ValueError: No free label known.
    """
    def field(name):
        if isinstance(data_sample, dict):
            return data_sample.get(name)
        return getattr(data_sample, name, None) if name in data_sample else None

    meta = dict(data_sample.get('metainfo', {}) if isinstance(data_sample, dict)
                else data_sample.metainfo)
    if free_label is None:
        free_label = meta.get('free_label')
    if free_label is None:
        raise ValueError('draw_forecast_sample: free_label is unknown: pass it or put '
                         '`free_label` in the data sample metainfo')
    rows = []
    for flag, key, name in ((draw_gt, 'gt_occ', 'GT'), (draw_pred, 'pred_occ', 'Pred'),
                            (draw_baseline, 'baseline_occ', 'Baseline')):
        value = field(key)
        if flag and value is not None:
            rows.append((name, value))
    if not rows:
        raise KeyError('draw_forecast_sample: the data sample has none of the fields '
                       "'gt_occ', 'pred_occ', 'baseline_occ' that were asked for")
    num_steps = int(rows[0][1].shape[0])
    title_bits = []
    if 'session' in meta:
        title_bits.append(str(meta['session']))
    frames, hist = meta.get('frame_indices'), meta.get('num_history')
    if frames is not None and hist is not None and len(frames) > hist:
        last = frames[min(len(frames), hist + num_steps) - 1]
        title_bits.append(f'future frames {frames[hist]}..{last}')
    if 'pred_source' in meta:
        title_bits.append(f'pred: {meta["pred_source"]}')
    common = dict(free_label=int(free_label), palette=palette, voxel_size=voxel_size,
                  point_cloud_range=point_cloud_range, class_names=class_names,
                  step_labels=_step_labels(meta, num_steps), title=' | '.join(title_bits) or None,
                  tile_size=tile_size, render_width=render_width,
                  downsample_3d=downsample_3d, height_range=height_range)
    out = {'bev': compose_panel(rows, views=views, **common)}
    if draw_3d:
        out['3d'] = compose_panel(rows, views=('3d', ), **common)
    return out
