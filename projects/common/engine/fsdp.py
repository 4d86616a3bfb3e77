"""Fully sharded data parallel (FSDP) pieces for MMEngine's ``FlexibleRunner``.

A config selects them with ``runner_type = 'FlexibleRunner'`` and
``strategy = dict(type='FSDPStrategy', model_wrapper=dict(type='projects.DeviceAgnosticFSDP',
...))`` (see ``configs/worldmodel_tokyo_fsdp.py``):

* :func:`module_class_wrap_policy`: an ``auto_wrap_policy`` naming the module classes that
  become their own FSDP units (e.g. the world transformer's blocks), by class name so a config
  can state it.
* :class:`DeviceAgnosticFSDP`: MMEngine's ``MMFullyShardedDataParallel`` that also runs on a
  CPU-only machine (gloo): ``FSDPStrategy`` passes ``device_id=LOCAL_RANK``, which names a CUDA
  device; without CUDA the module stays on the CPU and the CUDA-only ``mixed_precision`` is
  dropped with a message.
* :class:`FSDPOptimWrapper`: :class:`GuardedOptimWrapper` whose gradient clipping uses
  ``FullyShardedDataParallel.clip_grad_norm_``. The plain wrapper computes the norm of the
  local gradient shard only, so every rank would clip with a different, too small norm.
"""
import logging
from contextlib import contextmanager
from typing import Iterable, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.wrappers import MMFullyShardedDataParallel
from torch.distributed.fsdp import FullyShardedDataParallel

from projects.registry import FUNCTIONS, MODEL_WRAPPERS, OPTIM_WRAPPERS
from .optim_wrapper import GuardedOptimWrapper

__all__ = ['DeviceAgnosticFSDP', 'FSDPOptimWrapper', 'module_class_wrap_policy']


@FUNCTIONS.register_module()
def module_class_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                             module_classes: Sequence[str] = ()) -> bool:
    """FSDP ``auto_wrap_policy``: wrap every module whose class name is in ``module_classes``.

    Used as ``auto_wrap_policy=dict(type='projects.module_class_wrap_policy',
    module_classes=['WorldBlock'])``; MMEngine binds ``module_classes`` with
    ``functools.partial``. A wrapped module must be *called* (``module(x)``), not reached
    through another method, because FSDP gathers a unit's parameters in its ``forward``.

    Args:
        module (nn.Module): the candidate module.
        recurse (bool): FSDP asks whether to descend into ``module``'s children (always yes).
        nonwrapped_numel (int): parameters of ``module`` not yet wrapped (unused).
        module_classes (Sequence[str]): class names to wrap.

    Returns:
        bool: whether to descend (``recurse``) or to wrap ``module``.

    Raises:
        ValueError: when ``module_classes`` is empty.
    """
    if not module_classes:
        raise ValueError('module_class_wrap_policy needs module_classes (class names of the '
                         'modules to wrap), e.g. module_classes=["WorldBlock"]')
    if recurse:
        return True
    return type(module).__name__ in set(module_classes)


def _check_wrap_classes(module: nn.Module, policy) -> None:
    """Raise when a class-name policy names no class present in ``module``."""
    names = getattr(policy, 'keywords', {}).get('module_classes')
    if getattr(policy, 'func', None) is not module_class_wrap_policy or not names:
        return
    present = {type(m).__name__ for m in module.modules()}
    missing = [n for n in names if n not in present]
    if missing:
        raise ValueError(f'strategy.model_wrapper.auto_wrap_policy.module_classes={list(names)}: '
                         f'{missing} not found in the model {type(module).__name__}')


@MODEL_WRAPPERS.register_module()
class DeviceAgnosticFSDP(MMFullyShardedDataParallel):
    """:class:`MMFullyShardedDataParallel` that also shards CPU modules (gloo).

    On CUDA it is MMEngine's wrapper unchanged (``use_orig_params=True`` by default, which
    frozen parameters such as a stage-1 tokenizer inside a trainable unit need). Without CUDA,
    ``device_id`` becomes the CPU and ``mixed_precision`` is dropped (FSDP's mixed precision
    is meant for CUDA; on the CPU bfloat16 matmuls are slower than float32 on most machines).

    Args:
        module (nn.Module): the model.
        device_id (int | torch.device, optional): CUDA device of this rank (``LOCAL_RANK``,
            set by ``FSDPStrategy``); ignored without CUDA.
        mixed_precision (dict, optional): ``param_dtype`` / ``reduce_dtype`` / ``buffer_dtype``
            names; ignored without CUDA.
        **kwargs: passed to :class:`MMFullyShardedDataParallel` (``auto_wrap_policy``,
            ``sharding_strategy``, ``use_orig_params``, ...).
    """

    def __init__(self, module: nn.Module, device_id=None, mixed_precision=None, **kwargs):
        if not torch.cuda.is_available():
            device_id = torch.device('cpu')
            if mixed_precision is not None:
                print_log('DeviceAgnosticFSDP: no CUDA device, mixed_precision='
                          f'{dict(mixed_precision)} is ignored (float32 on the CPU)',
                          logger='current', level=logging.WARNING)
                mixed_precision = None
        policy = kwargs.get('auto_wrap_policy')
        if isinstance(policy, dict) and policy.get('type') in (
                'module_class_wrap_policy', 'projects.module_class_wrap_policy'):
            from functools import partial
            names = policy.get('module_classes', ())
            _check_wrap_classes(module, partial(module_class_wrap_policy,
                                                module_classes=names))
        scalars = self._replicate_scalar_parameters(module, device_id, kwargs)
        super().__init__(module=module, device_id=device_id, mixed_precision=mixed_precision,
                         **kwargs)
        if scalars:
            print_log(f'DeviceAgnosticFSDP: 0-d parameters {scalars} are replicated (FSDP '
                      'cannot shard them); their gradients are averaged over the ranks',
                      logger='current')

    @staticmethod
    def set_state_dict_type(module, state_dict_type, state_dict_config=None,
                            optim_state_dict_config=None):
        """As :meth:`FullyShardedDataParallel.set_state_dict_type`, CPU-safe.

        ``FSDPStrategy(state_dict_cfg='full')`` asks for ``offload_to_cpu=True``. When the
        parameters already live on the CPU the "offloaded" tensors share storage with the
        unsharded flat parameter, which FSDP frees right after gathering, and saving the
        checkpoint crashes (segmentation fault on torch 2.13). Offloading is switched off
        without CUDA; on CUDA the configs are used unchanged.
        """
        if not torch.cuda.is_available():
            for config in (state_dict_config, optim_state_dict_config):
                if getattr(config, 'offload_to_cpu', False):
                    config.offload_to_cpu = False
        return FullyShardedDataParallel.set_state_dict_type(
            module, state_dict_type, state_dict_config, optim_state_dict_config)

    @staticmethod
    def _replicate_scalar_parameters(module, device_id, kwargs):
        """Leave 0-d parameters out of FSDP and average their gradients over the ranks.

        FSDP rejects 0-d parameters (e.g. the world transformer's learnable ``copy_logit``).
        They are passed as ``ignored_states`` (unsharded, kept in every rank's replica and in
        the state dict under their usual names, so checkpoints match the non-FSDP model), moved
        to this rank's device, and a gradient hook all-reduces their gradients (mean), which is
        what DDP would do for them.

        Returns:
            list[str]: names of the replicated parameters.
        """
        import torch.distributed as dist
        scalars = [(n, p) for n, p in module.named_parameters() if p.dim() == 0]
        if not scalars:
            return []
        if 'ignored_modules' in kwargs:
            raise ValueError('DeviceAgnosticFSDP: the model has 0-d parameters '
                             f'{[n for n, _ in scalars]} that FSDP cannot shard; they are '
                             'passed as ignored_states, which FSDP does not combine with '
                             'strategy.model_wrapper.ignored_modules')
        ignored = list(kwargs.pop('ignored_states', None) or [])
        device = device_id if isinstance(device_id, torch.device) else (
            torch.device('cuda', device_id) if device_id is not None else None)
        for _, param in scalars:
            if device is not None:
                param.data = param.data.to(device)
            if param.requires_grad:
                param.register_hook(_mean_over_ranks)
            ignored.append(param)
        kwargs['ignored_states'] = ignored
        if not dist.is_initialized():
            raise RuntimeError('DeviceAgnosticFSDP needs an initialised process group '
                               '(tools/dist_train.sh)')
        return [n for n, _ in scalars]


def _mean_over_ranks(grad: torch.Tensor) -> torch.Tensor:
    """Gradient hook: the mean of ``grad`` over all ranks (collective)."""
    import torch.distributed as dist
    grad = grad.clone()
    dist.all_reduce(grad)
    return grad / dist.get_world_size()


@OPTIM_WRAPPERS.register_module()
class FSDPOptimWrapper(GuardedOptimWrapper):
    """:class:`GuardedOptimWrapper` that clips the global gradient norm of an FSDP model.

    ``optim_context(model)`` (entered by ``train_step`` every iteration) records the model;
    when it is a :class:`FullyShardedDataParallel` root, ``clip_grad`` with
    ``type='norm'`` (the default) uses its collective ``clip_grad_norm_``. Other models fall
    back to the parent behaviour.

    Args:
        **kwargs: as :class:`GuardedOptimWrapper`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fsdp_model = None

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Remember ``model`` for clipping, then enter the parent context."""
        self._fsdp_model = model if isinstance(model, FullyShardedDataParallel) else None
        with super().optim_context(model):
            yield

    def _clip_grad(self) -> None:
        """Clip by the norm over all shards (every rank gets the same coefficient)."""
        if self._fsdp_model is None or self.clip_func is not torch.nn.utils.clip_grad_norm_:
            return super()._clip_grad()
        kwargs = dict(self.clip_grad_kwargs)
        grad = self._fsdp_model.clip_grad_norm_(kwargs.pop('max_norm'),
                                                kwargs.pop('norm_type', 2.0))
        self.message_hub.update_scalar(f'train/{self.grad_name}', float(grad))
        return None


def fsdp_unit_names(model: nn.Module) -> Iterable[str]:
    """Names of the FSDP units inside ``model`` (for logs and tests)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, FullyShardedDataParallel)]
