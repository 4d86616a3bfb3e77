"""Real nuScenes LiDAR keyframes -> Occ3D-style semantic occupancy (AerialWorld sessions).

Input: a folder of consecutive nuScenes keyframes in the layout of SurroundOcc's
"own data" tool (``data/nuscenes_seq/``, see ``data/LICENSES.md``)::

    pc/pc{i}.npy                         float32 (N, 4) x, y, z, intensity, LIDAR_TOP frame
    pc_seman/pc_seman_{i}.npy            float64 (N, 4) x, y, z, class 0..16 (Occ3D order,
                                         0 = noise / other, includes the ego vehicle's returns)
    pose/lidar_ego_pose{i}.npy           pickled nuScenes ``ego_pose`` record (ego -> global)
    calib/lidar_calibrated_sensor{i}.npy pickled ``calibrated_sensor`` record (lidar -> ego)
    bbox/bbox{i}.npy                     float32 (M, 7) boxes in the LIDAR_TOP frame
    bbox/boxes_token{i}.npy              (M,) instance tokens
    bbox/object_category{i}.npy          (M,) int class of each box (Occ3D order)

Box layout, verified against the labelled points (see :func:`points_in_boxes` and the tests):
``(x, y, z_bottom, w, l, h, yaw)`` with ``w`` along the box's local x axis and ``l`` along its
local y axis, the box rotated by ``yaw`` about z (92 % of the points inside the boxes of
frame 0 carry the box's class with this reading; the next best reading reaches 74 %).

Pipeline (:class:`NuScenesOccConverter`):

1. every frame: points and boxes in the LiDAR frame; points of the ego vehicle are dropped
   (an ego-frame box); points inside a (slightly enlarged) box become *object* points,
   stored in that box's own frame under its instance id; all others are *static* points,
   moved LiDAR -> ego -> global with the ``calibrated_sensor`` and ``ego_pose`` records
   (``pyquaternion``);
2. every target frame t: the static points of all frames go global -> ego(t); the object
   points of every instance annotated at t (from all frames where it was seen) are placed
   at its box pose of frame t; instances absent at t are not drawn;
3. voxelisation into the Occ3D grid by majority vote of the point labels (vectorised; ties
   go to the lower class id), optionally a planar gap filling (:func:`fill_gaps`); empty
   voxels are ``free`` (17);
4. writing the AerialWorld session format (DESIGN.md section 3): occupancy ``.npz`` (key
   ``occupancy``, uint8 (200, 200, 16) in the ego frame of the keyframe, Occ3D convention),
   pose JSON with ``pose_13d`` from the ``ego_pose`` records (finite-difference linear
   velocity in the global frame and body angular velocity), LiDAR ``.npy`` (N, 4) float32 in
   the ego frame, and the index files ``aerialworld_infos_{train,val}.pkl``.

Split: the input is one real scene of 11 keyframes, and a 4 + 6 frame window needs 10 of
them, so the one session goes to both index files (``metainfo['split_note']`` says so; the
val numbers measure fit, not generalisation). Every output file is written to a temporary
name and renamed; a session is assembled in a temporary folder and renamed into place.

Modules: :mod:`.nuscenes_io` (reading and checking the keyframes), :mod:`.nuscenes_geometry`
(boxes, gap filling, 13-D poses, aggregation), :mod:`.voxelize` (the majority vote shared with
the UAVScenes converter), :mod:`projects.aerialworld.datasets.session_io` (writing); this module
holds the options and the converter and re-exports the public names.

Not done (documented limitations): no ray-casting visibility masks (``mask_lidar`` /
``mask_camera`` of Occ3D), no mesh reconstruction (Occ3D / SurroundOcc use Poisson meshing
or dense accumulation over all sweeps; here only the 11 keyframes are accumulated).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from projects.aerialworld.datasets.classes import OCC3D_FREE_LABEL as OCCWORLD_FREE_LABEL
from projects.aerialworld.datasets.classes import OCC3D_NUSCENES_CLASSES
from projects.aerialworld.datasets.session_io import (INDEX_FILES, dir_size, index_metainfo,
                                                      make_session_dirs, pose_json,
                                                      write_frame, write_index)
from projects.aerialworld.datasets.session_io import config_hash as _hash
from projects.common.utils.io import sha256_file
from .nuscenes_geometry import (AggregatedScene, aggregate_sequence, box_local_coords,
                                box_to_frame_coords, ego_poses_13d, fill_gaps, frame_points,
                                points_in_boxes)
from .nuscenes_io import (NUM_SEMANTIC, NuScenesSequenceError, SequenceFrame, apply_transform,
                          find_frame_indices, input_files, load_sequence, load_sequence_frame,
                          reconstruct_ego_height, transform_matrix)
from .voxelize import voxelize_majority as _voxelize_majority

logger = logging.getLogger(__name__)

__all__ = [
    'CONVERTER_VERSION', 'INDEX_FILES', 'OCC3D_POINT_CLOUD_RANGE', 'OCC3D_VOXEL_SIZE',
    'OCC3D_GRID_SIZE', 'NUM_SEMANTIC', 'NuScenesOccConfig', 'NuScenesOccConverter',
    'NuScenesSequenceError', 'SequenceFrame', 'AggregatedScene', 'aggregate_sequence',
    'apply_transform', 'box_local_coords', 'box_to_frame_coords', 'config_hash',
    'convert_nuscenes_sequence', 'ego_poses_13d', 'fill_gaps', 'find_frame_indices',
    'frame_points', 'input_files', 'load_sequence', 'load_sequence_frame', 'points_in_boxes',
    'pose_json', 'reconstruct_ego_height', 'transform_matrix', 'voxelize_majority'
]

CONVERTER_VERSION = 'nuscenes_occ/1.0'
#: Occ3D-nuScenes grid: range (m), voxel size (m), shape.
OCC3D_POINT_CLOUD_RANGE = (-40.0, -40.0, -1.0, 40.0, 40.0, 5.4)
OCC3D_VOXEL_SIZE = (0.4, 0.4, 0.4)
OCC3D_GRID_SIZE = (200, 200, 16)
NUSCENES_ATTRIBUTION = ('nuScenes and nuScenes-lidarseg (Motional), CC BY-NC-SA 4.0 '
                        '(non-commercial); keyframes via weiyithu/SurroundOcc @ bacc9803')


# --------------------------------------------------------------------------- configuration
@dataclass
class NuScenesOccConfig:
    """Options of the nuScenes-sequence converter (all stored in the index metainfo).

    Attributes:
        point_cloud_range (tuple): grid range ``(x0, y0, z0, x1, y1, z1)`` in the ego frame (m).
        voxel_size (tuple): voxel size (m).
        box_scale (float): boxes are enlarged by this factor (w, l, h) to catch object points
            on their surface (1.1 as in SurroundOcc).
        box_z_margin (float): the box bottom is lowered by this many metres (m) before the
            inside test, so points on the box's lower face are not left as static points.
        ego_box (tuple): ``(x0, y0, z0, x1, y1, z1)`` in the ego frame (m); points inside are
            returns from the ego vehicle and are dropped. Default: the Renault Zoe of nuScenes
            (rear-axle origin) with a margin.
        drop_noise_far (bool): also drop label-0 (noise / other) points outside the ego box.
            Default False: they are kept as Occ3D ``others``.
        reconstruct_height (bool): replace the ``z = 0`` of the nuScenes ego poses by the
            height integrated along the trajectory (:func:`reconstruct_ego_height`) for the
            aggregation and the written poses. Default True.
        fill (bool): run :func:`fill_gaps` on every grid.
        fill_min_neighbors (int): see :func:`fill_gaps`.
        fill_iterations (int): see :func:`fill_gaps`.
        session (str | None): session name (default: the input folder's name).
        log_name (str): nuScenes log of the sequence (provenance only).
        frame_rate_hz (float): keyframe rate (nuScenes keyframes: 2 Hz).
        dataset_name (str): ``metainfo['dataset']``.
    """

    point_cloud_range: Tuple[float, ...] = OCC3D_POINT_CLOUD_RANGE
    voxel_size: Tuple[float, ...] = OCC3D_VOXEL_SIZE
    box_scale: float = 1.1
    box_z_margin: float = 0.1
    ego_box: Tuple[float, ...] = (-1.2, -1.1, -0.5, 3.6, 1.1, 2.2)
    drop_noise_far: bool = False
    reconstruct_height: bool = True
    fill: bool = True
    fill_min_neighbors: int = 5
    fill_iterations: int = 1
    session: Optional[str] = None
    log_name: str = ''
    frame_rate_hz: float = 2.0
    dataset_name: str = 'nuscenes_seq_occ'

    @property
    def grid_size(self) -> Tuple[int, int, int]:
        """``(X, Y, Z)`` voxels of the grid."""
        r, v = self.point_cloud_range, self.voxel_size
        return tuple(int(round((r[i + 3] - r[i]) / v[i])) for i in range(3))

    def validate(self) -> None:
        """Raise ValueError on inconsistent options."""
        r, v = self.point_cloud_range, self.voxel_size
        if len(r) != 6 or len(v) != 3:
            raise ValueError(f'point_cloud_range needs 6 values and voxel_size 3, got {r}, {v}')
        for i in range(3):
            n = (r[i + 3] - r[i]) / v[i]
            if v[i] <= 0 or r[i + 3] <= r[i] or abs(n - round(n)) > 1e-6:
                raise ValueError(f'axis {i}: range {r[i]}..{r[i + 3]} is not a positive '
                                 f'multiple of the voxel size {v[i]}')
        if len(self.ego_box) != 6:
            raise ValueError(f'ego_box needs 6 values, got {self.ego_box}')
        if self.box_scale < 1.0:
            raise ValueError(f'box_scale must be >= 1, got {self.box_scale}')
        if not 0 <= self.fill_min_neighbors <= 8:
            raise ValueError(f'fill_min_neighbors must be in 0..8, got {self.fill_min_neighbors}')
        if self.frame_rate_hz <= 0:
            raise ValueError(f'frame_rate_hz must be > 0, got {self.frame_rate_hz}')

    def to_dict(self) -> dict:
        """JSON-serialisable copy."""
        d = dataclasses.asdict(self)
        for k in ('point_cloud_range', 'voxel_size', 'ego_box'):
            d[k] = [float(x) for x in d[k]]
        return d


def voxelize_majority(xyz: np.ndarray, labels: np.ndarray, point_cloud_range,
                      voxel_size, num_classes: int = NUM_SEMANTIC,
                      free_label: int = OCCWORLD_FREE_LABEL) -> np.ndarray:
    """Occ3D majority-vote voxelisation (:func:`.voxelize.voxelize_majority`).

    Args:
        xyz (np.ndarray): (N, 3) points (m) in the grid's frame.
        labels (np.ndarray): (N,) integer classes in ``[0, num_classes)``.
        point_cloud_range (Sequence[float]): ``(x0, y0, z0, x1, y1, z1)`` (m).
        voxel_size (Sequence[float]): (3,) metres.
        num_classes (int): semantic classes (free excluded); must not exceed ``free_label``.
        free_label (int): label of voxels without points.

    Returns:
        np.ndarray: uint8 (X, Y, Z); points outside the range are ignored; ties go to the
        lower class id.

    Raises:
        ValueError: ``num_classes > free_label`` (labels would collide with free).
    """
    if num_classes > free_label:
        raise ValueError(f'num_classes ({num_classes}) must not exceed free_label '
                         f'({free_label})')
    return _voxelize_majority(xyz, labels, point_cloud_range, voxel_size, free_label)


# --------------------------------------------------------------------------- writing
def config_hash(cfg: NuScenesOccConfig, seq_dir: str) -> str:
    """sha256 of the converter version, the options and the input file contents."""
    return _hash(CONVERTER_VERSION, cfg.to_dict(),
                 (f'{rel}:{sha256_file(os.path.join(seq_dir, rel))}'
                  for rel in input_files(seq_dir)))


class NuScenesOccConverter:
    """Converts a folder of consecutive nuScenes keyframes into one occupancy session.

    Args:
        seq_dir (str): the sequence folder (module docstring).
        cfg (NuScenesOccConfig, optional): options.

    Raises:
        FileNotFoundError / NuScenesSequenceError: missing or invalid input (file named).
        ValueError: invalid options.
    """

    def __init__(self, seq_dir: str, cfg: Optional[NuScenesOccConfig] = None) -> None:
        self.cfg = cfg or NuScenesOccConfig()
        self.cfg.validate()
        self.seq_dir = seq_dir
        self.frames = load_sequence(seq_dir)
        if self.cfg.reconstruct_height:
            z = reconstruct_ego_height([f.ego2global for f in self.frames])
            for f, zi in zip(self.frames, z):
                f.ego2global[2, 3] = zi
        self.session = self.cfg.session or os.path.basename(os.path.normpath(seq_dir))
        if not re.fullmatch(r'[A-Za-z0-9_.\-]+', self.session):
            raise ValueError(f'session name {self.session!r} must be a plain folder name')

    def poses_13d(self) -> np.ndarray:
        """float64 (T, 13) ego poses of the frames (see :func:`ego_poses_13d`)."""
        f = self.frames
        return ego_poses_13d(np.array([x.ego2global[:3, 3] for x in f]),
                             np.array([x.ego_pose['rotation'] for x in f]),
                             np.array([x.timestamp_us for x in f]) * 1e-6)

    def build_occupancy(self, scene: Optional[AggregatedScene] = None) -> np.ndarray:
        """uint8 (T, X, Y, Z) occupancy of every frame (ego frame of that frame)."""
        cfg = self.cfg
        scene = scene or aggregate_sequence(self.frames, cfg)
        out = np.empty((len(self.frames),) + cfg.grid_size, dtype=np.uint8)
        for t, frame in enumerate(self.frames):
            xyz, lab = frame_points(scene, frame)
            occ = voxelize_majority(xyz, lab, cfg.point_cloud_range, cfg.voxel_size)
            if cfg.fill:
                occ = fill_gaps(occ, OCCWORLD_FREE_LABEL, cfg.fill_min_neighbors,
                                cfg.fill_iterations)
            out[t] = occ
        return out

    def metainfo(self, h: str, split: str, stats: dict) -> dict:
        """Index ``metainfo`` (the keys of the PLATEAU converter plus provenance)."""
        cfg = self.cfg
        return index_metainfo(
            cfg.dataset_name, tuple(OCC3D_NUSCENES_CLASSES), OCCWORLD_FREE_LABEL,
            cfg.point_cloud_range, cfg.voxel_size, cfg.grid_size, 'ego', cfg.frame_rate_hz,
            split, h, CONVERTER_VERSION, cfg.to_dict(),
            sessions={self.session: dict(split='train+val', frames=len(self.frames),
                                         log=cfg.log_name, kind='nuscenes_keyframes')},
            split_note=('one real scene of %d keyframes: the same session is in the train '
                        'and the val index (a 4 + 6 frame window needs 10 of them), so val '
                        'measures fit, not generalisation' % len(self.frames)),
            aggregation_stats=stats, attribution=NUSCENES_ATTRIBUTION)

    def convert(self, out_dir: str, overwrite: bool = False) -> dict:
        """Build and write the session and the two index files.

        Args:
            out_dir (str): output data root.
            overwrite (bool): replace an existing session folder / index files of this
                converter (other entries of ``out_dir`` are left alone).

        Returns:
            dict: summary (``out_dir``, ``session``, ``frames``, ``seconds``, ``bytes``,
            ``config_hash``, aggregation stats, occupied voxels per frame).

        Raises:
            FileExistsError: outputs exist and ``overwrite`` is False (paths named).
        """
        t0 = time.perf_counter()
        if os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise FileExistsError(f'output path {out_dir} exists and is not a folder')
        os.makedirs(out_dir, exist_ok=True)
        session_dir = os.path.join(out_dir, self.session)
        existing = [p for p in [session_dir] + [os.path.join(out_dir, n)
                                                for n in INDEX_FILES.values()]
                    if os.path.exists(p)]
        if existing and not overwrite:
            raise FileExistsError(f'outputs exist: {existing}; pass --overwrite to replace them')
        scene = aggregate_sequence(self.frames, self.cfg)
        occ = self.build_occupancy(scene)
        poses = self.poses_13d()
        t_first = self.frames[0].timestamp_us
        tmp_dir = tempfile.mkdtemp(prefix=f'.{self.session}.', dir=out_dir)
        entries = []
        try:
            make_session_dirs(tmp_dir, lidar=True)
            for i, frame in enumerate(self.frames):
                ts = (frame.timestamp_us - t_first) * 1e-6
                pose = pose_json(poses[i], ts, dict(
                    timestamp_us=frame.timestamp_us, ego_pose_token=frame.ego_pose.get('token'),
                    frame='nuScenes global (map) frame, ego = rear-axle centre'))
                lidar = np.concatenate([apply_transform(frame.lidar2ego, frame.points[:, :3]),
                                        frame.points[:, 3:4]], axis=1).astype(np.float32)
                entry = write_frame(out_dir, self.session, i, occ[i], lidar, pose,
                                    session_dir=tmp_dir)
                entry.update(token=frame.ego_pose.get('token'), source_frame=frame.index)
                entries.append(entry)
            if os.path.exists(session_dir):
                shutil.rmtree(session_dir)
            os.replace(tmp_dir, session_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        h = config_hash(self.cfg, self.seq_dir)
        for split, name in INDEX_FILES.items():
            write_index(os.path.join(out_dir, name), self.metainfo(h, split, scene.stats),
                        entries)
        occupied = (occ != OCCWORLD_FREE_LABEL).reshape(len(occ), -1).sum(1)
        summary = dict(out_dir=out_dir, session=self.session, frames=len(self.frames),
                       seconds=round(time.perf_counter() - t0, 2),
                       bytes=dir_size(session_dir),
                       config_hash=h, stats=scene.stats,
                       occupied_voxels=[int(x) for x in occupied])
        logger.info('wrote %s', summary)
        return summary


def convert_nuscenes_sequence(seq_dir: str, out_dir: str,
                              cfg: Optional[NuScenesOccConfig] = None,
                              overwrite: bool = False) -> dict:
    """Convert a nuScenes keyframe folder (see :class:`NuScenesOccConverter`).

    Args:
        seq_dir (str): input folder.
        out_dir (str): output data root.
        cfg (NuScenesOccConfig | None): options (default: the Occ3D grid).
        overwrite (bool): replace previous outputs of this converter.

    Returns:
        dict: summary of what was written.
    """
    return NuScenesOccConverter(seq_dir, cfg).convert(out_dir, overwrite)
