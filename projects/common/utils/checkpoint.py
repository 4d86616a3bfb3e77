"""Checkpoint compatibility with ``torch.load(weights_only=True)`` (torch >= 2.6).

MMEngine checkpoints pickle a few non-tensor objects: the ``message_hub`` state holds
:class:`mmengine.logging.HistoryBuffer` instances whose buffers are numpy arrays, and ``meta``
may hold numpy scalars. Since torch 2.6 ``torch.load`` defaults to ``weights_only=True`` and
refuses them, which breaks ``--resume``. Instead of turning safety off globally, this module
allow-lists exactly those globals with :func:`torch.serialization.add_safe_globals`.
"""
import numpy as np
import torch

__all__ = ['checkpoint_safe_globals', 'register_checkpoint_safe_globals']



def checkpoint_safe_globals():
    """Return the globals an MMEngine checkpoint needs under ``weights_only=True``.

    Returns:
        list: classes and functions: ``HistoryBuffer``, numpy array reconstruction
        (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype`` and the
        concrete dtype classes), numpy scalars (``numpy.core.multiarray.scalar``).
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    from numpy.core.multiarray import _reconstruct, scalar

    dtype_classes = {type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
        np.uint32, np.uint64, np.float16, np.float32, np.float64, np.str_,
        np.object_)}
    return [HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype,
            *sorted(dtype_classes, key=lambda c: c.__name__)]


def register_checkpoint_safe_globals():
    """Allow-list :func:`checkpoint_safe_globals` for ``torch.load``.

    Idempotent (only globals missing from torch's list are added, so it also repairs the list
    after a ``torch.serialization.safe_globals`` context manager removed them on exit); called
    when :mod:`projects` is imported so ``tools/train.py --resume`` and ``tools/test.py`` load
    MMEngine checkpoints with ``weights_only=True`` kept on.
    """
    present = set(map(id, torch.serialization.get_safe_globals()))
    missing = [g for g in checkpoint_safe_globals() if id(g) not in present]
    if missing:
        torch.serialization.add_safe_globals(missing)
