"""Occ3D-nuScenes / OccWorld occupancy layout: dataset and the devkit index.

Layout of the labels (Occ3D-nuScenes release, also read by OccWorld)::

    <data_root>/gts/<scene name>/<sample token>/labels.npz
        semantics    uint8 (200, 200, 16)  classes 0..16, 17 = free (Occ3D order)
        mask_lidar   uint8 (200, 200, 16)  1 = observed by the LiDAR
        mask_camera  uint8 (200, 200, 16)  1 = visible in the cameras (the usual eval mask)

The index (``.pkl``, written by :func:`build_occ3d_index` from the nuScenes tables with
nuscenes-devkit) has the AerialWorld index layout with poses stored inline::

    {'metainfo': {'classes': OCC3D_NUSCENES_CLASSES, 'free_label': 17,
                  'grid_size': [200, 200, 16], 'layout': 'occ3d', ...},
     'data_list': [{'session': scene name, 'frame_idx': int, 'timestamp': s,
                    'occ_path': 'gts/<scene>/<token>/labels.npz', 'pose_path': None,
                    'pose_13d': [13 floats], 'token': sample token}, ...]}

:class:`Occ3DDataset` turns it into windows like :class:`AerialWorldDataset` (sessions =
scenes, splits by scene); pipelines load the labels with
``LoadOccupancySequence(npz_key='semantics')``, the poses with
:class:`~projects.aerialworld.transforms.LoadIndexPoses` and the evaluation mask with
:class:`~projects.aerialworld.transforms.LoadOccupancyMaskSequence` (packed as the ``occ_mask`` meta
key, which :class:`~projects.common.metrics.OccupancyMetric` uses to ignore voxels).
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from projects.registry import DATASETS
from .aerialworld_dataset import AerialWorldDataset
from .classes import OCC3D_FREE_LABEL, OCC3D_NUSCENES_CLASSES

#: Occ3D-nuScenes classes in label order (``free`` = 17 is last).
OCC3D_CLASSES = OCC3D_NUSCENES_CLASSES
OCC3D_GRID_SIZE = (200, 200, 16)
OCC3D_POINT_CLOUD_RANGE = (-40.0, -40.0, -1.0, 40.0, 40.0, 5.4)
OCC3D_VOXEL_SIZE = (0.4, 0.4, 0.4)
OCC3D_INDEX_FILES = {'train': 'occ3d_infos_train.pkl', 'val': 'occ3d_infos_val.pkl'}


@DATASETS.register_module()
class Occ3DDataset(AerialWorldDataset):
    """Windows of Occ3D-layout occupancy (``gts/<scene>/<token>/labels.npz``) per scene.

    Same arguments, window rules, errors and ``skip_invalid`` behaviour as
    :class:`AerialWorldDataset`; differences: index records carry the 13-D pose inline
    (``pose_13d``, no pose file) and only ``occ_path`` must exist. Each window additionally
    holds ``index_poses`` (float32 (T, 13)) and ``tokens`` (list[str], T sample tokens).

    Raises:
        ValueError: a record lacks ``pose_13d`` or it is not 13 finite values (names
            ``ann_file``, the scene and the frame).
    """
    #: Poses live in the index, so only the label files must exist.
    FRAME_FILE_KEYS = ('occ_path', )

    def _group_sessions(self, raw: List[dict]):
        recs = [dict(r, pose_path=r.get('pose_path')) if isinstance(r, dict) else r
                for r in raw]
        groups = super()._group_sessions(recs)
        self._index_poses: Dict[tuple, np.ndarray] = {}
        for session, frames in groups.items():
            for r in frames:
                pose = np.asarray(r.get('pose_13d', ()), dtype=np.float64)
                if pose.shape != (13,) or not np.isfinite(pose).all():
                    raise ValueError(f'{self.ann_file}: scene {session!r} frame '
                                     f'{r["frame_idx"]}: pose_13d must be 13 finite values, '
                                     f'got {r.get("pose_13d")!r}')
                self._index_poses[(session, int(r['frame_idx']))] = (
                    pose.astype(np.float32), str(r.get('token', '')))
        return groups

    def load_data_list(self) -> List[dict]:
        """Windows of :class:`AerialWorldDataset` plus ``index_poses`` and ``tokens``."""
        data_list = super().load_data_list()
        for info in data_list:
            rows = [self._index_poses[(info['session'], i)] for i in info['frame_indices']]
            info['index_poses'] = np.stack([r[0] for r in rows])
            info['tokens'] = [r[1] for r in rows]
        return data_list


# --------------------------------------------------------------------------- devkit index
def build_occ3d_infos(nusc, scene_names: Optional[Sequence[str]] = None,
                      gts: str = 'gts') -> List[dict]:
    """Index records of the keyframes of nuScenes scenes (devkit tables).

    For every scene: the sample chain ``first_sample_token -> next``; the pose of a sample
    is the ``ego_pose`` of its ``LIDAR_TOP`` sample_data (the keyframe sweep, as in
    OccWorld), turned into 13-D poses per scene (heights reconstructed from pitch, since
    nuScenes stores ``z = 0``; finite-difference velocities), see
    :mod:`projects.aerialworld.converters.nuscenes_occ`.

    Args:
        nusc (nuscenes.nuscenes.NuScenes): a loaded devkit instance.
        scene_names (Sequence[str], optional): scenes to index (default: all, table order).
        gts (str): labels folder relative to the data root.

    Returns:
        list[dict]: records sorted by (scene order, frame).

    Raises:
        ValueError: an unknown scene name, a broken sample chain or a sample without
            ``LIDAR_TOP`` data (names the scene / token).
    """
    from projects.aerialworld.converters.nuscenes_occ import (ego_poses_13d,
                                                              reconstruct_ego_height,
                                                              transform_matrix)
    by_name = {s['name']: s for s in nusc.scene}
    names = list(by_name) if scene_names is None else list(scene_names)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f'scenes {unknown} are not in {nusc.table_root}/scene.json')
    out = []
    for name in names:
        scene = by_name[name]
        tokens, token = [], scene['first_sample_token']
        while token:
            if len(tokens) > scene['nbr_samples']:
                raise ValueError(f'scene {name}: sample chain longer than nbr_samples='
                                 f'{scene["nbr_samples"]} (cycle?) at {token}')
            tokens.append(token)
            token = nusc.get('sample', token)['next']
        if len(tokens) != scene['nbr_samples'] or tokens[-1] != scene['last_sample_token']:
            raise ValueError(f'scene {name}: sample chain has {len(tokens)} samples ending at '
                             f'{tokens[-1]}, scene.json says {scene["nbr_samples"]} ending at '
                             f'{scene["last_sample_token"]}')
        poses = []
        for tok in tokens:
            sample = nusc.get('sample', tok)
            if 'LIDAR_TOP' not in sample['data']:
                raise ValueError(f'scene {name}: sample {tok} has no LIDAR_TOP sample_data')
            sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
            poses.append(nusc.get('ego_pose', sd['ego_pose_token']))
        mats = [transform_matrix(p['translation'], p['rotation']) for p in poses]
        trans = np.array([m[:3, 3] for m in mats])
        trans[:, 2] = reconstruct_ego_height(mats)
        ts = np.array([nusc.get('sample', t)['timestamp'] for t in tokens]) * 1e-6
        pose13 = ego_poses_13d(trans, np.array([p['rotation'] for p in poses]), ts)
        for i, tok in enumerate(tokens):
            out.append({'session': name, 'frame_idx': i, 'timestamp': float(ts[i] - ts[0]),
                        'occ_path': f'{gts}/{name}/{tok}/labels.npz', 'pose_path': None,
                        'pose_13d': [float(x) for x in pose13[i]], 'token': tok})
    return out


def occ3d_metainfo(split: str, version: str, scenes: Sequence[str]) -> dict:
    """Index metainfo of the Occ3D layout."""
    return {'dataset': 'occ3d_nuscenes', 'layout': 'occ3d', 'classes': OCC3D_CLASSES,
            'free_label': OCC3D_FREE_LABEL, 'grid_size': list(OCC3D_GRID_SIZE),
            'point_cloud_range': list(OCC3D_POINT_CLOUD_RANGE),
            'voxel_size': list(OCC3D_VOXEL_SIZE), 'z_reference': 'ego',
            'frame_rate_hz': 2.0, 'split': split, 'nuscenes_version': version,
            'scenes': list(scenes),
            'attribution': 'nuScenes (Motional) and Occ3D labels, CC BY-NC-SA 4.0'}


def build_occ3d_index(dataroot: str, version: str, out_dir: str, gts: str = 'gts',
                      train_scenes: Optional[Sequence[str]] = None,
                      val_scenes: Optional[Sequence[str]] = None,
                      overwrite: bool = False) -> dict:
    """Write ``occ3d_infos_{train,val}.pkl`` for the scenes of a nuScenes table set.

    Args:
        dataroot (str): nuScenes root (holds ``<version>/scene.json`` etc.).
        version (str): table version, e.g. ``'v1.0-trainval'`` or ``'v1.0-mini'``.
        out_dir (str): folder of the index files (the data root the ``gts`` paths are
            relative to).
        gts (str): labels folder relative to ``out_dir``.
        train_scenes, val_scenes (Sequence[str], optional): scene names per split; default
            the official splits of ``nuscenes.utils.splits`` (``mini_train`` / ``mini_val``
            for the mini version), restricted to the scenes present in the tables.
        overwrite (bool): replace existing index files.

    Returns:
        dict: ``files`` (paths written), ``frames``, ``scenes``.

    Raises:
        FileNotFoundError: the table folder is missing.
        FileExistsError: index files exist and ``overwrite`` is False.
        ValueError: a scene is in both splits or not in the tables.
    """
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.splits import create_splits_scenes

    from projects.aerialworld.converters.nuscenes_occ import write_index
    table_root = osp.join(dataroot, version)
    if not osp.isdir(table_root):
        raise FileNotFoundError(f'nuScenes tables not found: {table_root}')
    nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    present = [s['name'] for s in nusc.scene]
    if train_scenes is None and val_scenes is None:
        splits = create_splits_scenes()
        key = 'mini_' if 'mini' in version else ''
        train_scenes = [s for s in splits[f'{key}train'] if s in present]
        val_scenes = [s for s in splits[f'{key}val'] if s in present]
    train_scenes, val_scenes = list(train_scenes or []), list(val_scenes or [])
    both = sorted(set(train_scenes) & set(val_scenes))
    if both:
        raise ValueError(f'scenes {both} are in both splits (splits must be by scene)')
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: osp.join(out_dir, v) for k, v in OCC3D_INDEX_FILES.items()}
    existing = [p for p in paths.values() if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f'index files exist: {existing}; pass overwrite=True')
    frames = 0
    for split, scenes in (('train', train_scenes), ('val', val_scenes)):
        recs = build_occ3d_infos(nusc, scenes, gts)
        frames += len(recs)
        write_index(paths[split], occ3d_metainfo(split, version, scenes), recs)
    return dict(files=list(paths.values()), frames=frames,
                scenes=len(train_scenes) + len(val_scenes))


__all__ = [
    'Occ3DDataset', 'LoadIndexPoses', 'LoadOccupancyMaskSequence', 'build_occ3d_infos',
    'build_occ3d_index', 'occ3d_metainfo', 'OCC3D_CLASSES', 'OCC3D_FREE_LABEL',
    'OCC3D_GRID_SIZE', 'OCC3D_INDEX_FILES'
]
