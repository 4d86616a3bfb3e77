"""Grounded QA generation, MixedNuDataset errors, transforms, samplers, QA metric."""
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch

from projects.common.metrics.text_metric import (DrivingQAMetric, answer_prior_table,
                                                 match_f1, normalize_answer, parse_box_answer,
                                                 question_template)
from projects.lidar_llm.datasets import (LengthGroupedSampler, MixedNuDataset,
                                         SampleGroupedSampler)
from projects.lidar_llm.datasets.grounded_qa import (format_box_answer, generate_frame_qa,
                                                     rotate_boxes, view_of)
from projects.lidar_llm.structures import LidarQADataSample
from projects.lidar_llm.transforms import (LoadBEVFeature, LoadLiDARPoints,
                                           LoadMultiViewImages, PackLidarQAInputs)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _frame():
    # ego frame: a car 5 m ahead, a pedestrian 12 m to the left (moving), a barrier behind
    boxes = np.array([[5.0, 0.0, 0.0, 4.5, 1.9, 1.6, 0.0],
                      [0.0, 12.0, 0.0, 0.7, 0.7, 1.8, math.pi / 2],
                      [-20.0, 1.0, 0.0, 2.4, 0.7, 1.0, 0.0]])
    return dict(boxes=boxes, names=np.array(['car', 'pedestrian', 'barrier']),
                moving=np.array([False, True, False]))


def test_view_and_rotation_of_boxes():
    f = _frame()
    assert view_of(f['boxes'][:, :2]).tolist() == [0, 2, 3]  # 90° exactly -> back-left
    r = rotate_boxes(f['boxes'], 90.0)
    assert np.allclose(r[0, :2], [0.0, 5.0]) and math.isclose(r[0, 6], math.pi / 2)


def test_generated_answers_follow_the_boxes_and_the_rotation():
    rows = {r['question']: r for r in generate_frame_qa(_frame(), 0.0)}
    assert rows['How many cars are to the front of the ego car within 15 m?']['answer'] == '1'
    assert rows['Is there a car to the back of the ego car within 15 m?']['answer'] == 'no'
    assert rows['How many objects are to the back of the ego car within 30 m?'][
        'gt_count'] == 1
    g = rows['Where is the closest object to the front of the ego car?']
    assert g['answer'] == 'car [5.0, 0.0, 4.5, 1.9, 0]' and g['gt_name'] == 'car'
    assert rows['Is the closest pedestrian to the back-left of the ego car moving or '
                'stopped?']['answer'] == 'moving'
    rot = {r['question']: r for r in generate_frame_qa(_frame(), 180.0)}
    assert rot['How many cars are to the back of the ego car within 15 m?']['answer'] == '1'
    assert rot['How many cars are to the front of the ego car within 15 m?']['answer'] == '0'


def _write_index(tmp_path, rows, frames=None):
    p = tmp_path / 'qa.json'
    p.write_text(json.dumps(dict(metainfo=dict(frames=frames or {}), data_list=rows)))
    return str(p)


def test_missing_feature_file_and_token_without_features_name_the_file(tmp_path):
    feats = tmp_path / 'bev'
    feats.mkdir()
    np.save(feats / 'tokA.npy', np.zeros((4, 8, 8), np.float16))
    rows = [dict(sample_token='tokA', question='q?', answer='a'),
            dict(sample_token='tokB', question='q?', answer='b', qa_id='row-b')]
    ann = _write_index(tmp_path, rows)
    with pytest.raises(FileNotFoundError, match=r"row-b.*'tokB'.*tokB\.npy"):
        MixedNuDataset(ann_file=ann, feature_dirs=[str(feats)], pipeline=[])
    ds = MixedNuDataset(ann_file=ann, feature_dirs=[str(feats)], pipeline=[],
                        max_samples=1)
    assert len(ds) == 1 and ds[0]['bev_path'].endswith('tokA.npy')
    # a feature file that disappears / has the wrong shape
    load = LoadBEVFeature(expected_shape=(4, 8, 8))
    with pytest.raises(FileNotFoundError, match='gone.npy'):
        load(dict(bev_path=str(feats / 'gone.npy'), sample_token='x'))
    np.save(feats / 'bad.npy', np.zeros((3, 8, 8), np.float16))
    with pytest.raises(ValueError, match=r'bad\.npy.*\(3, 8, 8\)'):
        load(dict(bev_path=str(feats / 'bad.npy')))
    with pytest.raises(FileNotFoundError, match='nope.json'):
        MixedNuDataset(ann_file=str(tmp_path / 'nope.json'), pipeline=[])
    with pytest.raises(KeyError, match="no 'answer'"):
        MixedNuDataset(ann_file=_write_index(tmp_path, [dict(sample_token='t',
                                                              question='q')]), pipeline=[])


def test_bad_image_names_the_file(tmp_path):
    cams = ('CAM_FRONT', 'CAM_FRONT_LEFT', 'CAM_BACK_LEFT', 'CAM_BACK', 'CAM_BACK_RIGHT',
            'CAM_FRONT_RIGHT')
    src = osp.join(ROOT, 'data', 'drivelm', 'samples')
    paths = {}
    for c in cams:
        paths[c] = osp.join(src, c, sorted(__import__('os').listdir(osp.join(src, c)))[0])
    out = LoadMultiViewImages(img_size=(32, 48))(dict(image_paths=dict(paths)))
    assert out['imgs'].shape == (6, 3, 32, 48) and out['imgs'].dtype == np.uint8
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not a jpeg')
    paths['CAM_BACK'] = str(bad)
    with pytest.raises(ValueError, match='broken.jpg.*cannot be decoded'):
        LoadMultiViewImages()(dict(image_paths=dict(paths), sample_token='s'))


def test_real_index_points_and_packing():
    from mmengine.registry import init_default_scope
    init_default_scope('projects')
    ds = MixedNuDataset(ann_file='lidar_llm/nuscenes_qa/nuscenes_qa_val.json',
                        data_root=osp.join(ROOT, 'data'), max_samples=2,
                        pipeline=[dict(type='LoadLiDARPoints'), dict(type='PackLidarQAInputs')])
    item = ds[0]
    pts = item['inputs']['points']
    assert pts.ndim == 2 and pts.shape[1] == 4 and len(pts) > 10000
    s = item['data_samples']
    assert isinstance(s, LidarQADataSample) and s.question.endswith('?')
    assert s.metainfo['sample_token'].endswith('@r0')
    # the rotation of a row is applied to the points
    info = dict(ds.get_data_info(0))
    a = LoadLiDARPoints()(dict(info, rot_deg=0.0))['points']
    b = LoadLiDARPoints()(dict(info, rot_deg=90.0))['points']
    assert np.allclose(b[:, 0], -a[:, 1], atol=1e-4) and np.allclose(b[:, 1], a[:, 0],
                                                                     atol=1e-4)


class _Lens:
    def __init__(self, lengths, tokens=None):
        self.lengths = lengths
        self.tokens = tokens or [str(i % 5) for i in range(len(lengths))]

    def get_lengths(self):
        return self.lengths

    def get_data_info(self, i):
        return dict(sample_token=self.tokens[i])

    def __len__(self):
        return len(self.lengths)


def _pad_fraction(order, lengths, bs):
    pads = tot = 0
    for i in range(0, len(order), bs):
        b = [lengths[j] for j in order[i:i + bs]]
        pads += max(b) * len(b) - sum(b)
        tot += max(b) * len(b)
    return pads / tot


def test_length_grouped_sampler_reduces_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, size=400).tolist()
    s = LengthGroupedSampler(_Lens(lengths), batch_size=8, mega_batch_mult=50, seed=0)
    order = list(iter(s))
    assert sorted(order) == list(range(400))
    rand = rng.permutation(400).tolist()
    assert _pad_fraction(order, lengths, 8) < 0.5 * _pad_fraction(rand, lengths, 8)


def test_sample_grouped_sampler_batches_questions_of_few_samples():
    s = SampleGroupedSampler(_Lens([1] * 80), batch_size=8, questions_per_sample=4, seed=0)
    order = list(iter(s))
    assert sorted(order) == list(range(80))
    toks = [str(i % 5) for i in range(80)]
    for i in range(0, 80, 8):
        assert len({toks[j] for j in order[i:i + 8]}) <= 2
    with pytest.raises(ValueError, match='multiple of questions_per_sample'):
        SampleGroupedSampler(_Lens([1] * 8), batch_size=6, questions_per_sample=4)


def test_sample_grouped_sampler_groups_by_length():
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 60, size=400).tolist()  # 5 samples x 80 questions
    toks = [str(i % 5) for i in range(400)]
    kw = dict(batch_size=8, questions_per_sample=4, seed=0)
    grouped = list(iter(SampleGroupedSampler(_Lens(lengths), **kw)))
    plain = list(iter(SampleGroupedSampler(_Lens(lengths), group_by_length=False, **kw)))
    assert sorted(grouped) == sorted(plain) == list(range(400))
    for i in range(0, 400, 8):  # still 2 groups of 4 questions of one sample each
        batch = grouped[i:i + 8]
        assert len({toks[j] for j in batch[:4]}) == 1 and len({toks[j] for j in batch[4:]}) == 1
    assert _pad_fraction(grouped, lengths, 8) < 0.5 * _pad_fraction(plain, lengths, 8)


def test_qa_metric_hand_computed(tmp_path):
    train = [dict(question='How many cars are to the front?', answer='0'),
             dict(question='How many cars are to the front?', answer='0'),
             dict(question='How many cars are to the front?', answer='2'),
             dict(question='Is there a car to the front?', answer='yes')]
    p = tmp_path / 'train.json'
    p.write_text(json.dumps(dict(data_list=train)))
    m = DrivingQAMetric(prior_ann_file=str(p), language=False, meteor=False,
                        out_file=str(tmp_path / 'answers.json'))
    box = np.array([5.0, 0.0, 0.0, 4.5, 1.9, 1.6, 0.0], np.float32)

    def sample(q, a, pred, text, ttype, count=None, gt_box=None):
        s = LidarQADataSample(metainfo=dict(qa_id=q, template_type=ttype))
        s.question, s.answer, s.pred_answer, s.pred_answer_text_only = q, a, pred, text
        if count is not None:
            s.gt_count = count
        if gt_box is not None:
            s.gt_box = gt_box
        return s
    m.process({}, [sample('How many cars are to the front?', '3', '3', '0', 'count', 3),
                   sample('Is there a car to the front?', 'no', 'No.', 'yes', 'exist'),
                   sample('Where is the closest object?', format_box_answer('car', box),
                          'car [5.0, 0.0, 4.5, 1.9, 0]', 'truck [0, 0, 1, 1, 0]', 'grounding',
                          gt_box=box)])
    out = m.compute_metrics(m.results)
    assert out['EM'] == pytest.approx(100.0) and out['count_MAE'] == 0.0
    assert out['ground_BEV_IoU'] == pytest.approx(100.0, abs=0.1)
    assert out['text_only/EM'] == 0.0 and out['text_only/count_MAE'] == 3.0
    assert out['text_only/ground_BEV_IoU'] == 0.0  # no overlap with a 1 x 1 box at origin
    # prior: '0' for the count template, 'yes' for the exist template, type fallback
    assert out['answer_prior/count_MAE'] == 3.0 and out['answer_prior/EM/exist'] == 0.0
    rows = json.loads((tmp_path / 'answers.json').read_text())
    assert len(rows) == 3 and rows[0]['model'] == '3' and rows[0]['answer_prior'] == '0'


def test_text_helpers():
    assert normalize_answer('  Yes. ') == 'yes'
    assert question_template('What is <c1,CAM_BACK,1088.3,497.5> doing at 12 m?') == \
        'what is <obj> doing at <num> m'
    assert match_f1('<c1,CAM_BACK,1088.3,497.5>', '<c2,CAM_BACK,1090.0,500.0>') == \
        pytest.approx(1.0, abs=1e-6)
    assert match_f1('<c1,CAM_BACK,10.0,10.0>', '<c2,CAM_BACK,100.0,100.0>') < 1e-6
    pb = parse_box_answer('traffic cone [1.0, -2.0, 0.5, 0.4, 90]')
    assert pb['name'] == 'traffic_cone' and np.allclose(pb['box'][4], math.pi / 2)
    assert parse_box_answer('no idea') is None
    prior = answer_prior_table([dict(question='a 1', answer='x'), dict(question='a 2',
                                                                       answer='x')])
    assert prior['template'] == {'a <num>': 'x'}


@pytest.mark.parametrize('kind', ['length', 'sample'])
def test_samplers_put_short_batches_last(kind):
    """The dataloader re-cuts the flat index stream into batch_size chunks: every chunk but
    the last must be one of the sampler's length groups (a short batch in the middle would
    shift all later chunks)."""
    rng = np.random.default_rng(2)
    lengths = rng.integers(5, 60, size=403).tolist()  # 403 = 50 x 8 + 3; 5 samples, 81 rows
    if kind == 'length':
        s = LengthGroupedSampler(_Lens(lengths), batch_size=8, seed=0)
    else:
        s = SampleGroupedSampler(_Lens(lengths), batch_size=8, questions_per_sample=4, seed=0)
    batches = [b.tolist() for b in s._batches()]
    order = list(iter(s))
    chunks = [order[i:i + 8] for i in range(0, len(order), 8)]
    n_full = sum(len(b) == 8 for b in batches)
    assert all(len(b) == 8 for b in batches[:n_full])
    assert chunks[:n_full] == batches[:n_full]
