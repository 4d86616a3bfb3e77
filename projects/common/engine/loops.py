"""Two-stage iteration-based training loop (e.g. tokenizer, then world model).

The AerialWorld recipe trains its VQ-VAE tokenizer for the first part of a run and the world
model, with the tokenizer frozen, for the rest, in one command. The iteration of the switch is
part of the training schedule, so it lives in ``train_cfg`` next to ``max_iters``::

    train_cfg = dict(type='TwoStageTrainLoop', max_iters=20000, switch_ratio=0.4,
                     val_interval=2000)

``switch_ratio`` is resolved against ``max_iters`` when the loop is built, so
``--cfg-options train_cfg.max_iters=500`` (or ``--max-iters 500``) moves the stage switch with
the run length (to iteration 200 here); ``switch_iter`` gives an absolute iteration instead.
:func:`stage_schedule` resolves the same numbers from a config without building anything
(tools that must put a checkpoint's model into its stage use it).
"""
from typing import Mapping, Optional, Sequence

from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop

from projects.registry import LOOPS

__all__ = ['TwoStageTrainLoop', 'checkpoint_stage', 'resolve_switch_iter', 'stage_schedule',
           'stage_for_iter', 'TWO_STAGE_LOOPS']

# ``train_cfg.type`` values that name this loop (with and without the scope prefix).
TWO_STAGE_LOOPS = ('TwoStageTrainLoop', 'projects.TwoStageTrainLoop')


def resolve_switch_iter(max_iters: int, switch_iter: Optional[int] = None,
                        switch_ratio: Optional[float] = None) -> int:
    """Return the first iteration of the second stage.

    Args:
        max_iters (int): iterations of the whole run (``train_cfg.max_iters``).
        switch_iter (int, optional): absolute first iteration of the second stage (>= 0;
            from ``max_iters`` on the second stage never runs, e.g. after
            ``--max-iters`` shortened the run).
        switch_ratio (float, optional): the switch as a fraction of ``max_iters`` in
            ``[0, 1]``; the iteration is ``round(switch_ratio * max_iters)``.

    Returns:
        int: the switch iteration.

    Raises:
        ValueError: when neither or both of ``switch_iter`` / ``switch_ratio`` are given, or a
            value is out of range.
    """
    if (switch_iter is None) == (switch_ratio is None):
        raise ValueError('train_cfg of a TwoStageTrainLoop needs exactly one of switch_iter '
                         f'(absolute) or switch_ratio (fraction of max_iters); got '
                         f'switch_iter={switch_iter!r}, switch_ratio={switch_ratio!r} (to fix '
                         'the switch of a config that sets switch_ratio: --cfg-options '
                         'train_cfg.switch_ratio=None train_cfg.switch_iter=K)')
    if switch_ratio is not None:
        if not 0.0 <= float(switch_ratio) <= 1.0:
            raise ValueError(f'train_cfg.switch_ratio must be in [0, 1], got {switch_ratio!r}')
        return int(round(float(switch_ratio) * int(max_iters)))
    if int(switch_iter) != switch_iter or int(switch_iter) < 0:
        raise ValueError(f'train_cfg.switch_iter must be an integer >= 0, got {switch_iter!r}')
    return int(switch_iter)


def stage_schedule(cfg) -> Optional[dict]:
    """Stage switch of a config whose ``train_cfg`` is a :class:`TwoStageTrainLoop`.

    Args:
        cfg (Config | dict): a complete config (``--cfg-options`` already merged).

    Returns:
        dict | None: ``{'switch_iter': int, 'stages': (first, second)}``, or None when the
        config trains a single stage.

    Raises:
        ValueError: as :func:`resolve_switch_iter` for an invalid ``train_cfg``.
    """
    train_cfg = cfg.get('train_cfg') or {}
    if train_cfg.get('type') not in TWO_STAGE_LOOPS:
        return None
    switch = resolve_switch_iter(train_cfg['max_iters'], train_cfg.get('switch_iter'),
                                 train_cfg.get('switch_ratio'))
    return dict(switch_iter=switch,
                stages=tuple(train_cfg.get('stages', TwoStageTrainLoop.DEFAULT_STAGES)))


def stage_for_iter(schedule: Mapping, iteration: int) -> str:
    """Stage that trains iteration ``iteration`` (0-based) under ``schedule``.

    Args:
        schedule (Mapping): as returned by :func:`stage_schedule`.
        iteration (int): 0-based iteration index (``runner.iter`` before the step).

    Returns:
        str: the first stage before ``switch_iter``, the second from it on.
    """
    first, second = schedule['stages']
    return first if iteration < schedule['switch_iter'] else second


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@LOOPS.register_module()
class TwoStageTrainLoop(IterBasedTrainLoop):
    """:class:`IterBasedTrainLoop` that switches the model's stage at ``switch_iter``.

    Before every iteration the model's stage is set from the iteration counter
    (``stages[0]`` while ``iter < switch_iter``, then ``stages[1]``), so a run resumed on
    either side of the switch continues in the right stage. Stage changes are logged. The model
    (unwrapped from DDP / FSDP) must implement ``set_stage(stage)`` and expose
    ``train_stage``. Saving the stage in checkpoints (for evaluation) is the job of
    :class:`~projects.common.hooks.TrainStageCheckpointHook`.

    Args:
        runner (Runner): the runner.
        dataloader (DataLoader | dict): training data loader (or its config).
        max_iters (int): iterations of the whole run (both stages).
        switch_iter (int, optional): first iteration of the second stage.
        switch_ratio (float, optional): the switch as a fraction of ``max_iters`` (resolved
            here, so it follows ``max_iters`` overrides). Exactly one of the two is required.
        stages (Sequence[str]): names of the two stages. Defaults to
            ``('tokenizer', 'world')``.
        **kwargs: ``val_begin``, ``val_interval``, ``dynamic_intervals`` as
            :class:`IterBasedTrainLoop`.

    Raises:
        ValueError: for an invalid switch (see :func:`resolve_switch_iter`) or ``stages``
            that are not two names.
        TypeError: when the model has no ``set_stage`` method.
    """

    DEFAULT_STAGES = ('tokenizer', 'world')

    def __init__(self, runner, dataloader, max_iters: int, switch_iter: Optional[int] = None,
                 switch_ratio: Optional[float] = None,
                 stages: Sequence[str] = DEFAULT_STAGES, **kwargs) -> None:
        self.switch_iter = resolve_switch_iter(max_iters, switch_iter, switch_ratio)
        stages = tuple(stages)
        if len(stages) != 2 or not all(isinstance(s, str) for s in stages):
            raise ValueError(f'train_cfg.stages must be two stage names, got {stages!r}')
        self.stages = stages
        # The model is checked when the first iteration runs: MMEngine's FlexibleRunner builds
        # (and wraps) it only after the loop.
        super().__init__(runner, dataloader, max_iters, **kwargs)

    @property
    def schedule(self) -> dict:
        """dict: ``{'switch_iter': int, 'stages': (first, second)}`` of this loop."""
        return dict(switch_iter=self.switch_iter, stages=self.stages)

    def stage_for_iter(self, iteration: int) -> str:
        """Stage of the 0-based iteration ``iteration``."""
        return stage_for_iter(self.schedule, iteration)

    def run_iter(self, data_batch) -> None:
        """Put the model into the stage of this iteration, then run it."""
        model = _unwrap(self.runner.model)
        if not hasattr(model, 'set_stage'):
            raise TypeError(f'TwoStageTrainLoop needs a model with set_stage(); '
                            f'{type(model).__name__} has none')
        stage = self.stage_for_iter(self._iter)
        if getattr(model, 'train_stage', None) != stage:
            self.runner.logger.info(
                f'iter {self._iter}: training stage -> {stage!r} (switch at iteration '
                f'{self.switch_iter} of {self._max_iters})')
            model.set_stage(stage)
        super().run_iter(data_batch)


def checkpoint_stage(cfg, checkpoint: Mapping) -> Optional[str]:
    """Stage a checkpoint's model was trained in.

    ``meta['train_stage']`` (written by
    :class:`~projects.common.hooks.TrainStageCheckpointHook`) when present, else the stage of
    the checkpoint's iteration under the config's :class:`TwoStageTrainLoop` switch.

    Args:
        cfg (Config | dict): the config the checkpoint belongs to.
        checkpoint (Mapping): the loaded checkpoint (with ``meta``).

    Returns:
        str | None: the stage, or None when neither source tells it.
    """
    meta = checkpoint.get('meta') or {}
    if meta.get('train_stage') is not None:
        return meta['train_stage']
    schedule = stage_schedule(cfg)
    if schedule is None or meta.get('iter') is None:
        return None
    # ``meta['iter']`` counts the iterations done; the last one ran at index iter - 1.
    return stage_for_iter(schedule, max(int(meta['iter']) - 1, 0))
