"""End-to-end tests of tools/train.py, tools/test.py and tools/dist_train.sh.

They run the real tools as subprocesses on the bundled Tokyo PLATEAU sessions (``data/tokyo_local``,
built by ``tools/install.sh``) with the ``test_local`` config shrunk to a few iterations:
train -> checkpoints + TensorBoard events -> resume -> test, a SIGKILLed run resumed with
``--resume``, two-process gloo training, ``--amp`` on the CPU and ``--eval-only``.
"""
import glob
import re
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from tool_runner import run_tool, tool_env

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'test_local.py')
DATA = osp.join(ROOT, 'data', 'tokyo_local', 'aerialworld_infos_train.pkl')

pytestmark = pytest.mark.slow

# A few iterations: stage switch at 2, checkpoints every 2, validation on 2 windows.
SMALL = [
    'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
    'default_hooks.checkpoint.interval=2', 'train_cfg.switch_ratio=None', 'train_cfg.switch_iter=2',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'val_dataloader.dataset.max_windows=2', 'train_dataloader.dataset.max_windows=16',
    'default_hooks.logger.interval=1',
    # the reveal chooser's final fit (RevealChooserFitHook, after the last iteration) with 20
    # AdamW steps instead of 1200: the same code path, ~70 s less per run
    'model.reveal_chooser.fit_cfg.steps=20',
]


_env = tool_env


def _run(args, timeout=900, env=None, **kw):
    return run_tool(args, timeout=timeout, env=env, **kw)


@pytest.fixture(scope='module', autouse=True)
def _bundled_data():
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` (it builds the bundled '
                    'Tokyo sessions) before the test suite')


def _train(work_dir, extra=(), options=SMALL):
    return _run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
                 *extra, '--cfg-options', *options])


def test_train_resume_test(tmp_path):
    work = tmp_path / 'run'
    out = _train(work)
    assert osp.isfile(work / 'iter_4.pth'), out[-3000:]
    assert glob.glob(str(work / '*' / 'vis_data' / 'events.out.tfevents.*')), \
        'no TensorBoard events written'
    assert 'IoU@6' in out and 'baseline' in out, out[-3000:]
    assert 'reveal chooser fit (rank 0): 16 windows' in out, out[-3000:]
    # resume from the latest checkpoint and train 2 more iterations (no validation pass, not even
    # the final one: the iter_6 checkpoint is evaluated by tools/test.py and --eval-only below)
    options = [o for o in SMALL if not o.startswith(('train_cfg.max_iters', 'train_cfg.val_int'))]
    out = _train(work, ['--resume'], options + ['train_cfg.max_iters=6',
                                                'train_cfg.val_interval=1000',
                                                'train_cfg.val_begin=1000'])
    assert 'resumed' in out.lower() and osp.isfile(work / 'iter_6.pth'), out[-3000:]
    out = _run([sys.executable, 'tools/test.py', CONFIG, str(work / 'iter_6.pth'),
                '--work-dir', str(tmp_path / 'test'), '--cfg-options',
                'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
                'test_dataloader.dataset.max_windows=2'])
    assert 'IoU@6' in out and 'mIoU@mean' in out, out[-3000:]
    out = _train(tmp_path / 'eval', ['--eval-only', '--load-from', str(work / 'iter_6.pth')])
    assert 'IoU@6' in out, out[-3000:]


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    work = tmp_path / 'killed'
    options = [o for o in SMALL if not o.startswith(('train_cfg.max_iters', 'train_cfg.val_int'))]
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options',
         *options, 'train_cfg.max_iters=1000', 'train_cfg.val_interval=1000'],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.time() + 600
        while not osp.isfile(work / 'iter_4.pth'):
            assert proc.poll() is None, 'training exited before writing iter_4.pth'
            assert time.time() < deadline, 'no checkpoint after 600 s'
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    last = open(work / 'last_checkpoint').read().strip()
    done = int(osp.basename(last).split('_')[1].split('.')[0])
    # the resumed run trains on to done + 2 (no validation pass: not what this test checks)
    out = _train(work, ['--resume'], options + [f'train_cfg.max_iters={done + 2}',
                                                'train_cfg.val_interval=1000',
                                                'train_cfg.val_begin=1000'])
    assert 'resumed' in out.lower() and f'Iter(train) [{done + 1}/' in out, out[-3000:]
    assert osp.isfile(work / f'iter_{done + 2}.pth')


def test_dist_train_two_processes_gloo(tmp_path, free_port):
    work = tmp_path / 'dist'
    out = _run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work),
                '--cfg-options', *SMALL], env=dict(_env(), PORT=str(free_port)))
    assert osp.isfile(work / 'iter_4.pth'), out[-3000:]
    assert 'Distributed training: True' in out and 'Distributed launcher: pytorch' in out, \
        out[-3000:]
    # both ranks fit the reveal chooser on the same windows; rank 0's weights are broadcast
    assert 'reveal chooser fit (rank 0): 16 windows' in out, out[-3000:]


def test_amp_on_cpu_uses_bf16_wrapper(tmp_path):
    options = [o for o in SMALL if not o.startswith(('train_cfg.max_iters', 'train_cfg.val_int'))]
    out = _train(tmp_path / 'amp', ['--amp'], options + ['train_cfg.max_iters=1',
                                                         'train_cfg.val_interval=1000'])
    assert 'CPUBf16OptimWrapper' in out, out[-3000:]


def test_bad_flag_combination_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--epochs', '3',
                           '--work-dir', str(tmp_path)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and '--max-iters' in proc.stderr


def test_sigterm_writes_checkpoint_and_exits_cleanly(tmp_path):
    work = tmp_path / 'sigterm'
    options = [o for o in SMALL if not o.startswith(('train_cfg.max_iters', 'train_cfg.val_int'))]
    out_path = tmp_path / 'sigterm_out.txt'
    with open(out_path, 'w') as out_file:  # a file, not a pipe: a full pipe would block
        proc = subprocess.Popen(
            [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options',
             *options, 'train_cfg.max_iters=1000', 'train_cfg.val_interval=1000',
             'default_hooks.checkpoint.interval=1000'],
            cwd=ROOT, env=_env(), stdout=out_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 600
            # MMEngine pads the iteration to the width of max_iters: "[   3/1000]"
            while not re.search(r'Iter\(train\) \[\s*3/', out_path.read_text()):
                assert proc.poll() is None, out_path.read_text()[-3000:]
                assert time.time() < deadline, 'training did not reach iteration 3'
                time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = out_path.read_text()
    assert proc.returncode == 0, out[-3000:]
    assert 'SIGTERM received' in out, out[-3000:]
    ckpts = glob.glob(str(work / 'iter_*.pth'))
    assert len(ckpts) == 1, ckpts
    assert open(work / 'last_checkpoint').read().strip() == ckpts[0]
