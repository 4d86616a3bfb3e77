"""Learning-rate re-warm after a resume (``ResumeLRWarmupHook``) against hand-computed rates."""
import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

import projects  # noqa: F401
from projects.sensor_vla.hooks import ResumeLRWarmupHook

torch.set_num_threads(1)


class _Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.w(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class _LRRecorder(Hook):
    """Records the learning rate the optimizer step of each iteration uses."""
    priority = 55  # after ResumeLRWarmupHook (NORMAL = 50), before the scheduler (LOW = 70)

    def __init__(self):
        self.lrs = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs[runner.iter] = [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]


def _run(work_dir, max_iters, hooks, resume_from=None):
    data = [dict(inputs=torch.ones(2)) for _ in range(4)]
    runner = Runner(
        model=_Toy(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1),
                           paramwise_cfg=dict(custom_keys={'w.bias': dict(lr_mult=0.5)})),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                              end=4)],
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        log_processor=dict(by_epoch=False),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks + [dict(type='CheckpointCompatHook')],
        resume=resume_from is not None, load_from=resume_from,
        default_scope='projects', experiment_name=f'run{max_iters}')
    runner.train()
    return runner


def test_lr_rewarms_after_resume_against_hand_computed_values(tmp_path):
    # Schedule (hand-computed): MMEngine's LinearLR with begin=0, end=4 reaches its end factor
    # at iteration end - 1 = 3: lr_sched(i) = 0.1 * (0.5 + 0.5 * i / 3) for i <= 3, then 0.1;
    # the bias group has 0.5x.
    sched = [0.05, 0.1 * (0.5 + 0.5 / 3), 0.1 * (0.5 + 1 / 3), 0.1, 0.1, 0.1, 0.1, 0.1]
    rec1 = _LRRecorder()
    _run(tmp_path, 3, [rec1, dict(type='ResumeLRWarmupHook', warmup_iters=2, start_factor=0.1)])
    # a run from iteration 0 is not re-warmed
    for i in range(3):
        assert rec1.lrs[i] == pytest.approx([sched[i], 0.5 * sched[i]])
    rec2 = _LRRecorder()
    hook = ResumeLRWarmupHook(warmup_iters=2, start_factor=0.1)
    runner = _run(tmp_path, 8, [rec2, hook], resume_from=str(tmp_path / 'iter_3.pth'))
    assert hook.resume_iter == 3
    # resumed at r = 3: f(3) = 0.1, f(4) = 0.1 + 0.9 * 1 / 2 = 0.55, then 1
    expected = {3: 0.1 * 0.1, 4: 0.55 * 0.1, 5: 0.1, 6: 0.1, 7: 0.1}
    assert sorted(rec2.lrs) == [3, 4, 5, 6, 7]
    for i, lr in expected.items():
        assert rec2.lrs[i] == pytest.approx([lr, 0.5 * lr]), i
    # the schedule itself is untouched: the final scheduled rate is the base rate
    assert runner.optim_wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(0.1)
    # the logged rate is the applied one
    hist = runner.message_hub.get_scalar('train/lr')
    assert 0.01 in [pytest.approx(v) for v in hist.data[0]]


def test_rewarm_hook_rejects_bad_arguments():
    with pytest.raises(ValueError, match='warmup_iters'):
        ResumeLRWarmupHook(warmup_iters=0)
    with pytest.raises(ValueError, match='start_factor'):
        ResumeLRWarmupHook(warmup_iters=3, start_factor=0.0)
