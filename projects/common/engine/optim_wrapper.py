"""Optimizer wrappers: non-finite loss guard and mixed precision on the CPU.

* :class:`GuardedOptimWrapper` skips an update whose loss is NaN/Inf (logged and counted) and
  stops the run with a clear error after ``max_consecutive_nonfinite`` skipped steps in a row.
  Under DDP the decision is all-reduced so every rank skips the same steps (a rank that skips
  ``backward`` alone would dead-lock the gradient all-reduce).
* :class:`CPUBf16OptimWrapper`: MMEngine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA
  device; ``tools/train.py --amp`` uses this wrapper on CPU-only machines instead: bfloat16
  autocast (float32 exponent range, so no loss scaling), with the same guard.
* :class:`GuardedAmpOptimWrapper`: ``AmpOptimWrapper`` with the guard, for ``--amp`` on CUDA.
"""
import logging
from contextlib import contextmanager

import torch
import torch.distributed as torch_dist
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from projects.registry import OPTIM_WRAPPERS

__all__ = ['CPUBf16OptimWrapper', 'GuardedAmpOptimWrapper', 'GuardedOptimWrapper',
           'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    """Raised after too many consecutive non-finite losses."""


class _NonFiniteGuard:
    """Mixin for :class:`OptimWrapper` subclasses (see the module docstring).

    Args:
        max_consecutive_nonfinite (int): consecutive skipped steps that stop the run.
            Defaults to 5.
        *args, **kwargs: passed to the wrapped OptimWrapper class.
    """

    def __init__(self, *args, max_consecutive_nonfinite=5, **kwargs):
        super().__init__(*args, **kwargs)
        if int(max_consecutive_nonfinite) < 1:
            raise ValueError('optim_wrapper.max_consecutive_nonfinite must be >= 1, got '
                             f'{max_consecutive_nonfinite}')
        self.max_consecutive_nonfinite = int(max_consecutive_nonfinite)
        self.consecutive_nonfinite = 0
        self.total_nonfinite = 0

    @staticmethod
    def _all_finite(loss):
        flag = torch.isfinite(loss.detach()).all().to(torch.float32).reshape(1)
        if torch_dist.is_available() and torch_dist.is_initialized():
            if torch_dist.get_backend() == 'nccl':
                flag = flag.cuda()
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)
        return bool(flag.item() > 0)

    def update_params(self, loss, step_kwargs=None, zero_kwargs=None):
        """Back-propagate and step, unless the loss (on any rank) is not finite.

        Raises:
            NonFiniteLossError: after ``max_consecutive_nonfinite`` skipped steps in a row.
        """
        if self._all_finite(loss):
            self.consecutive_nonfinite = 0
            return super().update_params(loss, step_kwargs=step_kwargs,
                                         zero_kwargs=zero_kwargs)
        self.consecutive_nonfinite += 1
        self.total_nonfinite += 1
        self.zero_grad(**(zero_kwargs or {}))
        hub = MessageHub.get_current_instance()
        hub.update_scalar('train/nonfinite_skipped_steps', self.total_nonfinite)
        print_log(f'non-finite loss ({loss.detach().float().item()}): skipped the optimizer '
                  f'step ({self.consecutive_nonfinite} in a row, {self.total_nonfinite} in '
                  'total)', logger='current', level=logging.WARNING)
        if self.consecutive_nonfinite >= self.max_consecutive_nonfinite:
            raise NonFiniteLossError(
                f'{self.consecutive_nonfinite} consecutive non-finite losses: stopping. Lower '
                'the learning rate (optim_wrapper.optimizer.lr), enable gradient clipping '
                '(optim_wrapper.clip_grad), or check the data for NaNs; raise '
                'optim_wrapper.max_consecutive_nonfinite to tolerate more.')
        return None


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(_NonFiniteGuard, OptimWrapper):
    """:class:`mmengine.optim.OptimWrapper` that skips non-finite losses.

    Args:
        max_consecutive_nonfinite (int): see :class:`_NonFiniteGuard`. Defaults to 5.
        **kwargs: as :class:`mmengine.optim.OptimWrapper`.
    """


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(_NonFiniteGuard, AmpOptimWrapper):
    """:class:`mmengine.optim.AmpOptimWrapper` (CUDA) that skips non-finite losses."""


@OPTIM_WRAPPERS.register_module()
class CPUBf16OptimWrapper(GuardedOptimWrapper):
    """:class:`GuardedOptimWrapper` whose forward runs under CPU bfloat16 autocast.

    Args:
        **kwargs: as :class:`GuardedOptimWrapper`.
    """

    @contextmanager
    def optim_context(self, model):
        """Enter the parent context and ``torch.autocast('cpu', dtype=torch.bfloat16)``."""
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield
