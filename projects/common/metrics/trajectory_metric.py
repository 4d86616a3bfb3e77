"""Open-loop trajectory metrics with a constant-velocity baseline.

Definitions (all positions in metres in the ego frame at t0, T future steps):

* ADE = mean over steps of ``‖ŷ_t - y_t‖``; FDE = ``‖ŷ_T - y_T‖``; reported as the mean over
  samples plus the 50th / 90th percentiles and the worst samples.
* yaw error = mean over steps of ``|wrap(ψ̂_t - ψ_t)|`` (degrees in the table).
* minADE_K / minFDE_K: the best of the K modes (by ADE / by FDE).
* miss rate, nuScenes prediction-challenge definition: a prediction misses when the *maximum*
  pointwise error over the horizon exceeds 2 m (``MR_nusc``, for K modes: every mode misses).
* miss rate, Argoverse definition: the *final* displacement exceeds 2 m (``MR_argo``, for
  K modes: the minimum FDE over the modes exceeds 2 m).
* brier-minFDE (Argoverse 2): ``minFDE_K + (1 - p_best)²`` with ``p_best`` the probability of
  the mode with the minimum FDE.
* ``@2Hz``: the nuScenes benchmark protocol, 12 steps at 2 Hz over 6 s, i.e. the steps
  ``0.5 s, 1.0 s, ... 6.0 s`` sub-sampled from the 10 Hz trajectory (needs T ≥ 60).

Every metric is computed for the model and for the constant-velocity extrapolation of the
ego history (:func:`projects.common.structures.trajectory.constant_velocity_baseline`) and
printed side by side (terminaltables ``AsciiTable``).
"""
import math
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from terminaltables import AsciiTable

from projects.common.structures.trajectory import constant_velocity_baseline
from projects.registry import METRICS

__all__ = ['TrajectoryMetric', 'trajectory_errors']


def trajectory_errors(pred, gt, miss_threshold=2.0):
    """Per-sample single-trajectory errors.

    Args:
        pred (ndarray): (N, T, >=2) predicted positions (metres), optional yaw in channel 2.
        gt (ndarray): (N, T, >=2) ground truth.
        miss_threshold (float): miss distance (metres).

    Returns:
        dict[str, ndarray]: each (N,): ``ade``, ``fde``, ``max_err``, ``miss_nusc``,
        ``miss_argo`` and, when both have a yaw channel, ``yaw`` (radians).
    """
    dist = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    out = dict(ade=dist.mean(-1), fde=dist[:, -1], max_err=dist.max(-1))
    out['miss_nusc'] = (out['max_err'] > miss_threshold).astype(np.float64)
    out['miss_argo'] = (out['fde'] > miss_threshold).astype(np.float64)
    if pred.shape[-1] >= 3 and gt.shape[-1] >= 3:
        dyaw = np.remainder(pred[..., 2] - gt[..., 2] + np.pi, 2 * np.pi) - np.pi
        out['yaw'] = np.abs(dyaw).mean(-1)
    return out


@METRICS.register_module()
class TrajectoryMetric(BaseMetric):
    """ADE / FDE / minADE_K / minFDE_K / miss rates / brier-minFDE / yaw error vs constant velocity.

    Each prediction (a dict, as returned by the model's ``predict``) must hold:
    ``pred_traj`` (T, 3) ``[x, y, yaw]``, ``gt_traj`` (T, 3), ``hist_xy`` (H, 2) ego history
    (metres, last point at t0) and optionally ``pred_modes`` (K, T, 3), ``mode_probs`` (K,),
    ``sample_id`` (str, to name the worst cases).

    Args:
        dt (float): step of the trajectories (s), for the baseline.
        miss_threshold (float): miss distance (metres), 2.0 for both definitions.
        num_worst (int): how many worst samples (by FDE) are listed in the log.
        nuscenes_2hz (bool): also report the nuScenes 12-step 2 Hz protocol.
        collect_device (str): see :class:`mmengine.evaluator.BaseMetric`.
        prefix (str): metric-name prefix (default ``'traj'``).

    Raises:
        KeyError: in ``process`` when a prediction lacks a required key (named).
    """

    default_prefix = 'traj'

    def __init__(self, dt=0.1, miss_threshold=2.0, num_worst=3, nuscenes_2hz=True,
                 collect_device='cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.dt = dt
        self.miss_threshold = miss_threshold
        self.num_worst = num_worst
        self.nuscenes_2hz = nuscenes_2hz

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store per-sample arrays (numpy, CPU) for :meth:`compute_metrics`."""
        for sample in data_samples:
            for key in ('pred_traj', 'gt_traj', 'hist_xy'):
                if key not in sample:
                    raise KeyError(f'TrajectoryMetric: prediction has no {key!r} (keys: '
                                   f'{sorted(sample)})')
            item = {k: (v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else v)
                    for k, v in sample.items()}
            hist = torch.as_tensor(item['hist_xy'], dtype=torch.float64)
            item['cv_traj'] = constant_velocity_baseline(
                hist, num_future=item['gt_traj'].shape[0], dt=self.dt).numpy()
            self.results.append(item)

    def _single(self, pred, gt, tag, ids):
        err = trajectory_errors(pred, gt, self.miss_threshold)
        res = {
            f'{tag}ADE': err['ade'].mean(), f'{tag}FDE': err['fde'].mean(),
            f'{tag}ADE_p50': np.percentile(err['ade'], 50),
            f'{tag}ADE_p90': np.percentile(err['ade'], 90),
            f'{tag}FDE_p50': np.percentile(err['fde'], 50),
            f'{tag}FDE_p90': np.percentile(err['fde'], 90),
            f'{tag}MR_nusc': err['miss_nusc'].mean(), f'{tag}MR_argo': err['miss_argo'].mean(),
        }
        if 'yaw' in err:
            res[f'{tag}yaw_err_deg'] = math.degrees(err['yaw'].mean())
        if self.nuscenes_2hz and gt.shape[1] >= 60:
            sub = np.arange(4, 60, 5)
            e2 = trajectory_errors(pred[:, sub], gt[:, sub], self.miss_threshold)
            res[f'{tag}ADE@2Hz'] = e2['ade'].mean()
            res[f'{tag}FDE@2Hz'] = e2['fde'].mean()
            res[f'{tag}MR_nusc@2Hz'] = e2['miss_nusc'].mean()
        worst = np.argsort(-err['fde'])[:self.num_worst]
        return res, [(ids[i], float(err['fde'][i]), float(err['ade'][i])) for i in worst]

    def compute_metrics(self, results: list) -> dict:
        """Aggregate; print the model-vs-constant-velocity table; return floats."""
        if not results:
            raise ValueError('TrajectoryMetric: no predictions were processed')
        gt = np.stack([r['gt_traj'] for r in results])
        pred = np.stack([r['pred_traj'] for r in results])
        cv = np.stack([r['cv_traj'] for r in results])
        ids = [str(r.get('sample_id', i)) for i, r in enumerate(results)]
        metrics, worst = self._single(pred, gt, '', ids)
        cv_metrics, _ = self._single(cv, gt, 'cv_', ids)
        metrics.update(cv_metrics)
        if all('pred_modes' in r for r in results):
            modes = np.stack([r['pred_modes'] for r in results])  # (N, K, T, 3)
            dist = np.linalg.norm(modes[..., :2] - gt[:, None, :, :2], axis=-1)
            ade_k, fde_k, max_k = dist.mean(-1), dist[..., -1], dist.max(-1)
            num_modes = modes.shape[1]
            metrics[f'minADE_{num_modes}'] = ade_k.min(1).mean()
            metrics[f'minFDE_{num_modes}'] = fde_k.min(1).mean()
            metrics[f'MR_nusc_{num_modes}'] = (max_k.min(1) > self.miss_threshold).mean()
            metrics[f'MR_argo_{num_modes}'] = (fde_k.min(1) > self.miss_threshold).mean()
            if all('mode_probs' in r for r in results):
                probs = np.stack([r['mode_probs'] for r in results])
                best = fde_k.argmin(1)
                p_best = probs[np.arange(len(best)), best]
                metrics[f'brier_minFDE_{num_modes}'] = (fde_k.min(1) + (1 - p_best) ** 2).mean()
        metrics = {k: float(v) for k, v in metrics.items()}
        self._print_table(metrics, len(results), worst)
        return metrics

    def _print_table(self, metrics, num, worst):
        names = [k for k in metrics if not k.startswith('cv_')]
        header = ['', *names]
        row_model = ['model'] + [f'{metrics[k]:.3f}' for k in names]
        row_cv = ['const. velocity'] + [f'{metrics["cv_" + k]:.3f}' if 'cv_' + k in metrics
                                        else '-' for k in names]
        # transpose: one metric per row reads better than a 20-column table
        rows = [['metric', 'model', 'const. velocity']]
        rows += [[h, m, c] for h, m, c in zip(header[1:], row_model[1:], row_cv[1:])]
        table = AsciiTable(rows, title=f'trajectory metrics ({num} samples)')
        print_log('\n' + table.table, logger='current')
        print_log('worst samples by FDE: ' + ', '.join(
            f'{sid} (FDE {f:.2f} m, ADE {a:.2f} m)' for sid, f, a in worst), logger='current')
