"""Length-grouped batch order: batches of similar length, so little padding."""
import math
from typing import Iterator, List, Optional

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from projects.registry import DATA_SAMPLERS

__all__ = ['LengthGroupedSampler', 'SampleGroupedSampler']


class _RankBatchSampler(Sampler):
    """Shared part of the batch-order samplers: per-epoch seeding, padding of the batch list
    to a multiple of the world size and the rank's share (every ``world_size``-th batch, so
    a global step sees batches built together). Subclasses define ``_batch_list(rng)``."""

    def __init__(self, batch_size: int, shuffle: bool, seed: Optional[int]):
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0

    def _batches(self) -> List[np.ndarray]:
        batches = self._batch_list(np.random.default_rng(self.seed + self.epoch))
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


def _length_sorted_batches(items: List[np.ndarray], item_len: np.ndarray, per_batch: int,
                           mega: int, rng, shuffle: bool) -> List[np.ndarray]:
    """Cut ``items`` (index arrays, already in random order) into mega-batches of ``mega``
    items, sort each mega-batch by ``item_len`` (descending), cut it into batches of
    ``per_batch`` items (concatenated) and shuffle the batch order."""
    batches = []
    for s in range(0, len(items), mega):
        chunk = list(range(s, min(s + mega, len(items))))
        chunk.sort(key=lambda j: -item_len[j])
        batches += [np.concatenate([items[j] for j in chunk[i:i + per_batch]])
                    for i in range(0, len(chunk), per_batch)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return _full_batches_first(batches)


def _full_batches_first(batches: List[np.ndarray]) -> List[np.ndarray]:
    """Move the batches shorter than the longest to the end (order kept otherwise).

    The dataloader cuts the flat index stream into ``batch_size`` chunks again; a short batch
    in the middle would shift every later chunk by its missing rows and mix the rows of two
    length groups (measured on DriveLM: single batches with up to 88 % padding).
    """
    full = max((len(b) for b in batches), default=0)
    return [b for b in batches if len(b) == full] + [b for b in batches if len(b) < full]


@DATA_SAMPLERS.register_module()
class LengthGroupedSampler(_RankBatchSampler):
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
        super().__init__(batch_size, shuffle, seed)
        self.lengths = np.asarray(dataset.get_lengths())
        self.mult = mega_batch_mult

    def _batch_list(self, rng) -> List[np.ndarray]:
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        return _length_sorted_batches([order[i:i + 1] for i in range(n)], self.lengths[order],
                                      self.batch_size, self.batch_size * self.mult, rng,
                                      self.shuffle)


@DATA_SAMPLERS.register_module()
class SampleGroupedSampler(_RankBatchSampler):
    """Batches made of ``questions_per_sample`` questions about each of a few samples.

    The sensor encoders (pillar encoder, VATs) run once per distinct ``sample_token`` of a
    batch (:class:`LidarLLM` de-duplicates them), so grouping several questions of one
    sample into a batch divides the sensor cost by up to ``questions_per_sample`` at the
    same number of supervised answers. Every epoch: the rows of each sample are shuffled and
    cut into groups of ``questions_per_sample``; the groups are shuffled and concatenated
    into batches. With ``group_by_length`` (default) the rows of a sample are sorted by
    length before they are cut, and the groups of each mega-batch
    (``mega_batch_mult`` batches) are sorted by their longest row before they are put
    together, so a batch holds questions / answers of similar length (little padding).
    DDP-aware (each rank takes every ``world_size``-th batch).

    Args:
        dataset: a :class:`MixedNuDataset` (rows with ``sample_token``; ``get_lengths()``
            with ``group_by_length``).
        batch_size (int): per-rank batch size; must be a multiple of ``questions_per_sample``.
        questions_per_sample (int): Defaults to 4.
        shuffle (bool): Defaults to True.
        group_by_length (bool): see above. Defaults to True.
        mega_batch_mult (int): batches per length-sorted mega-batch. Defaults to 50.
        seed (int, optional): shared random seed.

    Raises:
        ValueError: ``batch_size % questions_per_sample != 0``.
    """

    def __init__(self, dataset, batch_size: int, questions_per_sample: int = 4,
                 shuffle: bool = True, group_by_length: bool = True,
                 mega_batch_mult: int = 50, seed: Optional[int] = None):
        if batch_size % questions_per_sample:
            raise ValueError(f'SampleGroupedSampler: batch_size={batch_size} must be a '
                             f'multiple of questions_per_sample={questions_per_sample}')
        super().__init__(batch_size, shuffle, seed)
        groups = {}
        for i in range(len(dataset)):
            groups.setdefault(dataset.get_data_info(i)['sample_token'], []).append(i)
        self.groups = list(groups.values())
        self.n = len(dataset)
        self.k, self.mult = questions_per_sample, mega_batch_mult
        self.lengths = np.asarray(dataset.get_lengths()) if group_by_length else None

    def _batch_list(self, rng) -> List[np.ndarray]:
        pieces = []
        for g in self.groups:
            g = np.asarray(g)
            if self.shuffle:
                g = rng.permutation(g)
            if self.lengths is not None:
                g = g[np.argsort(-self.lengths[g], kind='stable')]
            pieces += [g[i:i + self.k] for i in range(0, len(g), self.k)]
        if self.shuffle:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        per_batch = self.batch_size // self.k
        if self.lengths is not None:
            longest = np.array([self.lengths[p].max() for p in pieces])
            return _length_sorted_batches(pieces, longest, per_batch, per_batch * self.mult,
                                          rng, self.shuffle)
        order = np.concatenate(pieces) if pieces else np.zeros(0, int)
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
