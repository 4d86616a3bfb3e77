"""Dense BEV supervision of the LiDAR branch: LoadBEVSemantics, BEVSemanticHead,
CenterHeatmapHead (targets and losses against hand-computed values; labels rotate with the
points)."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn

from projects.lidar_llm.datasets.grounded_qa import (LIDARSEG_CLASS_NAMES, load_seq_frames,
                                                     points_in_boxes_bev)
from projects.lidar_llm.models.aux_heads import (BEVSemanticHead, CenterHeatmapHead,
                                                 centre_heatmap)
from projects.lidar_llm.structures import LidarQADataSample
from projects.lidar_llm.transforms import LoadBEVSemantics, LoadLiDARPoints, bev_semantic_map

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('car', 'pedestrian', 'barrier')


def test_bev_semantic_map_hand_computed():
    # 2 x 2 cells of 2 m over [-2, 2]^2; row along y, column along x (PointPillarsScatter)
    xy = np.array([[1, 1], [1.5, 1.2], [0.5, 1.9], [1.1, 0.1],     # cell (1, 1)
                   [-1, 1],                                        # cell (1, 0)
                   [1, -1], [1.2, -1.5], [0.3, -0.3],              # cell (0, 1)
                   [5, 5]])                                        # outside the map
    labels = np.array([0, 3, 3, 3,
                       3,
                       1, 0, 0,
                       0])
    m = bev_semantic_map(xy, labels, 3, (-2, -2, 2, 2), (2, 2))
    # (1, 1): one car point among three background points -> car (objects take priority);
    # (1, 0): background only; (0, 1): 2 car vs 1 pedestrian -> car; (0, 0): no point -> -1
    assert m.dtype == np.int64 and m.tolist() == [[-1, 0], [3, 0]]
    m2 = bev_semantic_map(xy, labels, 3, (-2, -2, 2, 2), (2, 2), min_points=2)
    assert m2.tolist() == [[-1, 0], [3, 3]]


def _frame_results(rot, k=0):
    frame = load_seq_frames(osp.join(ROOT, 'data', 'nuscenes_seq'), ROOT)[k]
    res = dict(lidar_path=osp.join(ROOT, frame['lidar_path']), lidar2ego=frame['lidar2ego'],
               rot_deg=rot, seman_path=osp.join(ROOT, frame['seman_path']), qa_id='q',
               frame_boxes=frame['boxes'].tolist(), frame_names=list(frame['names']))
    return LoadLiDARPoints(5, 4)(res)


def test_labels_rotate_with_the_points_on_a_real_keyframe():
    t = LoadBEVSemantics(CLASSES, bev_range=(-40, -40, 40, 40), grid_size=(50, 50))
    m0 = t(_frame_results(0.0))['gt_bev_semantic']
    m90 = t(_frame_results(90.0))['gt_bev_semantic']
    # a 90 deg counter-clockwise turn takes (x, y) to (-y, x): cell (row i, column j) goes to
    # (row j, column W-1-i), i.e. the map turns clockwise as an array
    same = (np.rot90(m0, k=-1) == m90).mean()
    assert same > 0.995, same
    assert (m0 == 0).sum() > 5 and (m0 == 2).sum() > 20  # cars and barriers are labelled
    # lidarseg labels and labels from the annotated boxes mostly agree on object cells
    res = _frame_results(90.0)
    res.pop('seman_path')
    mb = t(res)['gt_bev_semantic']
    obj = (m90 >= 0) & (m90 < 3)
    assert (mb[obj] == m90[obj]).mean() > 0.8


def test_load_bev_semantics_errors_name_the_file_and_the_row(tmp_path):
    t = LoadBEVSemantics(CLASSES, bev_range=(-40, -40, 40, 40), grid_size=(50, 50))
    bad = tmp_path / 'pc_seman_0.npy'
    np.save(bad, np.zeros((5, 4)))
    res = dict(points=np.zeros((7, 4), np.float32), seman_path=str(bad), qa_id='q7')
    with pytest.raises(ValueError, match='pc_seman_0.npy: 5 labels for a sweep of 7'):
        t(res)
    with pytest.raises(KeyError, match='q8.*LoadLiDARPoints'):
        t(dict(qa_id='q8'))
    with pytest.raises(KeyError, match='q9: no seman_path'):
        t(dict(points=np.zeros((3, 4), np.float32), qa_id='q9'))
    # box fallback: the point inside the (rotated) car box is a car, the other background
    pts = np.array([[0.0, 5.0, 0.5, 0], [5.0, 0.0, 0.5, 0]], np.float32)
    out = t(dict(points=pts, frame_boxes=[[5.0, 0, 0, 4, 2, 1.5, 0.0]], frame_names=['car'],
                 rot_deg=90.0, qa_id='q'))['gt_bev_semantic']
    assert out[28, 25] == 0 and out[25, 28] == 3  # y=5 -> row 28; x=5 -> column 28
    assert LIDARSEG_CLASS_NAMES[4] == 'car' and LIDARSEG_CLASS_NAMES[11] == 'driveable_surface'
    assert points_in_boxes_bev(pts[:, :3], np.array([[0, 5.0, 0, 4, 2, 1.5, math.pi / 2]])
                               ).tolist() == [0, -1]


def test_bev_semantic_head_focal_loss_hand_computed():
    head = BEVSemanticHead(in_channels=2, num_classes=2)
    head.net = nn.Identity()  # the "BEV map" below is the logits themselves
    logits = torch.tensor([[[[2.0, -1.0, 0.0]], [[-3.0, 0.5, 1.0]]]])  # (1, K=2, 1, 3)
    s = LidarQADataSample()
    s.gt_bev_semantic = np.array([[0, 2, -1]])  # class 0 | background | empty (ignored)
    loss = head.loss(logits, [s])['loss_bev_semantic']

    def fl(x, t, a=0.25, g=2.0):
        p = 1 / (1 + math.exp(-x))
        pt, at = (p, a) if t else (1 - p, 1 - a)
        return -at * (1 - pt) ** g * math.log(pt)
    expected = (fl(2.0, 1) + fl(-3.0, 0) + fl(-1.0, 0) + fl(0.5, 0)) / 1  # 1 object cell
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    with pytest.raises(ValueError, match='grid_size'):
        head.loss(torch.zeros(1, 2, 2, 2), [s])
    with pytest.raises(KeyError, match='LoadBEVSemantics'):
        head.loss(logits, [LidarQADataSample()])


def test_centre_heatmap_and_its_gaussian_focal_loss_hand_computed():
    # 10 x 10 cells of 2 m over [-10, 10]^2; a 1 m car at (3, -5) is in column 6, row 2
    heat = centre_heatmap(np.array([[3.0, -5.0, 0, 1.0, 1.0, 1.5, 0]]), np.array([0]), 2,
                          (-10, -10, 10, 10), (10, 10), min_radius=1)
    assert heat.shape == (2, 10, 10) and not heat[1].any()
    assert heat[0, 2, 6] == 1 and heat[0].eq(1).sum() == 1
    # radius 1: 3 x 3 Gaussian with sigma = 3 / 6
    assert math.isclose(float(heat[0, 2, 7]), math.exp(-2), rel_tol=1e-5)
    assert math.isclose(float(heat[0, 3, 7]), math.exp(-4), rel_tol=1e-5)
    assert heat[0].gt(0).sum() == 9

    head = CenterHeatmapHead(in_channels=2, num_classes=2, bev_range=(-10, -10, 10, 10))
    head.net = nn.Identity()
    logits = torch.full((1, 2, 10, 10), -2.0)
    logits[0, 0, 2, 6] = 1.0
    s = LidarQADataSample()
    s.gt_bboxes_bev = np.array([[3.0, -5.0, 0, 1.0, 1.0, 1.5, 0]], np.float32)
    s.gt_labels = [0]
    loss = head.loss(logits, [s])['loss_heatmap']
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = -(torch.log(p) * (1 - p) ** 2)[heat.unsqueeze(0) == 1].sum()
    neg = -(torch.log(1 - p) * p ** 2 * (1 - heat.unsqueeze(0)) ** 4)[heat.unsqueeze(0) < 1].sum()
    assert torch.allclose(loss, (pos + neg) / 1)
    det = head.detect(logits, score_thr=0.5)[0]
    assert det['labels'].tolist() == [0] and np.allclose(det['xy'], [[3.0, -5.0]])


def test_bev_heads_fit_a_fixed_map():
    torch.manual_seed(0)
    bev = torch.randn(2, 4, 6, 6)
    s = []
    for b in range(2):
        x = LidarQADataSample()
        x.gt_bev_semantic = np.random.default_rng(b).integers(-1, 3, (6, 6))
        x.gt_bboxes_bev = np.array([[2.0 - 4 * b, 1.0, 0, 1, 1, 1, 0]], np.float32)
        x.gt_labels = [b]
        s.append(x)
    for head, key in ((BEVSemanticHead(4, 2, feat_channels=16), 'loss_bev_semantic'),
                      (CenterHeatmapHead(4, 2, (-6, -6, 6, 6), feat_channels=16), 'loss_heatmap')):
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        first = float(head.loss(bev, s)[key])
        for _ in range(60):
            loss = head.loss(bev, s)[key]
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert float(loss) < 0.5 * first, (key, first, float(loss))


def test_real_index_rows_carry_the_lidarseg_file_of_their_keyframe():
    from mmengine.registry import init_default_scope

    from projects.lidar_llm.datasets import MixedNuDataset
    init_default_scope('projects')
    ds = MixedNuDataset(ann_file='lidar_llm/nuscenes_qa/nuscenes_qa_val.json',
                        data_root=osp.join(ROOT, 'data'), max_samples=1, pipeline=[])
    info = ds.get_data_info(0)
    assert info['seman_path'].endswith(osp.join('nuscenes_seq', 'pc_seman', 'pc_seman_9.npy'))
    assert info['lidar_path'].endswith(osp.join('nuscenes_seq', 'pc', 'pc9.npy'))


def test_readout_answer_head_loss_hand_computed():
    from projects.lidar_llm.models.aux_heads import ReadoutAnswerHead
    head = ReadoutAnswerHead(in_dim=2)
    head.mlp = nn.Identity()  # pooled readout = (count log-rate, existence logit)
    readout = torch.tensor([[[0.5, 9.0], [1.5, 9.0]],      # count row: log-rate 1.0
                            [[9.0, -1.0], [9.0, 3.0]],     # exist row: logit 1.0
                            [[4.0, 4.0], [4.0, 4.0]]])     # object row: no target
    rows = []
    for ttype, answer, count in (('count', '3', 3), ('exist', 'no', None),
                                 ('object', 'car', None)):
        s = LidarQADataSample(metainfo=dict(template_type=ttype, qa_id=ttype))
        s.answer = answer
        if count is not None:
            s.gt_count = count
        rows.append(s)
    loss = head.loss(readout, rows)['loss_readout_answer']
    expected = (math.exp(1.0) - 3 * 1.0) + math.log(1 + math.exp(1.0))  # Poisson + BCE(no)
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    # no count / exist row: zero loss that still backpropagates
    assert float(head.loss(readout[2:], rows[2:])['loss_readout_answer']) == 0.0
    bad = LidarQADataSample(metainfo=dict(template_type='exist', qa_id='q5'))
    bad.answer = 'maybe'
    with pytest.raises(ValueError, match='q5'):
        head.targets([bad])
    with pytest.raises(KeyError, match='q6'):
        head.targets([LidarQADataSample(metainfo=dict(template_type='count', qa_id='q6'))])
