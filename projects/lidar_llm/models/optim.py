"""Optimizer construction that hands only trainable parameters to the optimizer."""
from mmengine.optim import DefaultOptimWrapperConstructor

from projects.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

__all__ = ['TrainableParamsOptimWrapperConstructor']


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableParamsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` (``paramwise_cfg`` and all) that drops frozen
    parameters and counts a shared (tied) parameter once.

    With a LoRA-wrapped LLM only the LoRA matrices, the trained token embeddings and the
    sensor modules reach the optimizer (no optimizer state for the frozen base weights),
    and tied input / output embeddings do not appear in two parameter groups.
    """

    def __call__(self, model):
        if hasattr(model, 'module'):
            model = model.module
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = self.optimizer_cfg.copy()
        groups = []
        self.add_params(groups, model)
        seen, kept = set(), []
        for g in groups:
            p = g['params'][0]
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                kept.append(g)
        if not kept:
            raise ValueError('no trainable parameter: check lora / the sensor modules')
        optimizer_cfg['params'] = kept
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))
