"""Checkpoint naming that keeps the model and the seed in the file name.

Registered in ``HOOKS`` from this module (imported with the drive-distill datasets by
``projects.register_all_modules()``, which the tools call).
"""
from mmengine.hooks import CheckpointHook

from projects.registry import HOOKS

__all__ = ['SeededCheckpointHook']


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
