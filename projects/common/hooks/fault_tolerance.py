"""Checkpoint on SIGTERM (preemption, ``scancel``, ``kill``) before the process exits."""
import signal

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from projects.registry import HOOKS

__all__ = ['SignalCheckpointHook']


@HOOKS.register_module()
class SignalCheckpointHook(Hook):
    """Write a checkpoint at the next iteration boundary after SIGTERM, then stop.

    The signal handler only sets a flag; the checkpoint is written from the training loop
    (``after_train_iter``) so model and optimizer state are consistent. Training then stops
    cleanly (``train_loop.stop_training``) and the process exits with status 0 unless
    ``exit_code`` is set. ``--resume`` continues from that checkpoint.

    Args:
        signals (tuple[str]): signal names to handle. Defaults to ``('SIGTERM',)``.
        exit_code (int, optional): when given, ``SystemExit(exit_code)`` is raised after
            saving instead of letting the loop finish (``runner.train()`` does not return).
    """

    priority = 'LOW'

    def __init__(self, signals=('SIGTERM', ), exit_code=None):
        self.signals = tuple(signals)
        self.exit_code = exit_code
        self._received = None
        self._previous = {}

    def _handler(self, signum, frame):  # noqa: ARG002
        self._received = signal.Signals(signum).name

    def before_train(self, runner):
        """Install the handlers (main thread only, as Python requires)."""
        for name in self.signals:
            sig = getattr(signal, name)
            self._previous[sig] = signal.signal(sig, self._handler)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        """Save ``iter_<N>.pth`` and stop training when a signal was received."""
        if self._received is None:
            return
        filename = f'iter_{runner.iter + 1}.pth'
        runner.logger.warning(f'{self._received} received: saving {filename} and stopping')
        runner.save_checkpoint(runner.work_dir, filename, save_optimizer=True,
                               save_param_scheduler=True)
        if is_main_process():
            with open(f'{runner.work_dir}/last_checkpoint', 'w') as f:
                f.write(f'{runner.work_dir}/{filename}')
        runner.train_loop.stop_training = True
        if self.exit_code is not None:
            raise SystemExit(self.exit_code)

    def after_train(self, runner):
        """Restore the previous signal handlers."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
