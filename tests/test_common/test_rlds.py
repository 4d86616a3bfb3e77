"""RLDS TFRecord reading (projects.common.utils.rlds) on the bundled real BridgeData files."""
import os.path as osp

import numpy as np
import pytest

from projects.common.utils.rlds import (RLDSFormatError, episode_key, parse_rlds_episode,
                                        read_bridge_split, read_rlds_episodes, split_episodes)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BRIDGE = osp.join(ROOT, 'data', 'bridge')
TRAIN = osp.join(BRIDGE, 'bridge_dataset-train.tfrecord-00000-of-00001')
VAL = osp.join(BRIDGE, 'bridge_dataset-val.tfrecord-00000-of-00001')


@pytest.fixture(scope='module')
def train_eps():
    return read_rlds_episodes(TRAIN)


def test_real_bridge_episode_fields(train_eps):
    assert len(train_eps) == 25
    ep = train_eps[0]
    assert ep['num_steps'] == 10
    assert ep['action'].shape == (10, 7) and ep['action'].dtype == np.float32
    assert ep['state'].shape == (10, 7)
    assert set(ep['images']) == {'image_0', 'image_1', 'image_2', 'image_3'}
    img = ep['images']['image_0']
    assert img.shape == (10, 64, 64, 3) and img.dtype == np.uint8 and img.std() > 10
    assert ep['language_instruction'] == ep['instructions'][0] != ''
    assert ep['is_first'][0] and not ep['is_first'][1:].any()  # the debug set's episodes are cut: no is_last
    # the gripper action (last dim) is binary open / close in BridgeData
    assert set(np.unique(ep['action'][:, 6])) <= {0.0, 1.0}


def test_bundled_val_file_repeats_train_episodes(train_eps):
    # The reason split_episodes exists: the debug set's val file holds the train episodes.
    val = read_rlds_episodes(VAL)
    assert {episode_key(e) for e in val} == {episode_key(e) for e in train_eps}


def test_split_is_disjoint_deterministic_and_stratified():
    tr, va = read_bridge_split(BRIDGE, 'train'), read_bridge_split(BRIDGE, 'val')
    ktr, kva = [episode_key(e) for e in tr], [episode_key(e) for e in va]
    assert not set(ktr) & set(kva)
    assert len(set(ktr)) + len(set(kva)) == 25 == len(ktr) + len(kva)
    assert {e['language_instruction'] for e in va} == {e['language_instruction'] for e in tr}
    assert [episode_key(e) for e in read_bridge_split(BRIDGE, 'val')] == kva


def test_split_hand_made_groups():
    eps = [dict(file_path=f'f{g}', episode_id=i, language_instruction=g)
           for g in 'ab' for i in range(4)]
    out = split_episodes(eps + eps[:2], val_fraction=0.5)  # duplicates dropped
    assert [episode_key(e) for e in out['val']] == ['fa#1', 'fa#3', 'fb#1', 'fb#3']
    assert len(out['train']) == 4
    with pytest.raises(ValueError, match='val_fraction'):
        split_episodes(eps, val_fraction=1.0)


def test_bad_records_name_the_problem():
    rec = {'steps/is_first': np.array([1, 0]), 'steps/action': np.zeros(13, np.float32)}
    with pytest.raises(RLDSFormatError, match='my.tfrecord, episode 4.*steps/action.*13 values'):
        parse_rlds_episode(rec, 'my.tfrecord, episode 4')
    with pytest.raises(RLDSFormatError, match='no "steps/action"'):
        parse_rlds_episode({'steps/is_first': np.array([1])}, 'x')
    rec = {'steps/is_first': np.array([1, 0]), 'steps/action': np.zeros(14, np.float32),
           'steps/observation/image_0': [b'\xff\xd8notajpeg', b'']}
    with pytest.raises(RLDSFormatError, match='step 0, view image_0'):
        parse_rlds_episode(rec, 'y')
    with pytest.raises(FileNotFoundError, match='nope.tfrecord'):
        read_rlds_episodes('nope.tfrecord')
