"""SectorCountHead (auxiliary box supervision of the LiDAR view groups) and LoadBEVObjects."""
import math
import os.path as osp

import numpy as np
import pytest
import torch

from projects.lidar_llm.datasets import MixedNuDataset
from projects.lidar_llm.datasets.grounded_qa import generate_frame_qa
from projects.lidar_llm.models.aux_heads import SectorCountHead, sector_counts
from projects.lidar_llm.structures import LidarQADataSample
from projects.lidar_llm.transforms import LoadBEVObjects

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('car', 'pedestrian', 'barrier')


def test_sector_counts_hand_computed():
    # car 5 m ahead (front), car 20 m ahead (front, outer ring only), pedestrian 12 m to the
    # left (90° exactly: sector 2 back-left, as the QA converter assigns it), truck 10 m behind
    # (outside the class list: only in the all-classes column)
    boxes = np.array([[5, 0], [20, 0], [0, 12], [-10, 0]], np.float64)
    labels = np.array([0, 0, 1, -1])
    c = sector_counts(boxes, labels, num_classes=3, ranges=(15.0, 30.0))
    assert c.shape == (6, 2, 4) and c.dtype == np.float32
    expected = np.zeros((6, 2, 4), np.float32)
    expected[0, 0, 0], expected[0, 1, 0] = 1, 2
    expected[0, 0, 3], expected[0, 1, 3] = 1, 2
    expected[2, :, 1], expected[2, :, 3] = 1, 1
    expected[3, :, 3] = 1
    assert np.array_equal(c, expected)
    assert not sector_counts(np.zeros((0, 7)), np.zeros(0, int), 3, (15.0,)).any()


def test_sector_counts_agree_with_the_count_answers_of_the_converter():
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(-35, 35, (40, 2)), np.zeros((40, 5))], 1)
    names = rng.choice(['car', 'pedestrian', 'barrier', 'truck'], 40)
    frame = dict(boxes=boxes, names=names, moving=np.zeros(40, bool))
    for rot in (0.0, 135.0):
        rows = {r['question']: r for r in generate_frame_qa(frame, rot)}
        obj = LoadBEVObjects(CLASSES)(dict(frame_boxes=boxes.tolist(), frame_names=list(names),
                                           rot_deg=rot, qa_id='x'))
        c = sector_counts(obj['gt_bboxes_bev'], obj['gt_labels'], 3, (15.0, 30.0))
        for v, view in enumerate(('front', 'front-left', 'back-left', 'back', 'back-right',
                                  'front-right')):
            for j, r in enumerate((15, 30)):
                for k, plural in enumerate(('cars', 'pedestrians', 'barriers', 'objects')):
                    q = f'How many {plural} are to the {view} of the ego car within {r} m?'
                    assert int(rows[q]['answer']) == c[v, j, k], (rot, q)


def test_load_bev_objects_rotates_like_the_points_and_names_bad_rows():
    t = LoadBEVObjects(CLASSES)
    out = t(dict(frame_boxes=[[5.0, 0, 0, 4, 2, 1.5, 0.0]], frame_names=['car'], rot_deg=90.0,
                 qa_id='q1'))
    assert np.allclose(out['gt_bboxes_bev'][0, :2], [0.0, 5.0], atol=1e-5)
    assert math.isclose(float(out['gt_bboxes_bev'][0, 6]), math.pi / 2, rel_tol=1e-6)
    assert out['gt_labels'].tolist() == [0]
    with pytest.raises(KeyError, match='q2.*frame_boxes'):
        t(dict(qa_id='q2'))
    with pytest.raises(ValueError, match='q3: 1 frame boxes but 0 names'):
        t(dict(frame_boxes=[[0] * 7], frame_names=[], qa_id='q3'))


def test_real_index_carries_rotated_boxes_into_the_data_sample():
    from mmengine.registry import init_default_scope
    init_default_scope('projects')
    ds = MixedNuDataset(ann_file='lidar_llm/nuscenes_qa/nuscenes_qa_val.json',
                        data_root=osp.join(ROOT, 'data'),
                        pipeline=[dict(type='LoadBEVObjects', classes=list(CLASSES)),
                                  dict(type='PackLidarQAInputs')])
    i = next(k for k in range(len(ds)) if ds.get_data_info(k)['question'] ==
             'How many cars are to the front of the ego car within 30 m?'
             and ds.get_data_info(k)['rot_deg'] == 90.0)
    s = ds[i]['data_samples']
    c = sector_counts(s.gt_bboxes_bev, s.gt_labels, 3, (15.0, 30.0))
    assert c[0, 1, 0] == int(s.answer)
    assert s.gt_bboxes_bev.shape[1] == 7 and len(s.gt_labels) == len(s.gt_bboxes_bev)


def _sample(boxes, labels, token):
    s = LidarQADataSample(metainfo=dict(sample_token=token))
    s.question, s.answer = 'How many cars are to the front of the ego car within 15 m?', '1'
    s.gt_bboxes_bev = np.concatenate([np.asarray(boxes, np.float32),
                                      np.zeros((len(boxes), 5), np.float32)], 1)
    s.gt_labels = labels
    return s


def test_head_loss_is_the_poisson_nll_and_falls_when_fitted():
    torch.manual_seed(0)
    head = SectorCountHead(in_dim=16, num_classes=3, ranges=(15.0, 30.0))
    samples = [_sample([[5, 0], [0, 12]], [0, 1], 'a'), _sample([[-8, 1]], [2], 'b')]
    queries = torch.randn(2, 12, 16)
    log_rate = head(queries)
    assert log_rate.shape == (2, 6, 2, 4)
    target = head.targets(samples)
    expected = (log_rate.exp() - target * log_rate).mean()
    assert torch.allclose(head.loss(queries, samples)['loss_sector_count'], expected)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = head.loss(queries, samples)['loss_sector_count']
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss)
    # the optimum of the Poisson NLL is the count itself
    assert torch.allclose(head(queries).exp(), target, atol=0.15)
    with pytest.raises(ValueError, match='view groups'):
        head(torch.randn(1, 10, 16))
    with pytest.raises(KeyError, match='LoadBEVObjects'):
        head.targets([LidarQADataSample()])


def test_lidar_llm_adds_the_aux_loss_once_per_distinct_sample():
    from mmengine.registry import init_default_scope

    from projects.registry import MODELS
    from tests.test_lidar_llm.conftest import tiny_model_cfg
    init_default_scope('projects')
    torch.manual_seed(0)
    m = MODELS.build(tiny_model_cfg(aux_heads=[
        dict(type='SectorCountHead', in_dim=32, num_classes=3),
        dict(type='BEVSemanticHead', in_channels=8, num_classes=3, feat_channels=8),
        dict(type='CenterHeatmapHead', in_channels=8, num_classes=3, feat_channels=8,
             bev_range=(-10, -10, 10, 10))]))
    samples = [_sample([[5, 0]], [0], 'a'), _sample([[-8, 1]], [2], 'b'),
               _sample([[5, 0]], [0], 'a')]
    for s in samples:
        s.gt_bev_semantic = np.full((8, 8), 3)
    bev = torch.randn(3, 8, 8, 8)
    bev[2] = bev[0]
    seen = []
    for head in m.aux_heads:
        def spy(x, s, orig=head.loss):
            seen.append((tuple(x.shape), [y.metainfo['sample_token'] for y in s]))
            return orig(x, s)
        head.loss = spy
    losses = m(dict(bev=bev), samples, 'loss')
    # the query head gets the VAT output, the BEV heads the BEV map, once per distinct sample
    assert seen == [((2, 12, 32), ['a', 'b']), ((2, 8, 8, 8), ['a', 'b']),
                    ((2, 8, 8, 8), ['a', 'b'])]
    assert set(losses) == {'loss_answer', 'loss_text_only', 'loss_sector_count',
                           'loss_bev_semantic', 'loss_heatmap'}
    assert torch.allclose(losses['loss_bev_semantic'],
                          m.aux_heads[1].loss(bev[:2], samples[:2])['loss_bev_semantic'])
    losses['loss_sector_count'].backward()
    assert m.vat_lidar.queries.grad is not None and m.vat_lidar.queries.grad.abs().sum() > 0
    assert 'aux_heads.0.mlp.0.weight' in m.trainable_parameter_names()
