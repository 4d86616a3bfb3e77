"""Every AerialWorld config's dumped config (tools/misc/print_config.py) is self-consistent.

The dump is what a run uses after all ``_base_`` files are merged. A child config that changes
the grid must not leave the base's grid anywhere: pipelines (top-level and in the data
loaders), dataset checks, the tokenizer, copy-through decoding, the copy-prior warp range, the
visualizer and, where the converted index is present, the index's own metainfo must agree. The
schedule must have no fixed lengths left over from a base (the stage switch and the cosine
follow ``train_cfg.max_iters``) and the hook list must be the inherited one.
"""
import glob
import math
import os.path as osp
import pickle
import subprocess
import sys

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))
from print_config import dump_config, load_config  # noqa: E402

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', '*.py')))
RUNTIME = osp.join(ROOT, 'configs', '_base_', 'aerialworld_runtime.py')


def _walk(node, key):
    """Every value stored under ``key`` anywhere in ``node`` (dicts and lists)."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found.extend(_walk(v, key))
    elif isinstance(node, (list, tuple)):
        for v in node:
            found.extend(_walk(v, key))
    return found


def _dumped(path, options=None):
    """The config as print_config.py dumps it, parsed back."""
    text = dump_config(load_config(path, options))
    return Config.fromstring(text, '.py')


def test_every_config_is_covered():
    names = {osp.basename(p) for p in CONFIGS}
    assert {'finetune_tokyo.py', 'test_local.py', 'finetune_uavscenes.py',
            'finetune_nuscenes.py', 'vqvae_tokyo.py', 'worldmodel_tokyo.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_dumped_config_has_one_grid(path):
    cfg = _dumped(path)
    grids = [list(cfg.grid_size)] + [list(g) for g in _walk(cfg._cfg_dict, 'expected_shape')]
    grids += [list(g) for g in _walk(cfg._cfg_dict, 'expected_grid_size')]
    grids.append(list(cfg.model.tokenizer.grid_size))
    assert len(grids) >= 6, grids  # top level, 2 pipelines, 3 loaders, tokenizer at least
    assert all(g == grids[0] for g in grids), f'{path}: grids disagree: {grids}'

    pcr = list(cfg.point_cloud_range)
    ranges = [list(r) for r in _walk(cfg._cfg_dict, 'point_cloud_range')]
    assert all(r == pcr for r in ranges), f'{path}: point_cloud_range disagree: {ranges}'
    for warp in _walk(cfg._cfg_dict, 'copy_warp_range'):
        assert list(warp) == [pcr[0], pcr[1], pcr[3], pcr[4]], (path, warp)
    voxels = [list(cfg.voxel_size)] + [list(v) for v in _walk(cfg._cfg_dict, 'voxel_size')]
    assert all(v == voxels[0] for v in voxels), (path, voxels)
    # the grid covers the range: floor(extent / voxel) cells per axis
    cells = [math.floor((pcr[i + 3] - pcr[i]) / voxels[0][i] + 1e-6) for i in range(3)]
    assert cells == grids[0], (path, cells, grids[0])

    # classes: pipeline, model, tokenizer, metric
    num_classes = len(cfg.class_names)
    counts = _walk(cfg._cfg_dict, 'num_classes')
    assert counts and all(c == num_classes for c in counts), (path, counts)
    assert all(f == cfg.free_label for f in _walk(cfg._cfg_dict, 'free_label')), path

    # top-level pipelines are the ones the loaders use (none left over from a base)
    assert cfg.train_dataloader.dataset.pipeline == cfg.train_pipeline, path
    for loader in ('val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.pipeline == cfg.test_pipeline, (path, loader)

    # where the converted index exists, its grid is the config's
    for loader in ('train_dataloader', 'val_dataloader'):
        ds = cfg[loader].dataset
        index = osp.join(ds.data_root, ds.ann_file)
        if osp.isfile(index):
            with open(index, 'rb') as f:
                meta = pickle.load(f)['metainfo']
            assert list(meta['grid_size']) == grids[0], (path, index)
            assert list(meta['point_cloud_range']) == pcr, (path, index)
            assert tuple(meta['classes']) == tuple(cfg.class_names), (path, index)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_dumped_schedule_and_hooks_are_inherited(path):
    cfg = _dumped(path)
    for stale in ('max_iters', 'switch_iter', 'schedule_iters', 'pipeline'):
        assert stale not in cfg, f'{path}: top-level `{stale}` (not used by the run)'
    assert cfg.train_cfg.type == 'TwoStageTrainLoop', path
    for sched in cfg.param_scheduler:
        if 'Cosine' in sched['type']:
            assert 'T_max' not in sched and 'end' not in sched, (path, sched)
    runtime = Config.fromfile(RUNTIME)
    assert cfg.custom_hooks == runtime.custom_hooks, f'{path} replaces the inherited hooks'
    assert cfg.default_hooks.logger.type == 'ProgressLoggerHook', path
    types = [h['type'] for h in cfg.custom_hooks]
    assert 'RNGStateHook' in types and 'TrainStageSwitchHook' not in types, types


def test_print_config_cli_applies_cfg_options(tmp_path):
    out = tmp_path / 'dump.py'
    cmd = [sys.executable, 'tools/misc/print_config.py', 'configs/test_local.py',
           '--cfg-options', 'train_cfg.max_iters=130', '--out', str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dumped = Config.fromfile(str(out))
    assert dumped.train_cfg.max_iters == 130
    assert dumped.train_cfg.switch_ratio == pytest.approx(11 / 17)
    # an existing dump is not replaced without --overwrite
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and '--overwrite' in proc.stderr
