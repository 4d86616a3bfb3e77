"""IntegratedDataset (sensor and no-sensor sessions in one dataset) and the balanced sampler."""
import math
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.fileio import load
from torch.utils.data import Sampler

from projects.registry import DATA_SAMPLERS, DATASETS

from ..episodes import EPISODE_DIR

__all__ = ['IntegratedDataset', 'BalancedSensorSampler', 'balanced_repeat_factor']


@DATASETS.register_module()
class IntegratedDataset(BaseDataset):
    """Samples (episode, step) of one or several episode indexes, with and without sensor.

    Every step of every listed episode is one sample (the pipeline loads its images, its
    action chunk and, for sensor sessions, its stream window). Sessions with a sensor get
    ``sensor_loss_weight`` in their metainfo (the model multiplies their loss by it); others
    get 1.0. Splits are whole index files, i.e. by episode.

    Args:
        ann_file (str | list[str]): Index file(s) (see ``projects/sensor_vla/episodes.py``),
            relative to ``data_root``. Several files are concatenated (e.g. a sensor and a
            no-sensor collection).
        data_root (str | list[str]): Root of each index's episodes (one per ann_file, or one
            for all).
        sensor_loss_weight (float): Loss weight of sensor samples. Defaults to 2.0.
        use_sensor (bool): False treats every session as sensor-less (stage 1 of the
            two-stage recipe). Defaults to True.
        pipeline (list): Transforms. Defaults to [].
        test_mode (bool): Defaults to False.
        **kwargs: Passed to ``BaseDataset``.

    Raises:
        ValueError: On an index without ``data_list`` or rows missing required keys.
    """

    REQUIRED = ('episode', 'num_steps', 'instruction', 'has_sensor', 'views')

    def __init__(self, ann_file: Union[str, Sequence[str]] = '',
                 data_root: Union[str, Sequence[str]] = '', sensor_loss_weight: float = 2.0,
                 use_sensor: bool = True, **kwargs):
        self.ann_files = [ann_file] if isinstance(ann_file, str) else list(ann_file)
        roots = [data_root] if isinstance(data_root, str) else list(data_root)
        if len(roots) == 1:
            roots = roots * len(self.ann_files)
        if len(roots) != len(self.ann_files):
            raise ValueError(f'IntegratedDataset: {len(roots)} data_root entries for '
                             f'{len(self.ann_files)} ann_file entries')
        self.roots = roots
        self.sensor_loss_weight = float(sensor_loss_weight)
        self.use_sensor = use_sensor
        super().__init__(ann_file=self.ann_files[0], data_root=roots[0], **kwargs)

    def _resolve(self, root: str, ann: str) -> str:
        return ann if osp.isabs(ann) or osp.exists(ann) else osp.join(root, ann)

    def load_data_list(self) -> List[dict]:
        samples = []
        for root, ann in zip(self.roots, self.ann_files):
            path = self._resolve(root, ann)
            index = load(path)
            if not isinstance(index, dict) or 'data_list' not in index:
                raise ValueError(f'{path}: an episode index needs a "data_list" list')
            meta = index.get('metainfo', {})
            for k, v in meta.items():
                self._metainfo.setdefault(k, v)
            for i, row in enumerate(index['data_list']):
                miss = [k for k in self.REQUIRED if k not in row]
                if miss:
                    raise ValueError(f'{path}: data_list[{i}] lacks {miss}')
                has = bool(row['has_sensor']) and self.use_sensor
                ep_dir = osp.join(root, EPISODE_DIR, row['episode'])
                for t in range(int(row['num_steps'])):
                    samples.append(dict(
                        episode=row['episode'], episode_dir=ep_dir, step=t,
                        num_steps=int(row['num_steps']), instruction=row['instruction'],
                        views=list(row['views']), has_sensor=has,
                        sensor_loss_weight=self.sensor_loss_weight if has else 1.0,
                        sensor_rate_hz=meta.get('sensor_rate_hz')))
        return samples

    def has_sensor_flags(self) -> np.ndarray:
        """``(N,)`` bool: which samples carry a sensor stream."""
        return np.array([self.get_data_info(i)['has_sensor'] for i in range(len(self))])

    def episode_names(self) -> List[str]:
        """Episode names in index order (each once)."""
        return list(dict.fromkeys(self.get_data_info(i)['episode'] for i in range(len(self))))


def balanced_repeat_factor(num_sensor: int, num_plain: int, sensor_ratio: float) -> float:
    """Oversampling factor ``k`` giving sensor samples the share ``sensor_ratio`` of an epoch.

    ``k * S / (k * S + P) = r``  =>  ``k = r * P / ((1 - r) * S)``; never below 1 (the sampler
    does not undersample). The seed's data (5 470 sensor, 93 239 plain samples, r = 0.5)
    gives k = 17.05.

    Raises:
        ValueError: For ``sensor_ratio`` outside (0, 1) or no sensor samples.
    """
    if not 0.0 < sensor_ratio < 1.0:
        raise ValueError(f'sensor_ratio must be in (0, 1), got {sensor_ratio}')
    if num_sensor <= 0:
        raise ValueError('BalancedSensorSampler: the dataset has no sensor samples')
    return max(1.0, sensor_ratio * num_plain / ((1.0 - sensor_ratio) * num_sensor))


@DATA_SAMPLERS.register_module()
class BalancedSensorSampler(Sampler):
    """Oversample sensor samples to a target share of each epoch (DDP-aware).

    An epoch holds every sensor-less sample once and every sensor sample ``floor(k)`` times
    plus a random ``frac(k)`` share of them once more (``k`` from
    :func:`balanced_repeat_factor`, or ``repeat_factor`` when given), shuffled with the
    seed + epoch; each rank takes every ``world_size``-th index (padded to equal length).

    Args:
        dataset: A dataset with ``has_sensor_flags()`` (:class:`IntegratedDataset`).
        sensor_ratio (float): Target share of sensor samples. Defaults to 0.5.
        repeat_factor (float, optional): Use this ``k`` instead of ``sensor_ratio``.
        shuffle (bool): Defaults to True.
        seed (int, optional): Shared across ranks (synchronised when None).
    """

    def __init__(self, dataset, sensor_ratio: float = 0.5,
                 repeat_factor: Optional[float] = None, shuffle: bool = True,
                 seed: Optional[int] = None):
        self.dataset = dataset
        flags = np.asarray(dataset.has_sensor_flags(), dtype=bool)
        self.sensor_idx = np.nonzero(flags)[0]
        self.plain_idx = np.nonzero(~flags)[0]
        self.repeat_factor = float(repeat_factor) if repeat_factor is not None else \
            balanced_repeat_factor(len(self.sensor_idx), len(self.plain_idx), sensor_ratio)
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.rank, self.world_size = get_dist_info()
        self.epoch = 0
        whole = int(math.floor(self.repeat_factor))
        self.extra = int(round((self.repeat_factor - whole) * len(self.sensor_idx)))
        self.whole = whole
        self.epoch_len = len(self.plain_idx) + whole * len(self.sensor_idx) + self.extra
        self.num_samples = int(math.ceil(self.epoch_len / self.world_size))

    def epoch_indices(self) -> np.ndarray:
        """All indices of the current epoch (every rank's), after shuffling."""
        rng = np.random.default_rng(self.seed + self.epoch)
        parts = [self.plain_idx] + [self.sensor_idx] * self.whole
        if self.extra:
            parts.append(rng.choice(self.sensor_idx, self.extra, replace=False))
        idx = np.concatenate(parts)
        if self.shuffle:
            idx = rng.permutation(idx)
        return idx

    def __iter__(self) -> Iterator[int]:
        idx = self.epoch_indices()
        total = self.num_samples * self.world_size
        if len(idx) < total:
            idx = np.concatenate([idx, idx[:total - len(idx)]])
        return iter(idx[self.rank:total:self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Called by the loops: a new shuffle per epoch."""
        self.epoch = epoch
