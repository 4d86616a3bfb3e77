"""`tools/dist_test.sh CONFIG CKPT 2` reports the same metrics as `tools/test.py` (issue 3).

Issue 3, item 7.

A tiny ``test_local`` checkpoint (world stage) is evaluated on 3 windows by one process and by
two gloo processes. With 3 windows the distributed sampler pads rank 1 with a repeated window;
the metrics must not count it (MMEngine's ``collect_results`` truncates the gathered results,
and ``OccupancyCollapseHook`` skips the padding itself). Both tools log the final metrics to
``<work_dir>/<timestamp>/<timestamp>.json``; every value there (metrics and the collapse
statistics) must agree to 1e-6.
"""
import glob
import json
import math
import os.path as osp
import sys

import pytest
from tool_runner import run_tool, tool_env

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'test_local.py')
DATA = osp.join(ROOT, 'data', 'tokyo_local', 'aerialworld_infos_train.pkl')
TOL = 1e-6
# Timing entries of the log, not results.
_SKIP_KEYS = {'time', 'data_time', 'step', 'iter', 'epoch', 'memory'}
TEST_OPTIONS = [
    'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
    'test_dataloader.dataset.max_windows=3', 'test_dataloader.batch_size=2',
    'custom_hooks.6.max_samples=0',
]

pytestmark = pytest.mark.slow


def _run(args, port=None):
    return run_tool(args, timeout=900, env=tool_env('1', force_threads=True, port=port))


def _final_metrics(work_dir):
    files = glob.glob(osp.join(str(work_dir), '*', '*.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert records, f'{files[0]} is empty'
    return {k: v for k, v in records[-1].items() if k not in _SKIP_KEYS}


def _same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= TOL
    return a == b


def test_dist_test_two_processes_matches_single_process(tmp_path, free_port):
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` first')
    train = tmp_path / 'train'
    _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(train), '--seed', '0',
          '--max-iters', '2', '--cfg-options', 'train_cfg.switch_ratio=None',
          'train_cfg.switch_iter=1',
          'train_cfg.val_interval=1000', 'train_cfg.val_begin=1000',  # no validation pass
          'default_hooks.checkpoint.interval=2',
          'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
          'train_dataloader.dataset.max_windows=4', 'val_dataloader.num_workers=0',
          'val_dataloader.persistent_workers=False', 'val_dataloader.dataset.max_windows=1',
          'custom_hooks.6.max_samples=0',
          'model.reveal_chooser.fit_cfg.steps=20'])  # the final chooser fit, shortened
    ckpt = str(train / 'iter_2.pth')
    assert osp.isfile(ckpt)

    single = tmp_path / 'single'
    out = _run([sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir', str(single),
                '--cfg-options', *TEST_OPTIONS])
    assert 'OccupancyCollapseHook (test, 3 samples)' in out, out[-3000:]
    dist = tmp_path / 'dist'
    out = _run(['bash', 'tools/dist_test.sh', CONFIG, ckpt, '2', '--work-dir', str(dist),
                '--cfg-options', *TEST_OPTIONS], port=free_port)
    assert 'Distributed launcher: pytorch' in out, out[-3000:]
    assert 'OccupancyCollapseHook (test, 3 samples)' in out, out[-3000:]

    want, got = _final_metrics(single), _final_metrics(dist)
    assert 'IoU@mean' in want and 'collapse/gt_rate' in want, sorted(want)
    assert sorted(got) == sorted(want)
    bad = {k: (got[k], want[k]) for k in want if not _same(got[k], want[k])}
    assert not bad, f'2-process metrics differ from the single process: {bad}'
