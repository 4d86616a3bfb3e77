"""A resumed run continues with exactly the losses of an uninterrupted run (issue 3, item 7).

``tools/train.py configs/test_local.py --deterministic --seed 0`` runs for ``N`` iterations
uninterrupted; then (a) a new run resumes from the reference's ``iter_2.pth`` and (b) a run with
a data-loader worker is SIGKILLed after ``iter_4.pth`` and resumed with ``--resume``. Every
logged per-iteration value after the checkpoint (losses, gradient norm, learning rate) must
match the reference to 1e-6. The overrides make the short runs cover what can break an exact
resume: random draws in the tokenizer stage (frame subsets, codebook seeding), the stage switch
(at iteration 4), validation right after a checkpoint (``val_interval=2``), and a new pass over
the data starting exactly at a resumed iteration (8 windows, batch 2: 4 iterations per pass).
``max_iters`` is the same in every run, so the learning-rate schedules agree.
"""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import pytest
from tool_runner import run_tool, tool_env

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'test_local.py')
DATA = osp.join(ROOT, 'data', 'tokyo_local', 'aerialworld_infos_train.pkl')
N = 6
TOL = 1e-6
# Logged values that are not functions of the training state.
_SKIP_KEYS = {'iter', 'epoch', 'step', 'time', 'data_time', 'eta', 'memory'}

# One xdist worker runs this module (pytest -n 2): its tests share the reference run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('resume_equivalence')]


def _options(num_workers):
    persistent = 'True' if num_workers > 0 else 'False'
    return [
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
        'default_hooks.checkpoint.max_keep_ckpts=-1', 'train_cfg.switch_ratio=None',
        'train_cfg.switch_iter=4',
        f'train_dataloader.num_workers={num_workers}',
        f'train_dataloader.persistent_workers={persistent}',
        'train_dataloader.dataset.max_windows=8',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'val_dataloader.dataset.max_windows=1', 'custom_hooks.6.max_samples=0',
        'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        'model.reveal_chooser.fit_cfg.steps=20',  # the final chooser fit, shortened
    ]


def _cmd(work_dir, num_workers=0, extra=()):
    return [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
            '--deterministic', '--seed', '0', '--max-iters', str(N), *extra,
            '--cfg-options', *_options(num_workers)]


def _env():
    return tool_env('1', force_threads=True)  # identical float reductions in every run


def _run(args):
    return run_tool(args, timeout=900, env=_env())


def _train_scalars(work_dir, latest_only=False):
    """``{iter: record}`` of the training records of ``<work_dir>/<timestamp>/vis_data``."""
    files = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    records = {}
    for path in files[-1:] if latest_only else files:
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    records[int(rec['iter'])] = rec
    return records


def _assert_same(resumed, reference, iters):
    assert sorted(resumed) == list(iters), f'logged iterations {sorted(resumed)} != {iters}'
    for it in iters:
        got, want = resumed[it], reference[it]
        keys = sorted(k for k in want if k not in _SKIP_KEYS)
        assert [k for k in keys if k not in got] == [], f'iteration {it}: keys missing'
        diffs = {k: abs(float(got[k]) - float(want[k])) for k in keys}
        bad = {k: (got[k], want[k]) for k, d in diffs.items() if not d <= TOL}
        assert not bad, f'iteration {it}: resumed != uninterrupted: {bad}'


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` first')
    work = tmp_path_factory.mktemp('resume_ref')
    _run(_cmd(work))
    scalars = _train_scalars(work)
    assert sorted(scalars) == list(range(1, N + 1)), sorted(scalars)
    return work, scalars


def test_resume_from_checkpoint_matches_uninterrupted_run(reference, tmp_path):
    ref_dir, ref = reference
    work = tmp_path / 'resumed'
    work.mkdir()
    shutil.copy(ref_dir / 'iter_2.pth', work / 'iter_2.pth')
    out = _run(_cmd(work, extra=['--resume', str(work / 'iter_2.pth')]))
    assert 'restored the generator states of iteration 2' in out, out[-3000:]
    _assert_same(_train_scalars(work), ref, range(3, N + 1))


def test_sigkilled_run_with_worker_resumes_exactly(reference, tmp_path):
    _, ref = reference
    work = tmp_path / 'killed'
    proc = subprocess.Popen(_cmd(work, num_workers=1), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 600
        while not osp.isfile(work / 'iter_4.pth'):
            assert proc.poll() is None, 'training exited before writing iter_4.pth'
            assert time.time() < deadline, 'no checkpoint after 600 s'
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with open(work / 'last_checkpoint') as f:
        done = int(osp.basename(f.read().strip()).split('_')[1].split('.')[0])
    assert done < N, 'the run finished before it was killed'
    # Before the kill the worker-fed run already followed the reference.
    _assert_same({k: v for k, v in _train_scalars(work).items() if k <= done}, ref,
                 range(1, done + 1))
    out = _run(_cmd(work, num_workers=1, extra=['--resume']))
    assert f'restored the generator states of iteration {done}' in out, out[-3000:]
    _assert_same(_train_scalars(work, latest_only=True), ref, range(done + 1, N + 1))
