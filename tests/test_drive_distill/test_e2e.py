"""End-to-end: tools/train.py and tools/test.py on the bundled real ScenarioNet scenes."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_vector_train_resume_test(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cfg = osp.join(ROOT, 'configs/drive_distill/nuscenes_vector_unicycle.py')
    opts = ['--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
            'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=4',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    wd = str(tmp_path / 'wd')
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/train.py'), cfg, '--work-dir', wd,
                    '--seed', '7', '--max-iters', '2'] + opts[:1] + opts[2:], check=True,
                   env=env, cwd=str(tmp_path))
    ckpts = glob.glob(osp.join(wd, 'drive_distill_vector_unicycle_seed7_iter_2.pth'))
    assert ckpts, os.listdir(wd)
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/train.py'), cfg, '--work-dir', wd,
                    '--seed', '7', '--resume'] + opts, check=True, env=env, cwd=str(tmp_path))
    out = subprocess.run([sys.executable, osp.join(ROOT, 'tools/test.py'), cfg,
                          osp.join(wd, 'drive_distill_vector_unicycle_seed7_iter_4.pth'),
                          '--work-dir', wd] + opts, check=True, env=env, cwd=str(tmp_path),
                         capture_output=True, text=True)
    assert 'const. velocity' in out.stdout + out.stderr
