"""ProgressLoggerHook: first iterations logged one by one, then every N; projected wall time."""
import re
import time

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner

from projects.common.hooks.progress import ProgressLoggerHook, format_duration, process_age_s


class _SlowStageModel(BaseModel):
    """Sleeps ``delay[stage]`` seconds per step: a known time per iteration and stage."""

    def __init__(self, delay):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.delay = delay
        self.train_stage = 'tokenizer'

    def set_stage(self, stage):
        self.train_stage = stage

    def forward(self, inputs, data_samples=None, mode='tensor'):
        time.sleep(self.delay[self.train_stage])
        return {'loss': ((self.w * inputs) ** 2).mean()}


def _run(tmp_path, name, train_cfg, delay, interval=10):
    runner = Runner(
        model=_SlowStageModel(delay), work_dir=str(tmp_path / name), experiment_name=name,
        train_dataloader=dict(dataset=[dict(inputs=torch.ones(1))] * 4, batch_size=1,
                              num_workers=0, sampler=dict(type='InfiniteSampler'),
                              collate_fn=dict(type='default_collate')),
        train_cfg=train_cfg, optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_scope='projects',
        default_hooks=dict(logger=dict(type='ProgressLoggerHook', interval=interval,
                                       first_iters=5, estimate_iters=3),
                           checkpoint=dict(type='CheckpointHook', interval=10_000)),
        log_processor=dict(window_size=1, by_epoch=False))
    runner.train()
    logger = MMLogger.get_current_instance()
    with open(logger.log_file) as f:
        return f.read()


def _logged_iters(log, max_iters):
    return [int(m) for m in re.findall(rf'Iter\(train\) \[\s*(\d+)/{max_iters}\]', log)]


def test_format_duration():
    assert format_duration(42.4) == '42 s'
    assert format_duration(307) == '5 min 07 s'
    assert format_duration(3 * 3600 + 4 * 60 + 9) == '3 h 04 min'
    assert format_duration(2 * 86400 + 3 * 3600 + 240) == '2 d 3 h 04 min'


def test_process_age_counts_from_the_process_start():
    first = process_age_s()
    assert first is not None and first > 0  # this test process started before the call
    time.sleep(0.05)
    assert process_age_s() >= first + 0.04


def test_first_iterations_individually_then_every_interval(tmp_path):
    log = _run(tmp_path, 'single', dict(type='IterBasedTrainLoop', max_iters=25),
               delay={'tokenizer': 0.0}, interval=10)
    assert _logged_iters(log, 25) == [1, 2, 3, 4, 5, 10, 20]
    assert len(re.findall(r'progress: ', log)) == 1


def test_projection_uses_measured_rate_per_stage(tmp_path):
    # 6 tokenizer iterations at 0.05 s, then 14 world iterations at 0.2 s.
    log = _run(tmp_path, 'two', dict(type='TwoStageTrainLoop', max_iters=20, switch_iter=6),
               delay={'tokenizer': 0.05, 'world': 0.2}, interval=100)
    lines = [ln for ln in log.splitlines() if 'progress: ' in ln]
    assert len(lines) == 2, lines
    first, second = lines
    # start-up line after iterations 2-4 (the first is not timed)
    rate = float(re.search(r'progress: ([\d.]+) s/iter measured over iterations 2-4', first)[1])
    assert rate == pytest.approx(0.05, abs=0.03)
    assert "16 remaining" not in first and "2 'tokenizer' at" in first
    assert "14 'world' assumed at" in first and 'finishing around' in first
    # after the switch: world iterations 8-10 measured (7 is the first of the stage)
    wrate = float(re.search(r'progress: ([\d.]+) s/iter measured over iterations 8-10', second)[1])
    assert wrate == pytest.approx(0.2, abs=0.05)
    assert "10 'world' at" in second and 'since the process started' in second
    total, elapsed = re.search(r'this machine\): ([^,]+), (.+?) elapsed', second).groups()

    def secs(text):
        units = {'s': 1, 'min': 60, 'h': 3600, 'd': 86400}
        return sum(int(v) * units[u] for v, u in re.findall(r'(\d+) (d|h|min|s)\b', text))
    # total = elapsed + the 10 remaining world iterations at ~0.2 s (second resolution)
    assert 1 <= secs(total) - secs(elapsed) <= 6, (total, elapsed)


def test_invalid_arguments():
    with pytest.raises(ValueError, match='estimate_iters'):
        ProgressLoggerHook(estimate_iters=0)
    with pytest.raises(ValueError, match='first_iters'):
        ProgressLoggerHook(first_iters=-1)
