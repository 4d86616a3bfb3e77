"""Watch for occupancy collapse: a model that predicts (almost) only free space."""
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook

from projects.registry import HOOKS


def _count(volume, free_label: int):
    """(non-free voxels, all voxels) of a label volume (numpy or torch)."""
    if hasattr(volume, 'detach'):
        volume = volume.detach()
        return int((volume != free_label).sum().item()), int(volume.numel())
    volume = np.asarray(volume)
    return int(np.count_nonzero(volume != free_label)), int(volume.size)


@HOOKS.register_module()
class OccupancyCollapseHook(Hook):
    """Compare the predicted occupancy rate with the ground truth's after val / test.

    Occupancy models trained with strongly imbalanced losses can collapse to predicting free
    space everywhere (the failure the seed fought with mean-matching losses); IoU then drops
    to ~0 without an error. After every val/test iteration the hook counts the non-free
    voxels of ``pred_occ`` and ``gt_occ`` (uint8 ``(F, X, Y, Z)`` per prediction) and at the
    end of the run reports, over all samples (summed over processes in distributed runs,
    without the samples the distributed sampler repeats to pad the last batch):

    * ``collapse/pred_rate``, ``collapse/gt_rate``: fraction of non-free voxels (pooled);
    * ``collapse/ratio``: ``pred_rate / gt_rate`` (1 is ideal, 0 is total collapse);
    * ``collapse/pred_mean``, ``collapse/gt_mean``: mean of the per-sample rates;
    * ``collapse/pred_max``, ``collapse/gt_max``: largest per-sample rate.

    They are written to the message hub as ``val/collapse/...`` (``test/...``), so the
    ``LoggerHook`` prints them and sends them to every vis backend (``scalars.json``,
    TensorBoard). When ``pred_rate < warn_ratio * gt_rate`` it logs a WARNING saying the model
    predicts almost nothing. The numbers of the last run are kept in :attr:`last_stats`.

    Args:
        free_label (int): Label of empty space. A negative value (default ``-1``) takes the
            ``free_label`` of each prediction's metainfo, or counts from the end of the
            classes (``num_classes + free_label``, so -1 is the last class) when the
            metainfo has ``num_classes`` only.
        warn_ratio (float): Warn when the predicted rate is below this fraction of the GT
            rate, in (0, 1]. Defaults to 0.1.
        interval (int): Check every ``interval``-th val (or test) run. Defaults to 1.

    Raises:
        ValueError: ``warn_ratio`` outside (0, 1] or ``interval < 1``.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) reads the message hub

    def __init__(self, free_label: int = -1, warn_ratio: float = 0.1, interval: int = 1) -> None:
        if not 0.0 < float(warn_ratio) <= 1.0:
            raise ValueError(f'OccupancyCollapseHook.warn_ratio must be in (0, 1], got '
                             f'{warn_ratio}')
        if int(interval) < 1:
            raise ValueError(f'OccupancyCollapseHook.interval must be >= 1, got {interval}')
        self.free_label = int(free_label)
        self.warn_ratio = float(warn_ratio)
        self.interval = int(interval)
        self._runs = {'val': 0, 'test': 0}
        self._active = False
        self._warned_fields = False
        self.last_stats: Optional[Dict[str, float]] = None
        self._remaining: Optional[int] = None
        self._reset()

    def _reset(self) -> None:
        # pred non-free, gt non-free, voxels, samples, sum pred rate, sum gt rate
        self._sums = np.zeros(6, dtype=np.float64)
        self._maxes = np.zeros(2, dtype=np.float64)  # max pred rate, max gt rate

    def _resolve_free(self, sample) -> int:
        if self.free_label >= 0:
            return self.free_label
        meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
        if meta.get('free_label') is not None:
            return int(meta['free_label'])
        if meta.get('num_classes') is not None:
            return int(meta['num_classes']) + self.free_label
        raise ValueError('OccupancyCollapseHook: free_label=-1 needs `free_label` or '
                         '`num_classes` in the prediction metainfo; set free_label explicitly')

    @staticmethod
    def _real_samples(runner, mode: str) -> Optional[int]:
        """Number of this process's samples that are not sampler padding (None: all).

        MMEngine's ``DefaultSampler`` (``round_up=True``) repeats the first indices so that
        every process gets the same number of samples, and gives process ``r`` of ``w`` the
        positions ``r, r + w, ...`` of that padded list; the padding is therefore the tail
        of each process's share. Metrics drop it when results are collected
        (``collect_results`` truncates to the dataset size); the hook has to skip it itself,
        or a distributed run counts some windows twice.
        """
        loop = getattr(runner, f'{mode}_loop', None)
        dataloader = getattr(loop, 'dataloader', None)
        sampler = getattr(dataloader, 'sampler', None)
        dataset = getattr(dataloader, 'dataset', None)
        if sampler is None or dataset is None or not all(
                hasattr(sampler, a) for a in ('rank', 'world_size', 'total_size')):
            return None
        size, rank, world = len(dataset), int(sampler.rank), int(sampler.world_size)
        if sampler.total_size <= size:
            return None
        return len(range(rank, size, world))

    def _start(self, runner, mode: str) -> None:
        self._runs[mode] += 1
        self._active = (self._runs[mode] - 1) % self.interval == 0
        self._reset()
        self._remaining = self._real_samples(runner, mode) if self._active else None

    def before_val_epoch(self, runner) -> None:
        """Clear the counters."""
        self._start(runner, 'val')

    def before_test_epoch(self, runner) -> None:
        """Clear the counters."""
        self._start(runner, 'test')

    def _accumulate(self, runner, outputs) -> None:
        if not self._active or not outputs:
            return
        for sample in outputs:
            if self._remaining is not None:
                if self._remaining <= 0:
                    return  # distributed sampler padding (a repeated window)
                self._remaining -= 1
            if 'pred_occ' not in sample or 'gt_occ' not in sample:
                if not self._warned_fields:
                    runner.logger.warning('OccupancyCollapseHook: predictions have no '
                                          'pred_occ / gt_occ; the collapse check is skipped')
                    self._warned_fields = True
                return
            free = self._resolve_free(sample)
            pred_n, numel = _count(sample.pred_occ, free)
            gt_n, gt_numel = _count(sample.gt_occ, free)
            if numel != gt_numel:
                raise ValueError(f'OccupancyCollapseHook: pred_occ has {numel} voxels but '
                                 f'gt_occ has {gt_numel}')
            pred_rate, gt_rate = pred_n / max(numel, 1), gt_n / max(numel, 1)
            self._sums += (pred_n, gt_n, numel, 1, pred_rate, gt_rate)
            self._maxes = np.maximum(self._maxes, (pred_rate, gt_rate))

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Count predicted and GT non-free voxels of the batch."""
        self._accumulate(runner, outputs)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Count predicted and GT non-free voxels of the batch."""
        self._accumulate(runner, outputs)

    def _finish(self, runner, mode: str) -> None:
        if not self._active:
            return
        sums = torch.from_numpy(self._sums.copy())
        maxes = torch.from_numpy(self._maxes.copy())
        all_reduce(sums, op='sum')
        all_reduce(maxes, op='max')
        pred_n, gt_n, numel, count, pred_rate_sum, gt_rate_sum = sums.tolist()
        if count == 0:
            return
        pred_rate, gt_rate = pred_n / max(numel, 1.0), gt_n / max(numel, 1.0)
        ratio = pred_rate / gt_rate if gt_rate > 0 else float('nan')
        stats = {
            'pred_rate': pred_rate, 'gt_rate': gt_rate, 'ratio': ratio,
            'pred_mean': pred_rate_sum / count, 'gt_mean': gt_rate_sum / count,
            'pred_max': float(maxes[0]), 'gt_max': float(maxes[1]),
        }
        self.last_stats = stats
        for key, value in stats.items():
            if np.isfinite(value):
                runner.message_hub.update_scalar(f'{mode}/collapse/{key}', value)
        runner.logger.info(
            f'OccupancyCollapseHook ({mode}, {int(count)} samples): occupied rate pred '
            f'{pred_rate:.4f} vs GT {gt_rate:.4f} (ratio {ratio:.3f}); per-sample mean '
            f'{stats["pred_mean"]:.4f} vs {stats["gt_mean"]:.4f}, max '
            f'{stats["pred_max"]:.4f} vs {stats["gt_max"]:.4f}')
        if gt_rate > 0 and pred_rate < self.warn_ratio * gt_rate:
            runner.logger.warning(
                f'OccupancyCollapseHook: the model predicts almost nothing ({mode}): only '
                f'{100 * pred_rate:.3f}% of the voxels are predicted occupied against '
                f'{100 * gt_rate:.3f}% in the ground truth (ratio {ratio:.3f} < warn_ratio '
                f'{self.warn_ratio}). The occupancy output has collapsed towards free space; '
                'check the class balance of the loss (focal alpha, mean-matching weight), '
                'the learning rate and the tokenizer reconstruction IoU.')

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Log the rates and warn on collapse."""
        self._finish(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        """Log the rates and warn on collapse."""
        self._finish(runner, 'test')
