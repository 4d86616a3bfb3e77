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
translation errors), so ``self.results`` never holds volumes and is cheap to
gather across ranks; everything else happens in ``compute_metrics``.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from projects.common.structures.occupancy_warp import Z_REFERENCES
from projects.common.structures.pose6dof import (MOTION_6DOF_DIM,
                                                 compose_ego_motion_6dof)
from projects.common.structures.rotation import quat_geodesic_distance
from projects.registry import METRICS
from .occupancy_baselines import (matched_window, true_future_rel_poses,
                                  visible_mask, window_baselines)
from .occupancy_report import (CONSTANT_VELOCITY_LABEL, COPY_LAST_LABEL,
                               DECODED_LABEL, MARGIN, WARP_CV_LABEL,
                               WARP_PLAN_LABEL, format_occupancy_table,
                               ious_from_confusion, nanmean)

# (result key, metric-name prefix, table label, is a no-learning baseline,
#  pose error key, rotation error key)
_SOURCES = (
    ('cm', '', 'model', False, 'pose_err', 'rot_err'),
    ('dec_cm', 'decoded/', DECODED_LABEL, False, None, None),
    ('base_cm', 'baseline/', COPY_LAST_LABEL, True, 'base_pose_err',
     'base_rot_err'),
    ('cv_cm', 'warp_cv/', WARP_CV_LABEL, True, None, None),
    ('plan_cm', 'warp_plan/', WARP_PLAN_LABEL, True, None, None),
)


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


def _meta(sample: Any, key: str) -> Any:
    """Read a metainfo ``key`` of a dict (top level or ``metainfo``) or element."""
    if isinstance(sample, dict):
        if key in sample:
            return sample[key]
        meta = sample.get('metainfo')
        return meta.get(key) if isinstance(meta, dict) else None
    return getattr(sample, key, None)


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
      poses.

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
            rng = [float(v) for v in point_cloud_range]
            if len(rng) != 6 or not all(rng[i + 3] > rng[i] for i in range(3)):
                raise ValueError(
                    'OccupancyMetric: point_cloud_range must be [x_min, y_min, '
                    'z_min, x_max, y_max, z_max] with max > min, got '
                    f'{list(point_cloud_range)}')
            point_cloud_range = rng
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

    # ---------------------------------------------------------------- process
    def _confusion(self, pred: Any, gt: torch.Tensor,
                   valid: Optional[torch.Tensor], name: str,
                   visible: Optional[torch.Tensor] = None
                   ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Per-step confusion matrices ``(F, C, C)`` int64 [gt, pred].

        Returns:
            tuple: the matrices over all evaluated voxels and, when
            ``visible`` ``(F, X, Y, Z)`` bool is given, over the visible ones
            (None otherwise).
        """
        pred = torch.as_tensor(_to_numpy(pred) if not isinstance(
            pred, torch.Tensor) else pred).detach().cpu()
        if pred.shape != gt.shape:
            raise ValueError(f'OccupancyMetric: {name} shape '
                             f'{tuple(pred.shape)} != gt_occ shape '
                             f'{tuple(gt.shape)}')
        C = self.num_classes
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= C):
            raise ValueError(f'OccupancyMetric: {name} has labels outside '
                             f'[0, {C}) (min {int(pred.min())}, max '
                             f'{int(pred.max())})')
        regions = 1 if visible is None else 2
        # the narrowest integer type that holds every code (uint8 for up to 11 classes: a
        # tenth of the int32 time on a 200 x 200 x 121 grid); ignored GT voxels may wrap
        # around but are dropped by `valid` before counting
        n = regions * C * C
        dtype = torch.uint8 if n <= 256 else torch.int16 if n <= 32767 else torch.int32
        out = np.zeros((gt.shape[0], regions, C, C), dtype=np.int64)
        for t in range(gt.shape[0]):
            code = gt[t].to(dtype) * C + pred[t].to(dtype)
            if visible is not None:
                code = code + visible[t].to(dtype) * (C * C)
            if valid is not None:
                code = code[valid[t]]
            out[t] = torch.bincount(code.reshape(-1), minlength=regions * C *
                                    C).reshape(regions, C, C).numpy()
        if visible is None:
            return out[:, 0], None
        return out.sum(axis=1), out[:, 1]

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
        gt_motion = _field(sample, 'gt_ego_motion')
        rel = true_future_rel_poses(
            window, fut, None if gt_motion is None else torch.as_tensor(
                _to_numpy(gt_motion)))
        if rel is None:
            return None
        return visible_mask(grid, rel, rng, zref)

    def _baseline_volumes(self, sample: Any, window, fut: int
                          ) -> Dict[str, torch.Tensor]:
        """Copy-last and warp forecasts ``(F, X, Y, Z)`` of one sample."""
        out = {}
        if window is not None:
            occ, poses, hist = window
            plan = _field(sample, 'planned_poses')
            rng, zref = self._grid()
            try:
                forecasts = window_baselines(
                    occ, poses, hist, fut, rng, self.free_label, zref,
                    None if plan is None else torch.as_tensor(_to_numpy(plan)))
            except ValueError as exc:
                raise ValueError(f'OccupancyMetric: {exc}') from exc
            out = {key: forecasts[name] for key, name in (
                ('cv_cm', 'warp_cv'), ('plan_cm', 'warp_plan'),
                ('base_cm', 'copy_last')) if name in forecasts}
        base = _field(sample, 'baseline_occ')
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
                optionally ``baseline_occ``, ``decoded_pred_occ``,
                ``planned_poses`` and ``*_ego_motion`` (``(F, 4)`` or
                ``(F, 13)``).
        """
        for index, sample in enumerate(data_samples):
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
            try:
                window = matched_window(data_batch, index, gt,
                                        _meta(sample, 'num_history'))
            except ValueError as exc:
                raise ValueError(f'OccupancyMetric: {exc}') from exc
            fut = gt.shape[0]
            visible = self._visible(sample, window, fut, tuple(gt.shape[1:]))
            volumes = dict(cm=(pred, 'pred_occ'))
            decoded = _field(sample, 'decoded_pred_occ')
            if decoded is not None:
                volumes['dec_cm'] = (decoded, 'decoded_pred_occ')
            if self.eval_baseline:
                names = dict(base_cm='baseline_occ', cv_cm='warp_cv',
                             plan_cm='warp_plan')
                for key, vol in self._baseline_volumes(sample, window,
                                                       fut).items():
                    volumes[key] = (vol, names[key])
            result: Dict[str, np.ndarray] = {}
            for key, (vol, name) in volumes.items():
                result[key], vis = self._confusion(vol, gt, valid, name,
                                                   visible)
                if vis is not None:
                    result[key + '_vis'] = vis
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
        """IoU (occupied), per-class IoU, mIoU and dynamic IoU per step."""
        return ious_from_confusion(cm, self.free_label, self.dynamic_classes)

    _nanmean = staticmethod(nanmean)

    def _source_values(self, results: List[dict],
                       key: str) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        """Per-step values of every occupancy metric of one source.

        Returns:
            tuple: ``{metric name: (F,) values}`` (names of
            ``_OCC_METRICS``) and the ``(F, C)`` per-class IoU.
        """
        cm = np.sum([r[key] for r in results], axis=0)
        ious = self._ious(cm)
        values = dict(IoU=ious['iou'], mIoU=ious['miou'])
        if self.dynamic_classes:
            values['dynamic/IoU'] = ious['dyn_iou']
            values['dynamic/mIoU'] = ious['dyn_miou']
        if all(key + '_vis' in r for r in results):
            vis = np.sum([r[key + '_vis'] for r in results], axis=0)
            for region, part in (('visible', vis), ('revealed', cm - vis)):
                part_ious = self._ious(part)
                values[f'IoU_{region}'] = part_ious['iou']
                values[f'mIoU_{region}'] = part_ious['miou']
        return values, ious['cls_iou']

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum the per-sample counts and compute the metrics.

        Args:
            results (list[dict]): Outputs of :meth:`process` from all ranks.

        Returns:
            dict[str, float]: ``IoU@1..F``, ``IoU@mean``, ``mIoU@1..F``,
            ``mIoU@mean``, ``IoU/<class>``, ``pose/L2@1..F``, ``pose/ADE``,
            ``pose/FDE`` (6-DoF: ``pose/rot_deg@1..F``,
            ``pose/rot_deg_mean``), when available ``IoU_visible@t``,
            ``IoU_revealed@t``, ``mIoU_visible@t``, ``mIoU_revealed@t``,
            ``dynamic/IoU@t``, ``dynamic/mIoU@t``; the same under the
            ``decoded/``, ``baseline/``, ``warp_cv/`` and ``warp_plan/``
            prefixes; ``margin/<metric>@t`` over the strongest baseline.
        """
        if not results:
            return {}
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
            values, cls_iou = self._source_values(results, key)
            occ_values[label] = values
            if is_base:
                baselines.append(label)
            for name, vals in values.items():
                self._put(metrics, rows, f'{prefix}{name}', (name, label), vals)
            for c, cname in enumerate(self.class_names):
                if c == self.free_label:
                    continue
                metrics[f'{prefix}IoU/{cname}'] = float(cls_iou[-1, c])
                per_class[(cname, label)] = list(cls_iou[:, c]) + [
                    self._nanmean(cls_iou[:, c])]
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
        strongest = self._margins(metrics, rows, occ_values, baselines)
        self._log_table(F, rows, per_class, strongest, notes, len(results))
        return metrics

    def _put(self, metrics: dict, rows: dict, name: str, row: tuple,
             values: np.ndarray) -> None:
        for t, v in enumerate(values):
            metrics[f'{name}@{t + 1}'] = float(v)
        metrics[f'{name}@mean'] = self._nanmean(values)
        rows[row] = list(values) + [metrics[f'{name}@mean']]

    def _margins(self, metrics: dict, rows: dict,
                 occ_values: Dict[str, Dict[str, np.ndarray]],
                 baselines: List[str]) -> Dict[str, str]:
        """``margin/<metric>`` of the model over the strongest baseline.

        Returns:
            dict[str, str]: metric name -> label of its strongest baseline.
        """
        strongest = {}
        model = occ_values['model']
        for name, values in model.items():
            best, best_mean = None, -np.inf
            for label in baselines:
                if name not in occ_values[label]:
                    continue
                mean = self._nanmean(occ_values[label][name])
                if np.isfinite(mean) and mean > best_mean:
                    best, best_mean = label, mean
            if best is None:
                continue
            strongest[name] = best
            self._put(metrics, rows, f'margin/{name}', (name, MARGIN),
                      values - occ_values[best][name])
        return strongest

    def _log_table(self, F: int, rows: dict, per_class: dict,
                   strongest: Dict[str, str], notes: List[str],
                   num_samples: int) -> None:
        print_log(
            format_occupancy_table(F, rows, per_class, strongest, notes,
                                   num_samples, self.class_names,
                                   [s[2] for s in _SOURCES]),
            logger='current')
