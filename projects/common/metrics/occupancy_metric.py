"""Occupancy forecasting metrics: IoU / mIoU per future step and pose error.

Reads the AerialWorld model's predict output (one ``BaseDataElement`` or
dict per sample, see ``docs/aerialworld_data_and_model_contract.md``):

* ``pred_occ``, ``gt_occ`` and (with ``eval_baseline``) ``baseline_occ``:
  integer ``(F, X, Y, Z)`` labels;
* optionally ``decoded_pred_occ`` (same shape): the plain VQ-decoded
  forecast of a model with copy-through decoding, reported as its own
  source so the gain of the copy can be told from the tokens' own quality;
* optionally ``pred_ego_motion``, ``gt_ego_motion``,
  ``baseline_ego_motion``: float ``(F, 4)`` per-step ego motion
  ``[dx, dy, dz, dyaw]`` (metres, radians) of frame t in frame t-1's
  yaw-aligned ego frame, or ``(F, 13)`` 6-DoF motion
  (:mod:`projects.common.structures.pose6dof`), which adds the rotation
  error in degrees per step.

``process`` reduces every sample to small int64 / float64 numpy arrays (a
per-step ``C x C`` confusion matrix and per-step translation errors), so
``self.results`` never holds volumes and is cheap to gather across ranks.
"""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from terminaltables import AsciiTable

from projects.common.structures.pose6dof import (MOTION_6DOF_DIM,
                                                 compose_ego_motion_6dof)
from projects.common.structures.rotation import quat_geodesic_distance
from projects.registry import METRICS

DECODED_LABEL = 'decoded only'


def accumulate_ego_motion(motions: np.ndarray) -> np.ndarray:
    """Integrate per-step ego motions into poses relative to the start frame.

    Step t moves by ``(dx, dy)`` expressed in frame t-1's yaw-aligned frame,
    then turns by ``dyaw``; height adds ``dz``. With ``yaw_0 = 0`` and
    ``p_0 = 0`` (the last history frame)::

        yaw_t = sum_{s<=t} dyaw_s
        p_t   = p_{t-1} + Rz(yaw_{t-1}) @ [dx_t, dy_t]      (2-D)
        z_t   = z_{t-1} + dz_t

    Vectorised over any leading batch dimensions (exclusive cumulative sum
    of yaw, one rotation, one cumulative sum of positions).

    Args:
        motions (np.ndarray): ``(..., F, 4)`` ``[dx, dy, dz, dyaw]``
            (metres, radians). ``(..., F, 3)`` (no yaw) is also accepted.

    Returns:
        np.ndarray: float64 ``(..., F, 4)`` accumulated ``[x, y, z, yaw]``
        of frames 1..F in the start frame (metres, radians).

    Raises:
        ValueError: The last dimension is not 3 or 4.
    """
    m = np.asarray(motions, dtype=np.float64)
    if m.shape[-1] not in (3, 4):
        raise ValueError('accumulate_ego_motion expects (..., F, 4) '
                         f'[dx, dy, dz, dyaw], got shape {m.shape}')
    dyaw = m[..., 3] if m.shape[-1] == 4 else np.zeros(m.shape[:-1])
    yaw = np.cumsum(dyaw, axis=-1)
    yaw_before = yaw - dyaw  # heading of frame t-1
    cos, sin = np.cos(yaw_before), np.sin(yaw_before)
    dx, dy = m[..., 0], m[..., 1]
    x = np.cumsum(cos * dx - sin * dy, axis=-1)
    y = np.cumsum(sin * dx + cos * dy, axis=-1)
    z = np.cumsum(m[..., 2], axis=-1)
    return np.stack([x, y, z, yaw], axis=-1)


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _field(sample: Any, key: str) -> Any:
    """Read ``key`` from a dict or a ``BaseDataElement`` (None if absent)."""
    if isinstance(sample, dict):
        return sample.get(key)
    return getattr(sample, key, None)


@METRICS.register_module()
class OccupancyMetric(BaseMetric):
    """IoU / mIoU per future step, pose ADE / FDE, model vs. baseline.

    Definitions (``F`` future steps, ``C`` classes, ``free_label`` = empty):

    * ``IoU@t`` = TP / (TP + FP + FN) of the binary "occupied" map
      (``label != free_label``) at step t, summed over the dataset;
    * ``mIoU@t`` = mean over non-free classes ``c`` of
      ``I_c / U_c`` at step t (dataset sums), over the classes with
      ``U_c > 0`` at that step (present in GT or prediction anywhere in the
      dataset);
    * ``IoU@mean`` / ``mIoU@mean``: mean of the per-step values;
    * ``pose/L2@t``: mean L2 distance (metres) between the accumulated
      predicted and ground-truth translations at step t
      (:func:`accumulate_ego_motion`); ``pose/ADE`` = mean over steps,
      ``pose/FDE`` = value at the last step;
    * 6-DoF motion (``(F, 13)``): ``pose/L2@t`` from the composed 6-DoF
      poses (:func:`compose_ego_motion_6dof`) and ``pose/rot_deg@t``, the
      geodesic angle (degrees) between the composed predicted and
      ground-truth orientations at step t; ``pose/rot_deg_mean`` the mean
      over steps;
    * ``IoU/<class>``: per-class IoU at the last step;
    * the same with a ``baseline/`` prefix for ``baseline_occ`` and
      ``baseline_ego_motion`` (copy-last-frame / constant velocity);
    * when every sample has ``decoded_pred_occ``, the occupancy metrics of
      it with a ``decoded/`` prefix (table source ``'decoded only'``).

    IoU values are percentages (0-100, as in OccWorld / Occ3D); pose errors
    are metres. A value with an empty denominator is ``nan``. Voxels whose
    ground truth equals ``ignore_label`` are excluded everywhere, and so are
    voxels where a sample's evaluation mask (field ``mask_key``, e.g. Occ3D's
    ``mask_camera`` packed as ``occ_mask``) is zero. The mask is
    ``(F, X, Y, Z)`` or ``(T, X, Y, Z)`` with ``T > F`` (a whole window; its
    last ``F`` frames, the future, are used); samples without it are
    evaluated on every voxel.

    At the end of evaluation one table (rows: metric for model and
    baseline, columns: steps 1..F and mean; plus per-class IoU rows) is
    logged with ``print_log(logger='current')``.

    Args:
        num_classes (int): Number of classes including free.
        free_label (int): Label of free space.
        class_names (Sequence[str], optional): Names for the per-class rows
            and keys. Defaults to ``class_<i>``.
        ignore_label (int, optional): Ground-truth label ignored. Defaults
            to 255.
        eval_baseline (bool): Also evaluate ``baseline_occ`` /
            ``baseline_ego_motion``. Defaults to True.
        mask_key (str, optional): Field (or metainfo key) of a sample holding
            the evaluation mask (nonzero = evaluated). ``None`` disables masks.
            Defaults to ``'occ_mask'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            none, i.e. keys like ``IoU@1``.
        collect_device (str): ``'cpu'`` or ``'gpu'`` for gathering results
            across ranks. Defaults to ``'cpu'``.

    Raises:
        ValueError: Invalid arguments, mismatching shapes, labels outside
            ``[0, num_classes)`` in a prediction or in the ground truth.
        KeyError: A required field (``pred_occ``, ``gt_occ``, and
            ``baseline_occ`` when ``eval_baseline``) is missing.
    """

    # '' (not None): keys without a prefix by default and no BaseMetric
    # "prefix is not set" warning.
    default_prefix: Optional[str] = ''

    def __init__(self,
                 num_classes: int,
                 free_label: int,
                 class_names: Optional[Sequence[str]] = None,
                 ignore_label: Optional[int] = 255,
                 eval_baseline: bool = True,
                 mask_key: Optional[str] = 'occ_mask',
                 prefix: Optional[str] = None,
                 collect_device: str = 'cpu') -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_classes < 2:
            raise ValueError(f'OccupancyMetric: num_classes must be >= 2, '
                             f'got {num_classes}')
        if not 0 <= free_label < num_classes:
            raise ValueError(f'OccupancyMetric: free_label={free_label} is not '
                             f'in [0, num_classes={num_classes})')
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f'OccupancyMetric: {len(class_names)} '
                             f'class_names for num_classes={num_classes}')
        if ignore_label is not None and 0 <= ignore_label < num_classes:
            raise ValueError(f'OccupancyMetric: ignore_label={ignore_label} '
                             f'collides with a class label')
        self.num_classes = int(num_classes)
        self.free_label = int(free_label)
        self.class_names = (list(class_names) if class_names is not None else
                            [f'class_{i}' for i in range(num_classes)])
        self.ignore_label = ignore_label
        self.eval_baseline = eval_baseline
        self.mask_key = mask_key

    # ---------------------------------------------------------------- process
    def _confusion(self, pred: Any, gt: torch.Tensor, valid: Optional[
            torch.Tensor], name: str) -> np.ndarray:
        """Per-step confusion matrices ``(F, C, C)`` int64 [gt, pred]."""
        pred = torch.as_tensor(_to_numpy(pred) if not isinstance(
            pred, torch.Tensor) else pred).detach().cpu()
        if pred.shape != gt.shape:
            raise ValueError(f'OccupancyMetric: {name} shape '
                             f'{tuple(pred.shape)} != gt_occ shape '
                             f'{tuple(gt.shape)}')
        C = self.num_classes
        pred = pred.to(torch.int32)
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= C):
            raise ValueError(f'OccupancyMetric: {name} has labels outside '
                             f'[0, {C}) (min {int(pred.min())}, max '
                             f'{int(pred.max())})')
        out = np.zeros((gt.shape[0], C, C), dtype=np.int64)
        for t in range(gt.shape[0]):
            code = gt[t].to(torch.int32) * C + pred[t]
            if valid is not None:
                code = code[valid[t]]
            out[t] = torch.bincount(
                code.reshape(-1), minlength=C * C).reshape(C, C).numpy()
        return out

    def _apply_mask(self, sample: Any, gt: torch.Tensor,
                    valid: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Combine ``valid`` with the sample's evaluation mask, if any."""
        if self.mask_key is None:
            return valid
        mask = _field(sample, self.mask_key)
        if mask is None:
            return valid
        mask = torch.as_tensor(_to_numpy(mask)).detach().cpu() != 0
        if mask.dim() == gt.dim() and mask.shape[0] > gt.shape[0]:
            mask = mask[-gt.shape[0]:]  # a whole window: keep the future frames
        if mask.shape != gt.shape:
            raise ValueError(f'OccupancyMetric: {self.mask_key} shape '
                             f'{tuple(mask.shape)} does not match gt_occ '
                             f'{tuple(gt.shape)}')
        return mask if valid is None else valid & mask

    def _pose_errors(self, pred: Any, gt: np.ndarray):
        """Per-step translation error (m) and, for 6-DoF, rotation error (deg).

        Returns:
            tuple: ``(F,)`` float64 translation L2 of the accumulated motion and
            ``(F,)`` float64 rotation error in degrees (None for 4-D motion).
        """
        pred = _to_numpy(pred).astype(np.float64)
        if pred.shape != gt.shape:
            raise ValueError(f'OccupancyMetric: ego motion shape {pred.shape} '
                             f'!= gt_ego_motion shape {gt.shape}')
        if gt.ndim == 2 and gt.shape[-1] == MOTION_6DOF_DIM:
            poses_p = compose_ego_motion_6dof(torch.from_numpy(pred)[None])[0]
            poses_g = compose_ego_motion_6dof(torch.from_numpy(gt)[None])[0]
            trans = (poses_p[:, :3] - poses_g[:, :3]).norm(dim=-1)
            rot = torch.rad2deg(
                quat_geodesic_distance(poses_p[:, 3:7], poses_g[:, 3:7]))
            return trans.numpy(), rot.numpy()
        diff = accumulate_ego_motion(pred)[..., :3] - \
            accumulate_ego_motion(gt)[..., :3]
        return np.linalg.norm(diff, axis=-1), None

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Reduce a batch of predictions to per-step counts.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict | BaseDataElement]): Model outputs
                with ``pred_occ``, ``gt_occ`` (``(F, X, Y, Z)`` integer),
                optionally ``baseline_occ`` and ``*_ego_motion``
                (``(F, 4)``).
        """
        for sample in data_samples:
            gt = _field(sample, 'gt_occ')
            pred = _field(sample, 'pred_occ')
            if gt is None or pred is None:
                raise KeyError('OccupancyMetric: a data sample lacks '
                               "'gt_occ' or 'pred_occ'")
            gt = torch.as_tensor(_to_numpy(gt) if not isinstance(
                gt, torch.Tensor) else gt).detach().cpu()
            if gt.dim() != 4:
                raise ValueError('OccupancyMetric: gt_occ must be (F, X, Y, '
                                 f'Z), got shape {tuple(gt.shape)}')
            valid = None
            if self.ignore_label is not None:
                ign = gt == self.ignore_label
                if bool(ign.any()):
                    valid = ~ign
            valid = self._apply_mask(sample, gt, valid)
            gt_check = gt if valid is None else gt[valid]
            if gt_check.numel() and (int(gt_check.min()) < 0 or
                                     int(gt_check.max()) >= self.num_classes):
                raise ValueError('OccupancyMetric: gt_occ has labels outside '
                                 f'[0, {self.num_classes}) other than '
                                 f'ignore_label={self.ignore_label}')
            result: Dict[str, np.ndarray] = dict(
                cm=self._confusion(pred, gt, valid, 'pred_occ'))
            if self.eval_baseline:
                base = _field(sample, 'baseline_occ')
                if base is None:
                    raise KeyError('OccupancyMetric(eval_baseline=True): a '
                                   "data sample lacks 'baseline_occ'")
                result['base_cm'] = self._confusion(base, gt, valid,
                                                    'baseline_occ')
            decoded = _field(sample, 'decoded_pred_occ')
            if decoded is not None:
                result['dec_cm'] = self._confusion(decoded, gt, valid,
                                                   'decoded_pred_occ')
            gt_motion = _field(sample, 'gt_ego_motion')
            if gt_motion is not None:
                gt_motion = _to_numpy(gt_motion).astype(np.float64)
                pred_motion = _field(sample, 'pred_ego_motion')
                if pred_motion is not None:
                    result['pose_err'], rot = self._pose_errors(
                        pred_motion, gt_motion)
                    if rot is not None:
                        result['rot_err'] = rot
                base_motion = _field(sample, 'baseline_ego_motion')
                if self.eval_baseline and base_motion is not None:
                    result['base_pose_err'], rot = self._pose_errors(
                        base_motion, gt_motion)
                    if rot is not None:
                        result['base_rot_err'] = rot
            self.results.append(result)

    # ---------------------------------------------------------------- compute
    def _ious(self, cm: np.ndarray) -> Dict[str, np.ndarray]:
        """IoU (occupied), per-class IoU and mIoU per step from ``(F,C,C)``."""
        occ = np.ones(self.num_classes, dtype=bool)
        occ[self.free_label] = False
        tp = cm[:, occ][:, :, occ].sum(axis=(1, 2))
        fn = cm[:, occ][:, :, ~occ].sum(axis=(1, 2))
        fp = cm[:, ~occ][:, :, occ].sum(axis=(1, 2))
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = 100.0 * tp / (tp + fp + fn)
            inter = np.diagonal(cm, axis1=1, axis2=2)
            union = cm.sum(axis=2) + cm.sum(axis=1) - inter
            cls_iou = 100.0 * inter / union  # (F, C), nan where union == 0
        # mIoU at step t: classes present (in GT or prediction) at step t
        # anywhere in the dataset, i.e. nan-mean over non-free classes.
        sub = cls_iou[:, occ]
        has = np.isfinite(sub).any(axis=1)
        miou = np.full(cm.shape[0], np.nan)
        if has.any():
            miou[has] = np.nanmean(sub[has], axis=1)
        return dict(iou=iou, miou=miou, cls_iou=cls_iou)

    @staticmethod
    def _nanmean(x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        return float(np.nanmean(x)) if np.isfinite(x).any() else float('nan')

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the per-sample counts and compute the metrics.

        Args:
            results (list[dict]): Outputs of :meth:`process` from all ranks.

        Returns:
            dict[str, float]: ``IoU@1..F``, ``IoU@mean``, ``mIoU@1..F``,
            ``mIoU@mean``, ``IoU/<class>``, ``pose/L2@1..F``, ``pose/ADE``,
            ``pose/FDE`` (6-DoF: ``pose/rot_deg@1..F``,
            ``pose/rot_deg_mean``) and the ``baseline/`` counterparts.
        """
        if not results:
            return {}
        steps = {r['cm'].shape[0] for r in results}
        if len(steps) != 1:
            raise ValueError('OccupancyMetric: samples have different numbers '
                             f'of future steps {sorted(steps)}')
        F = steps.pop()
        metrics: Dict[str, float] = {}
        table_rows = {}
        per_class_rows = {}
        sources = [('', 'cm', 'pose_err', 'rot_err', 'model')]
        if all('dec_cm' in r for r in results):
            sources.append(('decoded/', 'dec_cm', None, None, DECODED_LABEL))
        if self.eval_baseline:
            sources.append(('baseline/', 'base_cm', 'base_pose_err',
                            'base_rot_err', 'baseline'))
        for prefix, cm_key, pose_key, rot_key, label in sources:
            cm = np.sum([r[cm_key] for r in results], axis=0)
            ious = self._ious(cm)
            for name, values in (('IoU', ious['iou']), ('mIoU',
                                                        ious['miou'])):
                for t in range(F):
                    metrics[f'{prefix}{name}@{t + 1}'] = float(values[t])
                metrics[f'{prefix}{name}@mean'] = self._nanmean(values)
                table_rows[(name, label)] = list(values) + [
                    metrics[f'{prefix}{name}@mean']
                ]
            for c, cname in enumerate(self.class_names):
                if c == self.free_label:
                    continue
                metrics[f'{prefix}IoU/{cname}'] = float(ious['cls_iou'][-1, c])
                per_class_rows[(cname, label)] = list(ious['cls_iou'][:, c]) + [
                    self._nanmean(ious['cls_iou'][:, c])
                ]
            errs = [r[pose_key] for r in results if pose_key in r] if pose_key else []
            if errs:
                err = np.mean(np.stack(errs, axis=0), axis=0)  # (F,)
                for t in range(F):
                    metrics[f'{prefix}pose/L2@{t + 1}'] = float(err[t])
                metrics[f'{prefix}pose/ADE'] = float(err.mean())
                metrics[f'{prefix}pose/FDE'] = float(err[-1])
                table_rows[('pose L2 [m]', label)] = list(err) + [
                    float(err.mean())
                ]
            rots = [r[rot_key] for r in results if rot_key in r] if rot_key else []
            if rots:
                rot = np.mean(np.stack(rots, axis=0), axis=0)  # (F,)
                for t in range(F):
                    metrics[f'{prefix}pose/rot_deg@{t + 1}'] = float(rot[t])
                metrics[f'{prefix}pose/rot_deg_mean'] = float(rot.mean())
                table_rows[('rot err [deg]', label)] = list(rot) + [
                    float(rot.mean())
                ]
        self._log_table(F, table_rows, per_class_rows, len(results))
        return metrics

    @staticmethod
    def _fmt(v: float) -> str:
        return 'nan' if not np.isfinite(v) else f'{v:.2f}'

    def _log_table(self, F: int, rows: dict, per_class: dict,
                   num_samples: int) -> None:
        header = ['metric', 'source'] + [f't={t + 1}' for t in range(F)] + \
            ['mean']
        data = [header]
        labels = ('model', DECODED_LABEL, 'baseline')
        # Model and baseline rows of each metric next to each other.
        for name in ('IoU', 'mIoU', 'pose L2 [m]', 'rot err [deg]'):
            for label in labels:
                if (name, label) in rows:
                    data.append([name, label] +
                                [self._fmt(v) for v in rows[(name, label)]])
        for cname in self.class_names:
            for label in labels:
                if (cname, label) in per_class:
                    data.append([f'IoU {cname}', label] + [
                        self._fmt(v) for v in per_class[(cname, label)]
                    ])
        table = AsciiTable(data, title=' Occupancy forecasting ')
        table.inner_footing_row_border = False
        print_log(
            f'Occupancy metrics over {num_samples} samples (IoU/mIoU in %, '
            f'pose L2 of accumulated translation in m; mean column of pose '
            f'= ADE, last step = FDE; rot err = geodesic angle of the composed '
            f'6-DoF orientation; baseline = copy-last-frame / constant '
            f'velocity):\n' + table.table,
            logger='current')
