"""OccupancyMetric with a per-sample evaluation mask (Occ3D ``mask_camera``)."""
import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from projects.common.metrics import OccupancyMetric

# 1 future step, 4 voxels, classes a = 0, free = 1.
GT = np.array([0, 0, 1, 1], np.uint8).reshape(1, 2, 2, 1)
PRED = np.array([0, 1, 0, 1], np.uint8).reshape(1, 2, 2, 1)  # v1 FN, v2 FP


def _iou(**sample_extra):
    m = OccupancyMetric(num_classes=2, free_label=1, eval_baseline=False)
    m.process({}, [dict(pred_occ=torch.from_numpy(PRED), gt_occ=torch.from_numpy(GT),
                        **sample_extra)])
    return m.evaluate(1)['IoU@1']


def test_mask_excludes_voxels_hand_computed():
    assert _iou() == pytest.approx(100 / 3)  # TP 1, FP 1, FN 1
    mask = np.array([1, 1, 0, 1], np.uint8).reshape(1, 2, 2, 1)  # hide the FP
    assert _iou(occ_mask=mask) == pytest.approx(50.0)
    # a whole window (T = 3 > F = 1): its last frame is used
    window = np.concatenate([np.zeros_like(mask), np.zeros_like(mask), mask])
    assert _iou(occ_mask=window) == pytest.approx(50.0)
    # the mask in a data element's metainfo (how PackOccupancyInputs carries it)
    m = OccupancyMetric(num_classes=2, free_label=1, eval_baseline=False)
    m.process({}, [BaseDataElement(metainfo=dict(occ_mask=mask), pred_occ=PRED, gt_occ=GT)])
    assert m.evaluate(1)['IoU@1'] == pytest.approx(50.0)
    with pytest.raises(ValueError, match='occ_mask'):
        _iou(occ_mask=np.ones((1, 3, 2, 1), np.uint8))
