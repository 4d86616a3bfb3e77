"""Distributed training that also works without CUDA (gloo on CPU).

MMEngine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and its default DDP wrapper
passes ``device_ids=[LOCAL_RANK]``; both fail on a CPU-only machine. :func:`init_cpu_distributed`
creates a gloo process group before the Runner is built (the Runner then skips its own
initialisation), and :class:`DeviceAgnosticDDP` drops ``device_ids`` when the module lives on
the CPU.
"""
import os
from datetime import timedelta

import torch.distributed as torch_dist
from mmengine.model import MMDistributedDataParallel

from projects.registry import MODEL_WRAPPERS

__all__ = ['DeviceAgnosticDDP', 'init_cpu_distributed']


def init_cpu_distributed(timeout_s=1800):
    """Initialise a gloo process group from torchrun's environment variables.

    Does nothing when a process group already exists.

    Args:
        timeout_s (int): collective timeout in seconds.

    Raises:
        RuntimeError: when ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` are not
            set (the script was not started by ``torchrun`` / ``tools/dist_train.sh``).
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        return
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch needs the torchrun environment; missing {missing}. '
                           'Start with tools/dist_train.sh CONFIG NUM_PROCS.')
    torch_dist.init_process_group(backend='gloo', timeout=timedelta(seconds=timeout_s),
                                  rank=int(os.environ['RANK']),
                                  world_size=int(os.environ['WORLD_SIZE']))


@MODEL_WRAPPERS.register_module()
class DeviceAgnosticDDP(MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` that also wraps CPU modules.

    Identical to the MMEngine wrapper on CUDA. When the module's parameters are on the CPU,
    ``device_ids`` / ``output_device`` must be ``None`` for torch's DDP, so they are dropped.

    Args:
        module (nn.Module): model to wrap.
        device_ids (list[int], optional): CUDA devices; ignored for CPU modules.
        **kwargs: passed to :class:`torch.nn.parallel.DistributedDataParallel`.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        first = next(module.parameters(), None)
        if first is None or first.device.type == 'cpu':
            device_ids = None
            kwargs.pop('output_device', None)
        super().__init__(module=module, device_ids=device_ids, **kwargs)
