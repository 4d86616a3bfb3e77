"""Engine pieces: runner, loops, schedulers, distributed set-up without CUDA, CPU mixed
precision."""
from .dist import DeviceAgnosticDDP, init_cpu_distributed
from .fsdp import DeviceAgnosticFSDP, FSDPOptimWrapper, module_class_wrap_policy
from .loops import (TwoStageTrainLoop, checkpoint_stage, resolve_switch_iter, stage_for_iter,
                    stage_schedule)
from .optim_wrapper import (CPUBf16OptimWrapper, GuardedAmpOptimWrapper, GuardedOptimWrapper,
                            NonFiniteLossError)
from .runner import FaultTolerantRunner
from .schedulers import ProportionalCosineAnnealingLR

__all__ = ['CPUBf16OptimWrapper', 'FaultTolerantRunner', 'GuardedAmpOptimWrapper',
           'GuardedOptimWrapper', 'NonFiniteLossError', 'DeviceAgnosticDDP', 'init_cpu_distributed',
           'DeviceAgnosticFSDP', 'FSDPOptimWrapper', 'module_class_wrap_policy',
           'TwoStageTrainLoop', 'checkpoint_stage', 'resolve_switch_iter', 'stage_for_iter',
           'stage_schedule', 'ProportionalCosineAnnealingLR']
