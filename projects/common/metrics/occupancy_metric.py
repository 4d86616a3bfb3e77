"""Occupancy forecasting metrics: IoU / mIoU per future step and pose error.

Reads the AerialWorld model's predict output (one ``BaseDataElement`` or
dict per sample, see ``docs/aerialworld_data_and_model_contract.md``):

* ``pred_occ``, ``gt_occ`` and (with ``eval_baseline``) ``baseline_occ``:
  integer ``(F, X, Y, Z)`` labels (``baseline_occ``, the copy-last
  forecast, is rebuilt from the window's last history frame when a sample
  lacks it and the ``data_batch`` carries the window);
* optionally ``decoded_pred_occ`` (same shape): the plain VQ-decoded
  forecast of a model with copy-through decoding, reported as its own
  source so the gain of the copy can be told from the tokens' own quality;
* optionally ``planned_poses`` float ``(F, 13)``: the plan of an
  action-conditioned rollout (``AerialWorld.predict_with_plan``), which adds
  the planned-pose warp baseline;
* optionally ``pred_ego_motion``, ``gt_ego_motion``,
  ``baseline_ego_motion``: float ``(F, 4)`` per-step ego motion
  ``[dx, dy, dz, dyaw]`` (metres, radians) of frame t in frame t-1's
  yaw-aligned ego frame, or ``(F, 13)`` 6-DoF motion
  (:mod:`projects.common.structures.pose6dof`), which adds the rotation
  error in degrees per step.

The ego-motion warp baselines (:mod:`.occupancy_baselines`) and the split
into visible / newly revealed voxels need the observed window, read from
``data_batch['inputs']`` (``occupancy`` ``(T, X, Y, Z)`` and ``poses``
``(T, 13)`` per sample, as the data loader collated them), and the grid's
``point_cloud_range`` (the metric's config, else the dataset's index
metainfo); the model does not produce them.

``process`` reduces every sample to small int64 / float64 numpy arrays (a
per-step ``C x C`` confusion matrix per source and region, and per-step
translation errors; :mod:`.occupancy_counts`), so ``self.results`` never holds
volumes and is cheap to gather across ranks; everything else happens in
``compute_metrics`` (IoU values, margins over the strongest baseline and the
table: :mod:`.occupancy_report`).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from projects.common.structures.occupancy_warp import (Z_REFERENCES,
                                                       check_point_cloud_range)
from projects.registry import METRICS
from .occupancy_baselines import (matched_window, true_future_rel_poses,
                                  visible_mask, window_baselines)
from .occupancy_counts import (accumulate_ego_motion, as_cpu_tensor,
                               combine_eval_mask, confusion_counts, pose_errors,
                               sample_field, sample_meta, to_numpy)
from .occupancy_report import (CONSTANT_VELOCITY_LABEL, COPY_LAST_LABEL,
                               DECODED_LABEL, WARP_CV_LABEL, WARP_PLAN_LABEL,
                               WARP_TRACK_LABEL,
                               add_margins, format_occupancy_table, nanmean,
                               put_metric, source_values)

__all__ = ['OccupancyMetric', 'accumulate_ego_motion']

# (result key, metric-name prefix, table label, is a no-learning baseline,
#  pose error key, rotation error key)
_SOURCES = (
    ('cm', '', 'model', False, 'pose_err', 'rot_err'),
    ('dec_cm', 'decoded/', DECODED_LABEL, False, None, None),
    ('base_cm', 'baseline/', COPY_LAST_LABEL, True, 'base_pose_err',
     'base_rot_err'),
    ('cv_cm', 'warp_cv/', WARP_CV_LABEL, True, None, None),
    ('plan_cm', 'warp_plan/', WARP_PLAN_LABEL, True, None, None),
    ('track_cm', 'warp_track/', WARP_TRACK_LABEL, True, None, None),
)


@METRICS.register_module()
class OccupancyMetric(BaseMetric):
    """IoU / mIoU per future step, pose ADE / FDE, model vs. no-learning baselines.

    Definitions (``F`` future steps, ``C`` classes, ``free_label`` = empty):

    * ``IoU@t`` = TP / (TP + FP + FN) of the binary "occupied" map
      (``label != free_label``) at step t, summed over the dataset;
    * ``mIoU@t`` = mean over non-free classes ``c`` of
      ``I_c / U_c`` at step t (dataset sums), over the classes with
      ``U_c > 0`` at that step (present in GT or prediction anywhere in the
      dataset);
    * ``IoU@mean`` / ``mIoU@mean``: mean of the per-step values;
    * ``IoU_visible@t`` / ``mIoU_visible@t`` and ``IoU_revealed@t`` /
      ``mIoU_revealed@t`` (given the grid range): the same over the
      voxels of future frame t that lie inside the last history frame's grid
      when moved by the true ego motion (seen before) and over the others
      (newly revealed), see
      :func:`~projects.common.metrics.occupancy_baselines.visible_mask`;
    * ``dynamic/IoU@t`` (binary map "label in ``dynamic_classes``") and
      ``dynamic/mIoU@t`` (mean class IoU over ``dynamic_classes``), when
      ``dynamic_classes`` is not empty;
    * ``pose/L2@t``: mean L2 distance (metres) between the accumulated
      predicted and ground-truth translations at step t
      (:func:`accumulate_ego_motion`); ``pose/ADE`` = mean over steps,
      ``pose/FDE`` = value at the last step;
    * 6-DoF motion (``(F, 13)``): ``pose/L2@t`` from the composed 6-DoF
      poses (:func:`compose_ego_motion_6dof`) and ``pose/rot_deg@t``, the
      geodesic angle (degrees) between the composed predicted and
      ground-truth orientations at step t; ``pose/rot_deg_mean`` the mean
      over steps;
    * ``IoU/<class>``: per-class IoU at the last step.

    Sources (each with all the occupancy metrics under its prefix):

    * the model (no prefix);
    * ``decoded/``: ``decoded_pred_occ`` when every sample has it (table
      source ``'decoded only'``);
    * ``baseline/``: copy-last (the last history frame repeated), with the
      constant-velocity pose baseline ``baseline/pose/...``
      (``baseline_ego_motion``);
    * ``warp_cv/`` (given the grid range and the window in
      ``data_batch``): the last history frame warped by constant-velocity
      ego motion (from the last two history poses), keeping the last frame's
      voxel where the warp has no source
      (:mod:`projects.common.metrics.occupancy_baselines`);
    * ``warp_plan/`` (samples with ``planned_poses``, e.g. from
      ``AerialWorld.predict_with_plan``): the same warp along the planned
      poses;
    * ``warp_track/`` (samples with ``warp_track_occ``, e.g. from an
      ``AerialWorld`` whose moving-agent head tracks agents): the CV-warp
      with the moving agents tracked through the history frames and moved on
      at constant velocity, a no-learning forecast of the agents.

    The strongest no-learning baseline of each occupancy metric is the one
    with the highest mean over the steps; ``margin/<metric>@t`` (and
    ``@mean``) is the model's value minus that baseline's (positive = the
    model is better). Optional sources are reported only when every sample
    has them (the table's legend names the ones left out).

    IoU values are percentages (0-100, as in OccWorld / Occ3D); pose errors
    are metres. A value with an empty denominator is ``nan``. Voxels whose
    ground truth equals ``ignore_label`` are excluded everywhere, and so are
    voxels where a sample's evaluation mask (field ``mask_key``, e.g. Occ3D's
    ``mask_camera`` packed as ``occ_mask``) is zero. The mask is
    ``(F, X, Y, Z)`` or ``(T, X, Y, Z)`` with ``T > F`` (a whole window; its
    last ``F`` frames, the future, are used); samples without it are
    evaluated on every voxel.

    At the end of evaluation one table (rows: metric per source and the
    model's margin over the strongest baseline, columns: steps 1..F and mean;
    plus per-class IoU rows) is logged with ``print_log(logger='current')``.

    Several val sets (e.g. windows of held-out sessions and of a held-out
    tile in one val index): samples whose metainfo has ``set_key`` (default
    ``'val_set'``, written by ``AerialWorldDataset``) are also grouped by
    that name. Then the whole table (every source, the strongest baseline
    and the margins chosen within the set) is computed and logged per set,
    with every metric key prefixed by ``'<set name>/'`` (e.g.
    ``heldout_tile/IoU@6``, ``heldout_tile/warp_cv/IoU@6``,
    ``heldout_tile/margin/IoU@mean``), after the combined table over all
    samples, whose keys keep no set prefix. Each sample carries its set name
    in its own result, so the grouping happens after the results of all
    ranks are gathered (DDP-safe).

    Args:
        num_classes (int): Number of classes including free.
        free_label (int): Label of free space.
        class_names (Sequence[str], optional): Names for the per-class rows
            and keys. Defaults to ``class_<i>``.
        ignore_label (int, optional): Ground-truth label ignored. Defaults
            to 255.
        eval_baseline (bool): Also evaluate the no-learning baselines
            (copy-last, constant velocity and the warps). Defaults to True.
        mask_key (str, optional): Field (or metainfo key) of a sample holding
            the evaluation mask (nonzero = evaluated). ``None`` disables masks.
            Defaults to ``'occ_mask'``.
        point_cloud_range (Sequence[float], optional): ``[x_min, y_min,
            z_min, x_max, y_max, z_max]`` of the occupancy grid in the ego
            frame (metres). Enables the warp baselines and the visible /
            revealed split. None takes ``point_cloud_range`` of
            ``dataset_meta`` (the index metainfo the runner passes in; the
            warps and the split are left out when it has none); a value that
            disagrees with ``dataset_meta`` raises. Defaults to None.
        z_reference (str, optional): ``'ground'`` when the grid's z is height
            above a fixed datum (planar warp), ``'ego'`` when z moves with the
            ego. None takes ``dataset_meta['z_reference']``, else
            ``'ground'``. Defaults to None.
        dynamic_classes (Sequence[int]): Labels of classes that move on
            their own (e.g. vehicle, pedestrian, drone) for the ``dynamic/``
            metrics. Defaults to none.
        set_key (str, optional): Metainfo key of a sample naming its val set
            (see above); None disables the per-set tables. Defaults to
            ``'val_set'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            none, i.e. keys like ``IoU@1``.
        collect_device (str): ``'cpu'`` or ``'gpu'`` for gathering results
            across ranks. Defaults to ``'cpu'``.

    Raises:
        ValueError: Invalid arguments, mismatching shapes, labels outside
            ``[0, num_classes)`` in a prediction or in the ground truth, a
            ``data_batch`` whose window does not match the sample's
            ``gt_occ``.
        KeyError: A required field (``pred_occ``, ``gt_occ``, and
            ``baseline_occ`` when ``eval_baseline`` and the ``data_batch``
            has no window to rebuild it from) is missing.
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
                 point_cloud_range: Optional[Sequence[float]] = None,
                 z_reference: Optional[str] = None,
                 dynamic_classes: Sequence[int] = (),
                 set_key: Optional[str] = 'val_set',
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
        if point_cloud_range is not None:
            point_cloud_range = check_point_cloud_range(
                point_cloud_range, 'OccupancyMetric: point_cloud_range')
        if z_reference is not None and z_reference not in Z_REFERENCES:
            raise ValueError(f'OccupancyMetric: z_reference must be one of '
                             f'{Z_REFERENCES}, got {z_reference!r}')
        dynamic = [int(c) for c in dynamic_classes]
        bad = [c for c in dynamic if not 0 <= c < num_classes or c == free_label]
        if bad or len(set(dynamic)) != len(dynamic):
            raise ValueError(f'OccupancyMetric: dynamic_classes={list(dynamic_classes)} '
                             f'must be distinct labels in [0, {num_classes}) other '
                             f'than free_label={free_label}')
        self.num_classes = int(num_classes)
        self.free_label = int(free_label)
        self.class_names = (list(class_names) if class_names is not None else
                            [f'class_{i}' for i in range(num_classes)])
        self.ignore_label = ignore_label
        self.eval_baseline = eval_baseline
        self.mask_key = mask_key
        self.point_cloud_range = point_cloud_range
        self.z_reference = z_reference
        self.dynamic_classes = sorted(dynamic)
        self.set_key = set_key

    # ---------------------------------------------------------------- process
    def _grid(self) -> Tuple[Optional[List[float]], str]:
        """``(point_cloud_range, z_reference)``: the config's, else the dataset's.

        Raises:
            ValueError: A configured value disagrees with ``dataset_meta``.
        """
        meta = self.dataset_meta or {}
        rng, zref = self.point_cloud_range, self.z_reference
        meta_rng, meta_z = meta.get('point_cloud_range'), meta.get('z_reference')
        if meta_rng is not None:
            meta_rng = [float(v) for v in meta_rng]
            if rng is not None and not np.allclose(rng, meta_rng):
                raise ValueError(
                    f'OccupancyMetric: point_cloud_range={rng} (evaluator config) '
                    f'differs from the dataset metainfo {meta_rng}; fix '
                    'val_evaluator / test_evaluator.point_cloud_range or drop '
                    'it to use the dataset\'s')
        if meta_z is not None and zref is not None and meta_z != zref:
            raise ValueError(
                f"OccupancyMetric: z_reference='{zref}' (evaluator config) "
                f"differs from the dataset metainfo '{meta_z}'")
        rng = rng if rng is not None else meta_rng
        zref = zref or meta_z or 'ground'
        if zref not in Z_REFERENCES:
            raise ValueError(f'OccupancyMetric: dataset metainfo z_reference '
                             f'{zref!r} is not one of {Z_REFERENCES}')
        return rng, zref

    def _visible(self, sample: Any, window, fut: int,
                 grid: Sequence[int]) -> Optional[torch.Tensor]:
        """``(F, X, Y, Z)`` bool visible-region mask from the true motion."""
        rng, zref = self._grid()
        if rng is None:
            return None
        gt_motion = sample_field(sample, 'gt_ego_motion')
        rel = true_future_rel_poses(
            window, fut, None if gt_motion is None else torch.as_tensor(
                to_numpy(gt_motion)))
        if rel is None:
            return None
        return visible_mask(grid, rel, rng, zref)

    def _baseline_volumes(self, sample: Any, window, fut: int
                          ) -> Dict[str, torch.Tensor]:
        """Copy-last and warp forecasts ``(F, X, Y, Z)`` of one sample."""
        out = {}
        if window is not None:
            occ, poses, hist = window
            plan = sample_field(sample, 'planned_poses')
            rng, zref = self._grid()
            try:
                forecasts = window_baselines(
                    occ, poses, hist, fut, rng, self.free_label, zref,
                    None if plan is None else torch.as_tensor(to_numpy(plan)))
            except ValueError as exc:
                raise ValueError(f'OccupancyMetric: {exc}') from exc
            out = {key: forecasts[name] for key, name in (
                ('cv_cm', 'warp_cv'), ('plan_cm', 'warp_plan'),
                ('base_cm', 'copy_last')) if name in forecasts}
        base = sample_field(sample, 'baseline_occ')
        if base is not None:
            out['base_cm'] = base
        if 'base_cm' not in out:
            raise KeyError('OccupancyMetric(eval_baseline=True): a data sample '
                           "lacks 'baseline_occ' and data_batch has no window "
                           "('inputs' with 'occupancy' and 'poses') to rebuild it")
        return out

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Reduce a batch of predictions to per-step counts.

        Args:
            data_batch (Any): The batch as the data loader collated it; its
                ``inputs`` (``occupancy`` ``(T, X, Y, Z)``, ``poses``
                ``(T, 13)`` per sample, in the order of ``data_samples``)
                feed the warp baselines and the visible / revealed split.
                Without them those are left out.
            data_samples (Sequence[dict | BaseDataElement]): Model outputs
                with ``pred_occ``, ``gt_occ`` (``(F, X, Y, Z)`` integer),
                optionally ``baseline_occ``, ``decoded_pred_occ``, ``warp_track_occ``,
                ``planned_poses`` and ``*_ego_motion`` (``(F, 4)`` or
                ``(F, 13)``).
        """
        for index, sample in enumerate(data_samples):
            gt = sample_field(sample, 'gt_occ')
            pred = sample_field(sample, 'pred_occ')
            if gt is None or pred is None:
                raise KeyError('OccupancyMetric: a data sample lacks '
                               "'gt_occ' or 'pred_occ'")
            gt = as_cpu_tensor(gt)
            if gt.dim() != 4:
                raise ValueError('OccupancyMetric: gt_occ must be (F, X, Y, '
                                 f'Z), got shape {tuple(gt.shape)}')
            valid = None
            if self.ignore_label is not None:
                ign = gt == self.ignore_label
                if bool(ign.any()):
                    valid = ~ign
            valid = combine_eval_mask(sample, gt, valid, self.mask_key)
            gt_check = gt if valid is None else gt[valid]
            if gt_check.numel() and (int(gt_check.min()) < 0 or
                                     int(gt_check.max()) >= self.num_classes):
                raise ValueError('OccupancyMetric: gt_occ has labels outside '
                                 f'[0, {self.num_classes}) other than '
                                 f'ignore_label={self.ignore_label}')
            try:
                window = matched_window(data_batch, index, gt,
                                        sample_meta(sample, 'num_history'))
            except ValueError as exc:
                raise ValueError(f'OccupancyMetric: {exc}') from exc
            fut = gt.shape[0]
            visible = self._visible(sample, window, fut, tuple(gt.shape[1:]))
            volumes = dict(cm=(pred, 'pred_occ'))
            decoded = sample_field(sample, 'decoded_pred_occ')
            if decoded is not None:
                volumes['dec_cm'] = (decoded, 'decoded_pred_occ')
            if self.eval_baseline:
                names = dict(base_cm='baseline_occ', cv_cm='warp_cv',
                             plan_cm='warp_plan')
                for key, vol in self._baseline_volumes(sample, window,
                                                       fut).items():
                    volumes[key] = (vol, names[key])
                track = sample_field(sample, 'warp_track_occ')
                if track is not None:
                    volumes['track_cm'] = (track, 'warp_track_occ')
            result: Dict[str, np.ndarray] = {}
            for key, (vol, name) in volumes.items():
                result[key], vis = confusion_counts(vol, gt, valid, self.num_classes,
                                                    name, visible)
                if vis is not None:
                    result[key + '_vis'] = vis
            gt_motion = sample_field(sample, 'gt_ego_motion')
            if gt_motion is not None:
                gt_motion = to_numpy(gt_motion).astype(np.float64)
                pred_motion = sample_field(sample, 'pred_ego_motion')
                if pred_motion is not None:
                    result['pose_err'], rot = pose_errors(
                        pred_motion, gt_motion)
                    if rot is not None:
                        result['rot_err'] = rot
                base_motion = sample_field(sample, 'baseline_ego_motion')
                if self.eval_baseline and base_motion is not None:
                    result['base_pose_err'], rot = pose_errors(
                        base_motion, gt_motion)
                    if rot is not None:
                        result['base_rot_err'] = rot
            if self.set_key is not None:
                set_name = sample_meta(sample, self.set_key)
                if set_name is not None:
                    result['set'] = str(set_name)
            self.results.append(result)

    # ---------------------------------------------------------------- compute
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the per-sample counts and compute the metrics.

        Args:
            results (list[dict]): Outputs of :meth:`process` from all ranks.

        Returns:
            dict[str, float]: Over all samples: ``IoU@1..F``, ``IoU@mean``, ``mIoU@1..F``,
            ``mIoU@mean``, ``IoU/<class>``, ``pose/L2@1..F``, ``pose/ADE``,
            ``pose/FDE`` (6-DoF: ``pose/rot_deg@1..F``,
            ``pose/rot_deg_mean``), when available ``IoU_visible@t``,
            ``IoU_revealed@t``, ``mIoU_visible@t``, ``mIoU_revealed@t``,
            ``dynamic/IoU@t``, ``dynamic/mIoU@t``; the same under the
            ``decoded/``, ``baseline/``, ``warp_cv/`` and ``warp_plan/``
            prefixes; ``margin/<metric>@t`` over the strongest baseline. Then
            the same keys per val set, prefixed ``'<set name>/'``.

        Raises:
            ValueError: Samples with different numbers of future steps, or a
                val set named like a metric prefix.
        """
        if not results:
            return {}
        metrics = self._group_metrics(results, None)
        names = sorted({r['set'] for r in results if 'set' in r})
        reserved = {p.rstrip('/') for _, p, *_ in _SOURCES if p} | {
            'margin', 'pose', 'IoU', 'dynamic'}
        bad = [n for n in names if n in reserved or '/' in n]
        if bad:
            raise ValueError(f'OccupancyMetric: val set names {bad} collide with '
                             f'metric prefixes {sorted(reserved)} or contain "/"')
        if names:
            without = sum('set' not in r for r in results)
            if without:
                print_log(f'OccupancyMetric: {without} of {len(results)} samples '
                          f'have no {self.set_key!r}: only in the combined table',
                          logger='current')
            for name in names:
                group = [r for r in results if r.get('set') == name]
                for k, v in self._group_metrics(group, name).items():
                    metrics[f'{name}/{k}'] = v
        return metrics

    def _group_metrics(self, results: List[dict],
                       set_name: Optional[str]) -> Dict[str, float]:
        """Metrics and logged table of one group of results (all, or a val set)."""
        steps = {r['cm'].shape[0] for r in results}
        if len(steps) != 1:
            raise ValueError('OccupancyMetric: samples have different numbers '
                             f'of future steps {sorted(steps)}')
        F = steps.pop()
        metrics: Dict[str, float] = {}
        rows: Dict[Tuple[str, str], list] = {}
        per_class: Dict[Tuple[str, str], list] = {}
        occ_values: Dict[str, Dict[str, np.ndarray]] = {}
        baselines = []
        notes = []
        for key, prefix, label, is_base, pose_key, rot_key in _SOURCES:
            have = sum(key in r for r in results)
            if have < len(results):
                if have:
                    notes.append(f'{label} left out: only {have} of '
                                 f'{len(results)} samples had it')
                continue
            values, cls_iou = source_values(results, key, self.free_label,
                                            self.dynamic_classes)
            occ_values[label] = values
            if is_base:
                baselines.append(label)
            for name, vals in values.items():
                put_metric(metrics, rows, f'{prefix}{name}', (name, label), vals)
            for c, cname in enumerate(self.class_names):
                if c == self.free_label:
                    continue
                metrics[f'{prefix}IoU/{cname}'] = float(cls_iou[-1, c])
                per_class[(cname, label)] = list(cls_iou[:, c]) + [
                    nanmean(cls_iou[:, c])]
            pose_label = CONSTANT_VELOCITY_LABEL if is_base else label
            for err_key, name, row, mean_names in (
                    (pose_key, 'pose/L2', 'pose L2 [m]', ('ADE', 'FDE')),
                    (rot_key, 'pose/rot_deg', 'rot err [deg]', ('mean', ))):
                errs = [r[err_key] for r in results if err_key in r] \
                    if err_key else []
                if not errs:
                    continue
                err = np.mean(np.stack(errs, axis=0), axis=0)  # (F,)
                for t in range(F):
                    metrics[f'{prefix}{name}@{t + 1}'] = float(err[t])
                if name == 'pose/L2':
                    metrics[f'{prefix}pose/ADE'] = float(err.mean())
                    metrics[f'{prefix}pose/FDE'] = float(err[-1])
                else:
                    metrics[f'{prefix}pose/rot_deg_mean'] = float(err.mean())
                rows[(row, pose_label)] = list(err) + [float(err.mean())]
        if self.eval_baseline and not any('cv_cm' in r for r in results):
            notes.append(f'{WARP_CV_LABEL} not computed: it needs the grid range '
                         '(evaluator point_cloud_range or the dataset metainfo) and '
                         "the observed window in data_batch['inputs']")
        strongest = add_margins(metrics, rows, occ_values, baselines)
        self._log_table(F, rows, per_class, strongest, notes, len(results),
                        set_name)
        return metrics

    def _log_table(self, F: int, rows: dict, per_class: dict,
                   strongest: Dict[str, str], notes: List[str],
                   num_samples: int, set_name: Optional[str] = None) -> None:
        text = format_occupancy_table(F, rows, per_class, strongest, notes,
                                      num_samples, self.class_names,
                                      [s[2] for s in _SOURCES])
        if set_name is not None:
            text = f'[val set {set_name}] ' + text
        print_log(text, logger='current')
