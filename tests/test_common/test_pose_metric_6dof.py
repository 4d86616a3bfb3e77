"""OccupancyMetric with 13-D (6-DoF) ego motion: translation L2 and rotation error per step."""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from projects.common.structures import identity_motion_6dof, quat_from_yaw
from projects.registry import METRICS


def _sample(pred_motion, gt_motion, base_motion):
    occ = torch.full((2, 2, 2, 2), 2, dtype=torch.uint8)
    s = BaseDataElement()
    s.pred_occ, s.gt_occ, s.baseline_occ = occ, occ, occ
    s.pred_ego_motion, s.gt_ego_motion = pred_motion, gt_motion
    s.baseline_ego_motion = base_motion
    return s


def test_6dof_pose_metric_hand_computed():
    # GT: 1 m forward per step, no rotation -> poses (1, 0, 0), (2, 0, 0), identity.
    gt = identity_motion_6dof(2)
    gt[:, 0] = 1.0
    # Prediction: 1 m forward and a 90-degree left turn, then 1 m forward (now along +y)
    # -> poses (1, 0, 0) and (1, 1, 0), both yawed by 90 degrees.
    pred = gt.clone()
    pred[0, 3:7] = quat_from_yaw(torch.tensor(math.pi / 2))
    metric = METRICS.build(dict(type='OccupancyMetric', num_classes=3, free_label=2))
    metric.process({}, [_sample(pred, gt, gt.clone())])
    res = metric.compute_metrics(metric.results)
    assert res['pose/L2@1'] == pytest.approx(0.0, abs=1e-9)
    assert res['pose/L2@2'] == pytest.approx(math.sqrt(2.0), abs=1e-6)
    assert res['pose/ADE'] == pytest.approx(math.sqrt(2.0) / 2, abs=1e-6)
    assert res['pose/FDE'] == pytest.approx(math.sqrt(2.0), abs=1e-6)
    assert res['pose/rot_deg@1'] == pytest.approx(90.0, abs=1e-5)
    assert res['pose/rot_deg@2'] == pytest.approx(90.0, abs=1e-5)
    assert res['pose/rot_deg_mean'] == pytest.approx(90.0, abs=1e-5)
    assert res['baseline/pose/rot_deg@2'] == pytest.approx(0.0, abs=1e-6)
    assert res['baseline/pose/L2@2'] == pytest.approx(0.0, abs=1e-9)


def test_planar_motion_has_no_rotation_keys():
    motion = torch.zeros(2, 4)
    metric = METRICS.build(dict(type='OccupancyMetric', num_classes=3, free_label=2))
    metric.process({}, [_sample(motion, motion, motion)])
    res = metric.compute_metrics(metric.results)
    assert 'pose/L2@1' in res and not any('rot_deg' in k for k in res)
    assert np.isfinite(res['pose/ADE'])
