"""Clip datasets of the video world model.

Every dataset turns *sequence records* (see :mod:`projects.video_world.datasets.sources`)
into clips of ``sequence_length`` frames taken every ``frame_skip`` recorded frames, with the
recorded actions aggregated over each skipped interval. Splits are by sequence (episode /
drive / scene), never by frame. Frame loading happens in the pipeline (``LoadVideoFrames``).
"""
import hashlib
import logging
import os.path as osp
from typing import List, Optional, Sequence, Union

import mmengine
import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from projects.registry import DATASETS
from .sources import (bridge_sequences, find_generic_scenes, find_kitti_raw_drives,
                      kitti_raw_drive_sequence, nuscenes_front_sequences, read_generic_scene)

__all__ = ['VideoSequenceDataset', 'BridgeVideoDataset', 'KittiRawVideoDataset',
           'NuScenesVideoDataset', 'GenericVideoDataset', 'aggregate_actions']

_REDUCERS = dict(sum=lambda a: a.sum(0), mean=lambda a: a.mean(0), first=lambda a: a[0],
                 last=lambda a: a[-1])


def aggregate_actions(actions: np.ndarray, start: int, skip: int, steps: int,
                      reduce: Union[str, Sequence[str]]) -> np.ndarray:
    """Actions between frames ``start, start + skip, ...`` of a sequence.

    Args:
        actions (ndarray): ``(N - 1, A)`` per-transition actions of the sequence.
        start (int): First frame of the clip.
        skip (int): Recorded frames between clip frames (``frame_skip``).
        steps (int): Transitions of the clip (``sequence_length - 1``).
        reduce (str | Sequence[str]): How ``skip`` transitions combine into one, for all
            dimensions or per dimension: ``'sum'`` (deltas), ``'mean'`` (rates, speeds),
            ``'first'``, ``'last'`` (commands / states).

    Returns:
        ndarray: ``(steps, A)`` float32.

    Raises:
        ValueError: Unknown reducer or a per-dimension list of the wrong length.
    """
    dims = actions.shape[1]
    reducers = [reduce] * dims if isinstance(reduce, str) else list(reduce)
    if len(reducers) != dims or any(r not in _REDUCERS for r in reducers):
        raise ValueError(f'action_reduce={reduce!r}: expected one of {sorted(_REDUCERS)} or '
                         f'a list of {dims} of them')
    out = np.empty((steps, dims), dtype=np.float32)
    for k in range(steps):
        chunk = actions[start + k * skip:start + (k + 1) * skip]
        out[k] = [_REDUCERS[r](chunk[:, d]) for d, r in enumerate(reducers)]
    return out


@DATASETS.register_module()
class VideoSequenceDataset(BaseDataset):
    """Clips of action-labelled sequences read from an index file.

    The index (``ann_file``, ``.pkl`` / ``.json``, written by a converter in
    ``tools/data_converter/``) holds ``metainfo`` and a ``data_list`` of *sequence records*
    (paths relative to ``data_root``). Subclasses read a raw source instead when no
    ``ann_file`` is given (:meth:`build_sequences`).

    Each clip (one ``data_list`` entry after :meth:`load_data_list`) is::

        dict(clip_id, sequence, source, frame_indices (T,), img_paths (T,) | frames
             (T, H, W, 3) uint8, actions (T - 1, A) float32, motion (float))

    and :meth:`get_data_info` adds ``shuffled_actions``: the actions of another clip, from
    another sequence when there is one (clip ``(i + n // 2) mod n`` and onwards), used by the
    action-sensitivity check of the metric.

    Args:
        ann_file (str): Index file ('' for subclasses reading a raw source).
        sequence_length (int): Frames per clip ``T`` (>= 2). Defaults to 10.
        frame_skip (int): Recorded frames between clip frames. Defaults to 1.
        clip_stride (int, optional): Recorded frames between clip starts; defaults to
            ``sequence_length * frame_skip`` for ``test_mode`` (no overlap) and 1 otherwise.
        action_reduce (str | Sequence[str]): See :func:`aggregate_actions`. Defaults to
            ``'mean'``.
        shuffled_actions (bool): Add ``shuffled_actions``. Defaults to True.
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments (``data_root``,
            ``pipeline``, ``test_mode``, ``indices``, ...).

    Raises:
        FileNotFoundError: The index does not exist.
        ValueError: ``sequence_length < 2``, ``frame_skip < 1``, a record whose actions do
            not have one row per transition, or no sequence long enough for one clip.
    """

    SOURCE = 'index'

    def __init__(self, ann_file: str = '', sequence_length: int = 10, frame_skip: int = 1,
                 clip_stride: Optional[int] = None,
                 action_reduce: Union[str, Sequence[str]] = 'mean',
                 shuffled_actions: bool = True, **kwargs) -> None:
        if sequence_length < 2:
            raise ValueError(f'{type(self).__name__}: sequence_length={sequence_length} must '
                             'be >= 2')
        if frame_skip < 1:
            raise ValueError(f'{type(self).__name__}: frame_skip={frame_skip} must be >= 1')
        self.sequence_length, self.frame_skip = int(sequence_length), int(frame_skip)
        test_mode = kwargs.get('test_mode', False)
        self.clip_stride = int(clip_stride) if clip_stride else (
            sequence_length * frame_skip if test_mode else 1)
        self.action_reduce = action_reduce
        self.with_shuffled_actions = shuffled_actions
        if ann_file:
            root = kwargs.get('data_root') or ''
            path = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
            if not osp.isfile(path):
                raise FileNotFoundError(f'{type(self).__name__}: index file not found: {path} '
                                        '(write it with tools/data_converter/*_to_video.py)')
        super().__init__(ann_file=ann_file, **kwargs)

    # -- sequences -------------------------------------------------------------------------
    def build_sequences(self) -> List[dict]:
        """Sequence records from the raw source (subclasses); the base class needs an index.

        Raises:
            ValueError: Always for the base class (no raw source).
        """
        raise ValueError(f'{type(self).__name__} needs an ann_file (index of sequences)')

    def _read_index(self) -> List[dict]:
        index = mmengine.load(self.ann_file)
        if not isinstance(index, dict) or 'data_list' not in index:
            raise ValueError(f'{self.ann_file}: expected a dict with metainfo and data_list')
        self._metainfo.update(index.get('metainfo', {}))
        records = []
        for rec in index['data_list']:
            rec = dict(rec)
            if 'img_paths' in rec:
                rec['img_paths'] = [p if osp.isabs(p) else osp.join(self.data_root, p)
                                    for p in rec['img_paths']]
            rec['actions'] = np.asarray(rec['actions'], dtype=np.float32)
            records.append(rec)
        return records

    def load_data_list(self) -> List[dict]:
        """Cut every sequence into clips (see the class docstring)."""
        records = self._read_index() if self.ann_file else self.build_sequences()
        span = (self.sequence_length - 1) * self.frame_skip + 1
        clips, short = [], []
        for rec in records:
            n = len(rec['img_paths']) if 'img_paths' in rec else len(rec['frames'])
            actions = np.asarray(rec['actions'], dtype=np.float32)
            if actions.ndim != 2 or actions.shape[0] != n - 1:
                raise ValueError(f'{type(self).__name__}: sequence {rec["sequence"]!r} has '
                                 f'{n} frames and actions of shape {tuple(actions.shape)}; '
                                 f'expected ({n - 1}, A)')
            if n < span:
                short.append(rec['sequence'])
                continue
            for start in range(0, n - span + 1, self.clip_stride):
                idx = list(range(start, start + span, self.frame_skip))
                clip_actions = aggregate_actions(actions, start, self.frame_skip,
                                                 self.sequence_length - 1, self.action_reduce)
                clip = dict(clip_id=f'{rec["sequence"]}@{start}', sequence=rec['sequence'],
                            source=rec.get('source', self.SOURCE), frame_indices=idx,
                            actions=clip_actions,
                            motion=float(np.abs(clip_actions).mean()))
                if 'img_paths' in rec:
                    clip['img_paths'] = [rec['img_paths'][i] for i in idx]
                else:
                    clip['frames'] = np.ascontiguousarray(rec['frames'][idx])
                clips.append(clip)
        if short:
            print_log(f'{type(self).__name__}: {len(short)} sequence(s) shorter than one clip '
                      f'({span} frames) skipped: {short[:5]}', logger='current',
                      level=logging.WARNING)
        if not clips:
            raise ValueError(f'{type(self).__name__}: no clip of {self.sequence_length} frames '
                             f'(frame_skip={self.frame_skip}) in {len(records)} sequence(s)')
        self._metainfo.setdefault('action_names', records[0].get('action_names'))
        return clips

    # -- access ----------------------------------------------------------------------------
    def partner_index(self, idx: int) -> int:
        """Clip whose actions are the ``shuffled_actions`` of clip ``idx``: the first clip
        from ``(idx + n // 2) mod n`` on that belongs to another sequence (another clip of
        the same sequence when there is only one sequence; ``idx`` itself for one clip)."""
        n = len(self)
        if n == 1:
            return idx
        seq = self.get_data_info_raw(idx)['sequence']
        start = (idx + max(n // 2, 1)) % n
        for k in range(n):
            j = (start + k) % n
            if j != idx and self.get_data_info_raw(j)['sequence'] != seq:
                return j
        return start if start != idx else (idx + 1) % n

    def get_data_info_raw(self, idx: int) -> dict:
        """The stored clip ``idx`` (no partner lookup)."""
        return super().get_data_info(idx)

    def get_data_info(self, idx: int) -> dict:
        """Clip ``idx`` with ``shuffled_actions`` (see the class docstring)."""
        info = self.get_data_info_raw(idx)
        if self.with_shuffled_actions:
            partner = self.partner_index(idx)
            info['shuffled_actions'] = self.get_data_info_raw(partner)['actions']
            info['shuffled_from'] = self.get_data_info_raw(partner)['clip_id']
        return info

    def motion_magnitudes(self) -> np.ndarray:
        """``(len,)`` mean absolute action of every clip (curriculum ordering)."""
        return np.array([self.get_data_info_raw(i)['motion'] for i in range(len(self))])


@DATASETS.register_module()
class BridgeVideoDataset(VideoSequenceDataset):
    """BridgeData V2 robot video (RLDS TFRecords) with the recorded 7-D actions.

    Episodes are read once from all ``tfrecord_files`` (duplicates dropped) and split **by
    episode**: sorted by key (source path + episode id), every ``val_every``-th episode
    (``offset`` ``val_offset``) is held out. ``split='train'`` keeps the others, ``'val'`` the
    held-out ones, ``'all'`` everything. Each camera view of an episode is its own sequence;
    all views of an episode are on the same side of the split. The split is logged.

    Args:
        tfrecord_files (Sequence[str]): RLDS files, relative to ``data_root`` or absolute.
        split (str): ``'train'``, ``'val'`` or ``'all'``. Defaults to ``'train'``.
        views (Sequence[str]): Camera features. Defaults to ``('image_0', 'image_1',
            'image_2')``.
        val_every (int): Hold out every n-th episode. Defaults to 5.
        val_offset (int): Offset of the held-out episodes. Defaults to 0.
        action_reduce: Defaults to summing the 6 end-effector deltas and taking the last
            gripper command.
        **kwargs: :class:`VideoSequenceDataset` arguments.

    Raises:
        ValueError: Unknown ``split``.
    """

    SOURCE = 'bridge'

    def __init__(self, tfrecord_files: Sequence[str], split: str = 'train',
                 views: Sequence[str] = ('image_0', 'image_1', 'image_2'),
                 val_every: int = 5, val_offset: int = 0,
                 action_reduce: Union[str, Sequence[str]] = ('sum',) * 6 + ('last',),
                 **kwargs) -> None:
        if split not in ('train', 'val', 'all'):
            raise ValueError(f"BridgeVideoDataset: split={split!r}, expected 'train', 'val' "
                             "or 'all'")
        self.tfrecord_files, self.split, self.views = list(tfrecord_files), split, tuple(views)
        self.val_every, self.val_offset = int(val_every), int(val_offset)
        super().__init__(ann_file='', action_reduce=action_reduce, **kwargs)

    def build_sequences(self) -> List[dict]:
        """Read, deduplicate and split the episodes (see the class docstring)."""
        files = [f if osp.isabs(f) else osp.join(self.data_root, f) for f in self.tfrecord_files]
        records, where = bridge_sequences(files, self.views)
        keys = sorted(where)
        dup = [k for k, v in where.items() if len(v) > 1]
        if dup:
            print_log(f'BridgeVideoDataset: {len(dup)} of {len(keys)} episodes are in more than '
                      f'one file ({sorted(set(sum(where.values(), [])))}); each is used once '
                      'and the split is by episode', logger='current', level=logging.WARNING)
        held = {k for i, k in enumerate(keys) if i % self.val_every == self.val_offset}
        if self.split == 'train':
            records = [r for r in records if r['episode'] not in held]
        elif self.split == 'val':
            records = [r for r in records if r['episode'] in held]
        episodes = sorted({r['episode'] for r in records})
        digest = hashlib.md5('\n'.join(episodes).encode()).hexdigest()[:8]
        print_log(f'BridgeVideoDataset[{self.split}]: {len(episodes)} episodes, '
                  f'{len(records)} view sequences (episode list md5 {digest})', logger='current')
        self._metainfo.update(episodes=episodes)
        return records


@DATASETS.register_module()
class KittiRawVideoDataset(VideoSequenceDataset):
    """KITTI raw drives with (forward speed, yaw rate) actions from OXTS.

    Reads full drives directly (``<data_root>/<date>/<date>_drive_XXXX_sync``): every drive
    found, or those named in ``drives``; or an index written by
    ``tools/data_converter/kitti_raw_to_video.py`` when ``ann_file`` is given.

    Args:
        drives (Sequence[str], optional): Drive folder names (``2011_09_26_drive_0023_sync``).
        camera (str): ``'image_02'`` or ``'image_03'``. Defaults to ``'image_02'``.
        **kwargs: :class:`VideoSequenceDataset` arguments.
    """

    SOURCE = 'kitti_raw'

    def __init__(self, drives: Optional[Sequence[str]] = None, camera: str = 'image_02',
                 **kwargs) -> None:
        self.drives, self.camera = drives, camera
        super().__init__(**kwargs)

    def build_sequences(self) -> List[dict]:
        """One record per drive (see :func:`kitti_raw_drive_sequence`)."""
        found = find_kitti_raw_drives(self.data_root)
        if self.drives is not None:
            names = {osp.basename(d): d for d in found}
            missing = [d for d in self.drives if d not in names]
            if missing:
                raise FileNotFoundError(f'KittiRawVideoDataset: drives {missing} not under '
                                        f'{self.data_root} (found {sorted(names)})')
            found = [names[d] for d in self.drives]
        return [kitti_raw_drive_sequence(d, self.camera) for d in found]


@DATASETS.register_module()
class NuScenesVideoDataset(VideoSequenceDataset):
    """nuScenes camera sequences (``nuscenes-devkit``) with (speed, curvature) actions from
    ``ego_pose`` (see :func:`nuscenes_front_sequences`). Split by scene via ``scenes``.

    Args:
        version (str): Table set (``'v1.0-mini'``, ``'v1.0-trainval'``, ...).
        camera (str): Defaults to ``'CAM_FRONT'``.
        use_sweeps (bool): All camera frames instead of keyframes. Defaults to False.
        scenes (Sequence[str], optional): Scene names of this split.
        **kwargs: :class:`VideoSequenceDataset` arguments.
    """

    SOURCE = 'nuscenes'

    def __init__(self, version: str = 'v1.0-mini', camera: str = 'CAM_FRONT',
                 use_sweeps: bool = False, scenes: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        self.version, self.camera, self.use_sweeps, self.scenes = (version, camera, use_sweeps,
                                                                   scenes)
        super().__init__(**kwargs)

    def build_sequences(self) -> List[dict]:
        """One record per scene."""
        return nuscenes_front_sequences(self.data_root, self.version, self.camera,
                                        self.use_sweeps, self.scenes)


@DATASETS.register_module()
class GenericVideoDataset(VideoSequenceDataset):
    """The seed's generic layout (CARLA recordings): ``<data_root>/<scene>/images/*.jpg``,
    ``actions.npy``, ``metadata.json`` (see :func:`read_generic_scene`). Split by scene via
    ``scenes`` (all scene folders when None).

    Args:
        scenes (Sequence[str], optional): Scene folder names of this split.
        **kwargs: :class:`VideoSequenceDataset` arguments.
    """

    SOURCE = 'generic'

    def __init__(self, scenes: Optional[Sequence[str]] = None, **kwargs) -> None:
        self.scenes = scenes
        super().__init__(**kwargs)

    def build_sequences(self) -> List[dict]:
        """One record per scene folder."""
        if self.scenes is not None:
            dirs = [osp.join(self.data_root, s) for s in self.scenes]
        else:
            dirs = find_generic_scenes(self.data_root)
        return [read_generic_scene(d) for d in dirs]
