"""RNGStateHook: generator states survive a weights-only checkpoint round trip."""
import io
import random
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch

from projects.common.hooks import RNGStateHook, capture_rng_state, restore_rng_state
from projects.common.hooks.rng_state import _RestoreBeforeNextBatch


def _draw():
    return (random.random(), float(np.random.rand()), float(torch.rand(())),
            random.gauss(0, 1), float(np.random.randn()))


def test_capture_restore_round_trip_through_weights_only_load():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's generator
    np.random.randn()
    state = capture_rng_state()
    buf = io.BytesIO()
    torch.save({'rng_state': state}, buf)
    buf.seek(0)
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()  # plain data: needs no allow-listed globals
    try:
        loaded = torch.load(buf, weights_only=True)['rng_state']
    finally:
        torch.serialization.add_safe_globals(allowed)
    expected = _draw()
    _draw()
    restore_rng_state(loaded)
    assert _draw() == expected


def test_restore_rejects_foreign_state():
    with pytest.raises(ValueError, match='python'):
        restore_rng_state({'torch': torch.get_rng_state()})


def _runner(iteration):
    loop = SimpleNamespace(iter=iteration, dataloader_iterator=iter(range(100)))
    return SimpleNamespace(iter=iteration, train_loop=loop, logger=mock.Mock())


def test_hook_restores_after_the_skipped_batches_only_when_resuming():
    hook = RNGStateHook()
    torch.manual_seed(0)
    runner = _runner(3)
    hook.after_train_iter(runner, 0)
    ckpt = {'meta': {'iter': 4, 'epoch': 0}}
    hook.before_save_checkpoint(runner, ckpt)
    assert ckpt['rng_state']['world_size'] == 1 and ckpt['rng_state']['iter'] == 4
    expected = torch.rand(3)

    # resume at iteration 4: 4 batches are skipped, then the state is restored
    torch.manual_seed(123)
    runner = _runner(4)
    hook.after_load_checkpoint(runner, ckpt)
    hook.before_train(runner)
    loop = runner.train_loop
    assert isinstance(loop.dataloader_iterator, _RestoreBeforeNextBatch)
    for _ in range(4):
        next(loop.dataloader_iterator)
        torch.rand(5)  # draws during the replay do not matter
    assert next(loop.dataloader_iterator) == 4
    assert not isinstance(loop.dataloader_iterator, _RestoreBeforeNextBatch)
    assert torch.equal(torch.rand(3), expected)

    # load_from (fine-tuning, loop at 0): the seeded state is kept
    hook = RNGStateHook()
    runner = _runner(0)
    hook.after_load_checkpoint(runner, ckpt)
    hook.before_train(runner)
    assert not isinstance(runner.train_loop.dataloader_iterator, _RestoreBeforeNextBatch)


def test_validation_during_training_leaves_the_stream_unchanged():
    hook = RNGStateHook()
    runner = _runner(0)
    hook.before_train(runner)
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    hook.before_val(runner)
    torch.rand(10)
    hook.after_val(runner)
    assert torch.equal(torch.rand(2), expected)


def _fault_tolerant_runner(tmp_path, custom_hooks):
    import torch.nn as nn
    from mmengine.model import BaseModel

    from projects.common.engine import FaultTolerantRunner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, inputs=None, data_samples=None, mode='tensor'):
            return {'loss': self.w.sum()}

    return FaultTolerantRunner(model=Tiny(), work_dir=str(tmp_path), default_scope='projects',
                               custom_hooks=custom_hooks)


def test_runner_takes_the_hook_from_the_config_and_warns_without_it(tmp_path):
    runner = _fault_tolerant_runner(tmp_path / 'with', [dict(type='RNGStateHook')])
    assert sum(isinstance(h, RNGStateHook) for h in runner.hooks) == 1
    with mock.patch('projects.common.engine.runner.print_log') as log:
        runner = _fault_tolerant_runner(tmp_path / 'without', [])
    # nothing is added behind the config's back; the warning says what is lost
    assert not any(isinstance(h, RNGStateHook) for h in runner.hooks)
    assert log.call_count == 1 and 'no RNGStateHook' in log.call_args[0][0]
