"""OccupancyMetric with several val sets (held-out sessions / held-out tile): one table per set.

Hand-computed on the 2 x 2 x 2 volumes of ``test_occupancy_metric.py`` (classes a = 0, b = 1,
free = 2, two future steps):

* set ``heldout_session``: the model's PRED (IoU 75 / 50 %), copy-last BASE (100 / 25 %);
* set ``heldout_tile``: a perfect model (pred = GT: 100 / 100 %), same copy-last BASE.

Combined (dataset sums of both samples): model step 1 TP 3 + 3, FP 1, FN 0 -> 6 / 7; step 2
TP 1 + 2, FP 0, FN 1 -> 3 / 4. Copy-last step 1 100 %, step 2 TP 1 + 1, FP 2 + 2, FN 1 + 1 ->
2 / 8 = 25 %. Margins (model - strongest baseline, here copy-last, the only one): session set
IoU@mean 62.5 - 62.5 = 0; tile set 100 - 62.5 = 37.5.
"""
import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

import projects.common.metrics.occupancy_metric as om
from projects.common.metrics import OccupancyMetric

GT = np.array([[0, 0, 1, 2, 2, 2, 2, 2],
               [0, 2, 2, 2, 2, 2, 2, 1]], dtype=np.uint8).reshape(2, 2, 2, 2)
PRED = np.array([[0, 1, 1, 2, 0, 2, 2, 2],
                 [2, 2, 2, 2, 2, 2, 2, 1]], dtype=np.uint8).reshape(2, 2, 2, 2)
BASE = np.stack([GT[0], GT[0]])
MOTION = np.array([[1, 0, 0, 0], [1, 0, 0, 0]], np.float32)


def _sample(pred, val_set, element=False, pred_motion=MOTION):
    fields = dict(pred_occ=torch.from_numpy(pred.copy()), gt_occ=torch.from_numpy(GT.copy()),
                  baseline_occ=torch.from_numpy(BASE.copy()),
                  pred_ego_motion=torch.from_numpy(pred_motion),
                  gt_ego_motion=torch.from_numpy(MOTION),
                  baseline_ego_motion=torch.from_numpy(MOTION))
    if element:
        s = BaseDataElement(metainfo=dict(val_set=val_set))
        for k, v in fields.items():
            s.set_field(v, k)
        return s
    if val_set is not None:
        fields['val_set'] = val_set
    return fields


def _metric():
    return OccupancyMetric(num_classes=3, free_label=2, class_names=['a', 'b', 'free'])


def test_per_val_set_tables_hand_computed(monkeypatch):
    logged = []
    monkeypatch.setattr(om, 'print_log', lambda msg, **kw: logged.append(msg))
    metric = _metric()
    climb = np.array([[1, 0, 2, 0], [1, 0, 0, 0]], np.float32)  # 2 m pose error, both steps
    metric.process({}, [_sample(PRED, 'heldout_session', pred_motion=climb),
                        _sample(GT, 'heldout_tile', element=True)])
    m = metric.evaluate(size=2)
    expected = {
        # combined: no set prefix
        'IoU@1': 600 / 7, 'IoU@2': 75.0, 'baseline/IoU@1': 100.0, 'baseline/IoU@2': 25.0,
        'pose/L2@1': 1.0, 'pose/L2@2': 1.0,
        # held-out sessions: the imperfect model
        'heldout_session/IoU@1': 75.0, 'heldout_session/IoU@2': 50.0,
        'heldout_session/IoU@mean': 62.5, 'heldout_session/baseline/IoU@2': 25.0,
        'heldout_session/margin/IoU@mean': 0.0, 'heldout_session/mIoU@1': 125 / 3,
        'heldout_session/pose/L2@1': 2.0, 'heldout_session/pose/L2@2': 2.0,
        'heldout_session/baseline/pose/L2@2': 0.0,
        # held-out tile: the perfect model
        'heldout_tile/IoU@1': 100.0, 'heldout_tile/IoU@2': 100.0,
        'heldout_tile/mIoU@2': 100.0, 'heldout_tile/baseline/IoU@2': 25.0,
        'heldout_tile/margin/IoU@mean': 37.5, 'heldout_tile/margin/IoU@2': 75.0,
        'heldout_tile/pose/L2@2': 0.0,
    }
    for k, v in expected.items():
        assert m[k] == pytest.approx(v, abs=1e-6), k
    # every combined key exists per set too
    for k in [k for k in m if not k.startswith('heldout_')]:
        assert f'heldout_session/{k}' in m and f'heldout_tile/{k}' in m, k
    assert len(logged) == 3
    assert '[val set' not in logged[0]
    assert logged[1].startswith('[val set heldout_session]') and '75.00' in logged[1]
    assert logged[2].startswith('[val set heldout_tile]') and '100.00' in logged[2]


def test_per_set_reduction_after_gathering_equals_one_process():
    # two "ranks" each process half of the samples; compute_metrics runs on the gathered list
    samples = [_sample(PRED, 'heldout_session'), _sample(GT, 'heldout_tile'),
               _sample(BASE, 'heldout_tile'), _sample(PRED, 'heldout_session')]
    one = _metric()
    one.process({}, samples)
    ranks = [_metric(), _metric()]
    ranks[0].process({}, samples[::2])
    ranks[1].process({}, samples[1::2])
    gathered = ranks[0].results + ranks[1].results
    assert all(isinstance(r['set'], str) for r in gathered)
    a, b = one.compute_metrics(one.results), ranks[0].compute_metrics(gathered)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], nan_ok=True), k


def test_samples_without_a_set_and_bad_names(monkeypatch):
    monkeypatch.setattr(om, 'print_log', lambda msg, **kw: None)
    metric = _metric()
    metric.process({}, [_sample(PRED, None), _sample(GT, 'heldout_tile')])
    m = metric.evaluate(size=2)
    assert m['IoU@1'] == pytest.approx(600 / 7)  # both samples in the combined table
    assert m['heldout_tile/IoU@1'] == pytest.approx(100.0)  # only the tile sample
    assert not any(k.startswith('None/') for k in m)
    # no set anywhere: the keys are exactly the single-table ones
    plain = _metric()
    plain.process({}, [_sample(PRED, None)])
    assert not any('/' in k and k.split('/')[0].startswith('heldout') for k in
                   plain.evaluate(size=1))
    # a set named like a metric prefix would make keys ambiguous
    clash = _metric()
    clash.process({}, [_sample(PRED, 'baseline')])
    with pytest.raises(ValueError, match='collide'):
        clash.evaluate(size=1)
    # set_key=None turns the per-set tables off
    off = OccupancyMetric(num_classes=3, free_label=2, set_key=None)
    off.process({}, [_sample(PRED, 'heldout_tile')])
    assert not any(k.startswith('heldout_tile/') for k in off.evaluate(size=1))
