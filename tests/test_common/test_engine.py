"""Unit tests of the engine pieces: checkpoint compatibility, CPU DDP, AMP selection."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import HistoryBuffer, MessageHub

from projects.common.engine import CPUBf16OptimWrapper, DeviceAgnosticDDP
from projects.common.engine.launch import (ConfigFlagError, apply_amp, finalize_distributed,
                                           set_by_path)
from projects.common.hooks import CheckpointCompatHook
from projects.common.utils import register_checkpoint_safe_globals


def _checkpoint(name):
    hub = MessageHub.get_instance(f'test_engine_hub_{name}')
    for v in (1.5, 2.5, np.float64(3.5)):
        hub.update_scalar('train/loss', v)
    hub.update_info('iter', 7)
    return {'meta': {'seed': np.int64(3), 'iter': 7, 'arr': np.arange(3.0)},
            'state_dict': {'w': torch.ones(2)},
            'message_hub': hub.state_dict()}


def test_raw_mmengine_checkpoint_needs_unsafe_getattr(tmp_path):
    # Documents why the hook exists: HistoryBuffer pickles its methods through getattr.
    register_checkpoint_safe_globals()
    torch.save(_checkpoint('raw'), tmp_path / 'raw.pth')
    with pytest.raises(Exception, match='getattr'):
        torch.load(tmp_path / 'raw.pth', weights_only=True)


def test_checkpoint_round_trip_weights_only(tmp_path):
    register_checkpoint_safe_globals()
    ckpt = _checkpoint('round_trip')
    hook = CheckpointCompatHook()
    hook.before_save_checkpoint(None, ckpt)
    torch.save(ckpt, tmp_path / 'c.pth')
    loaded = torch.load(tmp_path / 'c.pth', weights_only=True)
    hook.after_load_checkpoint(None, loaded)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    np.testing.assert_allclose(buf.data[0], [1.5, 2.5, 3.5])
    assert buf.mean() == pytest.approx(2.5)
    assert loaded['meta']['seed'] == 3 and loaded['message_hub']['runtime_info']['iter'] == 7
    np.testing.assert_array_equal(loaded['meta']['arr'], np.arange(3.0))


def test_device_agnostic_ddp_on_cpu(tmp_path, monkeypatch, free_port):
    # The file:// rendezvous needs no port; the variables are set for code that reads them,
    # only for this test (monkeypatch) and on a free port, not a fixed one that a parallel
    # test or another job could hold.
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port))
    dist.init_process_group('gloo', rank=0, world_size=1,
                            init_method=f'file://{tmp_path}/pg')
    try:
        model = torch.nn.Linear(3, 2)
        ddp = DeviceAgnosticDDP(model, device_ids=[0], broadcast_buffers=False)
        assert ddp.device_ids is None
        out = ddp(torch.ones(4, 3))
        out.sum().backward()
        assert model.weight.grad is not None
    finally:
        dist.destroy_process_group()


def test_finalize_distributed_destroys_the_group(tmp_path):
    finalize_distributed()  # no process group: nothing to do, no error
    dist.init_process_group('gloo', rank=0, world_size=1, init_method=f'file://{tmp_path}/pg2')
    try:
        finalize_distributed()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_apply_amp_picks_cpu_bf16_wrapper():
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW'))))
    msg = apply_amp(cfg)
    if torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    else:
        assert cfg.optim_wrapper.type == 'CPUBf16OptimWrapper' and 'GPU' in msg


def test_cpu_bf16_wrapper_autocasts():
    model = torch.nn.Linear(4, 4)
    wrapper = CPUBf16OptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        y = model(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
    wrapper.update_params(y.float().pow(2).mean())


def test_set_by_path_errors_name_the_key():
    cfg = Config(dict(train_dataloader=dict(batch_size=2)))
    set_by_path(cfg, 'train_dataloader.batch_size', 4)
    assert cfg.train_dataloader.batch_size == 4
    with pytest.raises(ConfigFlagError, match='optim_wrapper'):
        set_by_path(cfg, 'optim_wrapper.optimizer.lr', 0.1)


def test_guarded_optim_wrapper_skips_and_stops_on_nonfinite():
    from projects.common.engine import GuardedOptimWrapper, NonFiniteLossError
    model = torch.nn.Linear(2, 1)
    wrapper = GuardedOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                  max_consecutive_nonfinite=3)
    before = model.weight.detach().clone()
    wrapper.update_params(model(torch.ones(1, 2)).sum() * float('nan'))
    assert torch.equal(model.weight, before) and model.weight.grad is None
    wrapper.update_params(model(torch.ones(1, 2)).sum())  # finite: a real step, resets count
    assert not torch.equal(model.weight, before) and wrapper.consecutive_nonfinite == 0
    wrapper.update_params(torch.tensor(float('inf'), requires_grad=True))
    wrapper.update_params(torch.tensor(float('nan'), requires_grad=True))
    with pytest.raises(NonFiniteLossError, match='3 consecutive non-finite'):
        wrapper.update_params(torch.tensor(float('nan'), requires_grad=True))
    assert wrapper.total_nonfinite == 4


def test_fault_tolerant_runner_writes_checkpoints_atomically(tmp_path, monkeypatch):
    from mmengine.runner import Runner

    from projects.common.engine import FaultTolerantRunner

    written = []

    def fake_save(self, out_dir, filename, *args, **kwargs):
        path = os.path.join(out_dir, filename)
        with open(path, 'wb') as f:
            f.write(b'partial')
        written.append(filename)
        if kwargs.get('fail'):
            raise OSError('disk full')

    monkeypatch.setattr(Runner, 'save_checkpoint', fake_save)
    runner = object.__new__(FaultTolerantRunner)
    runner.save_checkpoint(str(tmp_path), 'iter_1.pth')
    assert written[-1].startswith('.iter_1.pth.tmp') and (tmp_path / 'iter_1.pth').is_file()
    with pytest.raises(OSError):
        runner.save_checkpoint(str(tmp_path), 'iter_2.pth', fail=True)
    assert sorted(os.listdir(tmp_path)) == ['iter_1.pth']  # no partial file left behind
