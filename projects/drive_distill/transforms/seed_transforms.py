"""Loading of seed-format samples (camera frames + teacher labels)."""
from collections import OrderedDict

import numpy as np
from mmcv.transforms import BaseTransform

from projects.common.structures.trajectory import yaw_from_rotation
from projects.drive_distill.converters.seed_format import load_labels
from projects.registry import TRANSFORMS

__all__ = ['LoadSeedSample']

_LABEL_CACHE = OrderedDict()


@TRANSFORMS.register_module()
class LoadSeedSample(BaseTransform):
    """Load row ``row`` of a seed shard: frames and teacher labels.

    Required keys: ``frames_file``, ``labels_file``, ``row``. Added: ``frames``
    (4, 4, H, W, 3) uint8, ``hist_xy`` (16, 2), ``hist_yaw`` (16,), ``gt_traj`` (64, 3)
    (yaw from ``trajectory_rot``), ``gt_mask``, ``coc_embedding`` (384,).

    Args:
        load_frames (bool): also load the frames (False for label-only use).

    Raises:
        FileNotFoundError: a shard file is missing (named).
        ValueError: the row is out of range, or frames and labels disagree on N (named).
    """

    def __init__(self, load_frames=True):
        self.load_frames = load_frames

    def _labels(self, path):
        if path not in _LABEL_CACHE:
            _LABEL_CACHE[path] = load_labels(path)
            while len(_LABEL_CACHE) > 8:
                _LABEL_CACHE.popitem(last=False)
        return _LABEL_CACHE[path]

    def transform(self, results):
        """Load the sample (see the class docstring)."""
        labels = self._labels(results['labels_file'])
        row = int(results['row'])
        num = len(labels['trajectory_xyz'])
        if not 0 <= row < num:
            raise ValueError(f'{results["labels_file"]}: row {row} out of range (N={num})')
        if self.load_frames:
            try:
                with np.load(results['frames_file']) as data:
                    frames = data['frames']
            except FileNotFoundError as err:
                raise FileNotFoundError(f'frame file not found: {results["frames_file"]}') from err
            if len(frames) != num:
                raise ValueError(f'N mismatch: {results["frames_file"]} has {len(frames)} samples '
                                 f'but {results["labels_file"]} has {num}')
            results['frames'] = frames[row]
        hist = labels['ego_history_xyz'][row]
        results['hist_xy'] = hist[:, :2].astype(np.float32)
        results['hist_yaw'] = yaw_from_rotation(labels['ego_history_rot'][row]).astype(np.float32)
        traj = labels['trajectory_xyz'][row]
        yaw = yaw_from_rotation(labels['trajectory_rot'][row])
        results['gt_traj'] = np.concatenate([traj[:, :2], yaw[:, None]], -1).astype(np.float32)
        results['gt_mask'] = np.ones(len(traj), bool)
        results['coc_embedding'] = labels['coc_embeddings'][row].astype(np.float32)
        return results
