"""A Runner whose checkpoints are written atomically and whose resume is exact.

MMEngine writes a checkpoint straight to its final path, so a process killed mid-write leaves
a truncated ``iter_N.pth`` that ``--resume`` then picks up and fails on. This Runner writes to
a hidden temporary file in the same directory and renames it into place (``os.replace`` is
atomic on POSIX file systems), so a checkpoint path either holds a complete file or does not
exist.

Exact resume needs :class:`~projects.common.hooks.RNGStateHook` in the hook list; the runtime
base (``configs/_base_/default_runtime.py``) lists it in ``custom_hooks``. A config whose hook
list lacks it gets a warning at start-up (nothing is added behind its back).
"""
import logging
import os
import os.path as osp

from mmengine.dist import master_only
from mmengine.logging import print_log
from mmengine.runner import Runner

from projects.common.hooks.rng_state import RNGStateHook
from projects.registry import RUNNERS

__all__ = ['FaultTolerantRunner']


@RUNNERS.register_module()
class FaultTolerantRunner(Runner):
    """:class:`mmengine.runner.Runner` with atomic checkpoint writes and exact resume.

    Select it with ``runner_type = 'FaultTolerantRunner'`` in a config (the AerialWorld
    configs do, through ``configs/_base_/default_runtime.py``); the tools build it with
    :meth:`from_cfg` like the plain Runner. When the config's hooks include no
    :class:`RNGStateHook` a warning says that ``--resume`` will not continue the random
    streams exactly.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not any(isinstance(hook, RNGStateHook) for hook in self._hooks):
            print_log('FaultTolerantRunner: no RNGStateHook in custom_hooks (the runtime base '
                      "lists it): checkpoints will not hold the generator states and --resume "
                      'will not continue the random streams exactly', logger='current',
                      level=logging.WARNING)

    @master_only
    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        """Save like :meth:`Runner.save_checkpoint`, through a temporary file + rename.

        Runs on the main process only, like the parent method (other ranks return at once).

        Args:
            out_dir (str): directory of the checkpoint (local file system).
            filename (str): final file name, e.g. ``iter_100.pth``.
            *args, **kwargs: as :meth:`mmengine.runner.Runner.save_checkpoint`.
        """
        tmp_name = f'.{filename}.tmp-{os.getpid()}'
        try:
            super().save_checkpoint(out_dir, tmp_name, *args, **kwargs)
            os.replace(osp.join(out_dir, tmp_name), osp.join(out_dir, filename))
        finally:
            if osp.exists(osp.join(out_dir, tmp_name)):
                os.remove(osp.join(out_dir, tmp_name))
