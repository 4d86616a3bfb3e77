"""IoU values and the plain-text table of :class:`~projects.common.metrics.OccupancyMetric`.

:func:`ious_from_confusion` turns dataset-summed per-step confusion matrices into IoU / mIoU
values; :func:`format_occupancy_table` lays them out: one row per metric and source (model,
its plain decoding, the no-learning baselines), the strongest baseline of each occupancy
metric marked ``*`` and followed by a row with the model's margin over it; then the pose
rows and the per-class IoU rows.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
from terminaltables import AsciiTable

DECODED_LABEL = 'decoded only'
COPY_LAST_LABEL = 'copy-last baseline'
WARP_CV_LABEL = 'CV-warp baseline'
WARP_PLAN_LABEL = 'plan-warp baseline'
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
    'poses), its own voxels kept where the warp has no source; plan-warp = '
    'the same warp along the planned poses. * marks the strongest baseline of '
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
