"""Checkpoint naming with the seed, and testing the selected checkpoint after training.

Registered in ``HOOKS`` (the registry imports :mod:`projects.drive_distill.hooks` on first
lookup).
"""
import os.path as osp

from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from projects.registry import HOOKS

__all__ = ['SeededCheckpointHook', 'TestBestCheckpointHook']


@HOOKS.register_module()
class SeededCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` whose ``filename_tmpl`` may contain ``{seed}``.

    ``{seed}`` is replaced by the run's actual seed (``runner.seed``, i.e. ``--seed`` or
    ``randomness.seed``) before training; the remaining ``{}`` is MMEngine's iteration / epoch
    placeholder, e.g. ``filename_tmpl='drive_distill_vector_seed{seed}_iter_{}.pth'`` gives
    ``drive_distill_vector_seed3_iter_400.pth``. ``--resume`` (``last_checkpoint``) keeps working.

    Args:
        filename_tmpl (str): template with ``{seed}`` and ``{}``.
        **kwargs: forwarded to :class:`CheckpointHook`.

    Raises:
        ValueError: if the template has no ``{}`` placeholder for the step.
    """

    def __init__(self, filename_tmpl='seed{seed}_iter_{}.pth', **kwargs):
        if '{}' not in filename_tmpl:
            raise ValueError(f'SeededCheckpointHook.filename_tmpl needs a {{}} step placeholder: '
                             f'{filename_tmpl!r}')
        super().__init__(filename_tmpl=filename_tmpl, **kwargs)
        self._seed_tmpl = filename_tmpl

    def before_train(self, runner):
        """Fill ``{seed}`` from ``runner.seed``, then run the parent set-up."""
        self.filename_tmpl = self._seed_tmpl.replace('{seed}', str(runner.seed))
        super().before_train(runner)


@HOOKS.register_module()
class TestBestCheckpointHook(Hook):
    """After training, evaluate the best (or last) checkpoint on the test split.

    Model selection happens on the validation split (``save_best`` of the checkpoint hook);
    the test split (held-out scenes) is only evaluated once, here, with the selected weights,
    so ``tools/train.py`` ends with the held-out table. Weights are loaded with
    ``runner.load_checkpoint`` (hooks such as ``EMAHook`` see ``after_load_checkpoint``), then
    ``runner.test_loop.run()`` prints the metric table and logs ``test/...`` scalars.

    Args:
        metric (str | None): the ``save_best`` key whose checkpoint is tested (e.g.
            ``'traj/FDE'``); None: the only / first best checkpoint. When the checkpoint hook
            saved no best checkpoint (no validation ran), the final weights are tested.

    Raises:
        RuntimeError: if the runner has no ``test_dataloader`` / ``test_evaluator``.
    """

    priority = 'LOWEST'  # after CheckpointHook.after_train

    def __init__(self, metric=None):
        self.metric = metric

    def _best_path(self, runner):
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook):
                continue
            if getattr(hook, 'best_ckpt_path', None):
                return hook.best_ckpt_path
            paths = getattr(hook, 'best_ckpt_path_dict', None) or {}
            if self.metric is not None and paths.get(self.metric):
                return paths[self.metric]
            found = [p for p in paths.values() if p]
            if found:
                return found[0]
        return None

    def after_train(self, runner):
        """Load the selected checkpoint and run the test loop."""
        if runner._test_dataloader is None or runner._test_evaluator is None:
            raise RuntimeError('TestBestCheckpointHook needs test_dataloader and test_evaluator '
                               'in the config')
        path = self._best_path(runner)
        if path is not None and osp.isfile(path):
            print_log(f'TestBestCheckpointHook: testing the selected checkpoint {path}',
                      logger='current')
            runner.load_checkpoint(path)
        else:
            print_log('TestBestCheckpointHook: no best checkpoint saved; testing the final '
                      'weights', logger='current')
        runner.test_loop.run()
