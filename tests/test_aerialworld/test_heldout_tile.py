"""The held-out-tile val set: no training session ever sees the held-out tile.

A small conversion (static city, no LiDAR, 3 frames per session) of the Ota-Haneda tile (train)
and the Ota 53392633 tile (held out), then the same checks on the bundled ``data/tokyo_local``
(built by ``tools/install.sh``).
"""
import os
import pickle

import numpy as np
import pytest

from projects.aerialworld.converters import ConverterConfig, PlateauOccupancyConverter
from projects.aerialworld.converters.plateau_to_occ import config_hash
from projects.aerialworld.datasets import AerialWorldDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HANEDA = os.path.join(ROOT, 'data', 'plateau', 'ota_haneda')
HELD = os.path.join(ROOT, 'data', 'plateau', 'ota_53392633')
BUNDLED = os.path.join(ROOT, 'data', 'tokyo_local')


def _cfg(**kw):
    base = dict(grid='test_local', num_drone_sessions=6, num_rover_sessions=1,
                frames_per_session=3, drone_altitudes=(10.0,), lidar=False, seed=1,
                heldout_tiles=('ota_53392633',), num_heldout_drone_sessions=2)
    base.update(kw)
    return ConverterConfig(**base)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('heldout') / 'tokyo')
    conv = PlateauOccupancyConverter([HANEDA, HELD], _cfg())
    summary = conv.convert(out)
    with open(os.path.join(out, 'aerialworld_infos_train.pkl'), 'rb') as f:
        train = pickle.load(f)
    with open(os.path.join(out, 'aerialworld_infos_val.pkl'), 'rb') as f:
        val = pickle.load(f)
    return conv, out, summary, train, val


def _site_tiles(meta):
    """site name -> the tile folders of its source files (from the index metainfo)."""
    return {s: {src.split('/')[0] for src in v['sources']} for s, v in meta['sites'].items()}


def _check_index(train, val, held_tile):
    """The held-out tile is in no train session; every session on it is a heldout_tile one."""
    meta = val['metainfo']
    tiles = _site_tiles(meta)
    held_sites = {s for s, t in tiles.items() if held_tile in t}
    assert held_sites and all(tiles[s] == {held_tile} for s in held_sites)
    train_sessions = {e['session'] for e in train['data_list']}
    assert train_sessions
    for name in train_sessions:
        assert meta['sessions'][name]['split'] == 'train'
        assert meta['sessions'][name]['site'] not in held_sites, name
    assert all('val_set' not in e for e in train['data_list'])
    sets = {}
    for e in val['data_list']:
        info = meta['sessions'][e['session']]
        assert info['split'] == 'val' and e['val_set'] == info['val_set']
        assert (e['val_set'] == 'heldout_tile') == (info['site'] in held_sites), e['session']
        sets.setdefault(e['val_set'], set()).add(e['session'])
    assert set(sets) == {'heldout_session', 'heldout_tile'}
    assert not (sets['heldout_tile'] | sets['heldout_session']) & train_sessions
    return sets


def test_heldout_tile_never_in_a_training_session(converted):
    conv, out, summary, train, val = converted
    sets = _check_index(train, val, 'ota_53392633')
    assert sets['heldout_tile'] == {'drone_heldout_survey_000', 'drone_heldout_orbit_000'}
    assert summary['heldout_tile_sessions'] == 2
    # the held-out sessions' grids show the held-out buildings (they are not empty scenes)
    building = sum(int((np.load(os.path.join(out, e['occ_path']))['occupancy'] == 1).sum())
                   for e in val['data_list'] if e['val_set'] == 'heldout_tile')
    assert building > 0
    # the rover drives on Haneda's roads, never on the held-out tile
    assert val['metainfo']['sessions']['rover_000']['site'] == 'ota_haneda_tran'


def test_dataset_val_sets_reach_the_samples(converted):
    _, out, _, _, _ = converted
    from projects.aerialworld.transforms import PackOccupancyInputs  # noqa: F401 (registers)
    pipeline = [dict(type='LoadOccupancySequence'), dict(type='LoadPoseSequence'),
                dict(type='PackOccupancyInputs',
                     meta_keys=('session', 'num_history', 'val_set'))]
    ds = AerialWorldDataset(ann_file='aerialworld_infos_val.pkl', data_root=out,
                            pipeline=pipeline, num_history=2, num_future=1, test_mode=True)
    names = {ds.get_data_info(i)['val_set'] for i in range(len(ds))}
    assert names == {'heldout_session', 'heldout_tile'}
    tile = AerialWorldDataset(ann_file='aerialworld_infos_val.pkl', data_root=out,
                              pipeline=pipeline, num_history=2, num_future=1, test_mode=True,
                              val_sets=['heldout_tile'])
    assert len(tile) == 2  # two sessions x one 3-frame window
    assert tile[0]['data_samples'].val_set == 'heldout_tile'
    with pytest.raises(ValueError, match='val_sets'):
        AerialWorldDataset(ann_file='aerialworld_infos_val.pkl', data_root=out,
                           pipeline=pipeline, num_history=2, num_future=1,
                           val_sets=['no_such_set'])
    # training windows have no set (None)
    tr = AerialWorldDataset(ann_file='aerialworld_infos_train.pkl', data_root=out,
                            pipeline=pipeline, num_history=2, num_future=1)
    assert tr[0]['data_samples'].val_set is None


def test_heldout_options_are_validated_and_hashed():
    with pytest.raises(ValueError, match='not among'):
        PlateauOccupancyConverter([HANEDA], _cfg(heldout_tiles=('ota_53392633',)))
    with pytest.raises(ValueError, match='no tile to train on'):
        PlateauOccupancyConverter([HELD], _cfg())
    with pytest.raises(ValueError, match='no held-out session'):
        _cfg(num_heldout_drone_sessions=0).validate()
    with pytest.raises(ValueError, match='needs heldout_tiles'):
        _cfg(heldout_tiles=()).validate()
    plain = ConverterConfig(grid='test_local')
    assert 'heldout_tiles' not in plain.to_dict()  # data converted before keeps its hash
    h1 = config_hash(_cfg(), [HANEDA, HELD])
    assert h1 != config_hash(_cfg(num_heldout_drone_sessions=3), [HANEDA, HELD])
    assert h1 != config_hash(_cfg(heldout_tiles=('ota_haneda',)), [HANEDA, HELD])


def test_bundled_tokyo_local_holds_out_its_tile():
    if not os.path.exists(os.path.join(BUNDLED, 'aerialworld_infos_val.pkl')):
        pytest.fail('data/tokyo_local is missing: run `bash tools/install.sh` first')
    with open(os.path.join(BUNDLED, 'aerialworld_infos_train.pkl'), 'rb') as f:
        train = pickle.load(f)
    with open(os.path.join(BUNDLED, 'aerialworld_infos_val.pkl'), 'rb') as f:
        val = pickle.load(f)
    held = val['metainfo']['converter_config']['heldout_tiles']
    assert held == ['ota_53392633']
    _check_index(train, val, held[0])


@pytest.mark.parametrize('name', ['test_local.py', 'finetune_tokyo.py', 'finetune_6dof.py'])
def test_tokyo_configs_name_the_traffic_classes_and_pack_the_val_set(name):
    from mmengine.config import Config

    from projects.aerialworld.datasets.classes import (PLATEAU_DYNAMIC_CLASSES,
                                                       PLATEAU_TRAFFIC_CLASSES)
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', name))
    assert tuple(cfg.class_names) == PLATEAU_TRAFFIC_CLASSES
    free = PLATEAU_TRAFFIC_CLASSES.index('free')
    dynamic = [PLATEAU_TRAFFIC_CLASSES.index(c) for c in PLATEAU_DYNAMIC_CLASSES]
    assert cfg.model.num_classes == cfg.model.tokenizer.num_classes == len(cfg.class_names)
    assert cfg.model.free_label == cfg.model.tokenizer.free_label == free
    assert cfg.val_evaluator.dynamic_classes == dynamic
    static = cfg.model.copy_decode.static_classes
    assert sorted(static + dynamic + [free]) == list(range(len(cfg.class_names)))
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline):
        assert 'val_set' in pipeline[-1]['meta_keys']
