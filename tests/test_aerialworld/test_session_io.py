"""The session-format module, the shared majority-vote voxeliser and the atomic writer."""
import json
import os
import stat

import numpy as np
import pytest
from mmengine.fileio import load

from projects.aerialworld.converters.voxelize import voxelize_labels, voxelize_majority
from projects.aerialworld.datasets.session_io import (INDEX_FILES, config_hash, frame_paths,
                                                      index_is_current, index_metainfo,
                                                      pose_from_json, pose_json,
                                                      prepare_output_dir, read_pose_file,
                                                      remove_on_failure, write_frame,
                                                      write_split_indexes)
from projects.aerialworld.transforms.loading import pose_from_json_dict
from projects.common.utils.io import atomic_write

POSE = [1.0, -2.0, 3.5, 0.9238795, 0.0, 0.0, 0.3826834, 4.0, 0.5, -0.1, 0.01, 0.02, 0.3]


def test_pose_json_round_trip_and_layout():
    rec = pose_json(POSE, 1.5, dict(token='abc'))
    assert list(rec) == ['pose_13d', 'timestamp', 'position', 'orientation', 'velocity',
                         'token']
    assert rec['orientation'] == {'x': 0.0, 'y': 0.0, 'z': 0.3826834, 'w': 0.9238795}
    assert rec['velocity']['angular']['z'] == 0.3
    np.testing.assert_array_equal(pose_from_json(rec), POSE)
    # nested dictionaries only (no pose_13d), velocity missing -> zeros
    nested = {k: v for k, v in rec.items() if k not in ('pose_13d', 'velocity')}
    np.testing.assert_array_equal(pose_from_json(nested), POSE[:7] + [0.0] * 6)
    # the dataset's reader agrees with the session-format writer
    np.testing.assert_allclose(pose_from_json_dict(rec), POSE, rtol=1e-6)
    np.testing.assert_array_equal(pose_from_json(POSE), POSE)  # plan files: bare lists


@pytest.mark.parametrize('bad,match', [
    (POSE[:12], '13 values'), ([float('nan')] + POSE[1:], 'non-finite'),
    (POSE[:3] + [0.0] * 4 + POSE[7:], 'quaternion'), ({'position': {}}, 'pose_13d'),
    ('not a pose', '13 numbers'),
])
def test_pose_from_json_errors_name_the_source(bad, match):
    with pytest.raises(ValueError, match=f'plan.json\\[3\\].*{match}|{match}'):
        pose_from_json(bad, 'plan.json[3]')


def test_write_frame_index_and_hash(tmp_path):
    out = str(tmp_path)
    occ = np.arange(24, dtype=np.int64).reshape(2, 3, 4) % 7
    lidar = np.ones((5, 4), np.float64)
    e0 = write_frame(out, 's1', 0, occ, lidar, pose_json(POSE, 0.0))
    e1 = write_frame(out, 's1', 1, occ, None, pose_json(POSE, 0.5))
    assert e0 == {'session': 's1', 'frame_idx': 0, 'timestamp': 0.0,
                  'occ_path': 's1/' + frame_paths(0)['occ'],
                  'pose_path': 's1/' + frame_paths(0)['pose'],
                  'lidar_path': 's1/' + frame_paths(0)['lidar']}
    assert 'lidar_path' not in e1
    saved = np.load(os.path.join(out, e0['occ_path']))['occupancy']
    assert saved.dtype == np.uint8 and np.array_equal(saved, occ)
    assert np.load(os.path.join(out, e0['lidar_path'])).dtype == np.float32
    np.testing.assert_array_equal(read_pose_file(os.path.join(out, e1['pose_path'])), POSE)
    h = config_hash('demo/1.0', {'b': 1, 'a': [2]}, ['x:1', 'y:2'])
    assert h == config_hash('demo/1.0', {'a': [2], 'b': 1}, iter(['x:1', 'y:2']))
    assert h != config_hash('demo/1.1', {'a': [2], 'b': 1}, ['x:1', 'y:2'])
    assert h != config_hash('demo/1.0', {'a': [2], 'b': 1}, ['x:1', 'y:3'])

    def meta(split):
        return index_metainfo('demo', ('a', 'free'), 1, [0, 0, 0, 2, 3, 4], [1, 1, 1],
                              (2, 3, 4), 'ground', 2, split, h, 'demo/1.0', {}, sites={})

    assert not index_is_current(out, h)
    write_split_indexes(out, {'train': [e1, e0], 'val': []}, meta)
    train = load(os.path.join(out, INDEX_FILES['train']))
    assert [e['frame_idx'] for e in train['data_list']] == [0, 1]  # sorted
    assert train['metainfo']['version'] == '1.0' and train['metainfo']['split'] == 'train'
    assert list(train['metainfo'])[-1] == 'sites'
    assert index_is_current(out, h) and not index_is_current(out, 'other')
    with open(os.path.join(out, INDEX_FILES['val']), 'wb') as f:
        f.write(b'garbage')
    assert not index_is_current(out, h)


def test_prepare_output_dir_and_cleanup(tmp_path):
    out = tmp_path / 'o'
    prepare_output_dir(str(out), overwrite=False)
    (out / 'drone_000').mkdir()
    (out / 'mine.txt').write_text('keep')
    (out / INDEX_FILES['train']).write_text('x')
    with pytest.raises(FileExistsError, match='not empty'):
        prepare_output_dir(str(out), overwrite=False)
    prepare_output_dir(str(out), overwrite=True)
    assert sorted(os.listdir(out)) == ['mine.txt']
    new = tmp_path / 'new'
    with pytest.raises(KeyError):
        with remove_on_failure(str(new)):
            new.mkdir()
            (new / 'half.npz').write_text('x')
            raise KeyError('boom')
    assert not new.exists()
    with pytest.raises(KeyError):
        with remove_on_failure(str(out)):
            raise KeyError('boom')
    assert (out / 'mine.txt').exists()  # an existing folder is left alone


def test_atomic_write_permissions_and_failure(tmp_path):
    path = tmp_path / 'a.json'
    atomic_write(str(path), lambda tmp: open(tmp, 'w').write(json.dumps([1])))
    mode = stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask and json.loads(path.read_text()) == [1]

    def broken(tmp):
        open(tmp, 'w').write('partial')
        raise RuntimeError('crash')

    with pytest.raises(RuntimeError):
        atomic_write(str(path), broken)
    assert json.loads(path.read_text()) == [1] and os.listdir(tmp_path) == ['a.json']


def test_majority_vote_hand_computed():
    # voxel (0, 0, 0): labels 2, 2, 1 -> 2; voxel (1, 2, 3): 4, 3 -> tie -> 3; rest free
    ijk = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 2, 3], [1, 2, 3]])
    occ = voxelize_labels(ijk, np.array([2, 2, 1, 4, 3]), (2, 3, 4), free_label=6)
    assert occ.dtype == np.uint8 and occ.shape == (2, 3, 4)
    assert occ[0, 0, 0] == 2 and occ[1, 2, 3] == 3 and (occ == 6).sum() == 22
    # the same points in metres: the axis-aligned wrapper maps them and drops the outside one
    xyz = (ijk + 0.5) * np.array([0.5, 0.5, 1.0]) + np.array([-1.0, -1.0, 0.0])
    xyz = np.concatenate([xyz, [[50.0, 0.0, 0.0]]])
    occ2 = voxelize_majority(xyz, np.array([2, 2, 1, 4, 3, 0]), (-1, -1, 0, 0, 0.5, 4),
                             (0.5, 0.5, 1.0), free_label=6)
    assert np.array_equal(occ, occ2)
    assert (voxelize_labels(np.zeros((0, 3), int), np.zeros(0), (1, 1, 1), 9) == 9).all()
