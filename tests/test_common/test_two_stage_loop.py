"""TwoStageTrainLoop, ProportionalCosineAnnealingLR and TrainStageCheckpointHook.

A toy two-stage model trains under a real MMEngine Runner; the tests check on which iteration
the stage changes and which learning rate every iteration used, for the schedules of the real
AerialWorld configs and after ``train_cfg.max_iters`` overrides (as ``--cfg-options`` does).
"""
import copy
import math
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

from projects.common.engine import (TwoStageTrainLoop, checkpoint_stage, resolve_switch_iter,
                                    stage_schedule)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _StageModel(BaseModel):
    """One weight; ``set_stage`` records the stage (AerialWorld's protocol)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.train_stage = 'tokenizer'

    def set_stage(self, stage):
        self.train_stage = stage

    def forward(self, inputs, data_samples=None, mode='tensor'):
        loss = ((self.w * inputs) ** 2).mean()
        return {'loss': loss} if mode == 'loss' else loss


class _Record(Hook):
    """Record (iteration, stage, lr) when each iteration starts."""

    priority = 'LOWEST'

    def __init__(self):
        self.rows = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        lr = runner.optim_wrapper.get_lr()['lr'][0]
        self.rows.append((runner.iter, runner.model.train_stage, lr))


def _dataloader():
    return dict(dataset=[dict(inputs=torch.ones(1))] * 8, batch_size=2, num_workers=0,
                sampler=dict(type='InfiniteSampler', shuffle=False),
                collate_fn=dict(type='default_collate'))


def _train(tmp_path, train_cfg, param_scheduler, lr=1.0, name='run', custom_hooks=(),
           **kwargs):
    record = _Record()
    runner = Runner(
        model=_StageModel(), work_dir=str(tmp_path / name), experiment_name=name,
        train_dataloader=_dataloader(), train_cfg=copy.deepcopy(train_cfg),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)),
        param_scheduler=copy.deepcopy(param_scheduler), default_scope='projects',
        custom_hooks=[record, *custom_hooks],
        default_hooks=dict(logger=dict(type='ProgressLoggerHook', interval=100),
                           checkpoint=dict(type='CheckpointHook', interval=10_000)),
        **kwargs)
    runner.train()
    return runner, record.rows


def _cosine(step, t_max, base, eta_min):
    return eta_min + 0.5 * (base - eta_min) * (1 + math.cos(math.pi * step / t_max))


def test_resolve_switch_iter_and_errors():
    assert resolve_switch_iter(20000, switch_ratio=0.4) == 8000
    assert resolve_switch_iter(1300, switch_ratio=9 / 13) == 900
    assert resolve_switch_iter(10, switch_iter=3) == 3
    assert resolve_switch_iter(10, switch_ratio=1.0) == 10
    with pytest.raises(ValueError, match='exactly one'):
        resolve_switch_iter(10, switch_iter=3, switch_ratio=0.5)
    with pytest.raises(ValueError, match='exactly one'):
        resolve_switch_iter(10)
    with pytest.raises(ValueError, match=r'switch_ratio must be in \[0, 1\]'):
        resolve_switch_iter(10, switch_ratio=1.5)
    assert resolve_switch_iter(1, switch_iter=2) == 2  # a shortened run never switches
    with pytest.raises(ValueError, match='switch_iter must be an integer'):
        resolve_switch_iter(10, switch_iter=-1)
    with pytest.raises(ValueError, match='switch_iter must be an integer'):
        resolve_switch_iter(10, switch_iter=2.5)


def test_stage_switch_and_cosine_follow_max_iters(tmp_path):
    train_cfg = dict(type='TwoStageTrainLoop', max_iters=10, switch_ratio=0.4, val_interval=100)
    sched = [dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=0)]
    runner, rows = _train(tmp_path, train_cfg, sched, name='ten')
    assert isinstance(runner.train_loop, TwoStageTrainLoop)
    assert [s for _, s, _ in rows] == ['tokenizer'] * 4 + ['world'] * 6
    assert [lr for *_, lr in rows] == pytest.approx([_cosine(i, 10, 1.0, 0.0)
                                                     for i in range(10)])
    # --cfg-options train_cfg.max_iters=20: the switch moves to 8, the cosine spans 20.
    longer = dict(train_cfg, max_iters=20)
    _, rows = _train(tmp_path, longer, sched, name='twenty')
    assert [s for _, s, _ in rows] == ['tokenizer'] * 8 + ['world'] * 12
    assert [lr for *_, lr in rows] == pytest.approx([_cosine(i, 20, 1.0, 0.0)
                                                     for i in range(20)])


def test_absolute_switch_iter(tmp_path):
    train_cfg = dict(type='TwoStageTrainLoop', max_iters=6, switch_iter=1, val_interval=100)
    _, rows = _train(tmp_path, train_cfg, [], name='abs')
    assert [s for _, s, _ in rows] == ['tokenizer'] + ['world'] * 5


def test_proportional_cosine_keeps_the_tuned_lr_path(tmp_path):
    # the cosine of test_local (period_ratio 15/13: stopped at 13/15 of its period).
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'test_local.py'))
    cosine = [s for s in cfg.param_scheduler if 'Cosine' in s['type']]
    assert cosine[0]['type'] == 'ProportionalCosineAnnealingLR'
    train_cfg = dict(type='TwoStageTrainLoop', max_iters=13, switch_ratio=9 / 13,
                     val_interval=100)
    _, rows = _train(tmp_path, train_cfg, cosine, name='prop')
    eta_min = cosine[0]['eta_min']
    assert [lr for *_, lr in rows] == pytest.approx([_cosine(i, 15, 1.0, eta_min)
                                                     for i in range(13)])
    assert [s for _, s, _ in rows] == ['tokenizer'] * 9 + ['world'] * 4


@pytest.mark.parametrize('config', ['finetune_tokyo.py', 'test_local.py', 'finetune_nuscenes.py',
                                    'vqvae_tokyo.py', 'worldmodel_tokyo.py'])
def test_config_schedule_scales_with_max_iters(config):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    base = stage_schedule(cfg)
    max_iters = cfg.train_cfg.max_iters
    cfg.merge_from_dict({'train_cfg.max_iters': max_iters // 10})
    scaled = stage_schedule(cfg)
    assert scaled['stages'] == ('tokenizer', 'world')
    assert scaled['switch_iter'] == pytest.approx(base['switch_iter'] / 10, abs=1)
    for sched in cfg.param_scheduler:  # no fixed lengths that would go stale
        if 'Cosine' in sched['type']:
            assert 'T_max' not in sched and 'end' not in sched, (config, sched)


def test_checkpoint_stage_from_meta_or_iteration():
    cfg = dict(train_cfg=dict(type='TwoStageTrainLoop', max_iters=10, switch_ratio=0.5))
    assert checkpoint_stage(cfg, {'meta': {'train_stage': 'world', 'iter': 1}}) == 'world'
    # iter_5: iterations 0..4 ran, all in the tokenizer stage; iter_6 ran iteration 5 (world).
    assert checkpoint_stage(cfg, {'meta': {'iter': 5}}) == 'tokenizer'
    assert checkpoint_stage(cfg, {'meta': {'iter': 6}}) == 'world'
    assert checkpoint_stage(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=3)),
                            {'meta': {'iter': 2}}) is None


def test_checkpoint_hook_restores_the_stage(tmp_path):
    train_cfg = dict(type='TwoStageTrainLoop', max_iters=6, switch_ratio=0.5, val_interval=100)
    runner, _ = _train(tmp_path, train_cfg, [], name='ckpt',
                       custom_hooks=[dict(type='CheckpointCompatHook'),
                                     dict(type='TrainStageCheckpointHook')])
    path = tmp_path / 'ckpt' / 'iter_6.pth'
    runner.save_checkpoint(str(tmp_path / 'ckpt'), 'iter_6.pth')
    meta = torch.load(path, weights_only=False)['meta']
    assert meta['train_stage'] == 'world'
    # A fresh runner (as tools/test.py builds it) loads the checkpoint in the world stage.
    fresh = Runner(model=_StageModel(), work_dir=str(tmp_path / 'eval'), default_scope='projects',
                   custom_hooks=[dict(type='CheckpointCompatHook'),
                                 dict(type='TrainStageCheckpointHook')])
    assert fresh.model.train_stage == 'tokenizer'
    fresh.load_checkpoint(str(path))
    assert fresh.model.train_stage == 'world'


class _PlainModel(BaseModel):
    """A model without stages."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return {'loss': self.w.sum()}


def test_loop_rejects_a_model_without_stages(tmp_path):
    runner = Runner(model=_PlainModel(), work_dir=str(tmp_path / 'plain'),
                    train_dataloader=_dataloader(),
                    train_cfg=dict(type='TwoStageTrainLoop', max_iters=2, switch_ratio=0.5),
                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                    default_scope='projects')
    with pytest.raises(TypeError, match='set_stage'):
        runner.train()
