"""Inference (temporal ensembling, checkpoint statistics) and end-to-end tool runs."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch

import projects  # noqa: F401
from projects.common.utils.io import save_json_atomic
from projects.sensor_vla.models.action_norm import compute_action_stats
from projects.sensor_vla.inference import TemporalEnsembler, VLAPolicy
from tool_runner import run_tool

torch.set_num_threads(1)
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_temporal_ensembling_matches_act_weights():
    ens = TemporalEnsembler(chunk_size=3, k=0.5)
    c0 = np.array([[1.0], [2.0], [3.0]])
    c1 = np.array([[10.0], [20.0], [30.0]])
    c2 = np.array([[100.0], [200.0], [300.0]])
    assert ens.update(c0)[0] == pytest.approx(1.0)
    # step 1: chunks c0 (age 1, index 1 -> 2.0, weight exp(0)) and c1 (age 0 -> 10, exp(-0.5))
    w = np.array([1.0, np.exp(-0.5)])
    assert ens.update(c1)[0] == pytest.approx((w @ [2.0, 10.0]) / w.sum())
    w = np.array([1.0, np.exp(-0.5), np.exp(-1.0)])
    assert ens.update(c2)[0] == pytest.approx((w @ [3.0, 20.0, 100.0]) / w.sum())
    ens.reset()
    assert ens.update(c2)[0] == pytest.approx(100.0)
    with pytest.raises(ValueError, match='expected 3'):
        ens.update(np.zeros((2, 1)))


def _load_tool(rel):
    spec = importlib.util.spec_from_file_location('svla_' + osp.basename(rel)[:-3],
                                                  osp.join(ROOT, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bridge_data(tmp_path):
    """The Bridge episodes that tools/install.sh prepares (data/sensor_vla/bridge, with its
    stamp); converted here (in-process, same converter and statistics code) when absent."""
    prepared = osp.join(ROOT, 'data', 'sensor_vla', 'bridge')
    if osp.exists(osp.join(prepared, 'prepare_stamp.json')):
        return prepared
    out = str(tmp_path / 'bridge')
    _load_tool('tools/data_converter/bridge_to_vla.py').convert(
        osp.join(ROOT, 'data', 'bridge'), out)
    stats = compute_action_stats(_load_tool('tools/analysis_tools/compute_action_stats.py')
                                 .load_index_actions(f'{out}/train.json'))
    save_json_atomic(f'{out}/action_stats.json', stats)
    return out


@pytest.mark.slow
def test_bridge_tiny_train_test_and_predict_with_checkpoint_stats(tmp_path):
    """tools/train.py (subprocess, 2 iterations + validation on 16 held-out samples), then
    tools/test.py's main on the checkpoint (in-process: a second interpreter start would
    double the test's time), then inference with the checkpoint's action statistics."""
    out = _bridge_data(tmp_path)
    work = str(tmp_path / 'work')
    opts = [f'data_root={out}/', f'train_dataloader.dataset.data_root={out}/',
            f'val_dataloader.dataset.data_root={out}/', f'test_dataloader.dataset.data_root={out}/',
            f'model.action_normalizer.stats={out}/action_stats.json',
            f'val_evaluator.stats={out}/action_stats.json',
            f'test_evaluator.stats={out}/action_stats.json',
            f'model.vl_cache.cache_dir={tmp_path}/cache', 'train_cfg.max_iters=2',
            'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
            'default_hooks.logger.interval=1', 'train_dataloader.batch_size=4',
            'val_dataloader.batch_size=16', 'val_dataloader.dataset.indices=16',
            'test_dataloader.dataset.indices=16']
    log = run_tool(['python', 'tools/train.py', 'configs/sensor_vla/bridge_tiny.py',
                    '--work-dir', work, '--cfg-options'] + opts)
    for key in ('grad_norm', 'sensor_ratio_cum', 'params_trainable_M', 'copy_last',
                'strongest baseline', 'VL cache', 'Action metric on 16 held-out samples'):
        assert key in log, key
    ckpt = osp.join(work, 'iter_2.pth')
    metrics = _load_tool('tools/test.py').main(
        ['configs/sensor_vla/bridge_tiny.py', ckpt, '--work-dir', work, '--cfg-options']
        + opts)
    assert {'action/nmse', 'action/mean/nmse', 'action/copy_last/nmse'} <= set(metrics)
    assert np.isfinite(metrics['action/nmse'])
    # inference: the normaliser statistics come from the checkpoint, not the config's JSON
    policy = VLAPolicy.from_checkpoint(osp.join(ROOT, 'configs/sensor_vla/bridge_tiny.py'),
                                       ckpt)
    stats = np.array(json.load(open(f'{out}/action_stats.json'))['mean'])
    assert np.allclose(policy.model.action_normalizer.mean.numpy(), stats, atol=1e-6)
    imgs = np.load(osp.join(out, 'episodes', 'bridge_val_000', 'images.npy'))[0]
    chunk = policy.predict('put carrot on plate', imgs)
    assert chunk.shape == (8, 7) and np.isfinite(chunk).all()
    a = policy.act('put carrot on plate', imgs)
    assert a.shape == (7,) and np.allclose(policy.prev_action, a)
