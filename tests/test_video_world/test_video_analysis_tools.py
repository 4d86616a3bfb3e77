"""tools/analysis_tools/find_lr.py (LR range test) and benchmark_video_world.py."""
import importlib.util
import json
import os.path as osp
import re

import pytest
import torch

from tool_runner import ROOT, run_tool, tool_env

NUSC = 'configs/video_world/nuscenes_front.py'
#: Cheapest real-data training step: 1 clip of 3 frames at 64 x 112.
NUSC_SMALL = ['train_dataloader.batch_size=1', 'train_dataloader.num_workers=0',
              'train_dataloader.persistent_workers=False']


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', 'analysis_tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


find_lr = _load('find_lr')
bench = _load('benchmark_video_world')


def test_exponential_lrs_and_smoothing_hand_computed():
    lrs = find_lr.exponential_lrs(1e-4, 1e-1, 4)
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    # beta 0.5: m1 = 0.5 * 4 = 2 -> 2 / 0.5 = 4; m2 = 0.5 * 2 + 0.5 * 2 = 2 -> 2 / 0.75.
    assert find_lr.smooth_losses([4.0, 2.0], beta=0.5) == pytest.approx([4.0, 2.0 / 0.75])
    with pytest.raises(ValueError, match='start-lr'):
        find_lr.exponential_lrs(1e-1, 1e-3, 5)
    with pytest.raises(ValueError, match='iters'):
        find_lr.exponential_lrs(1e-4, 1e-1, 1)


@pytest.mark.parametrize('curvature', [1.0, 10.0, 100.0])
def test_suggestion_on_a_quadratic_lies_in_the_stable_range(curvature):
    """SGD on f(x) = a/2 |x|^2 contracts by |1 - lr a| per step: fastest near lr = 1/a,
    divergent beyond 2/a. The sweep must stop on divergence and suggest an LR in
    [0.1/a, 2/a]."""
    torch.manual_seed(0)
    x = torch.nn.Parameter(torch.randn(50))
    opt = torch.optim.SGD([x], lr=1.0)

    def set_lr(lr):
        opt.param_groups[0]['lr'] = lr

    def step():
        loss = 0.5 * curvature * (x ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    lrs = find_lr.exponential_lrs(1e-4 / curvature, 100.0 / curvature, 60)
    rec = find_lr.lr_sweep(step, set_lr, lrs, log=None)
    assert rec['stopped'] == 'diverged' and len(rec['lr']) < 60
    assert rec['smoothed'] == pytest.approx(find_lr.smooth_losses(rec['loss']))
    sug = find_lr.suggest_lr(rec['lr'], rec['smoothed'], skip_start=3)
    assert 0.1 / curvature <= sug['steepest'] <= 2.0 / curvature, sug


def test_sweep_stops_on_a_non_finite_loss():
    losses = iter([1.0, 0.5, float('nan'), 0.1])
    rec = find_lr.lr_sweep(lambda: next(losses), lambda lr: None, [1, 2, 3, 4], log=None)
    assert rec['stopped'] == 'non-finite' and rec['loss'] == [1.0, 0.5]


def test_find_lr_refuses_to_clobber(tmp_path):
    out = tmp_path / 'lr.png'
    out.write_bytes(b'old plot')
    with pytest.raises(SystemExit, match='--overwrite'):
        find_lr.main([NUSC, '--out', str(out), '--iters', '3'])
    assert out.read_bytes() == b'old plot'


@pytest.mark.slow
def test_find_lr_and_benchmark_tools_on_real_frames(tmp_path):
    """Both tools through their command lines on the nuScenes CAM_FRONT config (1 clip)."""
    out = tmp_path / 'flr' / 'find_lr.png'
    log = run_tool(['python', 'tools/analysis_tools/find_lr.py', NUSC, '--iters', '4',
                    '--start-lr', '1e-5', '--end-lr', '1e-2', '--skip-start', '0',
                    '--out', str(out), '--cfg-options'] + NUSC_SMALL, env=tool_env('1'))
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    curve = json.loads(out.with_suffix('.json').read_text())
    assert curve['lr'] == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2])
    assert len(curve['loss']) == 4 and all(v > 0 for v in curve['loss'])
    m = re.search(r'suggested base LR \(steepest descent\): ([0-9.e+-]+)', log)
    assert m and any(float(m.group(1)) == pytest.approx(lr, rel=1e-2) for lr in curve['lr']), \
        log[-2000:]
    # Encoder at lr_mult 0.1 of the schedule base: the ratios are kept.
    assert '[0.1, 1.0]' in log

    log = run_tool(['python', 'tools/analysis_tools/benchmark_video_world.py', NUSC,
                    '--iters', '1', '--warmup', '0', '--cfg-options'] + NUSC_SMALL,
                   env=tool_env('1'))
    res = json.loads([ln for ln in log.splitlines() if ln.startswith('RESULT ')][0][7:])
    assert res['device'] == 'cpu' and res['batch_size'] == 1 and res['frames'] == '3x64x112'
    assert res['it_per_s'] == pytest.approx(1 / res['s_per_iter'], rel=1e-3)
    assert res['peak_mib'] > 100 and res['params_m'] > 0
    assert 'peak RSS' in log and 'it/s' in log and 'nuscenes_front.py' in log.splitlines()[-1]


def test_benchmark_table_format():
    row = dict(config='configs/video_world/x.py', device='cpu', batch_size=2,
               frames='10x64x64', params_m=1.5, it_per_s=0.5, s_per_iter=2.0,
               cpu_s_per_iter=1.9, clips_per_s=1.0, peak_mib=900.0)
    table = bench.format_table([row])
    last = table.splitlines()[-1].split()
    assert last == ['x.py', 'cpu', '2', '10x64x64', '1.50', '0.500', '2.000', '1.900', '1.00',
                    '900']
