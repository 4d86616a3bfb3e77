"""Video world data: sources, clip datasets, sequence-consistent augmentation, errors, and the
value range from the loader through the model to the metric."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from video_world_helpers import build_tiny, randomize_zero_inits  # noqa: F401 (registers)
from projects.common.metrics import VideoPredictionMetric
from projects.video_world.datasets import (BridgeVideoDataset, GenericVideoDataset,
                                           KittiRawVideoDataset, NuScenesVideoDataset,
                                           aggregate_actions, read_generic_scene)
from projects.video_world.datasets.sampler import CurriculumSampler
from projects.video_world.transforms import VideoAugmentation

torch.set_num_threads(1)
init_default_scope('projects')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BRIDGE = osp.join(ROOT, 'data/bridge')
BRIDGE_FILES = ['bridge_dataset-train.tfrecord-00000-of-00001',
                'bridge_dataset-val.tfrecord-00000-of-00001']
KITTI = osp.join(ROOT, 'data/kitti_tiny')
NUSC = osp.join(ROOT, 'tests/data/nuscenes_front')
PIPE = [dict(type='LoadVideoFrames'), dict(type='ResizeVideo', size=(16, 16)),
        dict(type='PackVideoInputs')]


def _write_scene(root, name, n=5, actions_rows=None, skip=None, dim=2):
    import cv2
    d = osp.join(root, name, 'images')
    os.makedirs(d)
    rng = np.random.default_rng(0)
    for i in range(n):
        if i == skip:
            continue
        cv2.imwrite(osp.join(d, f'{i:06d}.jpg'), rng.integers(0, 255, (12, 16, 3), np.uint8))
    rows = n if actions_rows is None else actions_rows
    np.save(osp.join(root, name, 'actions.npy'),
            np.arange(rows * dim, dtype=np.float32).reshape(rows, dim))
    with open(osp.join(root, name, 'metadata.json'), 'w') as f:
        json.dump(dict(fps=10, action_names=['speed', 'steer'][:dim]), f)
    return osp.join(root, name)


def test_bridge_split_is_by_episode_and_clips_use_recorded_actions():
    kw = dict(data_root=BRIDGE, tfrecord_files=BRIDGE_FILES, pipeline=PIPE)
    train = BridgeVideoDataset(split='train', **kw)
    val = BridgeVideoDataset(split='val', test_mode=True, **kw)
    tr_eps, va_eps = set(train.metainfo['episodes']), set(val.metainfo['episodes'])
    assert len(tr_eps) == 20 and len(va_eps) == 5 and not tr_eps & va_eps
    assert len(train) == 60 and len(val) == 15  # 3 recorded views per episode
    sample = val[0]
    assert sample['inputs']['frames'].dtype == torch.uint8
    assert sample['inputs']['frames'].shape == (10, 3, 16, 16)
    assert sample['inputs']['actions'].shape == (9, 7)
    # the recorded robot actions of steps 0..8 of the episode
    from projects.common.utils.rlds import read_rlds_episodes
    from projects.video_world.datasets.sources import bridge_episode_key
    eps = {bridge_episode_key(e): e for e in read_rlds_episodes(osp.join(BRIDGE, BRIDGE_FILES[0]))}
    info = val.get_data_info(0)
    ep = eps[info['sequence'].rsplit('/', 1)[0]]
    np.testing.assert_allclose(info['actions'], ep['action'][:9])
    # shuffled actions come from a clip of another sequence
    partner = val.partner_index(0)
    assert val.get_data_info_raw(partner)['sequence'] != info['sequence']
    np.testing.assert_allclose(info['shuffled_actions'], val.get_data_info_raw(partner)['actions'])


def test_aggregate_actions_with_frame_skip():
    acts = np.arange(12, dtype=np.float32).reshape(6, 2)
    out = aggregate_actions(acts, start=1, skip=2, steps=2, reduce=['sum', 'last'])
    np.testing.assert_allclose(out, [[2 + 4, 5], [6 + 8, 9]])
    np.testing.assert_allclose(aggregate_actions(acts, 0, 3, 2, 'mean'), [[2, 3], [8, 9]])
    with pytest.raises(ValueError, match='action_reduce'):
        aggregate_actions(acts, 0, 1, 1, 'median')


def test_kitti_raw_actions_from_oxts_hand_computed():
    ds = KittiRawVideoDataset(data_root=KITTI, sequence_length=4, pipeline=PIPE)
    assert len(ds) == 4  # 7 frames, clips of 4, stride 1
    drive = osp.join(KITTI, '2011_09_26/2011_09_26_drive_0023_sync/oxts/data')
    vals = []
    for i in (0, 1):
        with open(osp.join(drive, f'{i:010d}.txt')) as f:
            v = list(map(float, f.read().split()))
        vals.append((v[8], v[22]))  # vf, wu
    expected = [(vals[0][0] + vals[1][0]) / 2, (vals[0][1] + vals[1][1]) / 2]
    np.testing.assert_allclose(ds.get_data_info(0)['actions'][0], expected, rtol=1e-6)
    assert ds.metainfo['action_names'] == ['forward_speed', 'yaw_rate']
    assert ds[0]['inputs']['frames'].shape == (4, 3, 16, 16)


def test_nuscenes_devkit_speed_and_curvature_from_ego_pose():
    ds = NuScenesVideoDataset(data_root=NUSC, version='v1.0-tiny', sequence_length=3,
                              scenes=['scene-front-a'], pipeline=PIPE)
    assert len(ds) == 2  # 4 keyframes, clips of 3
    # scene-front-a drives at 5 m/s with a yaw rate of 0.02 rad/s: curvature 0.004 1/m
    np.testing.assert_allclose(ds.get_data_info(0)['actions'], [[5.0, 0.004], [5.0, 0.004]],
                               rtol=1e-4)
    assert ds[0]['inputs']['frames'].shape == (3, 3, 16, 16)


def test_generic_layout_reads_scenes_and_names_bad_files(tmp_path):
    root = str(tmp_path)
    good = _write_scene(root, 'scene_a', n=5)
    rec = read_generic_scene(good)
    assert len(rec['img_paths']) == 5 and rec['actions'].shape == (4, 2)
    ds = GenericVideoDataset(data_root=root, scenes=['scene_a'], sequence_length=3,
                             pipeline=PIPE)
    assert len(ds) == 3 and ds[0]['inputs']['actions'].shape == (2, 2)
    bad = _write_scene(root, 'scene_b', n=5, actions_rows=3)
    with pytest.raises(ValueError, match=r'scene_b/actions\.npy'):
        read_generic_scene(bad)
    gap = _write_scene(root, 'scene_c', n=5, skip=2)
    with pytest.raises(FileNotFoundError, match=r'scene_c/images/000002\.jpg'):
        read_generic_scene(gap)
    # a frame that disappears after indexing: the loader names the file
    os.remove(osp.join(good, 'images', '000001.jpg'))
    with pytest.raises(FileNotFoundError, match=r'scene_a/images/000001\.jpg'):
        ds[0]


def test_augmentation_is_identical_across_the_frames_of_a_clip_and_flip_negates_actions():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (24, 32, 3), np.uint8)
    clip = np.stack([frame] * 6)
    aug = VideoAugmentation(brightness=0.3, contrast=0.3, crop_scale=(0.5, 0.9), flip_prob=1.0,
                            flip_action_dims=[1])
    actions = np.tile(np.array([[2.0, 0.5, -1.0]], np.float32), (5, 1))
    np.random.seed(3)
    out = aug.transform(dict(frames=clip.copy(), actions=actions.copy(),
                             shuffled_actions=actions.copy()))
    assert out['frames'].shape == clip.shape
    for t in range(1, 6):
        np.testing.assert_array_equal(out['frames'][t], out['frames'][0])
    assert not np.array_equal(out['frames'][0], frame)
    np.testing.assert_allclose(out['actions'][:, 1], -0.5)
    np.testing.assert_allclose(out['actions'][:, [0, 2]], actions[:, [0, 2]])
    np.testing.assert_allclose(out['shuffled_actions'][:, 1], -0.5)
    # a flip alone is an exact mirror
    mirror = VideoAugmentation(brightness=0, contrast=0, crop_scale=(1, 1), flip_prob=1.0)
    res = mirror.transform(dict(frames=clip.copy(), actions=actions.copy()))
    np.testing.assert_array_equal(res['frames'][2], frame[:, ::-1])
    np.testing.assert_allclose(res['actions'], actions)  # no flip_action_dims


def test_curriculum_sampler_starts_with_the_calmest_clips():
    class _DS:
        def __len__(self):
            return 10

        def motion_magnitudes(self):
            return np.array([5, 1, 9, 0, 7, 3, 8, 2, 6, 4], dtype=float)

    sampler = CurriculumSampler(_DS(), start_fraction=0.3, ramp_passes=2, seed=0)
    it = iter(sampler)
    first = [next(it) for _ in range(3)]
    assert sorted(first) == [1, 3, 7]  # the three least-moving clips
    second = [next(it) for _ in range(sampler.pool_size(1))]
    assert sorted(second) == sorted([3, 1, 7, 5, 9, 0, 8][:sampler.pool_size(1)])
    assert sampler.pool_size(2) == 10


def test_value_range_end_to_end_loader_model_metric():
    """uint8 frames from the loader -> [-1, 1] at the preprocessor -> model outputs in
    [-1, 1] -> metric in [0, 1]: copy-last PSNR computed by hand from the raw uint8 frames."""
    from mmengine.dataset import pseudo_collate
    ds = BridgeVideoDataset(data_root=BRIDGE, tfrecord_files=BRIDGE_FILES[:1], split='val',
                            views=('image_0',), test_mode=True, pipeline=PIPE,
                            sequence_length=5)
    model = build_tiny(dynamics=dict(type='FiLMRecurrentDynamics', latent_dim=16, action_dim=7,
                                     hidden_dim=16, num_layers=1, dropout=0.0))
    model.eval()
    batch = pseudo_collate([ds[0], ds[1]])
    raw = torch.stack(batch['inputs']['frames'])
    data = model.data_preprocessor(batch)
    frames = data['inputs']['frames']
    assert frames.min() >= -1 and frames.max() <= 1 and frames.min() < -0.5
    with torch.no_grad():
        samples = model(**data, mode='predict')
    for s in samples:
        assert s.pred_frames.min() >= -1 and s.pred_frames.max() <= 1
        assert s.pred_frames_shuffled.shape == s.pred_frames.shape
    metric = VideoPredictionMetric()
    metric.process(batch, [s.to_dict() for s in samples])
    res = metric.compute_metrics(metric.results)
    f = raw.double() / 255.0
    mse = ((f[:, 1:2] - f[:, 2:]) ** 2).mean(dim=(2, 3, 4))  # copy of frame 1 vs frames 2..4
    expected = (10 * torch.log10(1 / mse)).mean(0)
    for k in range(3):
        assert res[f'copy_psnr_step{k + 1}'] == pytest.approx(float(expected[k]), abs=2e-3)
