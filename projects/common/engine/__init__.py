"""Engine pieces: distributed set-up without CUDA, CPU mixed precision."""
from .dist import DeviceAgnosticDDP, init_cpu_distributed
from .fsdp import DeviceAgnosticFSDP, FSDPOptimWrapper, module_class_wrap_policy
from .optim_wrapper import (CPUBf16OptimWrapper, GuardedAmpOptimWrapper, GuardedOptimWrapper,
                            NonFiniteLossError)
from .runner import FaultTolerantRunner

__all__ = ['CPUBf16OptimWrapper', 'FaultTolerantRunner', 'GuardedAmpOptimWrapper',
           'GuardedOptimWrapper', 'NonFiniteLossError', 'DeviceAgnosticDDP', 'init_cpu_distributed',
           'DeviceAgnosticFSDP', 'FSDPOptimWrapper', 'module_class_wrap_policy']
