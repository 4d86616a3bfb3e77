"""Tests of the AerialWorld dataset, loading transforms and preprocessor.

Small sessions are written in the exact on-disk format of the contract
(``docs/aerialworld_data_and_model_contract.md``) into ``tmp_path``.
"""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.fileio import dump
from mmengine.logging import MMLogger
from torch.utils.data import DataLoader

from projects.aerialworld.datasets import PLATEAU_CLASSES, AerialWorldDataset
from projects.aerialworld.hooks import InvalidSampleReportHook
from projects.aerialworld.models.data_preprocessor import \
    OccupancyDataPreprocessor
from projects.aerialworld.transforms import (InvalidSampleError,
                                             LoadLidarSequence,
                                             LoadOccupancySequence,
                                             LoadPoseSequence,
                                             PackOccupancyInputs,
                                             RandomFlipOccupancy,
                                             mirror_poses_y)
from projects.registry import DATASETS, HOOKS, MODELS, TRANSFORMS

GRID = (6, 5, 4)
PIPELINE = [
    dict(type='LoadOccupancySequence'),
    dict(type='LoadPoseSequence'),
    dict(type='PackOccupancyInputs'),
]


def _pose_record(session_id, t, nested=False):
    """Pose JSON record of frame ``t``: yaw grows with t, moving along x."""
    yaw = 0.1 * t
    quat = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]  # w, x, y, z
    pos = [float(t), 2.0 * session_id, 30.0]
    vel = [1.0, 0.0, 0.0, 0.0, 0.0, 0.2]
    rec = dict(
        timestamp=0.5 * t,
        position=dict(x=pos[0], y=pos[1], z=pos[2]),
        orientation=dict(x=quat[1], y=quat[2], z=quat[3], w=quat[0]),
        velocity=dict(
            linear=dict(x=vel[0], y=vel[1], z=vel[2]),
            angular=dict(x=vel[3], y=vel[4], z=vel[5])))
    if not nested:
        rec['pose_13d'] = pos + quat + vel
    return rec


def occ_value(session_id, t):
    """Deterministic label volume of frame ``t`` of session ``session_id``."""
    vol = np.full(GRID, PLATEAU_CLASSES.index('free'), dtype=np.uint8)
    vol[:, :, 0] = 4  # terrain
    vol[t % GRID[0], session_id % GRID[1], 1] = 1  # a building voxel
    return vol


def write_sessions(root, sessions, grid=GRID, nested_pose=False,
                   ann_name='aerialworld_infos_train.pkl', extra_meta=None):
    """Write sessions in the on-disk format and an index; returns its path.

    Args:
        root (str): data_root.
        sessions (dict[str, int]): session name -> number of frames.
    """
    data_list = []
    for sid, (name, n) in enumerate(sessions.items()):
        for sub in ('occupancy', 'poses', 'lidar'):
            os.makedirs(osp.join(root, name, sub), exist_ok=True)
        for t in range(n):
            occ_rel = f'{name}/occupancy/{t:06d}_occupancy.npz'
            pose_rel = f'{name}/poses/{t:06d}.json'
            lidar_rel = f'{name}/lidar/{t:06d}_LIDAR.npy'
            np.savez_compressed(osp.join(root, occ_rel),
                                occupancy=occ_value(sid, t))
            with open(osp.join(root, pose_rel), 'w') as f:
                json.dump(_pose_record(sid, t, nested=nested_pose), f)
            np.save(osp.join(root, lidar_rel),
                    np.full((3 + t, 4), t, dtype=np.float32))
            data_list.append(
                dict(session=name, frame_idx=t, timestamp=0.5 * t,
                     occ_path=occ_rel, pose_path=pose_rel,
                     lidar_path=lidar_rel))
    meta = dict(dataset='unit', classes=PLATEAU_CLASSES, free_label=6,
                point_cloud_range=[-1.2, -1.0, 0, 1.2, 1.0, 4],
                voxel_size=[0.4, 0.4, 1.0], grid_size=list(grid),
                z_reference='ground', frame_rate_hz=2.0, version='1.0')
    meta.update(extra_meta or {})
    ann = osp.join(root, ann_name)
    dump(dict(metainfo=meta, data_list=data_list), ann)
    return ann


def build(root, ann, **kwargs):
    cfg = dict(type='AerialWorldDataset', ann_file=ann, data_root=str(root),
               pipeline=PIPELINE, num_history=2, num_future=2)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_windows_never_cross_sessions(tmp_path):
    ann = write_sessions(str(tmp_path), {'drone_a': 7, 'drone_b': 5,
                                         'rover_c': 3})
    ds = build(tmp_path, ann)
    assert isinstance(ds, AerialWorldDataset)
    # T = 4: 7 - 3 = 4 windows, 5 - 3 = 2, session of 3 frames: none.
    assert len(ds) == 6
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert len({p.split(os.sep)[-3] for p in info['occ_paths']}) == 1
        assert all(info['session'] in p for p in info['pose_paths'])
        assert np.all(np.diff(info['frame_indices']) == 1)
        assert info['sample_idx'] == i
        assert info['free_label'] == 6 and info['num_classes'] == 7
        assert info['grid_size'] == list(GRID)
        assert osp.isabs(info['occ_paths'][0])
        assert info['timestamps'] == [0.5 * f for f in info['frame_indices']]
    sessions = [ds.get_data_info(i)['session'] for i in range(len(ds))]
    assert sessions == ['drone_a'] * 4 + ['drone_b'] * 2

    # frame_interval=2 -> span 7; window_stride=2 on session a (7 frames).
    ds2 = build(tmp_path, ann, frame_interval=2)
    assert len(ds2) == 1
    assert ds2.get_data_info(0)['frame_indices'] == [0, 2, 4, 6]
    ds3 = build(tmp_path, ann, window_stride=2)
    assert len(ds3) == 2 + 1
    assert [ds3.get_data_info(i)['frame_indices'][0]
            for i in range(3)] == [0, 2, 0]
    ds4 = build(tmp_path, ann, max_windows=3)
    assert [ds4.get_data_info(i)['frame_indices'][0]
            for i in range(3)] == [0, 2, 1]  # windows 0, 2(3 rounded), 5


def test_splits_by_session(tmp_path):
    root = str(tmp_path)
    train = write_sessions(root, {'s0': 5, 's1': 4},
                           ann_name='aerialworld_infos_train.pkl')
    val = write_sessions(root, {'s0': 5, 's1': 4},
                         ann_name='aerialworld_infos_val.json')
    tr = build(root, train, sessions=['s0'])
    va = build(root, val, sessions=['s1'], test_mode=True)
    assert {tr.get_data_info(i)['session'] for i in range(len(tr))} == {'s0'}
    assert {va.get_data_info(i)['session'] for i in range(len(va))} == {'s1'}
    assert len(tr) == 2 and len(va) == 1
    with pytest.raises(ValueError, match='not in the index'):
        build(root, train, sessions=['nope'])


def test_index_validation_errors(tmp_path):
    root = str(tmp_path)
    ann = write_sessions(root, {'a': 5})
    with pytest.raises(ValueError, match='expected_grid_size') as err:
        build(root, ann, expected_grid_size=[200, 200, 121])
    assert ann in str(err.value)
    with pytest.raises(ValueError, match='expected_classes'):
        build(root, ann, expected_classes=('a', 'b'))
    build(root, ann, expected_classes=7, expected_grid_size=GRID)

    # Non-contiguous sessions and non-consecutive frames name the index.
    from mmengine.fileio import load
    idx = load(ann)
    bad = dict(idx, data_list=idx['data_list'][:2] + idx['data_list'][3:])
    dump(bad, osp.join(root, 'gap.pkl'))
    with pytest.raises(ValueError, match='non-consecutive') as err:
        build(root, osp.join(root, 'gap.pkl'))
    assert 'gap.pkl' in str(err.value)
    ann2 = write_sessions(root, {'a': 3, 'b': 3}, ann_name='two.pkl')
    idx = load(ann2)
    dl = idx['data_list']
    dump(dict(idx, data_list=dl[:2] + dl[3:] + dl[2:3]),
         osp.join(root, 'mixed.pkl'))
    with pytest.raises(ValueError, match='not contiguous'):
        build(root, osp.join(root, 'mixed.pkl'))
    dump(dict(idx, data_list=[{'session': 'a'}]), osp.join(root, 'k.pkl'))
    with pytest.raises(ValueError, match='lacks keys'):
        build(root, osp.join(root, 'k.pkl'))
    with pytest.raises(FileNotFoundError, match='missing_index.pkl'):
        build(root, osp.join(root, 'missing_index.pkl'))


def test_missing_file_error_names_file(tmp_path):
    root = str(tmp_path)
    ann = write_sessions(root, {'drone_x': 5})
    missing = osp.join(root, 'drone_x', 'poses', '000003.json')
    os.remove(missing)
    with pytest.raises(FileNotFoundError) as err:
        build(root, ann)
    assert missing in str(err.value) and 'drone_x' in str(err.value)
    # skip_invalid drops the windows touching frame 3 (all of them here but
    # none of those that end before it).
    ds = build(root, ann, skip_invalid=True, num_history=1, num_future=1)
    assert ds.num_invalid_frames == 1
    assert [ds.get_data_info(i)['frame_indices'] for i in range(len(ds))] \
        == [[0, 1], [1, 2]]
    # Pipeline-level missing file (deleted after indexing).
    ds = build(root, ann, check_files=False, num_history=1, num_future=1)
    with pytest.raises(FileNotFoundError, match='000003.json'):
        ds[2]


def test_corrupt_npz_and_bad_content_name_the_file(tmp_path):
    root = str(tmp_path)
    ann = write_sessions(root, {'a': 4})
    path = osp.join(root, 'a', 'occupancy', '000001_occupancy.npz')
    with open(path, 'wb') as f:
        f.write(b'PK\x03\x04 this is not a zip archive')
    ds = build(root, ann)
    with pytest.raises(InvalidSampleError) as err:
        ds[0]
    assert path in str(err.value)

    t = LoadOccupancySequence(num_classes=7)
    cases = {
        'wrongkey.npz': dict(labels=np.zeros(GRID, np.uint8)),
        'float.npz': dict(occupancy=np.zeros(GRID, np.float32)),
        'shape.npz': dict(occupancy=np.zeros((2, 2, 2), np.uint8)),
        'range.npz': dict(occupancy=np.full(GRID, 9, np.uint8)),
        'negative.npz': dict(occupancy=np.full(GRID, -1, np.int16)),
    }
    for name, arrays in cases.items():
        p = osp.join(root, name)
        np.savez(p, **arrays)
        with pytest.raises(InvalidSampleError) as err:
            t(dict(occ_paths=[p], grid_size=list(GRID)))
        assert p in str(err.value), name
    # int64 labels in range are accepted and cast to uint8; 255 = ignore.
    p = osp.join(root, 'int64.npz')
    vol = np.zeros(GRID, np.int64)
    vol[0, 0, 0] = 255
    np.savez(p, occupancy=vol)
    out = t(dict(occ_paths=[p, p]))['occupancy']
    assert out.dtype == np.uint8 and out.shape == (2, ) + GRID
    assert out[1, 0, 0, 0] == 255


def test_pose_loading(tmp_path):
    root = str(tmp_path)
    ann = write_sessions(root, {'a': 4}, nested_pose=True)
    ds = build(root, ann)
    poses = ds[0]['inputs']['poses']
    assert poses.dtype == torch.float32 and poses.shape == (4, 13)
    ann2 = write_sessions(str(tmp_path / 'flat'), {'a': 4})
    flat = build(str(tmp_path / 'flat'), ann2)[0]['inputs']['poses']
    torch.testing.assert_close(poses, flat)
    # yaw 0.1 * t about z, scalar-first, unit norm
    t = 2
    torch.testing.assert_close(
        poses[t, 3:7],
        torch.tensor([np.cos(0.1), 0, 0, np.sin(0.1)], dtype=torch.float32))
    torch.testing.assert_close(poses[:, 3:7].norm(dim=1), torch.ones(4))

    loader = LoadPoseSequence()
    p = osp.join(root, 'unnormalised.json')
    with open(p, 'w') as f:
        json.dump(dict(pose_13d=[0, 0, 0, 2, 0, 0, 0] + [0] * 6), f)
    assert loader(dict(pose_paths=[p]))['poses'][0, 3] == 1.0
    bad = {
        'nan.json': '{"pose_13d": [NaN, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]}',
        'short.json': '{"pose_13d": [0, 0, 0, 1]}',
        'broken.json': '{"pose_13d": [0, 0,',
        'empty_q.json': '{"pose_13d": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}',
        'nofields.json': '{"timestamp": 1.0}',
    }
    for name, text in bad.items():
        p = osp.join(root, name)
        with open(p, 'w') as f:
            f.write(text)
        with pytest.raises(InvalidSampleError) as err:
            loader(dict(pose_paths=[p]))
        assert p in str(err.value), name
    with pytest.raises(FileNotFoundError, match='nothere.json'):
        loader(dict(pose_paths=[osp.join(root, 'nothere.json')]))


def test_skip_invalid_counting_and_hook(tmp_path):
    root = str(tmp_path)
    ann = write_sessions(root, {'a': 6})
    with open(osp.join(root, 'a', 'occupancy', '000005_occupancy.npz'),
              'wb') as f:
        f.write(b'garbage')
    ds = build(root, ann, skip_invalid=True)  # windows 0, 1, 2; 2 is bad
    assert len(ds) == 3
    np.random.seed(0)
    for i in range(len(ds)):
        out = ds[i]
        assert '000005' not in str(out['data_samples'].frame_indices)
        assert out['data_samples'].frame_indices[-1] < 5
    assert ds.num_invalid >= 1
    # test mode: deterministic replacement by the next window
    ds_test = build(root, ann, skip_invalid=True, test_mode=True)
    assert ds_test[2]['data_samples'].sample_idx == 0
    assert ds_test.num_invalid == 1

    # Counts made inside dataloader workers reach the main process.
    ds.reset_invalid_count()
    loader = DataLoader(ds, batch_size=1, num_workers=1,
                        collate_fn=pseudo_collate, sampler=[2, 2, 0])
    assert len(list(loader)) == 3
    assert ds.num_invalid >= 2

    # The hook reports and resets at the end of the epoch.
    assert HOOKS.module_dict['InvalidSampleReportHook'] is \
        InvalidSampleReportHook
    hook = InvalidSampleReportHook()

    class _Hub:
        scalars = {}

        def update_scalar(self, k, v):
            self.scalars[k] = v

    class _Loop:
        dataloader = loader

    class _Runner:
        epoch = 1
        _train_loop = _Loop()
        message_hub = _Hub()

    MMLogger.get_instance('test_skip', log_level='INFO')
    n = ds.num_invalid
    assert hook._report(_Runner(), 'train') == n
    assert _Runner.message_hub.scalars['train/invalid_samples'] == n
    assert ds.num_invalid == 0


def test_uint8_end_to_end_through_preprocessor(tmp_path):
    root = str(tmp_path)
    ann = write_sessions(root, {'a': 5, 'b': 4})
    ds = build(root, ann)
    sample = ds[1]
    occ = sample['inputs']['occupancy']
    assert occ.dtype == torch.uint8 and occ.shape == (4, ) + GRID
    assert torch.equal(occ[0], torch.from_numpy(occ_value(0, 1)))
    meta = sample['data_samples'].metainfo
    assert set(meta) == {'session', 'frame_indices', 'timestamps',
                         'sample_idx', 'num_history', 'num_future',
                         'free_label', 'num_classes'}
    assert meta['num_history'] == 2 and meta['num_future'] == 2

    loader = DataLoader(ds, batch_size=2, num_workers=0, shuffle=False,
                        collate_fn=pseudo_collate)
    # Registered under the projects scope (checked without triggering the
    # import of every model module of the registry's locations).
    assert MODELS.module_dict['OccupancyDataPreprocessor'] is \
        OccupancyDataPreprocessor
    pre = OccupancyDataPreprocessor()
    batches = list(loader)
    assert len(batches) == 2
    out = pre(batches[0], training=True)
    assert out['inputs']['occupancy'].dtype == torch.uint8
    assert out['inputs']['occupancy'].shape == (2, 4) + GRID
    assert out['inputs']['poses'].dtype == torch.float32
    assert out['inputs']['poses'].shape == (2, 4, 13)
    assert out['data_samples'] is batches[0]['data_samples']
    # default_collate-style (already stacked) input works too
    stacked = dict(inputs=dict(occupancy=torch.stack(
        batches[0]['inputs']['occupancy']).long(),
        poses=torch.stack(batches[0]['inputs']['poses'])),
        data_samples=None)
    out2 = pre(stacked)
    assert torch.equal(out2['inputs']['occupancy'],
                       out['inputs']['occupancy'])
    with pytest.raises(TypeError, match='integer'):
        pre(dict(inputs=dict(occupancy=[torch.zeros(2, 2)]),
                 data_samples=None))


def test_lidar_and_flip(tmp_path):
    root = str(tmp_path)
    ann = write_sessions(root, {'a': 4})
    pipeline = [
        dict(type='LoadOccupancySequence'),
        dict(type='LoadPoseSequence'),
        dict(type='LoadLidarSequence'),
        dict(type='RandomFlipOccupancy', prob=1.0),
        dict(type='PackOccupancyInputs',
             keys=('occupancy', 'poses', 'lidar')),
    ]
    ds = build(root, ann, pipeline=pipeline)
    plain = build(root, ann)
    out, ref = ds[0], plain[0]
    lidar = out['inputs']['lidar']
    assert [tuple(p.shape) for p in lidar] == [(3, 4), (4, 4), (5, 4), (6, 4)]
    assert lidar[0].dtype == torch.float32
    assert torch.equal(out['inputs']['occupancy'],
                       ref['inputs']['occupancy'].flip(2))
    torch.testing.assert_close(
        out['inputs']['poses'],
        torch.from_numpy(mirror_poses_y(ref['inputs']['poses'].numpy())))
    # Mirroring negates yaw (quaternion about z) and is an involution.
    p = ref['inputs']['poses'].numpy()
    m = mirror_poses_y(p)
    yaw = 2 * np.arctan2(m[:, 6], m[:, 3])
    np.testing.assert_allclose(yaw, -0.1 * np.arange(4), atol=1e-6)
    np.testing.assert_allclose(mirror_poses_y(m), p)
    assert isinstance(TRANSFORMS.build(dict(type='LoadLidarSequence')),
                      LoadLidarSequence)
    assert isinstance(TRANSFORMS.build(dict(type='RandomFlipOccupancy')),
                      RandomFlipOccupancy)
    assert isinstance(TRANSFORMS.build(dict(type='PackOccupancyInputs')),
                      PackOccupancyInputs)
