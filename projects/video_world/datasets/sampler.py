"""Curriculum sampler: clips ordered by motion magnitude, the pool growing to all clips."""
import math
from typing import Iterator, Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from projects.registry import DATA_SAMPLERS

__all__ = ['CurriculumSampler']


@DATA_SAMPLERS.register_module()
class CurriculumSampler(Sampler):
    """Infinite sampler that starts with the clips of least motion (curriculum learning,
    Bengio et al., ICML 2009) and widens the pool linearly to every clip.

    Clips are ranked by ``dataset.motion_magnitudes()`` (mean absolute action). In pass
    ``e`` over the pool, the pool is the easiest ``f(e) = min(1, start_fraction + (1 -
    start_fraction) * e / ramp_passes)`` of the clips, shuffled with seed ``seed + e``; each
    rank takes every ``world_size``-th index (DDP-safe, like MMEngine's ``InfiniteSampler``).

    Args:
        dataset: A dataset with ``motion_magnitudes()`` (:class:`VideoSequenceDataset`).
        start_fraction (float): Pool fraction of the first pass, in (0, 1]. Defaults to 0.3.
        ramp_passes (int): Passes until the pool is complete. Defaults to 10.
        shuffle (bool): Shuffle within the pool. Defaults to True.
        seed (int, optional): Random seed (synchronised over ranks when None).

    Raises:
        ValueError: ``start_fraction`` outside (0, 1] or ``ramp_passes < 1``.
        TypeError: The dataset has no ``motion_magnitudes``.
    """

    def __init__(self, dataset, start_fraction: float = 0.3, ramp_passes: int = 10,
                 shuffle: bool = True, seed: Optional[int] = None) -> None:
        if not 0 < start_fraction <= 1:
            raise ValueError(f'CurriculumSampler: start_fraction={start_fraction} must be in '
                             '(0, 1]')
        if ramp_passes < 1:
            raise ValueError(f'CurriculumSampler: ramp_passes={ramp_passes} must be >= 1')
        if not hasattr(dataset, 'motion_magnitudes'):
            raise TypeError(f'CurriculumSampler: {type(dataset).__name__} has no '
                            'motion_magnitudes() (use a VideoSequenceDataset)')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.order = np.argsort(dataset.motion_magnitudes(), kind='stable')
        self.start_fraction, self.ramp_passes = float(start_fraction), int(ramp_passes)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0

    def pool_size(self, passes: int) -> int:
        """Clips in the pool of pass ``passes`` (at least one)."""
        frac = min(1.0, self.start_fraction +
                   (1 - self.start_fraction) * passes / self.ramp_passes)
        return max(1, math.ceil(frac * len(self.order)))

    def __iter__(self) -> Iterator[int]:
        passes = 0
        while True:
            pool = self.order[:self.pool_size(passes)]
            if self.shuffle:
                g = torch.Generator()
                g.manual_seed(self.seed + self.epoch * 100003 + passes)
                pool = pool[torch.randperm(len(pool), generator=g).numpy()]
            yield from (int(i) for i in pool[self.rank::self.world_size])
            passes += 1

    def __len__(self) -> int:
        return len(self.order) // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Called by ``DistSamplerSeedHook``; changes the shuffling of every pass."""
        self.epoch = epoch
