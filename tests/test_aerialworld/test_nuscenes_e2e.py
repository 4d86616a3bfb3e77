"""End-to-end: tools/train.py configs/finetune_nuscenes.py for 2 iterations (tokenizer, then
world model) on the occupancy built from the real nuScenes keyframes (data/nuscenes_occ, built
by tools/install.sh), then tools/test.py on its checkpoint. The model is shrunk with
--cfg-options so it runs in well under a minute on a CPU."""
import os.path as osp
import sys

import pytest
from tool_runner import run_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'finetune_nuscenes.py')
DATA = osp.join(ROOT, 'data', 'nuscenes_occ', 'aerialworld_infos_train.pkl')

pytestmark = pytest.mark.slow

SMALL_MODEL = [
    'model.tokenizer_frames=2', 'model.tokenizer.base_channels=8',
    'model.tokenizer.channel_mults=[1,2]', 'model.tokenizer.num_res_blocks=1',
    'model.tokenizer.num_codes=32', 'model.tokenizer.code_dim=16',
    'model.tokenizer.attn_at_lowest=False', 'model.tokenizer.with_cp=False',
    'model.transformer.d_model=32', 'model.transformer.num_blocks=1',
    'model.transformer.num_heads=2', 'model.transformer.pose_hidden=32',
    'model.transformer.spatial_scales=[1]', 'model.transformer.spatial_mode=conv',
]
LOADERS = [f'{split}_dataloader.{k}' for split in ('train', 'val', 'test')
           for k in ('num_workers=0', 'persistent_workers=False')]
SMALL = SMALL_MODEL + LOADERS + [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
    'default_hooks.logger.interval=1',  # switch_ratio 0.5 of 2 iterations: stage 2 at 1
    'val_dataloader.dataset.max_windows=1', 'test_dataloader.dataset.max_windows=1',
]


_run = run_tool


def test_train_two_iterations_then_test(tmp_path):
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` (it builds '
                    'data/nuscenes_occ from data/nuscenes_seq)')
    work = tmp_path / 'run'
    out = _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work),
                '--cfg-options', *SMALL])
    assert osp.isfile(work / 'iter_2.pth'), out[-3000:]
    assert 'IoU@6' in out and 'baseline' in out, out[-3000:]
    out = _run([sys.executable, 'tools/test.py', CONFIG, str(work / 'iter_2.pth'),
                '--work-dir', str(tmp_path / 'test'), '--cfg-options', *SMALL])
    assert 'IoU@6' in out and 'mIoU@mean' in out and 'IoU driveable_surface' in out, out[-3000:]
