"""MixedNuDataset: nuScenes QA rows joined with BEV features, LiDAR sweeps and cameras."""
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from projects.registry import DATASETS

__all__ = ['MixedNuDataset', 'CAMERA_ORDER']

#: What :meth:`MixedNuDataset.get_lengths` counts as one token.
_TOKEN_RE = re.compile(r'\d|[A-Za-z]+|[^\sA-Za-z\d]')

#: Camera order of the vision branch (view k of VATVision = camera k).
CAMERA_ORDER = ('CAM_FRONT', 'CAM_FRONT_LEFT', 'CAM_BACK_LEFT', 'CAM_BACK', 'CAM_BACK_RIGHT',
                'CAM_FRONT_RIGHT')


def _read_rows(path: str):
    """Rows and metainfo of a ``.json`` index (``{metainfo, data_list}`` or a list) or a
    ``.jsonl`` file (one row per line)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: QA annotation file not found')
    if path.endswith('.jsonl'):
        rows = []
        with open(path, encoding='utf-8') as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f'{path}:{n}: not valid JSON ({e})') from e
        return rows, {}
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    if isinstance(data, list):
        return data, {}
    if not isinstance(data, dict) or 'data_list' not in data:
        raise ValueError(f'{path}: expected a list of QA rows or a dict with data_list')
    return data['data_list'], data.get('metainfo', {})


@DATASETS.register_module()
class MixedNuDataset(BaseDataset):
    """QA rows keyed by nuScenes ``sample_token``, from one or more JSON / JSONL files.

    Row keys: ``sample_token`` (str), ``question`` (str), the answer under ``target_field``,
    optional ``template_type``, ``qa_id``, ``frame`` (key of the index's
    ``metainfo['frames']`` table: ``lidar_path``, ``lidar2ego``, ``cams``), ``rot_deg``,
    ``gt_box``, ``gt_count``, ``image_paths`` (camera → path, DriveLM rows).

    Args:
        ann_file (str | Sequence[str]): index file(s), relative to ``data_root``.
        target_field (str): key of the answer in a row. Defaults to ``'answer'``.
        feature_dirs (Sequence[str], optional): folders of BEV features
            ``<sample_token>.npy`` ``(C, H, W)``; searched in order. Every row must have a
            feature file (checked when the index is loaded).
        use_vision (bool): rows must name the 6 camera images (checked at load).
        max_samples (int, optional): keep the first N rows.
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments (``data_root``,
            ``pipeline``, ``test_mode``, ...).

    Raises:
        FileNotFoundError: a missing index file, or a row whose sample token has no
            feature file in any of ``feature_dirs`` (names the token and the folders).
        KeyError: a row without ``question`` / ``target_field`` / ``sample_token`` or with
            an unknown ``frame`` (names the file and row).
    """

    METAINFO = dict(dataset='nuscenes_qa')

    def __init__(self, ann_file: Union[str, Sequence[str]], target_field: str = 'answer',
                 feature_dirs: Optional[Sequence[str]] = None, use_vision: bool = False,
                 max_samples: Optional[int] = None, **kwargs):
        self.ann_files = [ann_file] if isinstance(ann_file, str) else list(ann_file)
        if not self.ann_files:
            raise ValueError('MixedNuDataset: ann_file is empty')
        self.target_field = target_field
        self.feature_dirs = list(feature_dirs or [])
        self.use_vision = use_vision
        self.max_samples = max_samples
        super().__init__(ann_file=self.ann_files[0], **kwargs)

    def _path(self, p: str) -> str:
        root = self.data_root or ''
        return p if osp.isabs(p) or not root else osp.join(root, p)

    def load_data_list(self) -> List[Dict]:
        rows_out, frames = [], {}
        feature_dirs = [self._path(d) for d in self.feature_dirs]
        for ann in self.ann_files:
            path = self._path(ann)
            rows, meta = _read_rows(path)
            table = meta.get('frames', {})
            frames.update(table)
            for k, m in meta.items():
                if k != 'frames':
                    self._metainfo.setdefault(k, m)
            for n, row in enumerate(rows):
                for key in ('sample_token', 'question', self.target_field):
                    if key not in row:
                        raise KeyError(f'{path}: row {n} ({row.get("qa_id", "?")}) has no '
                                       f'{key!r} (target_field={self.target_field!r})')
                info = dict(row)
                info['answer'] = str(row[self.target_field])
                info.setdefault('qa_id', f'{osp.basename(path)}#{n}')
                info.setdefault('template_type', 'qa')
                fr = row.get('frame')
                if fr is not None:
                    if fr not in table:
                        raise KeyError(f'{path}: row {n} names frame {fr!r} that is not in '
                                       "metainfo['frames']")
                    f = table[fr]
                    if f.get('lidar_path'):
                        info['lidar_path'] = self._path(f['lidar_path'])
                        info['lidar2ego'] = f.get('lidar2ego')
                    if f.get('seman_path'):
                        info['seman_path'] = self._path(f['seman_path'])
                    info.setdefault('image_paths', f.get('cams', {}))
                if info.get('image_paths'):
                    info['image_paths'] = {c: self._path(p)
                                           for c, p in info['image_paths'].items()}
                if self.use_vision:
                    missing = [c for c in CAMERA_ORDER if c not in info.get('image_paths', {})]
                    if missing:
                        raise KeyError(f'{path}: row {n} ({info["qa_id"]}) lacks the camera '
                                       f'images {missing} (use_vision=True)')
                if feature_dirs:
                    name = f'{row["sample_token"]}.npy'
                    found = [osp.join(d, name) for d in feature_dirs
                             if osp.isfile(osp.join(d, name))]
                    if not found:
                        raise FileNotFoundError(
                            f'{path}: row {n} ({info["qa_id"]}): sample token '
                            f'{row["sample_token"]!r} has no BEV feature file {name} in '
                            f'{feature_dirs}')
                    info['bev_path'] = found[0]
                rows_out.append(info)
                if self.max_samples is not None and len(rows_out) >= self.max_samples:
                    break
        self._metainfo['frames'] = frames
        return rows_out

    def get_data_info(self, idx: int) -> Dict:
        """The row ``idx`` plus, when its frame has annotated boxes in the index's
        ``metainfo['frames']`` table, ``frame_boxes`` (list of (x, y, z, l, w, h, yaw), ego
        frame before the row's rotation) and ``frame_names`` (class names); kept in the
        frame table rather than copied into every row (one frame serves ~100 questions)."""
        info = super().get_data_info(idx)
        frame = self._metainfo.get('frames', {}).get(info.get('frame'))
        if frame is not None and frame.get('boxes') is not None:
            info['frame_boxes'] = frame['boxes']
            info['frame_names'] = frame.get('names', [])
        return info

    def get_lengths(self) -> List[int]:
        """Approximate token count of every row (question + answer), the key of
        :class:`LengthGroupedSampler` / :class:`SampleGroupedSampler`: one per digit (Qwen2's
        BPE splits numbers into digits), one per word and one per punctuation mark; unlike
        characters / 4 it does not under-count the coordinate-heavy DriveLM answers."""
        return [len(_TOKEN_RE.findall(self.get_data_info(i)['question'])) +
                len(_TOKEN_RE.findall(self.get_data_info(i)['answer'])) + 1
                for i in range(len(self))]
