"""IoU values, margins and the table of :class:`~projects.common.metrics.OccupancyMetric`.

:func:`ious_from_confusion` turns dataset-summed per-step confusion matrices into IoU / mIoU
values and :func:`source_values` does so for every occupancy metric of one source (model, its
plain decoding, a no-learning baseline); :func:`add_margins` picks the strongest baseline of
each metric and adds the model's margin over it (:func:`put_metric` stores a per-step series
as metric values and a table row); :func:`format_occupancy_table` lays them out: one row per
metric and source, the strongest baseline of each occupancy metric marked ``*`` and followed
by a row with the model's margin over it; then the pose rows and the per-class IoU rows.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
from terminaltables import AsciiTable

DECODED_LABEL = 'decoded only'
COPY_LAST_LABEL = 'copy-last baseline'
WARP_CV_LABEL = 'CV-warp baseline'
WARP_PLAN_LABEL = 'plan-warp baseline'
WARP_TRACK_LABEL = 'CV-warp + tracked agents'
CONSTANT_VELOCITY_LABEL = 'constant velocity'
MARGIN = 'margin'
# Row order of the occupancy metrics.
OCC_METRICS = ('IoU', 'mIoU', 'IoU_visible', 'IoU_revealed', 'mIoU_visible',
               'mIoU_revealed', 'dynamic/IoU', 'dynamic/mIoU')
POSE_ROWS = ('pose L2 [m]', 'rot err [deg]')

LEGEND = (
    'IoU/mIoU in %, pose L2 of accumulated translation in m; mean column of '
    'pose = ADE, last step = FDE; rot err = geodesic angle of the composed '
    '6-DoF orientation. No-learning baselines: copy-last = the last observed '
    'frame repeated (pose: constant velocity); CV-warp = the last observed '
    'frame warped by constant-velocity ego motion (from the last two history '
    'poses), its own voxels kept where the warp has no source; CV-warp + '
    'tracked agents = the CV-warp with every moving agent tracked through the '
    'history frames and moved on at its constant velocity (when the model '
    'provides it); plan-warp = the same warp along the planned poses. * marks the strongest baseline of '
    'a metric (highest mean over the steps); "model - X" rows are the '
    "model's margin over it (positive = model better). _visible / _revealed: "
    'voxels inside / outside the last observed grid after the true ego '
    'motion; dynamic/: the dynamic classes.')


def nanmean(x: np.ndarray) -> float:
    """Mean of the finite values of ``x`` (nan when there is none)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float('nan')


def _binary_iou(cm: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``(F,)`` IoU in % of the binary map "label in ``pos``" (nan: empty union)."""
    tp = cm[:, pos][:, :, pos].sum(axis=(1, 2))
    fn = cm[:, pos][:, :, ~pos].sum(axis=(1, 2))
    fp = cm[:, ~pos][:, :, pos].sum(axis=(1, 2))
    with np.errstate(invalid='ignore', divide='ignore'):
        return 100.0 * tp / (tp + fp + fn)


def _class_mean(sub: np.ndarray) -> np.ndarray:
    """Per-step nan-mean over the classes of ``(F, K)`` class IoUs (the classes present,
    in GT or prediction, at that step anywhere in the dataset)."""
    has = np.isfinite(sub).any(axis=1)
    out = np.full(sub.shape[0], np.nan)
    if has.any():
        out[has] = np.nanmean(sub[has], axis=1)
    return out


def ious_from_confusion(cm: np.ndarray, free_label: int,
                        dynamic_classes: Sequence[int] = ()) -> Dict[str, np.ndarray]:
    """IoU values per step from summed confusion matrices.

    Args:
        cm (np.ndarray): ``(F, C, C)`` int64 counts ``[step, gt label, predicted label]``.
        free_label (int): Label of free space.
        dynamic_classes (Sequence[int]): Labels of the dynamic classes. Defaults to none.

    Returns:
        dict[str, np.ndarray]: ``iou`` ``(F,)`` of the binary occupied map (label != free),
        ``miou`` ``(F,)`` mean class IoU over the non-free classes present, ``cls_iou``
        ``(F, C)`` (nan where a class is absent), and with ``dynamic_classes`` ``dyn_iou``
        (binary map "label is dynamic") and ``dyn_miou`` (mean over the dynamic classes);
        all in %.
    """
    num_classes = cm.shape[-1]
    occ = np.ones(num_classes, dtype=bool)
    occ[free_label] = False
    inter = np.diagonal(cm, axis1=1, axis2=2)
    union = cm.sum(axis=2) + cm.sum(axis=1) - inter
    with np.errstate(invalid='ignore', divide='ignore'):
        cls_iou = 100.0 * inter / union  # (F, C), nan where union == 0
    out = dict(iou=_binary_iou(cm, occ), miou=_class_mean(cls_iou[:, occ]), cls_iou=cls_iou)
    if len(dynamic_classes):
        dyn = np.zeros(num_classes, dtype=bool)
        dyn[list(dynamic_classes)] = True
        out['dyn_iou'] = _binary_iou(cm, dyn)
        out['dyn_miou'] = _class_mean(cls_iou[:, dyn])
    return out


def source_values(results: List[dict], key: str, free_label: int,
                  dynamic_classes: Sequence[int] = ()
                  ) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """Per-step values of every occupancy metric of one source.

    Args:
        results (list[dict]): Per-sample results of ``OccupancyMetric.process``; each has
            ``(F, C, C)`` int64 confusion matrices under ``key`` and, when the visible /
            revealed split was computed for every sample, under ``key + '_vis'``.
        key (str): Result key of the source (``'cm'``, ``'base_cm'``, ...).
        free_label (int): Label of free space.
        dynamic_classes (Sequence[int]): Labels of the dynamic classes. Defaults to none.

    Returns:
        tuple: ``{metric name: (F,) values in %}`` (names of :data:`OCC_METRICS`) and the
        ``(F, C)`` per-class IoU in %.
    """
    cm = np.sum([r[key] for r in results], axis=0)
    ious = ious_from_confusion(cm, free_label, dynamic_classes)
    values = dict(IoU=ious['iou'], mIoU=ious['miou'])
    if len(dynamic_classes):
        values['dynamic/IoU'] = ious['dyn_iou']
        values['dynamic/mIoU'] = ious['dyn_miou']
    if all(key + '_vis' in r for r in results):
        vis = np.sum([r[key + '_vis'] for r in results], axis=0)
        for region, part in (('visible', vis), ('revealed', cm - vis)):
            part_ious = ious_from_confusion(part, free_label, dynamic_classes)
            values[f'IoU_{region}'] = part_ious['iou']
            values[f'mIoU_{region}'] = part_ious['miou']
    return values, ious['cls_iou']


def put_metric(metrics: Dict[str, float], rows: Dict[Tuple[str, str], list], name: str,
               row: Tuple[str, str], values: np.ndarray) -> None:
    """Store a per-step series as metric values ``name@1..F``, ``name@mean`` and a table row.

    Args:
        metrics (dict[str, float]): Metric values, updated in place.
        rows (dict): Table rows ``(metric, source label) -> F + 1 values``, updated in place.
        name (str): Metric name with its prefix (e.g. ``'baseline/IoU'``).
        row (tuple[str, str]): ``(metric, source label)`` key of the row.
        values (np.ndarray): ``(F,)`` values; the mean is over the finite ones.
    """
    for t, v in enumerate(values):
        metrics[f'{name}@{t + 1}'] = float(v)
    metrics[f'{name}@mean'] = nanmean(values)
    rows[row] = list(values) + [metrics[f'{name}@mean']]


def add_margins(metrics: Dict[str, float], rows: Dict[Tuple[str, str], list],
                occ_values: Dict[str, Dict[str, np.ndarray]],
                baselines: List[str]) -> Dict[str, str]:
    """Add ``margin/<metric>`` of the model over the strongest baseline of each metric.

    The strongest baseline of a metric is the one with the highest finite mean over the
    steps; the margin is the model's value minus that baseline's (positive = model better).

    Args:
        metrics (dict[str, float]): Metric values, updated in place.
        rows (dict): Table rows, updated in place (rows ``(metric, 'margin')``).
        occ_values (dict): Source label -> ``{metric name: (F,) values}``; must hold
            ``'model'``.
        baselines (list[str]): Labels of the no-learning baselines in ``occ_values``.

    Returns:
        dict[str, str]: Metric name -> label of its strongest baseline.
    """
    strongest = {}
    model = occ_values['model']
    for name, values in model.items():
        best, best_mean = None, -np.inf
        for label in baselines:
            if name not in occ_values[label]:
                continue
            mean = nanmean(occ_values[label][name])
            if np.isfinite(mean) and mean > best_mean:
                best, best_mean = label, mean
        if best is None:
            continue
        strongest[name] = best
        put_metric(metrics, rows, f'margin/{name}', (name, MARGIN),
                   values - occ_values[best][name])
    return strongest


def _fmt(v: float) -> str:
    return 'nan' if not np.isfinite(v) else f'{v:.2f}'


def format_occupancy_table(num_steps: int, rows: Dict[Tuple[str, str], list],
                           per_class: Dict[Tuple[str, str], list],
                           strongest: Dict[str, str], notes: List[str],
                           num_samples: int, class_names: Sequence[str],
                           labels: Sequence[str]) -> str:
    """Format the metric's values as a titled ASCII table with a legend.

    Args:
        num_steps (int): Number of future steps ``F`` (columns ``t=1..F`` and ``mean``).
        rows (dict): ``(metric, source label) -> F + 1 values`` for the occupancy metrics
            (names of :data:`OCC_METRICS`, the margin under the label ``'margin'``) and the
            pose rows (:data:`POSE_ROWS`).
        per_class (dict): ``(class name, source label) -> F + 1`` per-class IoU values.
        strongest (dict): Metric name -> label of its strongest baseline.
        notes (list[str]): Extra remarks appended to the legend (e.g. sources left out).
        num_samples (int): Number of evaluated samples.
        class_names (Sequence[str]): Class order of the per-class rows.
        labels (Sequence[str]): Source labels in row order.

    Returns:
        str: The legend line and the table.
    """
    header = ['metric', 'source'] + [f't={t + 1}' for t in range(num_steps)] + ['mean']
    data = [header]
    for name in OCC_METRICS:
        for label in labels:
            if (name, label) in rows:
                mark = ' *' if strongest.get(name) == label else ''
                data.append([name, label + mark] + [_fmt(v) for v in rows[(name, label)]])
        if (name, MARGIN) in rows:
            data.append([name, f'model - {strongest[name]}'] +
                        [_fmt(v) for v in rows[(name, MARGIN)]])
    for name in POSE_ROWS:
        for label in list(labels) + [CONSTANT_VELOCITY_LABEL]:
            if (name, label) in rows:
                data.append([name, label] + [_fmt(v) for v in rows[(name, label)]])
    for cname in class_names:
        for label in labels:
            if (cname, label) in per_class:
                data.append([f'IoU {cname}', label] +
                            [_fmt(v) for v in per_class[(cname, label)]])
    table = AsciiTable(data, title=' Occupancy forecasting ')
    table.inner_footing_row_border = False
    text = f'Occupancy metrics over {num_samples} samples ({LEGEND})'
    if notes:
        text += ' ' + '; '.join(notes) + '.'
    return text + '\n' + table.table
