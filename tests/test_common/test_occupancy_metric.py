"""OccupancyMetric against hand-computed IoU / mIoU / ADE / FDE."""
import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
from mmengine.evaluator import Evaluator
from mmengine.structures import BaseDataElement

import projects.common.metrics.occupancy_metric as om
from projects.common.metrics import OccupancyMetric, accumulate_ego_motion
from projects.registry import METRICS

# Classes: a = 0, b = 1, free = 2. Volumes are 2 x 2 x 2, listed flat in
# C order (voxels v0..v7), F = 2 future steps.
GT = np.array([[0, 0, 1, 2, 2, 2, 2, 2],
               [0, 2, 2, 2, 2, 2, 2, 1]], dtype=np.uint8).reshape(2, 2, 2, 2)
PRED = np.array([[0, 1, 1, 2, 0, 2, 2, 2],
                 [2, 2, 2, 2, 2, 2, 2, 1]], dtype=np.uint8).reshape(2, 2, 2, 2)
# Copy-last-frame baseline: the last history frame (here equal to GT step 1)
# repeated for both steps.
BASE = np.stack([GT[0], GT[0]])

# Hand computation (occupied = label != 2):
# step 1 model: occ gt {v0,v1,v2}, pred {v0,v1,v2,v4}: TP 3 FP 1 FN 0
#   IoU = 3/4 = 75 %; class a: I {v0} = 1, U {v0,v1,v4} = 3 -> 33.33 %;
#   class b: I {v2} = 1, U {v1,v2} = 2 -> 50 %; mIoU = 41.67 %.
# step 2 model: occ gt {v0,v7}, pred {v7}: TP 1 FP 0 FN 1 -> IoU 50 %;
#   class a: I 0, U 1 -> 0 %; class b: I 1, U 1 -> 100 %; mIoU = 50 %.
# step 1 baseline == GT: 100 / 100.
# step 2 baseline: occ base {v0,v1,v2}, gt {v0,v7}: TP 1 FP 2 FN 1 -> 25 %;
#   class a: I {v0} 1, U {v0,v1} 2 -> 50 %; class b: I 0, U {v2,v7} 2 -> 0;
#   mIoU 25 %.
EXPECTED = {
    'IoU@1': 75.0, 'IoU@2': 50.0, 'IoU@mean': 62.5,
    'mIoU@1': 125.0 / 3, 'mIoU@2': 50.0, 'mIoU@mean': (125.0 / 3 + 50) / 2,
    'IoU/a': 0.0, 'IoU/b': 100.0,
    'baseline/IoU@1': 100.0, 'baseline/IoU@2': 25.0,
    'baseline/IoU@mean': 62.5,
    'baseline/mIoU@1': 100.0, 'baseline/mIoU@2': 25.0,
    'baseline/mIoU@mean': 62.5,
    'baseline/IoU/a': 50.0, 'baseline/IoU/b': 0.0,
}

# Ego motions [dx, dy, dz, dyaw] per step.
# Sample 1: GT turns left 90 deg after moving 1 m, then moves 1 m:
#   positions (1, 0, 0), (1, 1, 0). Prediction goes straight: (1, 0), (2, 0).
#   errors: 0, sqrt(2).
# Sample 2: GT stays; prediction climbs 3 m in step 1: errors 3, 3.
GT_MOTION = [np.array([[1, 0, 0, math.pi / 2], [1, 0, 0, 0]], np.float32),
             np.zeros((2, 4), np.float32)]
PRED_MOTION = [np.array([[1, 0, 0, 0], [1, 0, 0, 0]], np.float32),
               np.array([[0, 0, 3, 0], [0, 0, 0, 0]], np.float32)]
L2_1 = (0 + 3) / 2
L2_2 = (math.sqrt(2) + 3) / 2
EXPECTED_POSE = {
    'pose/L2@1': L2_1, 'pose/L2@2': L2_2,
    'pose/ADE': (L2_1 + L2_2) / 2, 'pose/FDE': L2_2,
    'baseline/pose/ADE': 0.0, 'baseline/pose/FDE': 0.0,
}


def _metric(**kwargs):
    cfg = dict(num_classes=3, free_label=2, class_names=['a', 'b', 'free'])
    cfg.update(kwargs)
    return OccupancyMetric(**cfg)


def test_registered():
    # Checked without importing the other modules of the registry locations.
    assert METRICS.module_dict['OccupancyMetric'] is OccupancyMetric


def _samples(as_tensor=True):
    out = []
    for i in range(2):
        conv = torch.from_numpy if as_tensor else np.asarray
        out.append(dict(
            pred_occ=conv(PRED.copy()), gt_occ=conv(GT.copy()),
            baseline_occ=conv(BASE.copy()),
            pred_ego_motion=conv(PRED_MOTION[i]),
            gt_ego_motion=conv(GT_MOTION[i]),
            baseline_ego_motion=conv(GT_MOTION[i])))
    return out


def _check(metrics, expected, tol=1e-9):
    for k, v in expected.items():
        assert metrics[k] == pytest.approx(v, abs=tol), k


def test_hand_computed_values_and_table(monkeypatch):
    logged = []
    monkeypatch.setattr(om, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    metric = _metric()
    metric.process({}, _samples())
    metrics = metric.evaluate(size=2)
    _check(metrics, EXPECTED)
    _check(metrics, EXPECTED_POSE, tol=1e-6)  # float32 motions
    assert 'IoU/free' not in metrics
    assert metric.results == []  # BaseMetric clears after evaluate
    assert len(logged) == 1
    table = logged[0]
    for word in ('IoU', 'mIoU', 'pose L2', 'baseline', 'model', 't=1', 't=2',
                 'mean', 'IoU a', 'IoU b', '75.00', '25.00'):
        assert word in table


def test_decoded_prediction_is_its_own_source(monkeypatch):
    # decoded_pred_occ = the baseline volumes: its rows must equal the baseline's numbers
    logged = []
    monkeypatch.setattr(om, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    metric = _metric()
    samples = _samples()
    for sample in samples:
        sample['decoded_pred_occ'] = torch.from_numpy(BASE.copy())
    metric.process({}, samples)
    metrics = metric.evaluate(size=2)
    _check(metrics, EXPECTED)
    for key in ('IoU@1', 'IoU@2', 'mIoU@2', 'IoU/a', 'IoU/b'):
        assert metrics[f'decoded/{key}'] == pytest.approx(
            EXPECTED[f'baseline/{key}'])
    assert not any(k.startswith('decoded/pose') for k in metrics)
    assert om.DECODED_LABEL in logged[0]
    # without the field in every sample there is no decoded source
    metric = _metric()
    samples = _samples()
    samples[0]['decoded_pred_occ'] = torch.from_numpy(BASE.copy())
    metric.process({}, samples)
    assert not any(k.startswith('decoded/') for k in metric.evaluate(size=2))


def test_results_are_compact_and_picklable():
    import pickle
    metric = _metric()
    metric.process({}, _samples())
    assert len(metric.results) == 2
    for r in metric.results:
        assert set(r) == {'cm', 'base_cm', 'pose_err', 'base_pose_err'}
        assert r['cm'].dtype == np.int64 and r['cm'].shape == (2, 3, 3)
        assert r['cm'].sum() == 2 * 8  # every voxel of both steps counted
    pickle.loads(pickle.dumps(metric.results))


def test_split_process_calls_equal_one_call():
    rng = np.random.default_rng(0)
    samples = [dict(pred_occ=torch.from_numpy(rng.integers(0, 4, (3, 5, 4, 3),
                                                           dtype=np.uint8)),
                    gt_occ=torch.from_numpy(rng.integers(0, 4, (3, 5, 4, 3),
                                                         dtype=np.uint8)),
                    baseline_occ=torch.from_numpy(
                        rng.integers(0, 4, (3, 5, 4, 3), dtype=np.uint8)),
                    pred_ego_motion=rng.normal(size=(3, 4)),
                    gt_ego_motion=rng.normal(size=(3, 4)),
                    baseline_ego_motion=rng.normal(size=(3, 4)))
               for _ in range(5)]
    one = OccupancyMetric(num_classes=4, free_label=3)
    one.process({}, samples)
    m_one = one.evaluate(5)
    many = OccupancyMetric(num_classes=4, free_label=3)
    for s in samples:
        many.process({}, [s])
    m_many = many.evaluate(5)
    assert m_one.keys() == m_many.keys()
    for k in m_one:
        assert m_one[k] == pytest.approx(m_many[k], abs=1e-9), k


def test_evaluator_with_data_elements_and_prefix():
    evaluator = Evaluator(_metric(prefix='occ'))
    elements = [BaseDataElement(metainfo=dict(session='s', sample_idx=i),
                                **s) for i, s in enumerate(_samples())]
    evaluator.process(elements, data_batch={})
    metrics = evaluator.evaluate(2)
    _check(metrics, {f'occ/{k}': v for k, v in EXPECTED.items()})


def test_ignore_label_and_absent_classes():
    # Class 2 ('c') never appears: excluded from mIoU; ignored voxels do
    # not count even where the prediction differs.
    remap = np.array([0, 1, 3], dtype=np.uint8)  # free 2 -> 3
    gt, pred = remap[GT], remap[PRED]
    gt_ign, pred_ign = gt.copy(), pred.copy()
    gt_ign[0, 1, 1, 1] = 255  # v7 of step 1 (gt free, pred free)
    gt_ign[0, 1, 0, 0] = 255  # v4 of step 1: pred 'a' there was an FP
    pred_ign[0, 1, 1, 1] = 1
    metric = OccupancyMetric(num_classes=4, free_label=3,
                             class_names=['a', 'b', 'c', 'free'],
                             eval_baseline=False)
    metric.process({}, [dict(pred_occ=pred_ign, gt_occ=gt_ign)])
    m = metric.evaluate(1)
    # step 1 without v4 / v7: occ TP 3 FP 0 FN 0 -> 100 %; class a: I 1,
    # U {v0,v1} 2 -> 50 %; class b: I 1, U 2 -> 50 %; mIoU 50 %.
    assert m['IoU@1'] == pytest.approx(100.0)
    assert m['mIoU@1'] == pytest.approx(50.0)
    assert m['mIoU@2'] == pytest.approx(50.0)  # class c absent, not 0
    assert math.isnan(m['IoU/c'])
    assert not any(k.startswith('baseline/') for k in m)
    assert not any(k.startswith('pose/') for k in m)


def test_accumulate_ego_motion_hand_computed():
    motions = np.array([[1, 0, 0.5, math.pi / 2], [2, 0, 0.5, math.pi / 2],
                        [1, 1, -1, 0]])
    acc = accumulate_ego_motion(motions)
    # step 1: (1, 0, 0.5), yaw 90; step 2: moves 2 m along +y -> (1, 2, 1),
    # yaw 180; step 3: (1, 1) rotated by 180 -> (-1, -1): (0, 1, 0).
    np.testing.assert_allclose(
        acc, [[1, 0, 0.5, math.pi / 2], [1, 2, 1, math.pi],
              [0, 1, 0, math.pi]], atol=1e-12)
    batched = accumulate_ego_motion(np.stack([motions, motions]))
    np.testing.assert_allclose(batched[1], acc)
    with pytest.raises(ValueError):
        accumulate_ego_motion(np.zeros((2, 5)))


def test_errors():
    with pytest.raises(ValueError, match='free_label'):
        OccupancyMetric(num_classes=3, free_label=3)
    metric = _metric()
    s = _samples()[0]
    with pytest.raises(KeyError, match='baseline_occ'):
        metric.process({}, [dict(pred_occ=s['pred_occ'], gt_occ=s['gt_occ'])])
    with pytest.raises(ValueError, match='shape'):
        metric.process({}, [dict(s, pred_occ=s['pred_occ'][:1])])
    bad = s['pred_occ'].clone()
    bad[0, 0, 0, 0] = 7
    with pytest.raises(ValueError, match='outside'):
        metric.process({}, [dict(s, pred_occ=bad)])


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_with_and_without_process_group():
    assert not dist.is_initialized()
    metric = _metric()
    metric.process({}, _samples())
    no_pg = metric.evaluate(2)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:'
                            f'{_free_port()}', rank=0, world_size=1)
    try:
        metric = _metric()
        metric.process({}, _samples(as_tensor=False))
        with_pg = metric.evaluate(2)
    finally:
        dist.destroy_process_group()
    _check(with_pg, no_pg)
