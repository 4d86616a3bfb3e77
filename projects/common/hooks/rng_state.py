"""Save the random number generator states in checkpoints so ``--resume`` is exact.

MMEngine seeds the generators once, when the Runner is built. A resumed run therefore draws
different random numbers than the uninterrupted run would have drawn after the checkpoint
(AerialWorld: the frames the tokenizer reconstructs, the codebook re-seeding draws), and its
losses diverge from the first resumed iteration on. :class:`RNGStateHook` stores the Python,
NumPy, torch (CPU) and current CUDA device generator states in every checkpoint and puts them
back when training resumes, so a run killed at any point continues with exactly the losses of
an uninterrupted run (in deterministic mode).

Where the states are captured and restored matters (MMEngine 0.10):

* Captured in ``after_train_iter`` / ``after_train_epoch`` before the ``CheckpointHook``
  (``priority='BELOW_NORMAL'``), i.e. the state right after the optimizer step that the
  checkpoint holds.
* Restored right before the resumed loop fetches its first new batch.
  ``IterBasedTrainLoop.run`` first replays ``iter`` batches of the data loader to skip the
  data already trained on (loading data can draw random numbers in the main process, and a
  data loader that starts a new pass draws its base seed from torch's generator); the
  loop's ``dataloader_iterator`` is wrapped so that the restore happens after that replay.
  Other loops (``EpochBasedTrainLoop`` resumes at an epoch start) restore in ``before_train``.
* A validation run inside training leaves the generators as it found them (states captured
  in ``before_val``, restored in ``after_val``): the uninterrupted run validates after the
  checkpoint is written, the resumed one does not repeat that validation, so validation must
  not shift the training stream.

Distributed training: every rank's states are gathered in ``after_train_iter`` (one small
``all_gather_object`` per iteration, only when the world size is > 1), rank 0 writes all of
them, and each rank restores its own. A checkpoint written with a different number of
processes restores rank ``r % n`` of its ``n`` states (with a warning; the run is then not an
exact continuation anyway).

The stored states are plain tensors, lists, ints, floats and strings, so the checkpoint stays
loadable with ``torch.load(weights_only=True)``.
"""
import logging
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from projects.registry import HOOKS

__all__ = ['RNGStateHook', 'capture_rng_state', 'restore_rng_state']

CHECKPOINT_KEY = 'rng_state'
_FORMAT_VERSION = 1


def capture_rng_state() -> Dict[str, Any]:
    """Return the states of Python's, NumPy's, torch's and the current CUDA generator.

    Returns:
        dict: ``{'python': {...}, 'numpy': {...}, 'torch': ByteTensor, 'cuda': ByteTensor or
        None}``, built from tensors, lists, ints, floats, strings and None only (safe for
        ``torch.load(weights_only=True)``).
    """
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state()
    return {
        'python': {'version': int(py_version),
                   'state': torch.tensor(py_state, dtype=torch.int64),
                   'gauss_next': py_gauss},
        'numpy': {'bit_generator': str(np_name),
                  'keys': torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  'pos': int(np_pos), 'has_gauss': int(np_has_gauss),
                  'cached_gaussian': float(np_gauss)},
        'torch': torch.get_rng_state(),
        'cuda': cuda,
    }


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Set the generators to a state returned by :func:`capture_rng_state`.

    The CUDA state is restored only when CUDA is available.

    Args:
        state (dict): a state from :func:`capture_rng_state`.

    Raises:
        ValueError: when ``state`` misses one of the ``python``, ``numpy``, ``torch`` entries.
    """
    missing = [k for k in ('python', 'numpy', 'torch') if k not in state]
    if missing:
        raise ValueError(f'RNG state in the checkpoint misses {missing}; it was not written '
                         'by RNGStateHook')
    py = state['python']
    random.setstate((int(py['version']), tuple(int(v) for v in py['state'].tolist()),
                     py['gauss_next']))
    nps = state['numpy']
    np.random.set_state((nps['bit_generator'], nps['keys'].numpy().astype(np.uint32),
                         int(nps['pos']), int(nps['has_gauss']),
                         float(nps['cached_gaussian'])))
    torch.set_rng_state(state['torch'].cpu())
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())


class _RestoreBeforeNextBatch:
    """Iterator proxy: after ``skip`` batches, call ``restore`` before the next batch.

    ``IterBasedTrainLoop.run`` replays the batches a resumed run has already trained on with
    ``next(loop.dataloader_iterator)``; the proxy lets that replay happen with whatever state
    the generators have and restores the checkpointed state right before the first new
    batch, then puts the original iterator back on the loop.
    """

    def __init__(self, loop, skip: int, restore) -> None:
        self._loop = loop
        self._iterator = loop.dataloader_iterator
        self._skip = int(skip)
        self._restore = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator)
        self._restore()
        self._loop.dataloader_iterator = self._iterator
        return next(self._iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Store the generator states in checkpoints and restore them on ``--resume``.

    See the module docstring for when states are captured and restored. The hook is listed
    in ``configs/_base_/default_runtime.py``; :class:`~projects.common.engine.FaultTolerantRunner`
    also adds it to configs that replace ``custom_hooks`` without it.

    Args:
        isolate_val (bool): Leave the generators unchanged by validation runs during
            training (needed for an exact resume when validation follows a checkpoint).
            Defaults to True.
    """

    priority = 'BELOW_NORMAL'  # before CheckpointHook / SignalCheckpointHook save

    def __init__(self, isolate_val: bool = True) -> None:
        self.isolate_val = bool(isolate_val)
        self._states: Optional[List[Dict[str, Any]]] = None  # per rank, at the last capture
        self._captured_at: Optional[int] = None  # runner.iter + 1 of that capture
        self._pending: Optional[Dict[str, Any]] = None  # from the loaded checkpoint
        self._val_state: Optional[Dict[str, Any]] = None
        self._training = False

    # ------------------------------------------------------------------ capture
    def _capture(self, runner, step: int) -> None:
        state = capture_rng_state()
        self._states = all_gather_object(state) if get_world_size() > 1 else [state]
        self._captured_at = step

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Capture the states of all ranks after the optimizer step."""
        self._capture(runner, runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        """Capture the states for an epoch-end checkpoint."""
        self._capture(runner, runner.iter)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Write the captured states to ``checkpoint['rng_state']``.

        The checkpoint's ``meta['iter']`` must match the capture; otherwise (a checkpoint
        written outside the training iteration hooks) the main process's current state is
        stored.
        """
        step = checkpoint.get('meta', {}).get('iter')
        states = self._states
        if states is None or step is None or int(step) != self._captured_at:
            states = [capture_rng_state()]
        checkpoint[CHECKPOINT_KEY] = {'version': _FORMAT_VERSION, 'iter': step,
                                      'world_size': len(states), 'ranks': list(states)}

    # ------------------------------------------------------------------ restore
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep this rank's stored state; it is applied when training resumes from it."""
        stored = checkpoint.get(CHECKPOINT_KEY)
        self._pending = None
        if not stored:
            return
        ranks = stored.get('ranks') or []
        if not ranks:
            return
        rank, world = get_rank(), get_world_size()
        if len(ranks) != world:
            print_log(f'RNGStateHook: the checkpoint holds generator states of {len(ranks)} '
                      f'process(es) but {world} are running; rank {rank} uses state '
                      f'{rank % len(ranks)}, so the resumed run is not an exact continuation',
                      logger='current', level=logging.WARNING)
        meta = checkpoint.get('meta', {})
        self._pending = {'state': ranks[rank % len(ranks)], 'iter': meta.get('iter'),
                         'epoch': meta.get('epoch')}

    def before_train(self, runner) -> None:
        """Arrange the restore when the train loop continues from the loaded checkpoint."""
        self._training = True
        pending, self._pending = self._pending, None
        if pending is None:
            return
        loop = runner.train_loop
        if pending['iter'] is None or int(pending['iter']) != loop.iter or loop.iter == 0:
            return  # weights loaded with load_from (fine-tuning): keep the seeded state
        state = pending['state']

        def restore():
            restore_rng_state(state)
            runner.logger.info(f'RNGStateHook: restored the generator states of iteration '
                               f'{pending["iter"]}')

        if hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = _RestoreBeforeNextBatch(loop, loop.iter, restore)
        else:
            restore()

    def after_train(self, runner) -> None:
        """Mark the end of training (validation isolation only applies inside training)."""
        self._training = False

    # ------------------------------------------------------------------ validation
    def before_val(self, runner) -> None:
        """Remember the training stream's states before a validation run."""
        if self.isolate_val and self._training:
            self._val_state = capture_rng_state()

    def after_val(self, runner) -> None:
        """Put the training stream's states back after the validation run."""
        if self._val_state is not None:
            restore_rng_state(self._val_state)
            self._val_state = None
