"""UAVScenes LiDAR sequences -> AerialWorld occupancy sessions.

UAVScenes (Wang et al., "UAVScenes: A Multi-Modal Dataset for UAVs", ICCV 2025) adds per-point
LiDAR labels, per-pixel image labels and 6-DoF poses to the MARS-LVIG drone sequences. The
release layout this module reads (see ``docs/aerialworld_uavscenes.md`` for what is certain and
what is assumed)::

    <root>/
      interval5_CAM_LIDAR/[interval5_CAM_LIDAR/]       zip wrapper folder(s), optional
        interval5_<scene>/                             e.g. interval5_AMtown01
          interval5_CAM/<image_ts>.jpg                 optional, not read
          interval5_LIDAR/image<image_ts>_lidar<lidar_ts>.txt   ASCII, one point per row:
                                                       x y z [intensity ...] (metres)
          sampleinfos_interpolated.json                [{"OriginalImageName": "<ts>.jpg",
                                                         "T4x4": 4x4 camera-to-world}, ...]
      interval5_LIDAR_label/[interval5_LIDAR_label/]
        interval5_<scene>/interval5_LIDAR_label_id/<same stem as the scan>.txt
                                                       one UAVScenes class id per row,
                                                       row-aligned with the scan

``interval1_*`` (every frame) works the same way. ``sampleinfos_interpolated.json`` may hold
more poses than there are scans (poses at the camera rate, scans at key frames): scans are
matched to poses by their image timestamp, and the dense pose stream gives the velocities.

Pipeline per sequence (one sequence = one session, split by sequence):

1. read the poses (camera-to-world ``T4x4``), the scans and their labels;
2. put every scan in the world frame, ``p_w = T4x4 @ sensor_to_pose @ p`` (``sensor_to_pose``
   is the LiDAR-to-camera extrinsic, identity when the scans are already in the pose frame);
3. body frame of the drone (x forward, y left, z up) from the pose frame with the fixed
   rotation ``pose_to_body`` (preset ``'nadir_camera'``: image up = forward, optical axis down);
4. session frame: the world frame shifted so that the first key frame is at x = y = 0 and
   z = 0 is the ground datum (a low percentile of all point heights of the sequence);
5. per key frame, aggregate the labelled points of the scans within ``aggregate_window`` key
   frames (static scene, world frame) and voxelise them in the yaw-aligned ego grid (vectorised
   majority vote per voxel; unobserved and empty voxels are ``free``);
6. write the session format of ``DESIGN.md`` §3 (occupancy npz, pose JSON with ``pose_13d``,
   LiDAR ``.npy`` in the ego body frame) with atomic writes, and the index files
   ``aerialworld_infos_{train,val}.pkl``.

Modules: :mod:`.uavscenes_io` (layout, poses, scans, labels), :mod:`.uavscenes_geometry`
(transforms, ego grid, 13-D poses), :mod:`.voxelize` (majority vote, shared with the nuScenes
converter), :mod:`projects.aerialworld.datasets.session_io` (writing); this module holds the
options and the converter and re-exports the public names.

UAVScenes class ids are mapped to the AerialWorld classes with
:data:`~projects.aerialworld.datasets.classes.UAVSCENES_TO_AERIALWORLD`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from projects.aerialworld.datasets.classes import (PLATEAU_CLASSES, PLATEAU_FREE_LABEL,
                                                   UAVSCENES_CLASSES, UAVSCENES_TO_AERIALWORLD)
from projects.aerialworld.datasets.session_io import (INDEX_FILES, dir_size,  # noqa: F401
                                                      index_metainfo,
                                                      make_session_dirs, prepare_output_dir,
                                                      write_frame, write_split_indexes)
from projects.aerialworld.datasets.session_io import config_hash as _hash
from projects.common.utils.io import sha256_file
from .grid import GridSpec
from .plateau_to_occ import pose_record
from .trajectories import Trajectory
from .uavscenes_geometry import (body_yaw, ego_grid_indices, trajectory_from_poses,
                                 transform_points)
from .uavscenes_io import (IGNORE_LABEL, POSES_FILE, SCAN_NAME, UAVScenesError, UAVScenesScan,
                           UAVScenesSequence, find_sequences, map_labels, read_sampleinfos,
                           read_scan, uavscenes_label_lut)
from .voxelize import voxelize_labels as _voxelize_labels

logger = logging.getLogger(__name__)

__all__ = [
    'CONVERTER_VERSION', 'POSES_FILE', 'IGNORE_LABEL', 'SCAN_NAME', 'UAVSCENES_GRID',
    'POSE_TO_BODY_PRESETS', 'UAVSCENES_VAL_SCENES', 'UAVScenesError', 'UAVScenesScan',
    'UAVScenesSequence', 'UAVScenesConfig', 'UAVScenesConverter', 'SequenceData',
    'body_yaw', 'config_hash', 'convert_uavscenes', 'ego_grid_indices', 'find_sequences',
    'map_labels', 'read_sampleinfos', 'read_scan', 'trajectory_from_poses',
    'transform_points', 'uavscenes_label_lut', 'voxelize_labels'
]

CONVERTER_VERSION = 'uavscenes_to_occ/1.0'
#: Grid of ``configs/finetune_uavscenes.py`` (DESIGN.md §3): 200 x 200 x 120.
UAVSCENES_GRID = GridSpec((-40.0, -40.0, -10.0, 40.0, 40.0, 50.0), (0.4, 0.4, 0.5))

#: Pose-frame -> body-frame rotations (``p_body = R @ p_pose``). ``nadir_camera``: the pose
#: is an OpenCV camera (x right, y down in the image, z along the optical axis) looking
#: straight down with the top of the image towards the flight direction, so body x (forward)
#: = -camera y, body y (left) = -camera x, body z (up) = -camera z.
POSE_TO_BODY_PRESETS = {
    'identity': np.eye(3),
    'nadir_camera': np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]),
}

#: Sequences of the UAVScenes LiDAR semantic-segmentation test split (the release's
#: benchmark split, by sequence); used as the default val split when present.
UAVSCENES_VAL_SCENES = ('AMtown03', 'AMvalley03', 'HKairport_GNSS_Evening',
                        'HKisland_GNSS_Evening')


def voxelize_labels(ijk: np.ndarray, labels: np.ndarray, grid_size: Sequence[int],
                    free_label: int = PLATEAU_FREE_LABEL) -> np.ndarray:
    """Majority-vote occupancy of labelled voxel indices (:func:`.voxelize.voxelize_labels`)
    with the AerialWorld free label as default.

    Args:
        ijk (np.ndarray): (N, 3) int voxel indices, all inside ``grid_size``.
        labels (np.ndarray): (N,) uint8 labels (< ``free_label``; no ignore values).
        grid_size (Sequence[int]): (X, Y, Z).
        free_label (int): label of voxels without points.

    Returns:
        np.ndarray: (X, Y, Z) uint8; ties go to the smaller label.
    """
    return _voxelize_labels(ijk, labels, grid_size, free_label)


# ----------------------------------------------------------------------------- converter
@dataclass
class UAVScenesConfig:
    """Options of the UAVScenes converter (all stored in the index metainfo).

    Attributes:
        point_cloud_range (tuple): (6,) ego grid range (m): x, y relative to the ego (x along
            its heading), z above the session ground datum.
        voxel_size (tuple): (3,) metres.
        pose_to_body (str | list): a key of :data:`POSE_TO_BODY_PRESETS` or a 3x3 rotation
            ``p_body = R @ p_pose``.
        sensor_to_pose (list | None): 4x4 transform of the scan points into the pose frame
            (the LiDAR-to-camera extrinsic of the sequence); ``None`` = identity (scans already
            in the pose frame).
        aggregate_window (int | None): key frames on each side whose scans are merged into a
            frame's occupancy; ``None`` merges the whole sequence.
        ground_percentile (float): percentile of the sequence's point heights used as the
            ground datum (grid z = 0).
        max_pose_gap (float): largest allowed |scan image time - matched pose time| (s).
        min_frames (int): sequences with fewer labelled key frames are skipped (warned).
        val_scenes (tuple | None): sequences of the val split; ``None``: those of
            :data:`UAVSCENES_VAL_SCENES` that are present, else the last sequence (by name)
            when there are two or more.
        lidar (bool): write the per-frame scans (ego body frame).
        dataset_name (str): ``metainfo['dataset']``.
    """

    point_cloud_range: Tuple[float, ...] = UAVSCENES_GRID.point_cloud_range
    voxel_size: Tuple[float, ...] = UAVSCENES_GRID.voxel_size
    pose_to_body: Union[str, list] = 'nadir_camera'
    sensor_to_pose: Optional[list] = None
    aggregate_window: Optional[int] = 10
    ground_percentile: float = 1.0
    max_pose_gap: float = 0.05
    min_frames: int = 2
    val_scenes: Optional[Tuple[str, ...]] = None
    lidar: bool = True
    dataset_name: str = 'uavscenes'

    def grid_spec(self) -> GridSpec:
        """The output :class:`GridSpec`."""
        return GridSpec(tuple(float(v) for v in self.point_cloud_range),
                        tuple(float(v) for v in self.voxel_size))

    def body_rotation(self) -> np.ndarray:
        """(3, 3) pose-to-body rotation."""
        if isinstance(self.pose_to_body, str):
            if self.pose_to_body not in POSE_TO_BODY_PRESETS:
                raise ValueError(f'unknown pose_to_body preset {self.pose_to_body!r}; choose '
                                 f'one of {sorted(POSE_TO_BODY_PRESETS)} or give a 3x3 matrix')
            return POSE_TO_BODY_PRESETS[self.pose_to_body].copy()
        R = np.asarray(self.pose_to_body, np.float64).reshape(3, 3)
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-6 or np.linalg.det(R) < 0:
            raise ValueError(f'pose_to_body is not a rotation: {R.tolist()}')
        return R

    def sensor_transform(self) -> np.ndarray:
        """(4, 4) sensor-to-pose transform."""
        if self.sensor_to_pose is None:
            return np.eye(4)
        T = np.asarray(self.sensor_to_pose, np.float64).reshape(4, 4)
        R = T[:3, :3]
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.linalg.det(R) < 0:
            raise ValueError(f'sensor_to_pose is not a rigid transform: {T.tolist()}')
        return T

    def validate(self) -> None:
        """Raise ValueError on inconsistent options."""
        self.grid_spec()
        self.body_rotation()
        self.sensor_transform()
        if self.aggregate_window is not None and self.aggregate_window < 0:
            raise ValueError(f'aggregate_window must be >= 0 or None, got '
                             f'{self.aggregate_window}')
        if not 0.0 <= self.ground_percentile <= 100.0:
            raise ValueError(f'ground_percentile must be in [0, 100], got '
                             f'{self.ground_percentile}')
        if self.min_frames < 1:
            raise ValueError(f'min_frames must be >= 1, got {self.min_frames}')

    def to_dict(self) -> dict:
        """JSON-serialisable copy."""
        d = dataclasses.asdict(self)
        for k in ('point_cloud_range', 'voxel_size', 'val_scenes'):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


@dataclass
class SequenceData:
    """A sequence loaded for conversion (all arrays in the session frame).

    Attributes:
        name (str): session name.
        traj (Trajectory): key-frame trajectory (session frame, times from the first key frame).
        T_wb (np.ndarray): (T, 4, 4) body-to-session-world poses of the key frames.
        points (list[np.ndarray]): T arrays (N_t, 3) float64 labelled points (session frame).
        labels (list[np.ndarray]): T arrays (N_t,) uint8 AerialWorld labels.
        raw_points (list[np.ndarray]): T arrays (N_t', 4) float32 scans (session frame,
            x, y, z, intensity), every point including unlabelled ones.
        origin (np.ndarray): (3,) session origin in the release's world frame (m).
        t0 (float): absolute time of the first key frame (s).
        sources (list[str]): scan files, relative to the sequence folder's parent.
    """

    name: str
    traj: Trajectory
    T_wb: np.ndarray
    points: List[np.ndarray]
    labels: List[np.ndarray]
    raw_points: List[np.ndarray]
    origin: np.ndarray
    t0: float
    sources: List[str]


def config_hash(cfg: UAVScenesConfig, sequences: Sequence[UAVScenesSequence]) -> str:
    """Hash of the converter version, the options and the content of every input file."""
    def inputs():
        for seq in sequences:
            yield f'{seq.name}:{sha256_file(seq.poses_path)}'
            for s in seq.scans:
                yield os.path.basename(s.points_path)
                yield sha256_file(s.points_path)
                if s.label_path:
                    yield sha256_file(s.label_path)

    return _hash(CONVERTER_VERSION, cfg.to_dict(), inputs())


class UAVScenesConverter:
    """Converts UAVScenes sequences into AerialWorld occupancy sessions.

    Args:
        root (str): UAVScenes root (see the module docstring).
        cfg (UAVScenesConfig, optional): options.
        scenes (Sequence[str], optional): convert only these sequences (names without the
            ``interval<N>_`` prefix). Defaults to all.

    Raises:
        FileNotFoundError: missing root or requested sequence.
        UAVScenesError / ValueError: malformed files (named) or options.
    """

    def __init__(self, root: str, cfg: Optional[UAVScenesConfig] = None,
                 scenes: Optional[Sequence[str]] = None) -> None:
        self.cfg = cfg or UAVScenesConfig()
        self.cfg.validate()
        self.root = root
        self.spec = self.cfg.grid_spec()
        seqs = find_sequences(root)
        if scenes is not None:
            missing = sorted(set(scenes) - {s.name for s in seqs})
            if missing:
                raise FileNotFoundError(f'sequences {missing} not found under {root} (found '
                                        f'{[s.name for s in seqs]})')
            seqs = [s for s in seqs if s.name in set(scenes)]
        self.sequences = seqs

    # ------------------------------------------------------------------ loading
    def load_sequence(self, seq: UAVScenesSequence) -> Optional[SequenceData]:
        """Read a sequence and bring it into its session frame.

        Args:
            seq (UAVScenesSequence): the sequence.

        Returns:
            SequenceData | None: ``None`` (warned) when fewer than ``min_frames`` key frames
            have labels.

        Raises:
            UAVScenesError: a scan without a pose within ``max_pose_gap`` (named), or a
                malformed file.
        """
        cfg = self.cfg
        scans = [s for s in seq.scans if s.label_path is not None]
        if len(scans) < len(seq.scans):
            logger.warning('%s: %d of %d scans have no label file in %s; they are skipped',
                           seq.name, len(seq.scans) - len(scans), len(seq.scans),
                           seq.label_dir)
        if len(scans) < cfg.min_frames:
            logger.warning('%s: %d labelled key frames (< min_frames=%d), sequence skipped',
                           seq.name, len(scans), cfg.min_frames)
            return None
        times, T_wc, _ = read_sampleinfos(seq.poses_path)
        t_scan = np.array([s.time for s in scans])
        j = np.clip(np.searchsorted(times, t_scan), 1, len(times) - 1)
        j = np.where(np.abs(times[j - 1] - t_scan) <= np.abs(times[j] - t_scan), j - 1, j)
        gap = np.abs(times[j] - t_scan)
        if np.any(gap > cfg.max_pose_gap):
            bad = int(np.argmax(gap))
            raise UAVScenesError(f'{scans[bad].points_path}: no pose within '
                                 f'{cfg.max_pose_gap} s of image time {scans[bad].image_stamp} '
                                 f'in {seq.poses_path} (closest {gap[bad]:.3f} s away)')
        if len(np.unique(j)) != len(j):
            raise UAVScenesError(f'{seq.poses_path}: several scans of {seq.name} match the same '
                                 'pose')
        # body-to-world: R_wb = R_wc @ R_bc^T (p_body = R_bc @ p_cam)
        R_bc = cfg.body_rotation()
        T_wb_all = T_wc.copy()
        T_wb_all[:, :3, :3] = T_wc[:, :3, :3] @ R_bc.T
        T_ws = T_wc @ cfg.sensor_transform()  # sensor-to-world per pose

        pts_w, labs, raw = [], [], []
        for scan, k in zip(scans, j):
            xyz, inten, ids = read_scan(scan.points_path, scan.label_path)
            pw = transform_points(T_ws[k], xyz)
            lab = map_labels(ids)
            ok = lab != IGNORE_LABEL
            if not ok.all():
                logger.debug('%s: %d points with unknown class ids dropped', scan.label_path,
                             int((~ok).sum()))
            pts_w.append(pw[ok])
            labs.append(lab[ok])
            raw.append((pw, inten))
        all_z = np.concatenate([p[:, 2] for p in pts_w]) if pts_w else np.zeros(0)
        if len(all_z) == 0:
            raise UAVScenesError(f'{seq.folder}: no labelled point in any scan')
        datum = float(np.percentile(all_z, cfg.ground_percentile))
        origin = np.array([T_wb_all[j[0], 0, 3], T_wb_all[j[0], 1, 3], datum])
        shift = np.eye(4)
        shift[:3, 3] = -origin
        T_wb_all = shift @ T_wb_all
        traj = trajectory_from_poses(times, T_wb_all, j)
        base = os.path.dirname(seq.folder)
        return SequenceData(
            name=seq.name, traj=traj, T_wb=T_wb_all[j],
            points=[p - origin for p in pts_w], labels=labs,
            raw_points=[np.concatenate([p - origin, i[:, None]], axis=1).astype(np.float32)
                        for p, i in raw],
            origin=origin, t0=float(times[j[0]]),
            sources=[os.path.relpath(s.points_path, base) for s in scans])

    # ------------------------------------------------------------------ frames
    def frame_occupancy(self, data: SequenceData, i: int) -> np.ndarray:
        """Semantic occupancy of key frame ``i`` (aggregated scans, yaw-aligned ego grid).

        Args:
            data (SequenceData): the loaded sequence.
            i (int): key-frame index.

        Returns:
            np.ndarray: (X, Y, Z) uint8 labels, ``free`` where no point falls.
        """
        n = len(data.points)
        w = self.cfg.aggregate_window
        lo, hi = (0, n) if w is None else (max(0, i - w), min(n, i + w + 1))
        pts = np.concatenate(data.points[lo:hi])
        lab = np.concatenate(data.labels[lo:hi])
        ijk, keep = ego_grid_indices(pts, data.traj.positions[i], float(data.traj.yaw[i]),
                                     self.spec, z_datum=0.0)
        return voxelize_labels(ijk, lab[keep], self.spec.grid_size)

    @staticmethod
    def frame_lidar(data: SequenceData, i: int) -> np.ndarray:
        """Scan of key frame ``i`` in its ego body frame: (N, 4) float32 x, y, z, intensity."""
        T = data.T_wb[i]
        p = data.raw_points[i]
        body = (p[:, :3].astype(np.float64) - T[:3, 3]) @ T[:3, :3]
        return np.concatenate([body, p[:, 3:4]], axis=1).astype(np.float32)

    # ------------------------------------------------------------------ splits
    def assign_splits(self, names: Sequence[str]) -> Dict[str, str]:
        """``{session: 'train' | 'val'}``, whole sequences only (see ``val_scenes``)."""
        names = list(names)
        if self.cfg.val_scenes is not None:
            unknown = sorted(set(self.cfg.val_scenes) - set(names))
            if unknown:
                raise ValueError(f'val_scenes {unknown} are not among the converted sequences '
                                 f'{names}')
            val = set(self.cfg.val_scenes)
        else:
            val = set(UAVSCENES_VAL_SCENES) & set(names)
            if not val and len(names) >= 2:
                val = {sorted(names)[-1]}
        return {n: ('val' if n in val else 'train') for n in names}

    # ------------------------------------------------------------------ writing
    def metainfo(self, sessions: dict, h: str, split: str, rate: float) -> dict:
        """Index ``metainfo`` (contract keys plus provenance and the class mapping)."""
        spec = self.spec
        return index_metainfo(
            self.cfg.dataset_name, PLATEAU_CLASSES, PLATEAU_FREE_LABEL,
            spec.point_cloud_range, spec.voxel_size, spec.grid_size, 'ground', rate, split, h,
            CONVERTER_VERSION, self.cfg.to_dict(), sessions=sessions,
            class_mapping={str(k): dict(uavscenes=v, aerialworld=UAVSCENES_TO_AERIALWORLD[v])
                           for k, v in UAVSCENES_CLASSES.items()},
            attribution='UAVScenes (Wang et al., ICCV 2025), built on MARS-LVIG; '
                        'CC BY-NC-SA 4.0 (check the license of your input data)')

    def convert(self, out_dir: str, overwrite: bool = False) -> dict:
        """Convert every sequence and write the index files.

        Args:
            out_dir (str): output folder (created; must be empty unless ``overwrite``).
            overwrite (bool): remove previous outputs of this converter first.

        Returns:
            dict: summary (sessions per split, frames, seconds, bytes, config hash).

        Raises:
            FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
            UAVScenesError: no sequence could be converted, or a malformed file (named).
        """
        t0 = time.perf_counter()
        names = [s.name for s in self.sequences]
        prepare_output_dir(out_dir, overwrite, names, prefixes=())
        h = config_hash(self.cfg, self.sequences)
        loaded = [d for d in (self.load_sequence(s) for s in self.sequences) if d is not None]
        if not loaded:
            raise UAVScenesError(f'{self.root}: no sequence with at least '
                                 f'{self.cfg.min_frames} labelled key frames')
        splits = self.assign_splits([d.name for d in loaded])
        entries = {'train': [], 'val': []}
        sessions, dts = {}, []
        n_frames = 0
        for data in loaded:
            make_session_dirs(os.path.join(out_dir, data.name), self.cfg.lidar)
            for i in range(len(data.points)):
                occ = self.frame_occupancy(data, i)
                lidar = self.frame_lidar(data, i) if self.cfg.lidar else None
                entries[splits[data.name]].append(write_frame(
                    out_dir, data.name, i, occ, lidar, pose_record(data.traj, i)))
                n_frames += 1
            dts.extend(np.diff(data.traj.timestamps).tolist())
            sessions[data.name] = dict(
                split=splits[data.name], frames=len(data.points), t0=data.t0,
                origin=[float(v) for v in data.origin], sources=data.sources)
        rate = 1.0 / float(np.median(dts)) if dts else 1.0
        write_split_indexes(out_dir, entries, lambda split: self.metainfo(sessions, h, split,
                                                                          rate))
        summary = dict(out_dir=out_dir, sessions=len(loaded),
                       train_sessions=sum(v == 'train' for v in splits.values()),
                       val_sessions=sum(v == 'val' for v in splits.values()),
                       frames=n_frames, frame_rate_hz=round(rate, 3),
                       total_seconds=round(time.perf_counter() - t0, 2),
                       bytes=dir_size(out_dir),
                       config_hash=h)
        logger.info('wrote %s', summary)
        return summary


def convert_uavscenes(root: str, out_dir: str, cfg: Optional[UAVScenesConfig] = None,
                      scenes: Optional[Sequence[str]] = None, overwrite: bool = False) -> dict:
    """Convert UAVScenes sequences into AerialWorld sessions (see :class:`UAVScenesConverter`).

    Args:
        root (str): UAVScenes root.
        out_dir (str): output data root.
        cfg (UAVScenesConfig, optional): options (default: the finetune_uavscenes grid).
        scenes (Sequence[str], optional): sequences to convert (default: all).
        overwrite (bool): replace previous outputs in ``out_dir``.

    Returns:
        dict: summary of what was written.
    """
    return UAVScenesConverter(root, cfg, scenes).convert(out_dir, overwrite)
