"""The real UCI robot-execution-failure F/T episodes as the sensor VLA's force channel: reader
values against the file, resampling against hand-computed values, errors for bad files, and
the generated insertion episodes built on them."""
import importlib.util
import json
import os.path as osp
from collections import Counter

import numpy as np
import pytest

from projects.sensor_vla.force_torque import (UCIFormatError, load_uci_episodes,
                                              uci_force_trace)
from projects.sensor_vla.synthetic import generate_episode

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
UCI = osp.join(ROOT, 'data', 'force_torque', 'uci_robot_failures')
FILES = [osp.join(UCI, f'lp{i}.data') for i in range(1, 6)]


def test_reader_on_the_real_files():
    eps = load_uci_episodes(FILES[0])
    assert Counter(e['label'] for e in eps) == {'normal': 21, 'collision': 17,
                                                'fr_collision': 16, 'obstruction': 34}
    assert eps[0]['label'] == 'normal' and eps[0]['line'] == 1
    assert eps[0]['ft'].shape == (15, 6) and eps[0]['ft'].dtype == np.float32
    # first and last rows of the first episode, as written in lp1.data (lines 2 and 16)
    assert eps[0]['ft'][0].tolist() == [-1, -1, 63, -3, -1, 0]
    assert eps[0]['ft'][14].tolist() == [-1, 0, 64, -2, -1, 0]
    # the dataset's 463 episodes over the five learning problems
    assert sum(len(load_uci_episodes(f)) for f in FILES) == 463


def test_force_trace_resampling_hand_computed():
    trace = uci_force_trace(FILES[:1], 650.0, 'Fz')
    per = round(0.315 * 650)  # 205 stream samples per 315 ms episode
    assert per == 205 and trace.shape == (88 * per,)
    # episode 0 Fz: 63 at t = 0, 62 at t = 21 ms; stream sample 7 is at 7 / 650 s = 10.77 ms
    assert trace[0] == pytest.approx(63.0)
    assert trace[7] == pytest.approx(63.0 + (62.0 - 63.0) * (7 / 650) / 0.021, abs=1e-4)
    # past the 15th sample (t = 294 ms) the last reading (64) is held
    assert trace[per - 1] == pytest.approx(64.0)
    tx = uci_force_trace(FILES[:1], 650.0, 'Tx')
    assert tx[0] == pytest.approx(-3.0)
    with pytest.raises(KeyError, match='axis'):
        uci_force_trace(FILES[:1], 650.0, 'Fq')


@pytest.mark.parametrize('text,match', [
    ('normal\n' + '\t1\t2\t3\t4\t5\n' * 15, r'bad\.data:2: 5 values, expected 6'),
    ('normal\n' + '\t1\t2\t3\t4\t5\t6\n' * 14 + '\nmoved\n', r"bad\.data:1: episode 'normal' "
     r'has 14 force/torque rows, expected 15'),
    ('normal\n\t1\t2\tx\t4\t5\t6\n', r'bad\.data:2: non-numeric'),
    ('\t1\t2\t3\t4\t5\t6\n', r'bad\.data:1: force/torque readings before any episode label'),
    ('\n\n', r'bad\.data: no episodes'),
])
def test_bad_files_name_the_file_and_line(tmp_path, text, match):
    p = tmp_path / 'bad.data'
    p.write_text(text)
    with pytest.raises(UCIFormatError, match=match):
        load_uci_episodes(str(p))


def test_missing_file():
    with pytest.raises(FileNotFoundError, match='lp9.data'):
        load_uci_episodes(osp.join(UCI, 'lp9.data'))


def test_uci_force_channel_in_generated_insertion_episodes(tmp_path):
    trace = uci_force_trace(FILES, 650.0)
    ep = generate_episode(np.random.default_rng(0), trace, num_steps=3)
    n = len(ep['sensor'])
    # channel 0 is a contiguous segment of the UCI Fz trace (float16 storage)
    seg, t16 = ep['sensor'][:, 0], trace.astype(np.float16)
    starts = [s for s in np.flatnonzero(t16[:len(t16) - n + 1] == seg[0])
              if np.array_equal(t16[s:s + n], seg)]
    assert starts, 'force channel is not a segment of the UCI trace'
    # the converter writes the source into the index
    spec = importlib.util.spec_from_file_location(
        'mie', osp.join(ROOT, 'tools', 'data_converter', 'make_insertion_episodes.py'))
    mie = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mie)
    out = str(tmp_path / 'ins')
    mie.make(out, num_train=1, num_val=1, num_no_sensor=0, num_steps=2, force_csv=UCI,
             force_source='uci')
    meta = json.load(open(osp.join(out, 'train.json')))['metainfo']
    assert meta['force_source'] == 'uci' and 'UCI' in meta['dataset']
    s = np.load(osp.join(out, 'episodes', 'insertion_train_000', 'sensor.npy'))
    assert s.shape[1] == 1026 and np.isin(s[:, 0], trace.astype(np.float16)).all()
    with pytest.raises(FileNotFoundError, match='no UCI'):
        mie.make(str(tmp_path / 'x'), force_csv=str(tmp_path), force_source='uci')
