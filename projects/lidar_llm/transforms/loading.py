"""Loading / packing transforms of the LiDAR-Vision LLM."""
import math
import os.path as osp
from typing import Dict, Optional, Sequence

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from projects.registry import TRANSFORMS
from ..datasets.grounded_qa import LIDARSEG_CLASS_NAMES, points_in_boxes_bev, rotate_boxes
from ..structures import LidarQADataSample

__all__ = ['LoadLiDARPoints', 'LoadBEVFeature', 'LoadMultiViewImages', 'LoadBEVObjects',
           'LoadBEVSemantics', 'bev_semantic_map', 'PackLidarQAInputs']

CAMERA_ORDER = ('CAM_FRONT', 'CAM_FRONT_LEFT', 'CAM_BACK_LEFT', 'CAM_BACK', 'CAM_BACK_RIGHT',
                'CAM_FRONT_RIGHT')


@TRANSFORMS.register_module()
class LoadLiDARPoints(BaseTransform):
    """Load a LiDAR sweep, move it to the ego frame and apply the row's rotation.

    Reads ``results['lidar_path']``: ``.npy`` ``(N, >=4)`` or ``.bin`` / ``.pcd.bin``
    float32 with ``load_dim`` values per point. Keeps ``x, y, z, intensity``; applies
    ``results['lidar2ego']`` (4, 4) when present, then a rotation of ``results['rot_deg']``
    degrees about the ego z axis (the same rotation the QA answers were generated with).

    Adds ``points``: float32 ``(N, 4)``.

    Args:
        load_dim (int): values per point of ``.bin`` files. Defaults to 5 (nuScenes).
        use_dim (int): values kept. Defaults to 4.

    Raises:
        FileNotFoundError / ValueError: missing or malformed file (named).
    """

    def __init__(self, load_dim: int = 5, use_dim: int = 4):
        self.load_dim, self.use_dim = load_dim, use_dim

    def transform(self, results: Dict) -> Dict:
        path = results.get('lidar_path')
        if not path or not osp.isfile(path):
            raise FileNotFoundError(f'LiDAR file {path!r} of sample '
                                    f'{results.get("sample_token")} not found')
        if path.endswith('.npy'):
            pts = np.load(path)
        else:
            raw = np.fromfile(path, dtype=np.float32)
            if raw.size % self.load_dim:
                raise ValueError(f'{path}: {raw.size} floats is not a multiple of '
                                 f'load_dim={self.load_dim}')
            pts = raw.reshape(-1, self.load_dim)
        if pts.ndim != 2 or pts.shape[1] < self.use_dim:
            raise ValueError(f'{path}: expected (N, >={self.use_dim}) points, got {pts.shape}')
        pts = pts[:, :self.use_dim].astype(np.float32).copy()
        if results.get('lidar2ego') is not None:
            m = np.asarray(results['lidar2ego'], np.float64)
            pts[:, :3] = pts[:, :3] @ m[:3, :3].T + m[:3, 3]
        rot = float(results.get('rot_deg', 0.0) or 0.0)
        if rot:
            c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
            x, y = pts[:, 0].copy(), pts[:, 1].copy()
            pts[:, 0], pts[:, 1] = c * x - s * y, s * x + c * y
        results['points'] = pts
        return results


@TRANSFORMS.register_module()
class LoadBEVFeature(BaseTransform):
    """Load a precomputed BEV feature map ``results['bev_path']`` (``.npy`` ``(C, H, W)``).

    Args:
        expected_shape (Sequence[int], optional): ``(C, H, W)`` every file must have.

    Raises:
        FileNotFoundError: missing file; ValueError: wrong shape or a rotated row (the
        rotation augmentation needs raw points), naming the file.
    """

    def __init__(self, expected_shape: Optional[Sequence[int]] = None):
        self.expected_shape = tuple(expected_shape) if expected_shape else None

    def transform(self, results: Dict) -> Dict:
        path = results.get('bev_path')
        if not path or not osp.isfile(path):
            raise FileNotFoundError(f'BEV feature file {path!r} of sample '
                                    f'{results.get("sample_token")} not found')
        try:
            feat = np.load(path)
        except Exception as e:
            raise ValueError(f'{path}: cannot read BEV features ({e})') from e
        if feat.ndim != 3 or (self.expected_shape and feat.shape != self.expected_shape):
            raise ValueError(f'{path}: BEV features have shape {feat.shape}, expected '
                             f'{self.expected_shape or "(C, H, W)"}')
        if float(results.get('rot_deg', 0.0) or 0.0):
            raise ValueError(f'{path}: row {results.get("qa_id")} asks for a rotation; '
                             'precomputed BEV features cannot be rotated, use LoadLiDARPoints')
        results['bev'] = feat
        return results


@TRANSFORMS.register_module()
class LoadMultiViewImages(BaseTransform):
    """Load the 6 camera images of a sample, resize, and stack them in :data:`CAMERA_ORDER`.

    Adds ``imgs``: uint8 ``(6, 3, H, W)`` RGB.

    Args:
        img_size (Sequence[int]): ``(H, W)`` after resizing. Defaults to (224, 224).
        cache_size (int): resized images kept in memory per process (several questions of
            one key frame reuse its 6 images). Defaults to 0 (no cache).

    Raises:
        KeyError: a camera missing from ``results['image_paths']``; FileNotFoundError /
        ValueError: a missing or undecodable image (named).
    """

    def __init__(self, img_size: Sequence[int] = (224, 224), cache_size: int = 0):
        self.img_size = tuple(img_size)
        self.cache_size = cache_size
        self._cache = {}

    def transform(self, results: Dict) -> Dict:
        paths = results.get('image_paths') or {}
        imgs = []
        for cam in CAMERA_ORDER:
            if cam not in paths:
                raise KeyError(f'sample {results.get("sample_token")}: no {cam} image path')
            p = paths[cam]
            if p in self._cache:
                imgs.append(self._cache[p])
                continue
            if not osp.isfile(p):
                raise FileNotFoundError(f'{p}: {cam} image of sample '
                                        f'{results.get("sample_token")} not found')
            img = cv2.imread(p, cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f'{p}: {cam} image of sample {results.get("sample_token")} '
                                 'cannot be decoded (corrupt or not an image)')
            img = cv2.resize(img, (self.img_size[1], self.img_size[0]),
                             interpolation=cv2.INTER_AREA)
            img = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))
            if self.cache_size:
                if len(self._cache) >= self.cache_size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[p] = img
            imgs.append(img)
        results['imgs'] = np.ascontiguousarray(np.stack(imgs))
        return results


@TRANSFORMS.register_module()
class LoadBEVObjects(BaseTransform):
    """Annotated boxes of the sample, rotated like its points, for auxiliary heads.

    Reads ``results['frame_boxes']`` ((M, 7) ``x, y, z, l, w, h, yaw``, ego frame, m / rad)
    and ``results['frame_names']`` (M class names) that :class:`MixedNuDataset` attaches from
    the index's frame table, rotates them by ``results['rot_deg']`` about the ego z axis (the
    rotation :class:`LoadLiDARPoints` applies to the points) and adds ``gt_bboxes_bev``
    float32 (M, 7) and ``gt_labels`` int64 (M,) (index in ``classes``, -1 for other classes).

    Args:
        classes (Sequence[str]): class names, in the order of the labels.

    Raises:
        KeyError: the row has no ``frame_boxes`` (an index without boxes; re-run
            ``tools/data_converter/nuscenes_qa_from_boxes.py``), naming the row.
        ValueError: boxes and names differ in number, naming the row.
    """

    def __init__(self, classes: Sequence[str]):
        self.classes = tuple(classes)
        self._index = {c: i for i, c in enumerate(self.classes)}

    def transform(self, results: Dict) -> Dict:
        if results.get('frame_boxes') is None:
            raise KeyError(f'row {results.get("qa_id")}: no frame_boxes; LoadBEVObjects needs '
                           "an index whose metainfo['frames'] carries boxes and names "
                           '(tools/data_converter/nuscenes_qa_from_boxes.py)')
        boxes = np.asarray(results['frame_boxes'], np.float64).reshape(-1, 7)
        names = list(results.get('frame_names', []))
        if len(names) != len(boxes):
            raise ValueError(f'row {results.get("qa_id")}: {len(boxes)} frame boxes but '
                             f'{len(names)} names')
        rot = float(results.get('rot_deg', 0.0) or 0.0)
        results['gt_bboxes_bev'] = rotate_boxes(boxes, rot).astype(np.float32)
        results['gt_labels'] = np.array([self._index.get(n, -1) for n in names], np.int64)
        return results


def bev_semantic_map(xy: np.ndarray, labels: np.ndarray, num_classes: int,
                     bev_range: Sequence[float], grid_size: Sequence[int],
                     min_points: int = 1) -> np.ndarray:
    """Per-cell class of a BEV grid from labelled points (object classes take priority).

    A cell takes the object class (``0 .. K-1``) with the most points in it when that class
    has at least ``min_points`` points there (a 1.6 m cell over a car holds more road than
    car points, so a plain majority would erase small objects); otherwise ``K``
    (background) when the cell holds any point; otherwise -1 (no point: unknown, ignored by
    the loss). Ties go to the lower class index.

    The grid follows mmdet3d's ``PointPillarsScatter`` layout (row ``i`` along y, column
    ``j`` along x, :func:`~projects.lidar_llm.models.vat.bev_cell_centres`).

    Args:
        xy (np.ndarray): (N, >=2) point positions (m).
        labels (np.ndarray): (N,) int, ``0 .. K-1`` object class, ``K`` background.
        num_classes (int): K.
        bev_range (Sequence[float]): ``(x0, y0, x1, y1)`` (m).
        grid_size (Sequence[int]): ``(H, W)``.
        min_points (int): points of a class needed to label a cell with it.

    Returns:
        np.ndarray: int64 (H, W) in ``-1 .. K``.
    """
    h, w = int(grid_size[0]), int(grid_size[1])
    x0, y0, x1, y1 = [float(v) for v in bev_range]
    col = np.floor((xy[:, 0] - x0) / (x1 - x0) * w).astype(np.int64)
    row = np.floor((xy[:, 1] - y0) / (y1 - y0) * h).astype(np.int64)
    ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    cell, lab = row[ok] * w + col[ok], np.asarray(labels, np.int64)[ok]
    hist = np.zeros((h * w, num_classes + 1), np.int64)
    np.add.at(hist, (cell, lab), 1)
    out = np.full(h * w, -1, np.int64)
    out[hist.sum(1) > 0] = num_classes
    obj = hist[:, :num_classes]
    best = obj.argmax(1)
    strong = obj[np.arange(h * w), best] >= max(int(min_points), 1)
    out[strong] = best[strong]
    return out.reshape(h, w)


@TRANSFORMS.register_module()
class LoadBEVSemantics(BaseTransform):
    """Per-point semantic labels of the sweep, scattered to a BEV class map.

    Reads ``results['seman_path']`` (``.npy`` ``(N, 4)``: x, y, z, class id of
    :data:`~projects.lidar_llm.datasets.grounded_qa.LIDARSEG_CLASS_NAMES`, row-aligned with
    the sweep: SurroundOcc's ``pc_seman`` from nuScenes-lidarseg) and labels the points of
    ``results['points']`` (which :class:`LoadLiDARPoints` has already moved to the ego frame
    and rotated by ``rot_deg``), so the labels rotate with the points by construction. A
    frame without lidarseg labels (no ``seman_path``) is labelled from its annotated boxes
    when ``box_fallback`` (points inside a box take its class; the boxes are rotated by
    ``rot_deg`` like the points). Adds ``gt_bev_semantic`` int64 ``(H, W)`` from
    :func:`bev_semantic_map` (``0 .. K-1`` = ``classes``, ``K`` background, -1 empty).

    Args:
        classes (Sequence[str]): object classes (lidarseg / box class names); every other
            label is background.
        bev_range (Sequence[float]): ``(x0, y0, x1, y1)`` (m) of the BEV map.
        grid_size (Sequence[int]): ``(H, W)`` of the map the head predicts.
        min_points (int): see :func:`bev_semantic_map`. Defaults to 1.
        box_fallback (bool): label frames without lidarseg from their boxes. Defaults to
            True.

    Raises:
        KeyError: ``points`` missing (put :class:`LoadLiDARPoints` first), or a frame has
            neither ``seman_path`` nor (with ``box_fallback``) ``frame_boxes``, naming the row.
        FileNotFoundError / ValueError: the label file is missing or not row-aligned with
            the sweep (named).
    """

    def __init__(self, classes: Sequence[str], bev_range: Sequence[float],
                 grid_size: Sequence[int], min_points: int = 1, box_fallback: bool = True):
        self.classes = tuple(classes)
        self.bev_range, self.grid_size = tuple(bev_range), tuple(grid_size)
        self.min_points, self.box_fallback = int(min_points), bool(box_fallback)
        index = {c: i for i, c in enumerate(self.classes)}
        k = len(self.classes)
        self._lut = np.array([index.get(n, k) for n in LIDARSEG_CLASS_NAMES], np.int64)
        self._cache = {}

    def _point_labels(self, results: Dict, n: int) -> np.ndarray:
        k = len(self.classes)
        path = results.get('seman_path')
        if path:
            if path not in self._cache:
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{path}: lidarseg labels of sample '
                                            f'{results.get("sample_token")} not found')
                raw = np.load(path)
                if raw.ndim != 2 or raw.shape[1] < 4:
                    raise ValueError(f'{path}: expected (N, 4) x, y, z, class, got {raw.shape}')
                ids = raw[:, 3].astype(np.int64)
                if ids.min() < 0 or ids.max() >= len(self._lut):
                    raise ValueError(f'{path}: class ids {ids.min()}..{ids.max()} outside '
                                     f'0..{len(self._lut) - 1} (LIDARSEG_CLASS_NAMES)')
                self._cache[path] = self._lut[ids]
            lab = self._cache[path]
            if len(lab) != n:
                raise ValueError(f'{path}: {len(lab)} labels for a sweep of {n} points '
                                 f'({results.get("lidar_path")}): not row-aligned')
            return lab
        if not self.box_fallback or results.get('frame_boxes') is None:
            raise KeyError(f'row {results.get("qa_id")}: no seman_path (lidarseg labels) '
                           + ('and no frame_boxes' if self.box_fallback else
                              'and box_fallback=False'))
        boxes = rotate_boxes(np.asarray(results['frame_boxes'], np.float64).reshape(-1, 7),
                             float(results.get('rot_deg', 0.0) or 0.0))
        names = list(results.get('frame_names', []))
        box_cls = np.array([self.classes.index(c) if c in self.classes else k for c in names]
                           + [k], np.int64)
        return box_cls[points_in_boxes_bev(results['points'][:, :3], boxes)]

    def transform(self, results: Dict) -> Dict:
        if 'points' not in results:
            raise KeyError(f'row {results.get("qa_id")}: LoadBEVSemantics needs points; put '
                           'LoadLiDARPoints before it')
        pts = results['points']
        lab = self._point_labels(results, len(pts))
        results['gt_bev_semantic'] = bev_semantic_map(pts[:, :2], lab, len(self.classes),
                                                      self.bev_range, self.grid_size,
                                                      self.min_points)
        return results


@TRANSFORMS.register_module()
class PackLidarQAInputs(BaseTransform):
    """Pack sensor arrays into ``inputs`` and the QA fields into a :class:`LidarQADataSample`.

    Args:
        meta_keys (Sequence[str]): keys copied into the sample's metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = ('qa_id', 'sample_token', 'template_type',
                                                   'frame', 'rot_deg', 'scene')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: Dict) -> Dict:
        inputs = {}
        if 'points' in results:
            inputs['points'] = torch.from_numpy(results['points'])
        if 'bev' in results:
            inputs['bev'] = torch.from_numpy(np.ascontiguousarray(results['bev']))
        if 'imgs' in results:
            inputs['imgs'] = torch.from_numpy(results['imgs'])
        sample = LidarQADataSample(metainfo={k: results[k] for k in self.meta_keys
                                             if k in results})
        sample.question = results['question']
        sample.answer = results.get('answer', '')
        if results.get('gt_box') is not None:
            sample.gt_box = results['gt_box']
        if results.get('gt_count') is not None:
            sample.gt_count = results['gt_count']
        if results.get('gt_bboxes_bev') is not None:
            sample.gt_bboxes_bev = results['gt_bboxes_bev']
            sample.gt_labels = results['gt_labels']
        if results.get('gt_bev_semantic') is not None:
            sample.gt_bev_semantic = results['gt_bev_semantic']
        return dict(inputs=inputs, data_samples=sample)
