"""Engine pieces: distributed set-up without CUDA, CPU mixed precision."""
from .dist import DeviceAgnosticDDP, init_cpu_distributed
from .optim_wrapper import CPUBf16OptimWrapper

__all__ = ['CPUBf16OptimWrapper', 'DeviceAgnosticDDP', 'init_cpu_distributed']
