"""Parameter schedulers whose length follows the run length (``train_cfg.max_iters``)."""
from mmengine.optim.scheduler import CosineAnnealingLR
from mmengine.optim.scheduler.param_scheduler import INF

from projects.registry import PARAM_SCHEDULERS

__all__ = ['ProportionalCosineAnnealingLR']


@PARAM_SCHEDULERS.register_module()
class ProportionalCosineAnnealingLR(CosineAnnealingLR):
    r"""Cosine annealing whose period is a fixed multiple of the scheduler's span.

    MMEngine's :class:`~mmengine.optim.CosineAnnealingLR` without ``T_max`` / ``end`` already
    spans the whole run (the Runner fills ``end`` from ``train_cfg.max_iters``). This variant
    sets the period to ``T_max = round(period_ratio * (end - begin))``, so a cosine that is
    deliberately longer than the run (``period_ratio > 1``: training stops before the LR
    reaches ``eta_min``) keeps that shape when ``--cfg-options train_cfg.max_iters=...`` changes
    the run length. The LR at step :math:`t` is
    :math:`\eta_{min} + \tfrac12(\eta_{max} - \eta_{min})(1 + \cos(\pi t / T_{max}))`
    (SGDR, Loshchilov & Hutter, ICLR 2017, without restarts).

    Args:
        optimizer (Optimizer | OptimWrapper): the wrapped optimizer.
        period_ratio (float): ``T_max`` as a multiple of ``end - begin`` (> 0).
            Defaults to 1.0 (the plain cosine over the span).
        begin (int): first step of the schedule. Defaults to 0.
        end (int): step at which the schedule stops; leave it out of the config so the
            Runner sets it to ``max_iters``.
        **kwargs: ``eta_min`` / ``eta_min_ratio``, ``by_epoch``, ``last_step``, ``verbose`` as
            :class:`~mmengine.optim.CosineAnnealingLR`.

    Raises:
        ValueError: when ``T_max`` is given (it is derived), ``period_ratio <= 0``, or
            ``end`` is unbounded (the scheduler was built outside a Runner's training).
    """

    def __init__(self, optimizer, period_ratio: float = 1.0, begin: int = 0, end: int = INF,
                 **kwargs):
        if 'T_max' in kwargs:
            raise ValueError('ProportionalCosineAnnealingLR derives T_max from period_ratio; '
                             f'remove T_max={kwargs["T_max"]!r} from the param_scheduler entry')
        if not float(period_ratio) > 0:
            raise ValueError(f'ProportionalCosineAnnealingLR.period_ratio must be > 0, got '
                             f'{period_ratio!r}')
        if end == INF:
            raise ValueError('ProportionalCosineAnnealingLR needs a finite `end`: leave `end` '
                             'out of the config so the Runner sets it to train_cfg.max_iters')
        self.period_ratio = float(period_ratio)
        t_max = max(1, int(round(self.period_ratio * (end - begin))))
        super().__init__(optimizer, T_max=t_max, begin=begin, end=end, **kwargs)
