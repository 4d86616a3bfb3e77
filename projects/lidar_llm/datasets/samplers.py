"""Length-grouped batch order: batches of similar length, so little padding."""
import math
from typing import Iterator, Optional

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from projects.registry import DATA_SAMPLERS

__all__ = ['LengthGroupedSampler', 'SampleGroupedSampler']


@DATA_SAMPLERS.register_module()
class LengthGroupedSampler(Sampler):
    """Shuffle, cut into mega-batches of ``batch_size * mega_batch_mult`` samples, sort each
    mega-batch by length (descending), cut it into batches and shuffle the batch order
    (the scheme of HF ``LengthGroupedSampler``). DDP-aware: every rank takes every
    ``world_size``-th batch, so a global step sees batches of similar length.

    Args:
        dataset: needs ``get_lengths()`` (list of int).
        batch_size (int): per-rank batch size (the dataloader's).
        mega_batch_mult (int): Defaults to 50.
        shuffle (bool): Defaults to True.
        seed (int, optional): shared random seed.
    """

    def __init__(self, dataset, batch_size: int, mega_batch_mult: int = 50,
                 shuffle: bool = True, seed: Optional[int] = None):
        if not hasattr(dataset, 'get_lengths'):
            raise TypeError(f'{type(dataset).__name__} has no get_lengths()')
        self.lengths = np.asarray(dataset.get_lengths())
        self.batch_size, self.mult, self.shuffle = batch_size, mega_batch_mult, shuffle
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        n_batches = math.ceil(len(self.lengths) / batch_size)
        self.num_samples = math.ceil(n_batches / self.world_size) * batch_size

    def _batches(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        mega = self.batch_size * self.mult
        batches = []
        for s in range(0, n, mega):
            chunk = order[s:s + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind='stable')]
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk),
                                                                    self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        # pad the batch list so that every rank gets the same number of batches
        total = math.ceil(len(batches) / self.world_size) * self.world_size
        batches += batches[:total - len(batches)]
        return batches[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        for b in self._batches():
            yield from b.tolist()

    def __len__(self) -> int:
        return sum(len(b) for b in self._batches())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


@DATA_SAMPLERS.register_module()
class SampleGroupedSampler(Sampler):
    """Batches made of ``questions_per_sample`` questions about each of a few samples.

    The sensor encoders (pillar encoder, VATs) run once per distinct ``sample_token`` of a
    batch (:class:`LidarLLM` de-duplicates them), so grouping several questions of one
    sample into a batch divides the sensor cost by up to ``questions_per_sample`` at the
    same number of supervised answers. Every epoch: the rows of each sample are shuffled and
    cut into groups of ``questions_per_sample``; the groups are shuffled and concatenated.
    DDP-aware (each rank takes every ``world_size``-th batch).

    Args:
        dataset: a :class:`MixedNuDataset` (rows with ``sample_token``).
        batch_size (int): per-rank batch size; must be a multiple of ``questions_per_sample``.
        questions_per_sample (int): Defaults to 4.
        shuffle (bool): Defaults to True.
        seed (int, optional): shared random seed.

    Raises:
        ValueError: ``batch_size % questions_per_sample != 0``.
    """

    def __init__(self, dataset, batch_size: int, questions_per_sample: int = 4,
                 shuffle: bool = True, seed: Optional[int] = None):
        if batch_size % questions_per_sample:
            raise ValueError(f'SampleGroupedSampler: batch_size={batch_size} must be a '
                             f'multiple of questions_per_sample={questions_per_sample}')
        groups = {}
        for i in range(len(dataset)):
            groups.setdefault(dataset.get_data_info(i)['sample_token'], []).append(i)
        self.groups = list(groups.values())
        self.n = len(dataset)
        self.batch_size, self.k, self.shuffle = batch_size, questions_per_sample, shuffle
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0

    def _batches(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        pieces = []
        for g in self.groups:
            g = np.asarray(g)
            if self.shuffle:
                g = rng.permutation(g)
            pieces += [g[i:i + self.k] for i in range(0, len(g), self.k)]
        if self.shuffle:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        order = np.concatenate(pieces) if pieces else np.zeros(0, int)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        total = math.ceil(len(batches) / self.world_size) * self.world_size
        batches += batches[:total - len(batches)]
        return batches[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        for b in self._batches():
            yield from b.tolist()

    def __len__(self) -> int:
        return sum(len(b) for b in self._batches())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
