"""Training hooks of the sensor VLA: per-iteration statistics and the VL cache report."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from projects.registry import HOOKS

__all__ = ['VLATrainingStatsHook']


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
