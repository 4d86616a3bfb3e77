"""Logger hook that reports progress from the first iterations on, with a projected wall time."""
import datetime
import os
import time
from typing import Optional

from mmengine.hooks import LoggerHook
from mmengine.model import is_model_wrapper

from projects.registry import HOOKS

__all__ = ['ProgressLoggerHook', 'format_duration', 'process_age_s']


def format_duration(seconds: float) -> str:
    """Human-readable duration, e.g. ``'2 d 3 h 04 min'``, ``'5 min 07 s'``, ``'42 s'``.

    Args:
        seconds (float): a duration in seconds (>= 0).

    Returns:
        str: days / hours / minutes (minutes / seconds under an hour).
    """
    seconds = max(int(round(seconds)), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f'{days} d {hours} h {minutes:02d} min'
    if hours:
        return f'{hours} h {minutes:02d} min'
    if minutes:
        return f'{minutes} min {secs:02d} s'
    return f'{secs} s'


def process_age_s() -> Optional[float]:
    """Seconds since this process started (Linux ``/proc``), or None where unavailable."""
    try:
        with open('/proc/self/stat') as f:
            # fields after the command name: state is field 3, starttime field 22 (clock ticks)
            fields = f.read().rsplit(')', 1)[1].split()
        with open('/proc/uptime') as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf('SC_CLK_TCK'), 0.0)
    except (OSError, ValueError, IndexError):
        return None


@HOOKS.register_module()
class ProgressLoggerHook(LoggerHook):
    """:class:`~mmengine.hooks.LoggerHook` that talks early: first iterations, then every N.

    * The first ``first_iters`` training iterations of a run (or of a resumed run) are logged
      one by one (with MMEngine's usual loss / lr / time / ETA line), later ones every
      ``interval`` iterations as by the parent hook.
    * After ``estimate_iters`` timed iterations one line states the measured seconds per
      iteration and the projected wall time of the whole run on this machine, with the clock
      time it would finish at. The first iteration is left out of the measurement (it pays
      for data-loader workers, lazy allocation and first-call overheads), and so is any
      iteration with a validation run before it.
    * Models with stages (``train_stage``, e.g. AerialWorld's tokenizer then world model, see
      :class:`~projects.common.engine.TwoStageTrainLoop`) run at different speeds per stage:
      the projection says how many iterations of each stage it has measured, assumes the
      unmeasured ones at the latest measured rate, and is repeated once the next stage has
      been measured.

    Used as ``default_hooks.logger`` in ``configs/_base_/default_runtime.py``, so every config
    inherits it.

    Args:
        interval (int): logging interval after the first iterations. Defaults to 10.
        first_iters (int): iterations logged individually at the start. Defaults to 5.
        estimate_iters (int): timed iterations (after the skipped first one) the projection
            averages. Defaults to 3.
        **kwargs: passed to :class:`~mmengine.hooks.LoggerHook` (``log_metric_by_epoch``,
            ``out_dir``, ...).

    Raises:
        ValueError: when ``first_iters < 0`` or ``estimate_iters < 1``.
    """

    def __init__(self, interval: int = 10, first_iters: int = 5, estimate_iters: int = 3,
                 **kwargs) -> None:
        super().__init__(interval=interval, **kwargs)
        if first_iters < 0:
            raise ValueError(f'ProgressLoggerHook.first_iters must be >= 0, got {first_iters}')
        if estimate_iters < 1:
            raise ValueError('ProgressLoggerHook.estimate_iters must be >= 1, got '
                             f'{estimate_iters}')
        self.first_iters = int(first_iters)
        self.estimate_iters = int(estimate_iters)
        age = process_age_s()
        # the run's clock starts with the process (imports, config, model and data set-up)
        self._started_at = time.perf_counter() - (age if age is not None else 0.0)
        self._since = 'since the process started' if age is not None else \
            'since the logger hook was built'
        self._start_iter = 0
        self._last_tick: Optional[float] = None
        self._phase: Optional[str] = None
        self._phase_durations: list = []
        self._phase_skip = True
        self._rates: dict = {}  # phase -> measured seconds per iteration
        self._reported: set = set()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _stage(runner) -> str:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        stage = getattr(model, 'train_stage', None)
        return stage if isinstance(stage, str) else 'train'

    @staticmethod
    def _phase_iters(runner) -> Optional[dict]:
        """``{stage: iterations}`` of the whole run for a two-stage loop, else None."""
        loop = runner.train_loop
        schedule = getattr(loop, 'schedule', None)
        if not schedule:
            return None
        first, second = schedule['stages']
        switch = min(schedule['switch_iter'], runner.max_iters)
        return {first: switch, second: runner.max_iters - switch}

    def _parent_logs(self, runner, batch_idx: int) -> bool:
        """Whether :meth:`LoggerHook.after_train_iter` writes a line for this iteration."""
        if self.every_n_inner_iters(batch_idx, self.interval):
            return True
        return (self.end_of_epoch(runner.train_dataloader, batch_idx)
                and (not self.ignore_last or len(runner.train_dataloader) <= self.interval))

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        """Remember where this run (or resumed run) starts."""
        super().before_train(runner)
        self._start_iter = runner.iter
        self._last_tick = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Start a new measurement phase when the model's stage changed."""
        stage = self._stage(runner)
        if stage != self._phase:
            self._phase, self._phase_durations, self._phase_skip = stage, [], True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Log the first iterations individually, then as the parent; time the iterations."""
        done = runner.iter + 1 - self._start_iter
        if done <= self.first_iters and not self._parent_logs(runner, batch_idx):
            tag, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')
            runner.logger.info(log_str)
            runner.visualizer.add_scalars(tag, step=runner.iter + 1,
                                          file_path=self.json_log_path)
        else:
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self._measure(runner)

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Log validation as the parent; the next iteration is not timed."""
        super().after_val_epoch(runner, metrics)
        self._last_tick = None

    # ------------------------------------------------------------------ projection
    def _measure(self, runner) -> None:
        now = time.perf_counter()
        last, self._last_tick = self._last_tick, now
        if self._phase_skip or last is None:
            # First iteration of the run / of a stage, or right after validation.
            self._phase_skip = False
            return
        if self._phase in self._reported or len(self._phase_durations) >= self.estimate_iters:
            return
        self._phase_durations.append(now - last)
        if len(self._phase_durations) == self.estimate_iters:
            self._rates[self._phase] = sum(self._phase_durations) / self.estimate_iters
            self._reported.add(self._phase)
            runner.logger.info(self.projection(runner))

    def projection(self, runner) -> str:
        """The start-up line: measured s/iter and the projected wall time of the run.

        Args:
            runner (Runner): the training runner (``iter``, ``max_iters``, train loop).

        Returns:
            str: one log line.
        """
        rate = self._rates[self._phase]
        elapsed = time.perf_counter() - self._started_at
        done = runner.iter + 1
        remaining = max(runner.max_iters - done, 0)
        first = done - len(self._phase_durations) + 1
        parts = [f'progress: {rate:.3g} s/iter measured over iterations {first}-{done}']
        phase_iters = self._phase_iters(runner)
        if phase_iters is None or self._phase not in phase_iters:
            remaining_s = rate * remaining
            basis = f'{remaining} remaining iterations at this rate'
        else:
            # Remaining iterations per stage: those after `done` in run order.
            order = list(phase_iters)
            bounds, start = {}, 0
            for name in order:
                bounds[name] = (start, start + phase_iters[name])
                start += phase_iters[name]
            remaining_s, notes = 0.0, []
            for name in order:
                lo, hi = bounds[name]
                left = max(hi - max(lo, done), 0)
                if not left:
                    continue
                if name in self._rates:
                    remaining_s += left * self._rates[name]
                    notes.append(f"{left} '{name}' at {self._rates[name]:.3g} s/iter")
                else:
                    remaining_s += left * rate
                    notes.append(f"{left} '{name}' assumed at {rate:.3g} s/iter until measured")
            parts[0] += f" (stage '{self._phase}')"
            basis = '; '.join(notes) if notes else 'no iterations left'
        total = elapsed + remaining_s
        finish = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=remaining_s)
        parts.append(f'projected wall time of the whole run ({runner.max_iters} iterations, '
                     f'this machine): {format_duration(total)}, {format_duration(elapsed)} '
                     f'elapsed {self._since}, finishing around '
                     f'{finish:%Y-%m-%d %H:%M} UTC')
        parts.append(f'remaining: {basis}; validation and checkpoint time not included')
        return '; '.join(parts)
