"""Slow end-to-end runs of the raster, WTA (K=6) and NLL (K=6) configs on the real scenes:
a few iterations of tools/train.py, validation, and the held-out test of the selected
checkpoint (TestBestCheckpointHook)."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FAST = ['train_cfg.val_interval=2', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=2',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False']


@pytest.mark.slow
@pytest.mark.parametrize('name,extra', [
    ('nuscenes_raster_unicycle', []),
    ('nuscenes_vector_wta', ['minADE_6', 'minFDE_6', 'brier_minFDE_6']),
    ('nuscenes_vector_nll', ['minADE_6', 'minFDE_6', 'brier_minFDE_6']),
])
def test_config_trains_and_tests(tmp_path, name, extra):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    wd = str(tmp_path / 'wd')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/train.py'),
         osp.join(ROOT, f'configs/drive_distill/{name}.py'), '--work-dir', wd, '--max-iters', '4',
         '--cfg-options'] + FAST, env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'TestBestCheckpointHook: testing the selected checkpoint' in log
    assert glob.glob(osp.join(wd, 'best_traj_FDE_*.pth'))
    test_lines = [line for line in log.splitlines() if 'Iter(test)' in line]
    assert test_lines, log[-2000:]
    for key in ['traj/ADE', 'traj/FDE', 'traj/cv_FDE'] + [f'traj/{k}' for k in extra]:
        assert key + ':' in test_lines[-1]
    assert 'loss_traj' in log
