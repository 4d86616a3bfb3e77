"""Hook reporting the windows skipped by ``skip_invalid=True`` datasets (AerialWorld)."""
from typing import Optional, Sequence

from mmengine.hooks import Hook

from projects.registry import HOOKS


def find_datasets_with_invalid_counter(dataset) -> list:
    """Return the datasets inside ``dataset`` that count invalid windows.

    Unwraps MMEngine's dataset wrappers (``ConcatDataset``,
    ``RepeatDataset``, ``ClassBalancedDataset``) and
    ``torch.utils.data.Subset`` / ``ConcatDataset``.

    Args:
        dataset: A dataset, possibly wrapped.

    Returns:
        list: Datasets that expose ``report_invalid`` (e.g.
        :class:`AerialWorldDataset`).
    """
    found, stack = [], [dataset]
    while stack:
        ds = stack.pop()
        if ds is None:
            continue
        if hasattr(ds, 'report_invalid'):
            found.append(ds)
        elif hasattr(ds, 'datasets'):
            stack.extend(ds.datasets)
        elif hasattr(ds, 'dataset'):
            stack.append(ds.dataset)
    return found


@HOOKS.register_module()
class InvalidSampleReportHook(Hook):
    """Log how many invalid windows were skipped at the end of each epoch.

    Works with datasets built with ``skip_invalid=True`` (e.g.
    ``AerialWorldDataset``): their counter lives in shared memory, so skips
    inside dataloader workers are included. After each report the counter is
    reset, so every number is per epoch (per validation / test run). The
    number is also written to the message hub as ``{mode}/invalid_samples``
    (visible to the logger and visualisation backends).

    Usage in a config::

        custom_hooks = [dict(type='InvalidSampleReportHook')]

    Args:
        modes (Sequence[str]): Which loops to report: any of ``'train'``,
            ``'val'``, ``'test'``. Defaults to all three.
    """

    priority = 'VERY_LOW'

    def __init__(self, modes: Sequence[str] = ('train', 'val', 'test')) -> None:
        bad = set(modes) - {'train', 'val', 'test'}
        if bad:
            raise ValueError(f'InvalidSampleReportHook: unknown modes {bad}')
        self.modes = tuple(modes)

    def _report(self, runner, mode: str) -> Optional[int]:
        if mode not in self.modes:
            return None
        loop = getattr(runner, f'_{mode}_loop', None)
        dataloader = getattr(loop, 'dataloader', None)
        dataset = getattr(dataloader, 'dataset', None)
        datasets = find_datasets_with_invalid_counter(dataset)
        if not datasets:
            return None
        tag = f'{mode} epoch {runner.epoch}' if mode == 'train' else mode
        total = sum(ds.report_invalid(tag=tag) for ds in datasets)
        runner.message_hub.update_scalar(f'{mode}/invalid_samples', total)
        return total

    def after_train_epoch(self, runner) -> None:
        """Report and reset the training datasets' counters."""
        self._report(runner, 'train')

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Report and reset the validation datasets' counters."""
        self._report(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Report and reset the test datasets' counters."""
        self._report(runner, 'test')
