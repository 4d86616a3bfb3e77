"""Inference (temporal ensembling, checkpoint statistics) and end-to-end tool runs."""
import os.path as osp

import numpy as np
import pytest
import torch

import projects  # noqa: F401
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


@pytest.mark.slow
def test_bridge_tiny_train_test_and_predict_with_checkpoint_stats(tmp_path):
    out = str(tmp_path / 'bridge')
    run_tool(['python', 'tools/data_converter/bridge_to_vla.py', '--out-dir', out])
    run_tool(['python', 'tools/analysis_tools/compute_action_stats.py', f'{out}/train.json',
              '--out', f'{out}/action_stats.json'])
    work = str(tmp_path / 'work')
    opts = [f'data_root={out}/', f'train_dataloader.dataset.data_root={out}/',
            f'val_dataloader.dataset.data_root={out}/', f'test_dataloader.dataset.data_root={out}/',
            f'model.action_normalizer.stats={out}/action_stats.json',
            f'val_evaluator.stats={out}/action_stats.json',
            f'test_evaluator.stats={out}/action_stats.json',
            f'model.vl_cache.cache_dir={tmp_path}/cache', 'train_cfg.max_iters=4',
            'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4',
            'default_hooks.logger.interval=1', 'train_dataloader.batch_size=4',
            'val_dataloader.batch_size=16']
    log = run_tool(['python', 'tools/train.py', 'configs/sensor_vla/bridge_tiny.py',
                    '--work-dir', work, '--cfg-options'] + opts)
    for key in ('grad_norm', 'sensor_ratio_cum', 'params_trainable_M', 'copy_last',
                'strongest baseline', 'VL cache'):
        assert key in log, key
    ckpt = osp.join(work, 'iter_4.pth')
    log = run_tool(['python', 'tools/test.py', 'configs/sensor_vla/bridge_tiny.py', ckpt,
                    '--work-dir', work, '--cfg-options'] + opts)
    assert 'action/nmse' in log
    # inference: the normaliser statistics come from the checkpoint, not the config's JSON
    policy = VLAPolicy.from_checkpoint(osp.join(ROOT, 'configs/sensor_vla/bridge_tiny.py'),
                                       ckpt)
    stats = np.array(__import__('json').load(open(f'{out}/action_stats.json'))['mean'])
    assert np.allclose(policy.model.action_normalizer.mean.numpy(), stats, atol=1e-6)
    imgs = np.load(osp.join(out, 'episodes', 'bridge_val_000', 'images.npy'))[0]
    chunk = policy.predict('put carrot on plate', imgs)
    assert chunk.shape == (8, 7) and np.isfinite(chunk).all()
    a = policy.act('put carrot on plate', imgs)
    assert a.shape == (7,) and np.allclose(policy.prev_action, a)
