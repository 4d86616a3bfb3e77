"""TrajectoryMetric against hand-computed trajectories."""
import math

import pytest
import torch

from projects.common.metrics.trajectory_metric import TrajectoryMetric


def _sample(pred, gt, hist, **extra):
    return dict(pred_traj=torch.tensor(pred), gt_traj=torch.tensor(gt), hist_xy=torch.tensor(hist),
                **extra)


def test_metric_values_and_baseline():
    t = 4
    gt = [[float(k + 1), 0.0, 0.0] for k in range(t)]
    pred = [[float(k + 1), 1.0, 0.0] for k in range(t - 1)] + [[4.0, 3.0, math.pi / 2]]
    hist = [[-1.0 + 0.1 * k, 0.0] for k in range(11)]  # 1 m/s over 1 s → CV: 0.1 m per step
    metric = TrajectoryMetric(dt=0.1, nuscenes_2hz=False)
    modes = torch.stack([torch.tensor(pred), torch.tensor(gt)])
    metric.process({}, [_sample(pred, gt, hist, pred_modes=modes,
                                mode_probs=torch.tensor([0.8, 0.2]))])
    res = metric.compute_metrics(metric.results)
    assert res['ADE'] == pytest.approx((1 + 1 + 1 + 3) / 4)
    assert res['FDE'] == pytest.approx(3.0)
    assert res['MR_nusc'] == 1.0 and res['MR_argo'] == 1.0
    assert res['yaw_err_deg'] == pytest.approx(90 / 4)
    # CV from history: 1 m/s → (0.1 k, 0) vs gt (k, 0)
    cv_err = [abs(k + 1 - 0.1 * (k + 1)) for k in range(t)]
    assert res['cv_ADE'] == pytest.approx(sum(cv_err) / t, rel=1e-4)
    assert res['cv_FDE'] == pytest.approx(cv_err[-1], rel=1e-4)
    assert res['minADE_2'] == 0.0 and res['minFDE_2'] == 0.0
    assert res['brier_minFDE_2'] == pytest.approx((1 - 0.2) ** 2)


def test_miss_rate_definitions_differ():
    # max error 2.5 m at step 1, final error 0 → nuScenes miss, not an Argoverse miss
    gt = [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]
    pred = [[1.0, 2.5, 0.0], [2.0, 0.0, 0.0]]
    metric = TrajectoryMetric(nuscenes_2hz=False)
    metric.process({}, [_sample(pred, gt, [[0.0, 0.0], [0.0, 0.0]])])
    res = metric.compute_metrics(metric.results)
    assert res['MR_nusc'] == 1.0 and res['MR_argo'] == 0.0


def test_missing_key_is_named():
    metric = TrajectoryMetric()
    with pytest.raises(KeyError, match='hist_xy'):
        metric.process({}, [dict(pred_traj=torch.zeros(2, 3), gt_traj=torch.zeros(2, 3))])
