"""End-to-end: the 6-DoF AerialWorld configs through tools/train.py, tools/test.py and
tools/misc/rollout_with_plan.py on the bundled data, shrunk to tiny widths (CPU, < 90 s each).

The config is loaded, shrunk (widths, 2 iterations with the stage switch after 1, one window,
no 3-D renders) and dumped to a temporary file, so hooks are found by type rather than by
their position in ``custom_hooks``.
"""
import glob
import os.path as osp
import sys

import numpy as np
import pytest
from mmengine.config import Config
from tool_runner import run_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# One xdist worker runs this module (pytest -n 2): its tests share the trained checkpoints.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('6dof_e2e')]

CONFIGS = ['finetune_6dof.py', 'finetune_nuscenes_6dof.py']

SHRINK_MODEL = dict(
    tokenizer_frames=1,
    world_occ_loss_frames='none',
    tokenizer=dict(base_channels=8, num_res_blocks=1, code_dim=16, num_codes=32, with_cp=False),
    transformer=dict(d_model=16, num_blocks=1, num_heads=2, spatial_mode='conv',
                     pose_hidden=16))


_run = run_tool


def _tiny_config(name, tmp):
    path = osp.join(ROOT, 'configs', name)
    if not osp.isfile(path):
        pytest.skip(f'configs/{name} does not exist')
    cfg = Config.fromfile(path)
    assert cfg.model.pose_mode == '6dof'
    cfg.merge_from_dict(dict(model=SHRINK_MODEL))
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 1000
    # no validation at the end of training either: val == test in these configs, and
    # tools/test.py evaluates the checkpoint
    cfg.train_cfg.val_begin = 1000
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    # the stage switch follows max_iters (train_cfg.switch_ratio): iteration 1 of 2
    for hook in cfg.get('custom_hooks', []):
        if hook['type'].endswith('VisualizationHook'):
            hook['draw_3d'] = False
            hook['max_samples'] = 1
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 1
        loader.dataset.max_windows = 2 if split == 'train' else 1
        ann = osp.join(loader.dataset.get('data_root', ''), loader.dataset.ann_file)
        if not osp.exists(ann):
            pytest.fail(f'{ann} is missing: build the bundled data first (tools/install.sh)')
    out = str(tmp / f'tiny_{name}')
    cfg.dump(out)
    return out


@pytest.fixture(scope='module', params=CONFIGS)
def trained(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param.replace('.py', ''))
    cfg = _tiny_config(request.param, tmp)
    work = tmp / 'work'
    out = _run([sys.executable, 'tools/train.py', cfg, '--work-dir', str(work)])
    assert osp.isfile(work / 'iter_2.pth'), out[-3000:]
    assert "training stage -> 'world'" in out, out[-3000:]
    for key in ('loss_rot', 'loss_vel', 'rot_err_deg', 'loss_pose'):
        assert key in out, (key, out[-3000:])
    return cfg, str(work / 'iter_2.pth'), tmp


def test_train_then_test(trained):
    cfg, ckpt, tmp = trained
    out = _run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir', str(tmp / 'test')])
    assert 'IoU@6' in out and 'pose/rot_deg@6' in out and 'baseline/pose/rot_deg@6' in out, \
        out[-3000:]
    assert "checkpoint was trained in stage 'world'" in out, out[-3000:]


def test_rollout_tool_on_trained_checkpoint(trained):
    cfg, ckpt, tmp = trained
    out_dir = tmp / 'rollout'
    out = _run([sys.executable, 'tools/misc/rollout_with_plan.py', cfg, ckpt, '--out-dir',
                str(out_dir)])
    files = sorted(glob.glob(str(out_dir / '*' / 'occupancy' / '*_occupancy.npz')))
    assert len(files) == Config.fromfile(cfg).model.num_future, out[-3000:]
    grid = tuple(Config.fromfile(cfg).model.tokenizer.grid_size)
    occ = np.load(files[0])['occupancy']
    assert occ.dtype == np.uint8 and occ.shape == grid
