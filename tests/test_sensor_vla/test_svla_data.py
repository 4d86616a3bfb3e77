"""Data tests of the sensor VLA: episode loading errors, balanced sampler, action statistics
round trip, VL cache (hit, corruption, eviction), Bridge converter on the real TFRecords."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

import projects  # noqa: F401
from mmengine.registry import init_default_scope
from projects.sensor_vla.models.action_norm import ActionNormalizer, compute_action_stats
from projects.sensor_vla.cache import VLFeatureCache, vl_cache_key
from projects.sensor_vla.datasets import (BalancedSensorSampler, IntegratedDataset,
                                          balanced_repeat_factor)
from projects.sensor_vla.episodes import write_episode, write_index
from projects.sensor_vla.synthetic import generate_ascan, generate_episode, load_force_trace
from projects.sensor_vla.transforms import VLADataError

torch.set_num_threads(1)
init_default_scope('projects')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FT_CSV = osp.join(ROOT, 'data/force_torque/screw_driving/sensor_data.csv')


def _make_root(tmp_path, n_sensor=2, n_plain=3, steps=4, width=1026):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_sensor + n_plain):
        has = i < n_sensor
        name = f'ep{i}'
        images = rng.integers(0, 255, (steps, 2, 16, 16, 3), dtype=np.uint8)
        actions = rng.normal(size=(steps, 7)).astype(np.float32)
        sensor = rng.normal(size=(steps * 10 + 20, width)).astype(np.float16) if has else None
        end = (20 + 10 * np.arange(steps)) if has else None
        write_episode(str(tmp_path), name, images, actions, sensor=sensor, sensor_end=end)
        rows.append(dict(episode=name, num_steps=steps, instruction='do it', has_sensor=has,
                         views=['a', 'b']))
    write_index(str(tmp_path / 'train.json'), rows, dict(sensor_rate_hz=650.0))
    return rows


def _dataset(tmp_path, **kw):
    return IntegratedDataset(ann_file='train.json', data_root=str(tmp_path),
                             pipeline=[dict(type='LoadVLAStep', chunk_size=3, window=30),
                                       dict(type='PackVLAInputs')], **kw)


def test_dataset_samples_weights_and_chunks(tmp_path):
    _make_root(tmp_path)
    ds = _dataset(tmp_path, sensor_loss_weight=2.0)
    assert len(ds) == 5 * 4
    flags = ds.has_sensor_flags()
    assert flags.sum() == 8
    item = ds[3]  # ep0, step 3 (last): chunk of 3 with 2 padded steps
    s = item['data_samples']
    assert s.metainfo['sensor_loss_weight'] == 2.0 and s.metainfo['has_sensor']
    assert s.action_mask.tolist() == [True, False, False]
    acts = np.load(tmp_path / 'episodes/ep0/actions.npy')
    assert torch.allclose(s.gt_actions[1], torch.from_numpy(acts[3]))
    assert torch.allclose(s.prev_action, torch.from_numpy(acts[2]))
    assert item['inputs']['sensor'].shape == (30, 1026)
    assert item['inputs']['images'].shape == (2, 16, 16, 3)
    plain = ds[8]['data_samples']
    assert plain.metainfo['sensor_loss_weight'] == 1.0 and ds[8]['inputs']['sensor'] is None
    # stage 1 of the two-stage recipe: sensors ignored
    assert _dataset(tmp_path, use_sensor=False).has_sensor_flags().sum() == 0


def test_missing_image_wrong_width_and_nan_action_name_episode_and_step(tmp_path):
    _make_root(tmp_path, n_sensor=1, n_plain=1)
    # missing image: the index promises more steps than images.npy holds
    imgs = np.load(tmp_path / 'episodes/ep1/images.npy')
    np.save(tmp_path / 'episodes/ep1/images.npy', imgs[:2])
    ds = _dataset(tmp_path)
    with pytest.raises(VLADataError, match=r"episode 'ep1', step 2: missing image"):
        ds[4 + 2]
    # NaN action in a chunk: the error names the step holding the NaN
    acts = np.load(tmp_path / 'episodes/ep0/actions.npy')
    acts[2, 3] = np.nan
    np.save(tmp_path / 'episodes/ep0/actions.npy', acts)
    with pytest.raises(VLADataError, match=r"episode 'ep0', step 2: non-finite action"):
        ds[1]
    # stream of the wrong width
    np.save(tmp_path / 'episodes/ep0/sensor.npy', np.zeros((60, 1000), np.float16))
    acts[2, 3] = 0
    np.save(tmp_path / 'episodes/ep0/actions.npy', acts)
    with pytest.raises(VLADataError, match=r"episode 'ep0', step 0: sensor stream of width "
                                           r'1000.*expected 1026'):
        ds[0]


def test_balanced_sampler_ratio_against_hand_computed_values(tmp_path):
    # seed numbers: 5470 sensor vs 93239 plain samples, target share 0.5 -> k = 17.05
    assert balanced_repeat_factor(5470, 93239, 0.5) == pytest.approx(93239 / 5470)
    assert balanced_repeat_factor(5470, 93239, 0.5) == pytest.approx(17.0455, abs=1e-4)
    # here: 8 sensor, 12 plain samples; share 0.6 -> k = 0.6 * 12 / (0.4 * 8) = 2.25
    _make_root(tmp_path, n_sensor=2, n_plain=3)
    ds = _dataset(tmp_path)
    smp = BalancedSensorSampler(ds, sensor_ratio=0.6, seed=0)
    assert smp.repeat_factor == pytest.approx(2.25)
    idx = list(iter(smp))
    # 12 plain + 2 * 8 sensor + round(0.25 * 8) = 2 extra -> 30, of which 18 sensor = 0.6
    assert len(idx) == 30 == len(smp)
    flags = ds.has_sensor_flags()
    assert sum(flags[i] for i in idx) == 18
    assert sorted(i for i in idx if not flags[i]) == sorted(np.nonzero(~flags)[0].tolist())
    smp.set_epoch(1)
    assert list(iter(smp)) != idx  # reshuffled per epoch
    # never undersamples
    assert BalancedSensorSampler(ds, sensor_ratio=0.1, seed=0).repeat_factor == 1.0


def test_action_stats_round_trip_and_checkpoint_buffers(tmp_path):
    rng = np.random.default_rng(1)
    eps = [np.concatenate([rng.normal(0, 0.01, (10, 6)), rng.integers(0, 2, (10, 1))], 1)
           for _ in range(5)]
    st = compute_action_stats(eps)
    allv = np.concatenate(eps)
    assert np.allclose(st['mean'], allv.mean(0)) and np.allclose(st['std'], allv.std(0))
    assert st['binary'] == [False] * 6 + [True]
    path = tmp_path / 'stats.json'
    path.write_text(json.dumps(st))
    for mode in ('mean_std', 'quantile'):
        norm = ActionNormalizer(str(path), mode=mode)
        a = torch.tensor(allv, dtype=torch.float32)
        z = norm.normalize(a)
        assert set(z[:, 6].unique().tolist()) <= {-1.0, 1.0}
        back = norm.denormalize(z)
        inside = ((a >= torch.tensor(st['q01'])) & (a <= torch.tensor(st['q99']))).all(1)
        rows = inside if mode == 'quantile' else torch.ones(len(a), dtype=torch.bool)
        assert torch.allclose(back[rows], a[rows], atol=1e-6)
    if True:  # mean_std z-scores are standardised
        z = ActionNormalizer(str(path)).normalize(torch.tensor(allv, dtype=torch.float32))
        assert torch.allclose(z[:, :6].mean(0), torch.zeros(6), atol=1e-5)
    # statistics live in buffers -> in every state dict / checkpoint
    norm = ActionNormalizer(str(path))
    fresh = ActionNormalizer(None)
    fresh.load_state_dict(norm.state_dict())
    assert torch.equal(fresh.mean, norm.mean) and torch.equal(fresh.binary, norm.binary)
    # absolute targets are turned into deltas explicitly
    absolute = [np.cumsum(np.ones((5, 7)), 0)]
    st_abs = compute_action_stats(absolute, 'absolute', gripper_dims=())
    assert st_abs['mean'][0] == pytest.approx(4 / 5) and st_abs['mean'][6] == 3.0
    with pytest.raises(ValueError, match='episode 0 has non-finite'):
        compute_action_stats([np.full((3, 7), np.nan)])


def test_vl_cache_hit_corruption_and_eviction(tmp_path):
    cache = VLFeatureCache(str(tmp_path / 'c'), max_bytes=None)
    imgs = np.zeros((2, 8, 8, 3), np.uint8)
    k1 = vl_cache_key('fp', 'pick', imgs)
    assert k1 != vl_cache_key('fp', 'place', imgs) != vl_cache_key('fp2', 'pick', imgs)
    imgs2 = imgs.copy()
    imgs2[0, 0, 0, 0] = 1
    assert vl_cache_key('fp', 'pick', imgs2) != k1
    tok, msk = np.random.rand(5, 4).astype(np.float32), np.ones(5, bool)
    assert cache.get(k1) is None
    cache.put(k1, tok, msk)
    got = cache.get(k1)
    assert got is not None and np.allclose(got[0], tok, atol=1e-3)
    assert cache.stats['hits'] == 1 and cache.stats['misses'] == 1
    # corruption 1: a truncated file (killed writer, full disk)
    p = cache.path(k1)
    raw = open(p, 'rb').read()
    open(p, 'wb').write(raw[:len(raw) // 2])
    assert cache.get(k1) is None
    assert cache.stats['corrupted'] == 1 and not osp.exists(p)
    # corruption 2: changed features under the old digest (bit rot) -> digest mismatch
    cache.put(k1, tok, msk)
    with np.load(p) as z:
        digest = z['digest']
    np.savez(p, tokens=(tok + 1).astype(np.float16), mask=msk, digest=digest)
    assert cache.get(k1) is None and cache.stats['corrupted'] == 2
    # eviction: limit of ~2 entries, least recently used goes first
    size = None
    small = VLFeatureCache(str(tmp_path / 's'))
    small.put('aa' + '0' * 62, tok, msk)
    size = small.total_bytes()
    lim = VLFeatureCache(str(tmp_path / 'e'), max_bytes=int(2.5 * size))
    keys = [f'{i:02d}' + '0' * 62 for i in range(4)]
    for i, k in enumerate(keys):
        lim.put(k, tok, msk)
        os.utime(lim.path(k), (1000 + i, 1000 + i))
    assert lim.total_bytes() <= int(2.5 * size)
    assert lim.stats['evicted'] == 2
    assert not osp.exists(lim.path(keys[0])) and osp.exists(lim.path(keys[3]))
    assert 'corrupted' in cache.report()


def test_generated_ascan_depth_and_real_force_channel():
    rng = np.random.default_rng(0)
    depth = np.array([1.0, 2.0, 3.5])
    a = generate_ascan(depth, rng)
    assert a.shape == (3, 1025)
    # the surface reflection is the brightest sample past the needle tip
    peaks = a[:, 20:].argmax(1) + 20
    assert np.abs(peaks - depth / 0.005).max() <= 3
    force = load_force_trace(FT_CSV, 650.0)
    assert force.min() < -23 and force.max() < 0  # real Fz trace in newtons
    ep = generate_episode(rng, force, num_steps=5)
    assert ep['sensor'].shape[1] == 1026 and ep['images'].shape == (5, 1, 64, 64, 3)
    # dz depends on the depth (state[:, 2]) only: dz = -0.3 (d - 0.5) mm
    assert np.allclose(ep['actions'][:, 2], -0.3 * (ep['state'][:, 2] - 0.5) * 1e-3, atol=1e-7)
    # the stream's force channel is the real trace
    assert np.isin(np.round(ep['sensor'][:5, 0].astype(np.float32), 1),
                   np.round(force.astype(np.float16).astype(np.float32), 1)).all()


def test_bridge_converter_on_real_tfrecords(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'bridge_to_vla', osp.join(ROOT, 'tools', 'data_converter', 'bridge_to_vla.py'))
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    out = tmp_path / 'bridge'
    assert conv.convert(osp.join(ROOT, 'data', 'bridge'), str(out)) == dict(train=17, val=8)
    tr = json.load(open(out / 'train.json'))['data_list']
    va = json.load(open(out / 'val.json'))['data_list']
    assert len(tr) + len(va) == 25  # the val file repeats train episodes: 25 unique
    assert not {r['source'] for r in tr} & {r['source'] for r in va}
    imgs = np.load(out / 'episodes' / tr[0]['episode'] / 'images.npy')
    assert imgs.shape == (10, 4, 64, 64, 3)
    assert np.load(out / 'episodes' / tr[0]['episode'] / 'actions.npy').shape == (10, 7)
    # a second run refuses to overwrite (the CLI's --overwrite flag)
    with pytest.raises(FileExistsError, match='--overwrite'):
        conv.convert(osp.join(ROOT, 'data', 'bridge'), str(out))
