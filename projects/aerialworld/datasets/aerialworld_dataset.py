"""AerialWorld occupancy-sequence dataset.

Reads an index file written by the PLATEAU converter (see
``docs/aerialworld_data_and_model_contract.md``)::

    {'metainfo': {'classes': (...), 'free_label': 6, 'grid_size': [X, Y, Z],
                  ...},
     'data_list': [{'session': str, 'frame_idx': int, 'timestamp': float,
                    'occ_path': str, 'pose_path': str, 'lidar_path': str},
                   ...]}   # one entry per frame, sorted by (session, frame)

and turns it into windows of ``num_history + num_future`` frames of one
session. Windows never cross sessions; splits are by session (one index file
per split). Loading is left to the pipeline (``LoadOccupancySequence``,
``LoadPoseSequence``, ...).
"""
import os.path as osp
from collections import OrderedDict
from typing import Callable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.fileio import load
from mmengine.logging import print_log

from projects.registry import DATASETS, TRANSFORMS
from .classes import (PLATEAU_CLASSES, PLATEAU_PALETTE, PLATEAU_TRAFFIC_CLASSES,
                      PLATEAU_TRAFFIC_PALETTE)

_REQUIRED_KEYS = ('session', 'frame_idx', 'occ_path', 'pose_path')
_COUNTER_SLOTS = 257  # slot 0: main process, 1..256: dataloader workers


def _slot() -> int:
    """Counter slot of the calling process (0 = main, k+1 = worker k)."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        return 0
    return 1 + info.id % (_COUNTER_SLOTS - 1)


@DATASETS.register_module()
class AerialWorldDataset(BaseDataset):
    """Windows of consecutive occupancy frames of AerialWorld sessions.

    Each item (before the pipeline) is a dict with:

    * ``session`` (str), ``frame_indices`` (list[int], T),
      ``timestamps`` (list[float], T, seconds);
    * ``occ_paths``, ``pose_paths``, ``lidar_paths``, ``ann_paths`` (list, T
      absolute paths; ``lidar_paths`` / ``ann_paths`` entries are ``None``
      when the index has none; ``ann_paths`` are the moving-agent boxes read
      by :class:`~projects.aerialworld.transforms.LoadAgentFlow`);
    * ``sample_idx`` (int), ``num_history``, ``num_future`` (int);
    * ``free_label``, ``num_classes`` (int), ``grid_size`` (list[int] or
      ``None``) from the index metainfo;
    * ``val_set`` (str or ``None``): the val set the window's session belongs
      to, from the index records' ``val_set`` (the PLATEAU converter writes
      ``'heldout_session'`` or ``'heldout_tile'`` on val frames), else
      ``default_val_set``. Packed into the data sample's metainfo (list it in
      ``PackOccupancyInputs.meta_keys``), :class:`OccupancyMetric` reports
      one table per val set besides the combined one.

    with ``T = num_history + num_future``. A window covers the frames
    ``start, start + frame_interval, ...`` of one session; window starts are
    ``0, window_stride, 2 * window_stride, ...``.

    Invalid records: index problems (missing keys, non-contiguous sessions,
    non-consecutive ``frame_idx``, metainfo disagreeing with
    ``expected_grid_size`` / ``expected_classes``) always raise an error
    naming ``ann_file``. Missing files raise :class:`FileNotFoundError`
    naming the path and session, unless ``skip_invalid=True``, which drops
    the windows touching them (counted in :attr:`num_invalid_frames`). With
    ``skip_invalid=True`` a window whose files fail to load in the pipeline
    (``OSError`` / ``ValueError``, e.g. a corrupt ``.npz``) is replaced by
    another window (random in training, the next one in test mode) and
    counted; the count is shared across dataloader workers and reported at
    the end of each epoch by
    :class:`~projects.aerialworld.datasets.InvalidSampleReportHook` (or read
    with :attr:`num_invalid` / :meth:`report_invalid`).

    Args:
        ann_file (str): Index file (``.pkl`` or ``.json``), relative to
            ``data_root`` unless absolute.
        data_root (str): Root the index's relative paths are joined with.
        pipeline (list[dict | Callable]): Transforms.
        num_history (int): History frames per window. Defaults to 4.
        num_future (int): Future frames per window. Defaults to 6.
        frame_interval (int): Frame stride inside a window. Defaults to 1.
        window_stride (int): Stride between window starts. Defaults to 1.
        expected_grid_size (Sequence[int], optional): Required
            ``metainfo['grid_size']`` of the index (the config's grid).
        expected_classes (Sequence[str] | int, optional): Required class
            names (or number of classes) of the index.
        skip_invalid (bool): Skip and count invalid windows instead of
            raising. Defaults to False.
        sessions (Sequence[str], optional): Keep only these sessions (a
            session-level split inside one index). Defaults to all.
        val_sets (Sequence[str], optional): Keep only the sessions whose
            ``val_set`` is one of these (e.g. ``['heldout_tile']``).
            Defaults to all.
        default_val_set (str, optional): ``val_set`` of windows whose index
            records have none. Defaults to None.
        max_windows (int, optional): Keep at most this many windows, evenly
            spaced over the dataset (quick runs). Defaults to all.
        check_files (bool): Check at start-up that every occupancy and pose
            file exists. Defaults to True.
        metainfo (Mapping, optional): Overrides the index metainfo.
        test_mode (bool): Test mode. Defaults to False.
        serialize_data (bool): Serialize the window list into one numpy
            buffer shared by workers. Defaults to True.
        lazy_init (bool): Defer loading the index. Defaults to False.
        max_refetch (int): Maximum replacement attempts for invalid
            windows. Defaults to 1000.

    Raises:
        ValueError: Invalid arguments, malformed index or metainfo mismatch
            (message names ``ann_file`` and the config field).
        FileNotFoundError: The index or a referenced file is missing.
    """

    METAINFO: dict = dict()
    #: Index keys of the per-frame files whose existence ``check_files`` verifies.
    FRAME_FILE_KEYS = ('occ_path', 'pose_path')

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 num_history: int = 4,
                 num_future: int = 6,
                 frame_interval: int = 1,
                 window_stride: int = 1,
                 expected_grid_size: Optional[Sequence[int]] = None,
                 expected_classes: Optional[Union[Sequence[str], int]] = None,
                 skip_invalid: bool = False,
                 sessions: Optional[Sequence[str]] = None,
                 val_sets: Optional[Sequence[str]] = None,
                 default_val_set: Optional[str] = None,
                 max_windows: Optional[int] = None,
                 check_files: bool = True,
                 metainfo: Optional[Mapping] = None,
                 test_mode: bool = False,
                 serialize_data: bool = True,
                 lazy_init: bool = False,
                 max_refetch: int = 1000) -> None:
        for name, value, low in (('num_history', num_history, 1),
                                 ('num_future', num_future, 0),
                                 ('frame_interval', frame_interval, 1),
                                 ('window_stride', window_stride, 1)):
            if int(value) != value or value < low:
                raise ValueError(f'AerialWorldDataset: {name} must be an '
                                 f'integer >= {low}, got {value!r}')
        if max_windows is not None and max_windows < 1:
            raise ValueError('AerialWorldDataset: max_windows must be >= 1 '
                             f'or None, got {max_windows!r}')
        self.num_history = int(num_history)
        self.num_future = int(num_future)
        self.frame_interval = int(frame_interval)
        self.window_stride = int(window_stride)
        self.expected_grid_size = (None if expected_grid_size is None else
                                   [int(s) for s in expected_grid_size])
        self.expected_classes = expected_classes
        self.skip_invalid = skip_invalid
        self.sessions = None if sessions is None else list(sessions)
        if isinstance(val_sets, str):
            val_sets = [val_sets]
        self.val_sets = None if val_sets is None else [str(v) for v in val_sets]
        self.default_val_set = default_val_set
        self.max_windows = max_windows
        self.check_files = check_files
        self.num_invalid_frames = 0
        # Shared-memory counter of skipped windows, one slot per process so
        # dataloader workers never race; visible to the main process.
        self._invalid_counter = torch.zeros(
            _COUNTER_SLOTS, dtype=torch.int64).share_memory_()
        # Build transforms from our registry so the pipeline works without
        # `default_scope='projects'` (e.g. in tools and tests); names with a
        # scope (`mmdet.X`) still resolve through the parent registries.
        pipeline = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in pipeline
        ]
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            pipeline=pipeline,
            test_mode=test_mode,
            serialize_data=serialize_data,
            lazy_init=lazy_init,
            max_refetch=max_refetch)

    @property
    def window_length(self) -> int:
        """int: Frames per window, ``num_history + num_future``."""
        return self.num_history + self.num_future

    # ------------------------------------------------------------------ index
    def _abs(self, path: Optional[str]) -> Optional[str]:
        if path is None:
            return None
        if osp.isabs(path) or not self.data_root:
            return path
        return osp.join(self.data_root, path)

    def _check_metainfo(self) -> None:
        """Fill default metainfo and compare it with the config."""
        meta = self._metainfo
        if 'classes' not in meta:
            meta['classes'] = PLATEAU_CLASSES
        meta['classes'] = tuple(meta['classes'])
        for names, palette in ((PLATEAU_CLASSES, PLATEAU_PALETTE),
                               (PLATEAU_TRAFFIC_CLASSES, PLATEAU_TRAFFIC_PALETTE)):
            if 'palette' not in meta and meta['classes'] == tuple(names):
                meta['palette'] = [tuple(c) for c in palette]
        num_classes = len(meta['classes'])
        meta.setdefault('free_label', num_classes - 1)
        meta['num_classes'] = num_classes
        if not 0 <= int(meta['free_label']) < num_classes:
            raise ValueError(
                f'{self.ann_file}: metainfo free_label={meta["free_label"]} '
                f'is not a valid label for {num_classes} classes')
        if self.expected_classes is not None:
            if isinstance(self.expected_classes, int):
                ok = num_classes == self.expected_classes
            else:
                ok = meta['classes'] == tuple(self.expected_classes)
            if not ok:
                raise ValueError(
                    f'{self.ann_file}: index classes {meta["classes"]} do not '
                    f'match the config (expected_classes='
                    f'{self.expected_classes})')
        grid = meta.get('grid_size')
        if grid is not None:
            meta['grid_size'] = [int(s) for s in grid]
        if self.expected_grid_size is not None:
            if grid is None:
                raise ValueError(
                    f'{self.ann_file}: index metainfo has no grid_size but the '
                    f'config sets expected_grid_size='
                    f'{self.expected_grid_size}')
            if meta['grid_size'] != self.expected_grid_size:
                raise ValueError(
                    f'{self.ann_file}: index grid_size {meta["grid_size"]} '
                    f'does not match the config (expected_grid_size='
                    f'{self.expected_grid_size}); was the data converted for '
                    f'another grid?')

    def _group_sessions(self, raw: List[dict]) -> 'OrderedDict[str, list]':
        """Validate the frame records and group them by session."""
        groups: 'OrderedDict[str, list]' = OrderedDict()
        prev = None
        for i, rec in enumerate(raw):
            if not isinstance(rec, dict):
                raise ValueError(f'{self.ann_file}: data_list[{i}] is not a '
                                 f'dict ({type(rec).__name__})')
            missing = [k for k in _REQUIRED_KEYS if k not in rec]
            if missing:
                raise ValueError(f'{self.ann_file}: data_list[{i}] lacks keys '
                                 f'{missing} (has {sorted(rec)})')
            session = str(rec['session'])
            if session != prev:
                if session in groups:
                    raise ValueError(
                        f'{self.ann_file}: frames of session {session!r} are '
                        f'not contiguous in data_list (seen again at entry '
                        f'{i}); the index must be sorted by (session, '
                        f'frame_idx)')
                groups[session] = []
                prev = session
            groups[session].append(rec)
        for session, recs in groups.items():
            sets = {r.get('val_set') for r in recs}
            if len(sets) > 1:
                raise ValueError(f'{self.ann_file}: session {session!r} has frames of '
                                 f'several val sets {sorted(map(str, sets))}')
            idx = np.array([int(r['frame_idx']) for r in recs])
            if len(idx) > 1 and not np.all(np.diff(idx) == 1):
                bad = int(np.flatnonzero(np.diff(idx) != 1)[0])
                raise ValueError(
                    f'{self.ann_file}: session {session!r} has non-consecutive '
                    f'frame_idx ({int(idx[bad])} followed by '
                    f'{int(idx[bad + 1])})')
        return groups

    def _frame_valid(self, session: str, recs: List[dict]) -> np.ndarray:
        """Existence check of the per-frame files (``FRAME_FILE_KEYS``) of a session."""
        valid = np.ones(len(recs), dtype=bool)
        if not self.check_files:
            return valid
        for i, rec in enumerate(recs):
            for key in self.FRAME_FILE_KEYS:
                path = self._abs(rec[key])
                if osp.isfile(path):
                    continue
                if not self.skip_invalid:
                    raise FileNotFoundError(
                        f'{self.ann_file}: {key} of session {session!r} frame '
                        f'{rec["frame_idx"]} not found: {path}')
                valid[i] = False
        return valid

    def load_data_list(self) -> List[dict]:
        """Read and validate the index, then build the windows.

        Returns:
            list[dict]: One dict per window (see the class docstring).

        Raises:
            FileNotFoundError: Missing index or referenced file.
            ValueError: Malformed index or metainfo mismatch.
        """
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'AerialWorld index file not found: {self.ann_file} (run the '
                f'data converter first)')
        try:
            ann = load(self.ann_file)
        except Exception as err:  # unreadable / corrupt index
            raise ValueError(f'Cannot read AerialWorld index {self.ann_file}: '
                             f'{type(err).__name__}: {err}') from err
        if not isinstance(ann, dict) or 'data_list' not in ann:
            raise ValueError(f'{self.ann_file}: expected a dict with '
                             f"'metainfo' and 'data_list'")
        for k, v in (ann.get('metainfo') or {}).items():
            self._metainfo.setdefault(k, v)
        self._check_metainfo()
        meta = self._metainfo

        groups = self._group_sessions(list(ann['data_list']))
        if self.sessions is not None:
            unknown = sorted(set(self.sessions) - set(groups))
            if unknown:
                raise ValueError(f'{self.ann_file}: sessions {unknown} '
                                 f'(config field `sessions`) are not in the '
                                 f'index')
            groups = OrderedDict(
                (s, r) for s, r in groups.items() if s in set(self.sessions))
        if self.val_sets is not None:
            present = {r[0].get('val_set', self.default_val_set)
                       for r in groups.values()}
            unknown = sorted(set(self.val_sets) - present)
            if unknown:
                raise ValueError(f'{self.ann_file}: val_sets {unknown} (config field '
                                 f'`val_sets`) have no session in the index (its val '
                                 f'sets: {sorted(map(str, present))})')
            groups = OrderedDict(
                (s, r) for s, r in groups.items()
                if r[0].get('val_set', self.default_val_set) in self.val_sets)

        T, step = self.window_length, self.frame_interval
        span = (T - 1) * step + 1
        offsets = np.arange(T) * step
        self.num_invalid_frames = 0
        data_list = []
        for session, recs in groups.items():
            valid = self._frame_valid(session, recs)
            self.num_invalid_frames += int((~valid).sum())
            if len(recs) < span:
                continue
            starts = np.arange(0, len(recs) - span + 1, self.window_stride)
            windows = starts[:, None] + offsets[None, :]
            windows = windows[valid[windows].all(axis=1)]
            for frame_ids in windows.tolist():
                frames = [recs[j] for j in frame_ids]
                data_list.append(
                    dict(
                        session=session,
                        frame_indices=[int(f['frame_idx']) for f in frames],
                        timestamps=[self._timestamp(f) for f in frames],
                        occ_paths=[self._abs(f['occ_path']) for f in frames],
                        pose_paths=[self._abs(f['pose_path']) for f in frames],
                        lidar_paths=[
                            self._abs(f.get('lidar_path')) for f in frames
                        ],
                        ann_paths=[
                            self._abs(f.get('ann_path')) for f in frames
                        ],
                        num_history=self.num_history,
                        num_future=self.num_future,
                        free_label=int(meta['free_label']),
                        num_classes=int(meta['num_classes']),
                        grid_size=meta.get('grid_size'),
                        val_set=frames[0].get('val_set',
                                              self.default_val_set)))
        if self.num_invalid_frames:
            print_log(
                f'AerialWorldDataset({self.ann_file}): skipped windows '
                f'touching {self.num_invalid_frames} frames with missing '
                f'files (skip_invalid=True)',
                logger='current',
                level=30)
        if self.max_windows is not None and len(data_list) > self.max_windows:
            keep = np.unique(
                np.linspace(0, len(data_list) - 1,
                            self.max_windows).round().astype(np.int64))
            data_list = [data_list[i] for i in keep.tolist()]
        for i, info in enumerate(data_list):
            info['sample_idx'] = i
        if not data_list:
            print_log(
                f'AerialWorldDataset({self.ann_file}): no window of '
                f'{T} frames (frame_interval={step}) fits in any session',
                logger='current',
                level=30)
        return data_list

    def _timestamp(self, rec: dict) -> float:
        if rec.get('timestamp') is not None:
            return float(rec['timestamp'])
        rate = self._metainfo.get('frame_rate_hz')
        return float(rec['frame_idx']) / float(rate) if rate else float(
            rec['frame_idx'])

    # ------------------------------------------------------------- fetching
    def prepare_data(self, idx: int):
        """Run the pipeline; with ``skip_invalid`` a failure returns None.

        Args:
            idx (int): Window index.

        Returns:
            dict | None: Pipeline output, or ``None`` when the window's files
            are invalid and ``skip_invalid=True`` (the failure is counted).
        """
        if not self.skip_invalid:
            return super().prepare_data(idx)
        try:
            return super().prepare_data(idx)
        except (OSError, ValueError) as err:
            self._invalid_counter[_slot()] += 1
            print_log(
                f'AerialWorldDataset: skipping invalid window {idx}: {err}',
                logger='current',
                level=30)
            return None

    def __getitem__(self, idx: int) -> dict:
        """Return the processed window ``idx`` (or a replacement).

        Args:
            idx (int): Window index.

        Returns:
            dict: Pipeline output.

        Raises:
            RuntimeError: No valid window found after ``max_refetch`` tries.
        """
        if not self._fully_initialized:
            self.full_init()
        for _ in range(self.max_refetch + 1):
            data = self.prepare_data(idx)
            if data is not None:
                return data
            if not self.skip_invalid:
                raise RuntimeError(f'AerialWorldDataset: pipeline returned '
                                   f'None for window {idx}')
            # Deterministic replacement at test time, random in training.
            idx = (idx + 1) % len(self) if self.test_mode else \
                self._rand_another()
        raise RuntimeError(
            f'AerialWorldDataset({self.ann_file}): no valid window found '
            f'after {self.max_refetch} attempts; check the data files')

    # ------------------------------------------------------------ reporting
    @property
    def num_invalid(self) -> int:
        """int: Windows skipped since the last :meth:`reset_invalid_count`,
        summed over the main process and all dataloader workers."""
        return int(self._invalid_counter.sum().item())

    def reset_invalid_count(self) -> None:
        """Zero the skipped-window counter (shared with the workers)."""
        self._invalid_counter.zero_()

    def report_invalid(self, tag: str = '', reset: bool = True) -> int:
        """Log the number of skipped windows and optionally reset it.

        Args:
            tag (str): Prefix of the log message (e.g. ``'train epoch 3'``).
            reset (bool): Reset the counter afterwards. Defaults to True.

        Returns:
            int: The number of skipped windows.
        """
        n = self.num_invalid
        level = 30 if n else 20
        print_log(
            f'{tag + ": " if tag else ""}AerialWorldDataset({self.ann_file}) '
            f'skipped {n} invalid window(s)'
            + (f' and {self.num_invalid_frames} frame(s) with missing files '
               f'at start-up' if self.num_invalid_frames else ''),
            logger='current',
            level=level)
        if reset:
            self.reset_invalid_count()
        return n
