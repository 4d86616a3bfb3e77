"""tools/train.py flags of the original AerialWorld: --from-scratch, --gpu-ids, --wandb-*."""
import importlib.util
import os
import os.path as osp

import pytest
from mmengine.config import Config

from projects.common.engine.launch import ConfigFlagError, add_wandb_backend, select_gpus

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _train_module():
    spec = importlib.util.spec_from_file_location('train_tool',
                                                  osp.join(ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cfg(**extra):
    cfg = Config(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=10),
                      visualizer=dict(type='Visualizer',
                                      vis_backends=[dict(type='LocalVisBackend')]),
                      load_from='weights.pth',
                      model=dict(type='M', tokenizer=dict(
                          type='T', init_cfg=dict(type='Pretrained', checkpoint='t.pth')),
                          init_cfg=[dict(type='Normal', std=0.1)]), **extra))
    return cfg


def test_from_scratch_ignores_load_from_and_pretrained_init():
    tool = _train_module()
    cfg = _cfg()
    tool.apply_aliases(cfg, tool.parse_args(['x.py', '--from-scratch']))
    assert cfg.load_from is None
    assert cfg.model.tokenizer.init_cfg is None
    assert cfg.model.init_cfg == [dict(type='Normal', std=0.1)]  # other inits are kept
    with pytest.raises(ConfigFlagError, match='--from-scratch cannot be combined'):
        tool.apply_aliases(_cfg(), tool.parse_args(['x.py', '--from-scratch', '--resume']))


def test_gpu_ids_set_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    message = select_gpus('1', 'none')
    assert os.environ['CUDA_VISIBLE_DEVICES'] == '1' and '--gpu-ids' in message
    select_gpus('0, 2', 'pytorch')
    assert os.environ['CUDA_VISIBLE_DEVICES'] == '0,2'
    with pytest.raises(ConfigFlagError, match='dist_train.sh CONFIG 2'):
        select_gpus('0,1', 'none')
    with pytest.raises(ConfigFlagError, match='comma-separated GPU indices'):
        select_gpus('cuda:0', 'none')
    with pytest.raises(ConfigFlagError, match='repeated'):
        select_gpus('1,1', 'pytorch')


def test_wandb_flags_need_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'wandb' else real(name, *a))
    tool = _train_module()
    with pytest.raises(ConfigFlagError, match='need the wandb package'):
        tool.apply_aliases(_cfg(), tool.parse_args(['x.py', '--wandb-project', 'p']))
    # without any W&B flag nothing is required
    cfg = _cfg()
    tool.apply_aliases(cfg, tool.parse_args(['x.py']))
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']


def test_wandb_backend_offline_without_network(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: object() if name == 'wandb' else real(name, *a))
    monkeypatch.delenv('WANDB_MODE', raising=False)
    cfg = _cfg()
    message = add_wandb_backend(cfg, 'aerial', 'run-1', ['a', 'b'], reachable=False)
    backend = cfg.visualizer.vis_backends[-1]
    assert backend == dict(type='WandbVisBackend', init_kwargs=dict(
        project='aerial', name='run-1', tags=['a', 'b'], mode='offline'))
    assert 'offline' in message and 'wandb sync' in message
    cfg = _cfg()
    add_wandb_backend(cfg, reachable=True)
    assert cfg.visualizer.vis_backends[-1]['init_kwargs'] == dict(project='occworld-tokyo')
    # the user's WANDB_MODE wins over the network test
    monkeypatch.setenv('WANDB_MODE', 'disabled')
    cfg = _cfg()
    assert 'WANDB_MODE=disabled' in add_wandb_backend(cfg, reachable=False)
    assert 'mode' not in cfg.visualizer.vis_backends[-1]['init_kwargs']
