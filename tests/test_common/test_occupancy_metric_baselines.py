"""OccupancyMetric's no-learning baselines, visible / revealed split and dynamic classes.

Hand-made scene (classes building = 0, ground = 1, free = 2): an 8 x 3 x 2 grid of 1 m voxels,
``point_cloud_range = [-4, -1.5, 0, 4, 1.5, 2]``, ground (z = 0) everywhere and one building
voxel at world column 6, y = 1, z = 1. The ego flies along +x without turning; the frame at
ego position ``x = p`` shows world column ``p + i`` in its voxel ``i``, so the building is at
``i = 6 - p``.
"""
import math
import pickle

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.structures import BaseDataElement

import projects.common.metrics.occupancy_metric as om
from projects.common.metrics import OccupancyMetric
from projects.common.metrics.occupancy_baselines import (constant_velocity_rel_poses,
                                                         rel_poses_from_poses,
                                                         visible_mask, warp_last_frame,
                                                         window_baselines)
from projects.common.metrics.occupancy_report import (COPY_LAST_LABEL, WARP_CV_LABEL,
                                                      WARP_PLAN_LABEL)
from projects.common.structures.occupancy_warp import warp_occupancy

torch.set_num_threads(1)

PCR = [-4.0, -1.5, 0.0, 4.0, 1.5, 2.0]
BUILDING, GROUND, FREE = 0, 1, 2
NAMES = ['building', 'ground', 'free']


def _frame(p: int) -> torch.Tensor:
    occ = torch.full((8, 3, 2), FREE, dtype=torch.uint8)
    occ[:, :, 0] = GROUND
    i = 6 - p
    if 0 <= i < 8:
        occ[i, 1, 1] = BUILDING
    return occ


def _pose(x: float, quat=(1.0, 0.0, 0.0, 0.0)) -> torch.Tensor:
    return torch.tensor([x, 0.0, 0.0, *quat] + [0.0] * 6)


def _window(positions):
    """Packed window (as ``PackOccupancyInputs`` makes it) of the ego at ``positions``."""
    occ = torch.stack([_frame(p) for p in positions])
    poses = torch.stack([_pose(float(p)) for p in positions])
    meta = dict(num_history=2, num_future=len(positions) - 2, sample_idx=0)
    return dict(inputs=dict(occupancy=occ, poses=poses),
                data_samples=BaseDataElement(metainfo=meta))


def _output(item, pred=None, **extra):
    """Model output of a window: ``pred_occ`` (default: the truth), ``gt_occ``."""
    occ = item['inputs']['occupancy']
    gt = occ[2:].clone()
    return BaseDataElement(metainfo=dict(item['data_samples'].metainfo),
                           pred_occ=gt.clone() if pred is None else pred, gt_occ=gt, **extra)


def _metric(**kwargs):
    cfg = dict(num_classes=3, free_label=FREE, class_names=NAMES, point_cloud_range=PCR)
    cfg.update(kwargs)
    return OccupancyMetric(**cfg)


def _evaluate(metric, items, outputs, collate=pseudo_collate):
    metric.process(collate(items), outputs)
    return metric.evaluate(len(outputs))


COPY_IOU = 100 * 24 / 26  # TP 24 ground voxels, FP 1 and FN 1 building voxel


def test_constant_velocity_warp_forecasts_a_translated_grid_exactly():
    item = _window([0, 1, 2, 3])  # 1 m per step along x
    last = item['inputs']['occupancy'][1]
    rel = constant_velocity_rel_poses(item['inputs']['poses'][:2], 2)
    np.testing.assert_allclose(rel.numpy(), [[1, 0, 0, 0], [2, 0, 0, 0]], atol=1e-6)
    warped, valid = warp_last_frame(last, rel, PCR, FREE)
    assert torch.equal(warped, item['inputs']['occupancy'][2:])
    # the columns that come into view (i = 7 at t=1, i = 6, 7 at t=2) have no source; the
    # last frame's own ground voxels are kept there
    assert valid[0, :7].all() and not valid[0, 7].any()
    assert valid[1, :6].all() and not valid[1, 6:].any()

    m = _evaluate(_metric(), [item], [_output(item)])
    for t in (1, 2):
        assert m[f'warp_cv/IoU@{t}'] == pytest.approx(100.0)
        assert m[f'warp_cv/mIoU@{t}'] == pytest.approx(100.0)
        assert m[f'baseline/IoU@{t}'] == pytest.approx(COPY_IOU)  # copy-last is not exact
        assert m[f'baseline/mIoU@{t}'] == pytest.approx(50.0)  # ground 100, building 0
        assert m[f'margin/IoU@{t}'] == pytest.approx(0.0)  # model (the truth) vs CV-warp
    assert 'warp_plan/IoU@1' not in m  # no plan: no planned-pose warp
    assert m['IoU@mean'] == pytest.approx(100.0)


def test_visible_and_revealed_split_hand_computed():
    item = _window([0, 1, 2, 3])
    copy_last = item['inputs']['occupancy'][1:2].expand(2, 8, 3, 2).clone()
    m = _evaluate(_metric(), [item], [_output(item, pred=copy_last)])
    # t=1: revealed = column 7 (3 ground voxels), both forecasts right there;
    #   visible: TP 21, FP 1 (building at i = 5), FN 1 (at i = 4) -> 21 / 23
    # t=2: revealed = columns 6, 7 (6 ground voxels); visible: TP 18 FP 1 FN 1 -> 18 / 20
    assert m['IoU_visible@1'] == pytest.approx(100 * 21 / 23)
    assert m['IoU_visible@2'] == pytest.approx(90.0)
    assert m['IoU_revealed@1'] == pytest.approx(100.0)
    assert m['IoU_revealed@2'] == pytest.approx(100.0)
    assert m['mIoU_visible@1'] == pytest.approx(50.0)  # ground 100, building 0
    assert m['mIoU_revealed@1'] == pytest.approx(100.0)  # only ground: building absent
    assert m['IoU@1'] == pytest.approx(COPY_IOU)
    assert m['warp_cv/IoU_visible@2'] == pytest.approx(100.0)
    assert m['baseline/IoU_visible@2'] == pytest.approx(90.0)
    # the model is copy-last here: its margin over the CV-warp (the strongest) is negative
    assert m['margin/IoU@1'] == pytest.approx(COPY_IOU - 100.0)
    assert m['margin/IoU_visible@2'] == pytest.approx(-10.0)
    assert m['margin/IoU_revealed@2'] == pytest.approx(0.0)


@pytest.mark.parametrize('z_reference', ['ground', 'ego'])
def test_warp_last_frame_equals_the_volume_warp(z_reference):
    # the planar path gathers whole columns; it must give warp_occupancy's volume exactly
    gen = torch.Generator().manual_seed(0)
    last = torch.randint(0, 7, (20, 16, 9), dtype=torch.uint8, generator=gen)
    rng = [-10.0, -8.0, -2.0, 10.0, 8.0, 7.0]
    rel = torch.tensor([[1.3 * k, -0.7 * k, 0.6 * k, 0.21 * k] for k in range(1, 5)])
    got, valid = warp_last_frame(last, rel, rng, 6, z_reference)
    stacked = last[None].expand(4, 20, 16, 9).contiguous()
    ref, ref_valid = warp_occupancy(stacked, rel, rng, 6, z_reference)
    assert torch.equal(valid, ref_valid) and not valid.all() and valid.any()
    assert torch.equal(got, torch.where(ref_valid, ref, stacked))


def test_visible_mask_of_a_turn_and_of_a_climb():
    # 4 x 2 x 1 grid of 1 m voxels; a 90 deg left turn in place maps target (cx, cy) to the
    # source (-cy, cx): inside the grid only for |cx| < 1, i.e. columns i = 1, 2
    rng = [-2.0, -1.0, 0.0, 2.0, 1.0, 1.0]
    vis = visible_mask((4, 2, 1), torch.tensor([[0.0, 0.0, 0.0, math.pi / 2]]), rng)
    want = torch.zeros(1, 4, 2, 1, dtype=torch.bool)
    want[0, 1:3] = True
    assert torch.equal(vis, want)
    # the same turn reached through absolute poses (yaw quaternion of 90 deg)
    half = math.pi / 4
    rel = rel_poses_from_poses(_pose(0.0), torch.stack(
        [_pose(0.0, (math.cos(half), 0.0, 0.0, math.sin(half)))]))
    assert torch.equal(visible_mask((4, 2, 1), rel, rng), want)
    # z relative to the ego: a 1 m climb on a 2-layer grid reveals the top layer; with
    # z above the ground datum the climb changes nothing
    rng2 = [-2.0, -1.0, 0.0, 2.0, 1.0, 2.0]
    climb = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    vis = visible_mask((4, 2, 2), climb, rng2, z_reference='ego')
    assert vis[..., 0].all() and not vis[..., 1].any()
    assert visible_mask((4, 2, 2), climb, rng2, z_reference='ground').all()


def test_strongest_baseline_pick_and_table(monkeypatch):
    logged = []
    monkeypatch.setattr(om, 'print_log', lambda msg, **kw: logged.append(msg))
    # The ego moved 1 m in the history, then stops: copy-last is exact, the CV-warp wrong.
    item = _window([0, 1, 1, 1])
    cv = window_baselines(item['inputs']['occupancy'], item['inputs']['poses'], 2, 2, PCR,
                          FREE)['warp_cv']
    m = _evaluate(_metric(), [item], [_output(item, pred=cv)])
    assert m['baseline/IoU@1'] == pytest.approx(100.0)
    assert m['warp_cv/IoU@1'] == pytest.approx(COPY_IOU)
    # model = the CV-warp forecast: its margin over copy-last (the strongest) is negative
    assert m['margin/IoU@1'] == pytest.approx(COPY_IOU - 100.0)
    assert m['margin/mIoU@mean'] == pytest.approx(50.0 - 100.0)
    # nothing is revealed when the ego stands still
    assert math.isnan(m['IoU_revealed@1'])
    table = logged[-1]
    assert f'{COPY_LAST_LABEL} *' in table and f'{WARP_CV_LABEL} *' not in table
    assert f'model - {COPY_LAST_LABEL}' in table and '-7.69' in table

    # The ego keeps flying: the CV-warp is the strongest.
    item = _window([0, 1, 2, 3])
    m = _evaluate(_metric(), [item], [_output(item, pred=cv)])
    assert m['margin/IoU@mean'] == pytest.approx(m['IoU@mean'] - 100.0)
    assert f'{WARP_CV_LABEL} *' in logged[-1]


def test_planned_pose_warp():
    item = _window([0, 1, 2, 3])
    true_future = item['inputs']['poses'][2:]
    stay = torch.stack([_pose(1.0), _pose(1.0)])
    # a 6-DoF plan: the true path with the body pitched by 10 deg (no yaw); the grids are
    # gravity-aligned, so the warp only uses position and yaw and is still exact
    c, s = math.cos(math.radians(5)), math.sin(math.radians(5))
    pitched = torch.stack([_pose(2.0, (c, 0.0, s, 0.0)), _pose(3.0, (c, 0.0, s, 0.0))])
    for plan, want in ((true_future, 100.0), (stay, COPY_IOU), (pitched, 100.0)):
        m = _evaluate(_metric(), [item], [_output(item, planned_poses=plan)])
        for t in (1, 2):
            assert m[f'warp_plan/IoU@{t}'] == pytest.approx(want)
    # a planned rollout output has no baseline_occ: copy-last comes from the window
    assert m['baseline/IoU@1'] == pytest.approx(COPY_IOU)
    # the plan-warp takes part in the strongest-baseline pick: the margin of a perfect
    # model is over the (exact) plan-warp when the CV-warp is wrong
    stopping = _window([0, 1, 1, 1])
    m = _evaluate(_metric(), [stopping], [_output(stopping, planned_poses=stay)])
    assert m['warp_cv/IoU@1'] == pytest.approx(COPY_IOU)
    assert m['warp_plan/IoU@1'] == pytest.approx(100.0)
    assert m['margin/IoU@1'] == pytest.approx(0.0)
    with pytest.raises(ValueError, match='planned_poses'):
        _evaluate(_metric(), [item], [_output(item, planned_poses=stay[:1])])
    assert WARP_PLAN_LABEL.endswith('baseline')


def test_dynamic_classes_hand_computed():
    item = _window([0, 1, 2, 3])
    copy_last = item['inputs']['occupancy'][1:2].expand(2, 8, 3, 2).clone()
    # the building voxel stands in for a moving object
    m = _evaluate(_metric(dynamic_classes=[BUILDING]), [item], [_output(item, pred=copy_last)])
    assert m['dynamic/IoU@1'] == pytest.approx(0.0)  # TP 0, FP 1, FN 1
    assert m['dynamic/mIoU@1'] == pytest.approx(0.0)
    assert m['warp_cv/dynamic/IoU@2'] == pytest.approx(100.0)
    assert m['margin/dynamic/mIoU@mean'] == pytest.approx(-100.0)
    m = _evaluate(_metric(), [item], [_output(item)])
    assert not any('dynamic/' in k for k in m)  # empty list: no dynamic metrics
    with pytest.raises(ValueError, match='dynamic_classes'):
        _metric(dynamic_classes=[FREE])


@pytest.mark.parametrize('collate', ['pseudo', 'default', 'list'])
def test_data_batch_layouts_and_batches(collate):
    items = [_window([0, 1, 2, 3]), _window([0, 1, 1, 1])]
    outputs = [_output(it) for it in items]
    ref = _evaluate(_metric(), items, outputs)
    fn = dict(pseudo=pseudo_collate, default=default_collate, list=list)[collate]
    got = _evaluate(_metric(), items, outputs, collate=fn)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] == pytest.approx(ref[k], nan_ok=True), k
    # dataset sums of the CV-warp at t=1: sample 0 exact (TP 25), sample 1 (the ego stops)
    # TP 24, FP 1, FN 1 -> 49 / 51
    assert got['warp_cv/IoU@1'] == pytest.approx(100 * 49 / 51)


def test_reordered_or_missing_window():
    items = [_window([0, 1, 2, 3]), _window([0, 1, 1, 1])]
    outputs = [_output(it) for it in items]
    with pytest.raises(ValueError, match='same order'):
        _metric().process(pseudo_collate(items), outputs[::-1])
    # without the window: no warps and no split; copy-last needs baseline_occ then
    with pytest.raises(KeyError, match='baseline_occ'):
        _metric().process({}, outputs)
    metric = _metric()
    for out, it in zip(outputs, items):
        out.baseline_occ = it['inputs']['occupancy'][1:2].expand(2, 8, 3, 2).clone()
    metric.process({}, outputs)
    m = metric.evaluate(2)
    assert 'baseline/IoU@1' in m and not any(k.startswith('warp_cv/') for k in m)
    assert 'IoU_visible@1' not in m
    # the true motion in the output (here 6-DoF) is enough for the split
    metric = _metric()
    for out in outputs:
        out.gt_ego_motion = torch.tensor([[1.0, 0, 0, 1, 0, 0, 0] + [0.0] * 6] * 2)
    metric.process({}, outputs[:1])
    assert metric.evaluate(1)['IoU_revealed@1'] == pytest.approx(100.0)


def test_results_are_small_and_split_calls_equal_one_call():
    items = [_window([0, 1, 2, 3]), _window([0, 1, 1, 1]), _window([0, 1, 2, 3])]
    outputs = [_output(it, planned_poses=it['inputs']['poses'][2:]) for it in items]
    one = _metric(dynamic_classes=[BUILDING])
    one.process(pseudo_collate(items), outputs)
    for r in one.results:  # what DDP gathers: small integer matrices per sample
        assert set(r) == {'cm', 'cm_vis', 'base_cm', 'base_cm_vis', 'cv_cm', 'cv_cm_vis',
                          'plan_cm', 'plan_cm_vis'}
        assert all(v.dtype == np.int64 and v.shape == (2, 3, 3) for v in r.values())
    pickle.loads(pickle.dumps(one.results))
    m_one = one.evaluate(3)
    many = _metric(dynamic_classes=[BUILDING])
    for it, out in zip(items, outputs):  # one "rank" per sample, gathered in order
        many.process(pseudo_collate([it]), [out])
    m_many = many.evaluate(3)
    assert m_one.keys() == m_many.keys()
    for k in m_one:
        assert m_one[k] == pytest.approx(m_many[k], nan_ok=True), k


def test_grid_range_from_the_dataset_metainfo(monkeypatch):
    item = _window([0, 1, 2, 3])
    metric = _metric(point_cloud_range=None)
    metric.dataset_meta = dict(point_cloud_range=PCR, z_reference='ground', classes=NAMES)
    m = _evaluate(metric, [item], [_output(item)])
    assert m['warp_cv/IoU@2'] == pytest.approx(100.0)
    assert m['IoU_revealed@2'] == pytest.approx(100.0)
    # a configured range that disagrees with the data is an error, not a silent warp
    metric = _metric()
    metric.dataset_meta = dict(point_cloud_range=[-8.0, -3.0, 0.0, 8.0, 3.0, 4.0])
    with pytest.raises(ValueError, match='point_cloud_range'):
        metric.process(pseudo_collate([item]), [_output(item)])
    metric = _metric(z_reference='ego')
    metric.dataset_meta = dict(point_cloud_range=PCR, z_reference='ground')
    with pytest.raises(ValueError, match='z_reference'):
        metric.process(pseudo_collate([item]), [_output(item)])
    # neither: no warps, no split, and the table says why
    logged = []
    monkeypatch.setattr(om, 'print_log', lambda msg, **kw: logged.append(msg))
    m = _evaluate(_metric(point_cloud_range=None), [item], [_output(item)])
    assert 'warp_cv/IoU@1' not in m and 'IoU_visible@1' not in m and 'baseline/IoU@1' in m
    assert f'{WARP_CV_LABEL} not computed' in logged[-1]


def test_bad_arguments():
    with pytest.raises(ValueError, match='point_cloud_range'):
        _metric(point_cloud_range=[0, 0, 0, -1, 1, 1])
    with pytest.raises(ValueError, match='z_reference'):
        _metric(z_reference='sea')
    item = _window([0, 1, 2, 3])
    bad = dict(inputs=dict(occupancy=[item['inputs']['occupancy']],
                           poses=[item['inputs']['poses'][:, :7]]))
    with pytest.raises(ValueError, match='poses'):
        _metric().process(bad, [_output(item)])
    with pytest.raises(ValueError, match='num_history'):
        window_baselines(item['inputs']['occupancy'], item['inputs']['poses'], 0, 2, PCR, FREE)
