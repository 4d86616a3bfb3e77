"""Training hooks of the sensor VLA: per-iteration statistics and the LR re-warm after resume."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from projects.registry import HOOKS

__all__ = ['VLATrainingStatsHook', 'ResumeLRWarmupHook']


@HOOKS.register_module()
class VLATrainingStatsHook(Hook):
    """Log what the seed logged to wandb, through MMEngine's message hub (so LoggerHook,
    TensorBoard and W&B backends all get it), every iteration:

    - ``sensor_samples`` (sensor samples in the batch; from the model's loss dict) and
      ``sensor_ratio_cum`` (share of sensor samples since the start of training);
    - ``grad_norm`` (logged by the optimizer wrapper when ``clip_grad`` is set);
    - ``params_trainable_M`` / ``params_frozen_M``;
    - ``lora_weight_abs_mean`` (mean |w| of the LoRA matrices, when LoRA is on);
    - ``gpu_mem_GB`` (peak allocated, on CUDA only).

    At the end of training it prints the VL cache's counters (hits, misses, corrupted,
    evicted) when the model uses the cache.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self):
        self.seen = 0
        self.sensor = 0

    @staticmethod
    def _model(runner):
        m = runner.model
        return m.module if is_model_wrapper(m) else m

    def before_train(self, runner) -> None:
        model = self._model(runner)
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        print_log(f'SensorVLA parameters: {self.trainable / 1e6:.3f} M trainable, '
                  f'{self.frozen / 1e6:.3f} M frozen', 'current')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        hub = runner.message_hub
        samples = data_batch['data_samples'] if data_batch else []
        n_sensor = sum(bool(s.metainfo.get('has_sensor', False)) for s in samples)
        self.seen += len(samples)
        self.sensor += n_sensor
        hub.update_scalar('train/sensor_ratio_cum', self.sensor / max(self.seen, 1))
        hub.update_scalar('train/params_trainable_M', self.trainable / 1e6)
        hub.update_scalar('train/params_frozen_M', self.frozen / 1e6)
        model = self._model(runner)
        vl = getattr(model, 'vl', None)
        if vl is not None and vl.finetune_vl == 'lora':
            hub.update_scalar('train/lora_weight_abs_mean', vl.lora_weight_abs_mean())
        if torch.cuda.is_available():
            hub.update_scalar('train/gpu_mem_GB', torch.cuda.max_memory_allocated() / 2**30)

    def after_train(self, runner) -> None:
        cache = getattr(self._model(runner), 'vl_cache', None)
        if cache is not None:
            print_log(cache.report(), 'current')


@HOOKS.register_module()
class ResumeLRWarmupHook(Hook):
    """Re-warm the learning rate after a resume (the seed's "re-warm after resume").

    A resumed run restores the optimizer moments and the schedule position; jumping straight
    back to the scheduled learning rate with moments estimated on other batches (or after a
    config change) can spike the loss. For the ``warmup_iters`` iterations after the resume
    point ``r`` this hook multiplies every parameter group's scheduled learning rate by

        ``f(i) = start_factor + (1 - start_factor) * (i - r) / warmup_iters``,
        ``r <= i < r + warmup_iters``

    (linear, like MMEngine's ``LinearLR``), so iteration ``r`` trains at
    ``start_factor * lr_sched(r)`` and iteration ``r + warmup_iters`` at ``lr_sched`` again.
    The schedule itself is untouched: the factor is applied in ``before_train_iter`` and
    removed in ``after_train_iter`` before ``ParamSchedulerHook`` steps the (chainable)
    schedulers, so a resumed run follows the same schedule as an uninterrupted one
    afterwards. Runs that start from iteration 0 are not affected (the normal warm-up
    applies). The applied rate is what ``train/lr`` logs.

    Config: ``custom_hooks = [..., dict(type='ResumeLRWarmupHook', warmup_iters=N)]``
    (the sensor VLA schedule base sets ``resume_warmup_iters``).

    Args:
        warmup_iters (int): Re-warm length in iterations (>= 1).
        start_factor (float): Factor at the first resumed iteration, in (0, 1].
            Defaults to 0.01.

    Raises:
        ValueError: On ``warmup_iters < 1`` or ``start_factor`` outside (0, 1].
    """

    priority = 'NORMAL'  # after RuntimeInfoHook (VERY_HIGH), before ParamSchedulerHook (LOW)

    def __init__(self, warmup_iters: int, start_factor: float = 0.01):
        if int(warmup_iters) < 1:
            raise ValueError(f'ResumeLRWarmupHook: warmup_iters must be >= 1, got '
                             f'{warmup_iters}')
        if not 0.0 < float(start_factor) <= 1.0:
            raise ValueError(f'ResumeLRWarmupHook: start_factor must be in (0, 1], got '
                             f'{start_factor}')
        self.warmup_iters = int(warmup_iters)
        self.start_factor = float(start_factor)
        self.resume_iter: Optional[int] = None
        self._saved = None

    def before_train(self, runner) -> None:
        self.resume_iter = runner.iter if runner.iter > 0 else None
        if self.resume_iter is not None:
            print_log(f'ResumeLRWarmupHook: resumed at iteration {self.resume_iter}; '
                      f'learning rate re-warms from {self.start_factor:g} x the schedule over '
                      f'{self.warmup_iters} iterations', 'current')

    def factor(self, it: int) -> float:
        """Multiplier of the scheduled learning rate at iteration ``it`` (1 outside the
        re-warm window)."""
        if self.resume_iter is None:
            return 1.0
        j = it - self.resume_iter
        if j < 0 or j >= self.warmup_iters:
            return 1.0
        return self.start_factor + (1.0 - self.start_factor) * j / self.warmup_iters

    @staticmethod
    def _optimizers(runner):
        ow = runner.optim_wrapper
        wrappers = ow.values() if hasattr(ow, 'optim_wrappers') else [ow]
        return [w.optimizer for w in wrappers]

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        f = self.factor(runner.iter)
        if f == 1.0:
            return
        self._saved = []
        for opt in self._optimizers(runner):
            self._saved.append([g['lr'] for g in opt.param_groups])
            for g in opt.param_groups:
                g['lr'] = g['lr'] * f
        for name, lrs in runner.optim_wrapper.get_lr().items():
            runner.message_hub.update_scalar(f'train/{name}', lrs[0])

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if self._saved is None:
            return
        for opt, lrs in zip(self._optimizers(runner), self._saved):
            for g, lr in zip(opt.param_groups, lrs):
                g['lr'] = lr
        self._saved = None
