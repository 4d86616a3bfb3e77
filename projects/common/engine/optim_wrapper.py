"""Mixed precision on the CPU (bfloat16 autocast).

MMEngine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU/MUSA device. ``tools/train.py --amp``
uses it on CUDA and :class:`CPUBf16OptimWrapper` on a CPU-only machine: bfloat16 has the
float32 exponent range, so no loss scaling is needed.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from projects.registry import OPTIM_WRAPPERS

__all__ = ['CPUBf16OptimWrapper']


@OPTIM_WRAPPERS.register_module()
class CPUBf16OptimWrapper(OptimWrapper):
    """:class:`OptimWrapper` whose forward context runs under CPU bfloat16 autocast.

    Args:
        *args, **kwargs: as :class:`mmengine.optim.OptimWrapper`.
    """

    @contextmanager
    def optim_context(self, model):
        """Enter the parent context and ``torch.autocast('cpu', dtype=torch.bfloat16)``."""
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield
