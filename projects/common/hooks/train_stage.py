"""Keep a two-stage model's stage with its checkpoints."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from projects.registry import HOOKS

__all__ = ['TrainStageCheckpointHook']


@HOOKS.register_module()
class TrainStageCheckpointHook(Hook):
    """Record the model's stage in checkpoints and restore it when one is loaded.

    The stage switch itself is part of the schedule
    (:class:`~projects.common.engine.TwoStageTrainLoop`, ``train_cfg.switch_ratio``). This
    hook makes checkpoints self-describing: ``before_save_checkpoint`` writes
    ``meta['train_stage']``, and ``after_load_checkpoint`` (``tools/test.py``,
    ``--load-from``, ``--resume``) puts the model into the stage the checkpoint was trained in,
    so a world-stage checkpoint is evaluated as a world model. Checkpoints without the key fall
    back to the config's switch and the checkpoint's iteration
    (:func:`~projects.common.engine.checkpoint_stage`). When training resumes, the loop then
    sets the stage of the next iteration itself. Models without ``set_stage`` are left alone
    (the hook can stay in a shared hook list).
    """

    priority = 'VERY_HIGH'

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return model if hasattr(model, 'set_stage') else None

    def before_save_checkpoint(self, runner, checkpoint):
        """Write the model's stage to ``checkpoint['meta']['train_stage']``."""
        model = self._model(runner)
        if model is not None:
            checkpoint.setdefault('meta', {})['train_stage'] = model.train_stage

    def after_load_checkpoint(self, runner, checkpoint):
        """Put the model into the stage the checkpoint was trained in."""
        from projects.common.engine.loops import checkpoint_stage
        model = self._model(runner)
        if model is None:
            return
        stage = checkpoint_stage(runner.cfg, checkpoint)
        if stage is not None and model.train_stage != stage:
            runner.logger.info(f'checkpoint was trained in stage {stage!r}: setting it')
            model.set_stage(stage)
