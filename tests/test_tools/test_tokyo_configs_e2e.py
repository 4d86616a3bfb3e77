"""End-to-end: the Tokyo full-grid configs through ``tools/train.py`` and ``tools/test.py``.

``configs/finetune_tokyo.py`` (both stages in one run), ``configs/vqvae_tokyo.py`` (stage 1)
and ``configs/worldmodel_tokyo.py`` (stage 2, tokenizer loaded from the stage-1 checkpoint that
the ``vqvae_tokyo`` run of this module writes) each train for 2 iterations and are then
evaluated on their checkpoint, on the bundled real PLATEAU sessions (``data/tokyo``, built by
``tools/install.sh``) at the configs' full 200 x 200 x 121 grid. Only model widths, iteration
counts, window counts and loader workers are overridden (and, for ``worldmodel_tokyo``, the
decoded-occupancy losses, which the ``finetune_tokyo`` world step covers), with
``--cfg-options`` on the committed config files, so the configs' own datasets, pipelines, hooks
and schedules run. About 2.5 minutes on 2 CPU cores.
"""
import os.path as osp
import sys

import pytest
from mmengine.config import Config
from tool_runner import run_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(ROOT, 'data', 'tokyo', 'aerialworld_infos_train.pkl')

# One xdist worker runs this module and the FSDP end-to-end test (pytest -n 2), one after the
# other: the module's tests share the stage-1 checkpoint, and the full 200 x 200 x 121 grid runs
# (~5 GB each) must not overlap in memory.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('tokyo_full_grid')]

# Narrow model, same architecture (4x down with attention at the lowest scale, copy prior).
SMALL_MODEL = [
    'model.tokenizer_frames=1', 'model.tokenizer.base_channels=8',
    'model.tokenizer.num_res_blocks=1', 'model.tokenizer.num_codes=32',
    'model.tokenizer.code_dim=16', 'model.tokenizer.with_cp=False',
    'model.transformer.d_model=16', 'model.transformer.num_blocks=1',
    'model.transformer.num_heads=2', 'model.transformer.pose_hidden=16',
    'model.transformer.spatial_scales=[1]',
]
LOADERS = [f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
           for key in ('num_workers=0', 'persistent_workers=False')] + [
    'train_dataloader.dataset.max_windows=2', 'val_dataloader.dataset.max_windows=1',
    'test_dataloader.dataset.max_windows=1']
# val_begin: no validation pass at the end of training either; the configs' val and test
# splits, pipelines and evaluators are the same, and tools/test.py evaluates the checkpoint.
SCHEDULE = ['train_cfg.max_iters=2', 'train_cfg.val_interval=1000', 'train_cfg.val_begin=1000',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']


_run = run_tool


def _options(config):
    """``--cfg-options`` that shrink ``config`` (hooks addressed by their index in the file).

    The stage switch follows ``train_cfg.max_iters`` (``switch_ratio``): at 2 iterations
    finetune_tokyo switches after 1, vqvae_tokyo stays a tokenizer, worldmodel_tokyo a world
    model.
    """
    cfg = Config.fromfile(config)
    options = SMALL_MODEL + LOADERS + SCHEDULE
    for i, hook in enumerate(cfg.get('custom_hooks', [])):
        if hook['type'] == 'OccupancyVisualizationHook':
            options += [f'custom_hooks.{i}.draw_3d=False', f'custom_hooks.{i}.max_samples=1']
    return options


@pytest.fixture(scope='module', autouse=True)
def _bundled_data():
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` (it builds data/tokyo '
                    'from data/plateau) before the test suite')


@pytest.fixture(scope='module')
def stage1_checkpoint(tmp_path_factory):
    """Train ``vqvae_tokyo.py`` for 2 iterations; its checkpoint feeds ``worldmodel_tokyo``."""
    config = osp.join(ROOT, 'configs', 'vqvae_tokyo.py')
    work = tmp_path_factory.mktemp('vqvae_tokyo')
    out = _run([sys.executable, 'tools/train.py', config, '--work-dir', str(work),
                '--cfg-options', *_options(config)])
    ckpt = work / 'iter_2.pth'
    assert ckpt.is_file(), out[-3000:]
    assert 'loss_vq' in out and 'training stage' not in out, out[-3000:]
    return str(ckpt)


@pytest.mark.parametrize('name', ['finetune_tokyo', 'vqvae_tokyo', 'worldmodel_tokyo'])
def test_tokyo_config_trains_and_tests(name, tmp_path, request):
    config = osp.join(ROOT, 'configs', f'{name}.py')
    options = _options(config)
    if name == 'vqvae_tokyo':
        ckpt = request.getfixturevalue('stage1_checkpoint')
    else:
        if name == 'worldmodel_tokyo':
            options.append(f"model.tokenizer_ckpt={request.getfixturevalue('stage1_checkpoint')}")
            # The occupancy losses on the decoded future frames (6 x 200 x 200 x 121 logits,
            # ~30 s and 7 GB per step here) are covered by the finetune_tokyo world step.
            options.append('model.world_occ_loss_frames=none')
        work = tmp_path / 'train'
        out = _run([sys.executable, 'tools/train.py', config, '--work-dir', str(work),
                    '--cfg-options', *options])
        ckpt = str(work / 'iter_2.pth')
        assert osp.isfile(ckpt), out[-3000:]
        # Both stages ran: the world stage logs the token loss (after the switch in finetune).
        assert 'loss_token' in out, out[-3000:]
        if name == 'finetune_tokyo':
            assert "training stage -> 'world'" in out, out[-3000:]
        else:
            assert 'Loaded tokenizer weights from' in out, out[-3000:]
    out = _run([sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
                str(tmp_path / 'test'), '--cfg-options', *options])
    assert 'IoU@6' in out and 'mIoU@mean' in out and 'baseline' in out, out[-3000:]
    assert 'IoU building' in out, out[-3000:]
