"""Switch a two-stage model (tokenizer, then world model) at a given iteration."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from projects.registry import HOOKS


@HOOKS.register_module()
class TrainStageSwitchHook(Hook):
    """Run the complete AerialWorld recipe in one training command.

    Before every training iteration the hook sets the model's stage from the iteration
    counter: ``first_stage`` while ``runner.iter < switch_iter``, then ``second_stage``.
    Deriving the stage from the counter (instead of switching once) makes it correct after
    ``--resume`` too. The model must implement ``set_stage(stage)`` and expose
    ``train_stage``.

    Args:
        switch_iter (int): first iteration of the second stage (>= 0).
        first_stage (str): stage name before ``switch_iter``. Defaults to ``'tokenizer'``.
        second_stage (str): stage name from ``switch_iter`` on. Defaults to ``'world'``.

    Raises:
        ValueError: if ``switch_iter`` is negative.
        TypeError: if the model has no ``set_stage`` method.
    """

    priority = 'VERY_HIGH'

    def __init__(self, switch_iter, first_stage='tokenizer', second_stage='world'):
        if int(switch_iter) < 0:
            raise ValueError(f'TrainStageSwitchHook.switch_iter must be >= 0, got {switch_iter}')
        self.switch_iter = int(switch_iter)
        self.first_stage = first_stage
        self.second_stage = second_stage

    def _model(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_stage'):
            raise TypeError(f'TrainStageSwitchHook needs a model with set_stage(); '
                            f'{type(model).__name__} has none')
        return model

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        """Set the stage that belongs to ``runner.iter``."""
        model = self._model(runner)
        stage = self._stage_for_iter(runner.iter)
        if getattr(model, 'train_stage', None) != stage:
            runner.logger.info(f'iter {runner.iter}: training stage -> {stage!r}')
            model.set_stage(stage)

    def _stage_for_iter(self, iteration):
        return self.first_stage if iteration < self.switch_iter else self.second_stage

    def before_save_checkpoint(self, runner, checkpoint):
        """Record the model's stage in ``checkpoint['meta']['train_stage']``."""
        checkpoint.setdefault('meta', {})['train_stage'] = self._model(runner).train_stage

    def after_load_checkpoint(self, runner, checkpoint):
        """Restore the stage a checkpoint was trained in (``tools/test.py``, ``--resume``).

        Uses ``meta['train_stage']`` when present, else the checkpoint's iteration compared
        with ``switch_iter``, so a world-stage checkpoint is evaluated as a world model.
        """
        meta = checkpoint.get('meta', {})
        stage = meta.get('train_stage')
        if stage is None and 'iter' in meta:
            stage = self._stage_for_iter(int(meta['iter']))
        if stage is not None:
            model = self._model(runner)
            if model.train_stage != stage:
                runner.logger.info(f'checkpoint was trained in stage {stage!r}: setting it')
                model.set_stage(stage)
