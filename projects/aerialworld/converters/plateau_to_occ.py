"""PLATEAU CityGML -> AerialWorld occupancy sessions (pipeline and writer).

Usage (see ``tools/data_converter/plateau_to_occ.py`` for the CLI)::

    cfg = ConverterConfig(grid='tokyo', num_drone_sessions=6, num_rover_sessions=2)
    summary = convert_plateau(['data/plateau/ota_haneda'], 'data/tokyo', cfg)

Steps: read every ``*.gml`` of the tile folders (identical files shared by several tiles are
read once), group the objects into sites (:func:`.scene.group_into_sites`), triangulate each
site (:class:`.scene.SceneMesh`), plan sessions (drone survey / orbit / random walk at several
altitudes, rovers on the roads), simulate their trajectories, voxelise every site once for the
output grid (:class:`.scene.GlobalSemanticGrid`), then for every frame gather the ego grid,
cast a LiDAR sweep and write the session format of the contract
(``docs/aerialworld_data_and_model_contract.md``) and the two index files
``aerialworld_infos_{train,val}.pkl``. Sessions are split into train / val by session.
Everything is deterministic for a given seed. The options (:class:`ConverterConfig`) and
session plans live in :mod:`.plateau_config` and are re-exported here.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from projects.aerialworld.datasets.classes import (PLATEAU_FREE_LABEL,
                                                   PLATEAU_TRAFFIC_FREE_LABEL, plateau_classes)
from projects.aerialworld.datasets.session_io import (INDEX_FILES, dir_size,
                                                      index_metainfo, make_session_dirs,
                                                      pose_json, remove_on_failure,
                                                      write_frame, write_index,
                                                      write_split_indexes)
from projects.aerialworld.datasets.session_io import config_hash as _hash
from projects.aerialworld.datasets.session_io import \
    prepare_output_dir as _prepare_output_dir
from projects.common.utils.io import sha256_file
from .citygml import CityGMLError, ParsedCityGML, read_citygml
from .grid import GlobalSemanticGrid
from .lidar import LidarSimulator
from .mesh import SceneMesh, group_into_sites
from .plateau_config import ConverterConfig, SessionPlan, find_gml_files
from .traffic import EgoPath, TrafficResult, simulate_traffic
from .traffic_boxes import annotation_record, voxelise_boxes
from .traffic_roads import TrafficMap
from .trajectories import (DRONE_KINDS, ROVER_KIND, RoadsTooNarrowError, SurfaceModel,
                           Trajectory, drivable_parts, drone_trajectory, rover_trajectory)

logger = logging.getLogger(__name__)

#: Bump when the output for the same options and inputs changes (it is part of the config
#: hash, so ``prepare_bundled_data.py`` rebuilds). 1.1: CRS from srsName, per-site metric
#: frame, plinths without TIN labelled terrain, zero-height roads left out of the datum,
#: railways / tracks / squares not driven on.
CONVERTER_VERSION = 'plateau_to_occ/1.1'
SESSION_PREFIXES = ('drone_', 'rover_')
#: Distance (m) a rover keeps from the road edge (:func:`.trajectories.rover_trajectory`).
ROVER_MARGIN = 1.0

__all__ = ['CONVERTER_VERSION', 'INDEX_FILES', 'SESSION_PREFIXES', 'ConverterConfig',
           'SessionPlan', 'PlateauOccupancyConverter', 'find_gml_files', 'config_hash',
           'pose_record', 'write_frame', 'write_index', 'prepare_output_dir', 'convert_plateau']


@dataclass
class Site:
    """A prepared site: meshes, ray caster and (lazily) the voxel grid."""

    mesh: SceneMesh
    lidar: LidarSimulator
    dsm: SurfaceModel
    grid: Optional[GlobalSemanticGrid] = None
    prep_seconds: float = 0.0


def config_hash(cfg: ConverterConfig, tile_dirs: Sequence[str]) -> str:
    """Hash of the converter version, the options and the content of the input files.

    Args:
        cfg (ConverterConfig): options.
        tile_dirs (Sequence[str]): input folders.

    Returns:
        str: hex sha256 (stored as ``metainfo['config_hash']``).
    """
    return _hash(CONVERTER_VERSION, cfg.to_dict(),
                 (f'{tile}/{os.path.basename(f)}:{sha256_file(f)}'
                  for tile, files in find_gml_files(tile_dirs) for f in files))


class PlateauOccupancyConverter:
    """Converts PLATEAU tiles into AerialWorld occupancy sessions.

    Args:
        tile_dirs (Sequence[str]): folders of CityGML files (one tile each).
        cfg (ConverterConfig): options.

    Raises:
        FileNotFoundError / CityGMLError: a missing folder / file or a corrupt file (named).
    """

    def __init__(self, tile_dirs: Sequence[str], cfg: Optional[ConverterConfig] = None):
        self.cfg = cfg or ConverterConfig()
        self.cfg.validate()
        self.tile_dirs = list(tile_dirs)
        self.spec = self.cfg.grid_spec()
        self.sites: 'OrderedDict[str, Site]' = OrderedDict()
        #: site name -> name of the tile folder it comes from
        self.site_tiles: Dict[str, str] = {}
        self.parsed: List[ParsedCityGML] = []
        self.mesh_seconds = 0.0
        tiles = [t for t, _ in find_gml_files(self.tile_dirs)]
        unknown = sorted(set(self.cfg.heldout_tiles) - set(tiles))
        if unknown:
            raise ValueError(f'heldout_tiles {unknown} are not among the converted tile folders '
                             f'{tiles}')
        if set(self.cfg.heldout_tiles) >= set(tiles):
            raise ValueError(f'heldout_tiles={list(self.cfg.heldout_tiles)} leaves no tile to '
                             'train on')
        self._prepare_meshes()

    # ------------------------------------------------------------------ preparation
    def _prepare_meshes(self) -> None:
        t0 = time.perf_counter()
        seen: Dict[str, str] = {}
        for tile, files in find_gml_files(self.tile_dirs):
            parsed = []
            for f in files:
                digest = sha256_file(f)
                if digest in seen:
                    logger.info('%s is identical to %s; read once', f, seen[digest])
                    continue
                seen[digest] = f
                p = read_citygml(f)
                if not p.objects:
                    logger.warning('%s holds no usable city object', f)
                parsed.append(p)
            self.parsed.extend(parsed)
            for site_objs in group_into_sites(tile, parsed, self.cfg.site_gap_m,
                                              self.cfg.frame):
                mesh = SceneMesh.build(site_objs)
                area = mesh.flight_area(250.0)
                dsm = SurfaceModel(*mesh.surface_height_map(area, 1.0), 1.0).dilated(4.0)
                self.sites[mesh.name] = Site(mesh, LidarSimulator(mesh), dsm)
                self.site_tiles[mesh.name] = tile
        if not self.sites:
            raise CityGMLError('no usable geometry in the files '
                               f'{[f for _, fs in find_gml_files(self.tile_dirs) for f in fs]}')
        self.mesh_seconds = time.perf_counter() - t0
        logger.info('mesh preparation: %d site(s) in %.1f s', len(self.sites),
                    self.mesh_seconds)

    def prepare_grid(self, site_name: str, area: np.ndarray) -> GlobalSemanticGrid:
        """Voxelise a site once for the output grid over ``area`` (xmin, ymin, xmax, ymax)."""
        site = self.sites[site_name]
        t0 = time.perf_counter()
        site.grid = GlobalSemanticGrid(site.mesh, self.spec, area, self.cfg.xy_resolution)
        site.prep_seconds = time.perf_counter() - t0
        return site.grid

    # ------------------------------------------------------------------ planning
    def heldout_site(self, site_name: str) -> bool:
        """Whether a site comes from a held-out tile (:attr:`ConverterConfig.heldout_tiles`)."""
        return self.site_tiles[site_name] in self.cfg.heldout_tiles

    def plan_sessions(self) -> List[SessionPlan]:
        """Sessions to simulate (deterministic), with their split.

        Drone sessions cycle through the kinds and are spread over the sites by a smooth
        weighted round robin (sites with structures weigh 3, others 1); rover sessions go to
        the sites with roads. Sites of held-out tiles get none of these: the held-out sessions
        (``num_heldout_*_sessions``, named ``drone_heldout_<kind>_<NNN>`` /
        ``rover_heldout_<NNN>``) are planned the same way over those sites only, after the
        others (so adding a held-out tile leaves the seeds of the other sessions unchanged),
        and all go to the val split with ``val_set='heldout_tile'``.
        """
        cfg = self.cfg
        plans: List[SessionPlan] = []
        train_sites = [n for n in self.sites if not self.heldout_site(n)]
        self._plan_group(plans, train_sites, cfg.num_drone_sessions, cfg.num_rover_sessions,
                         '')
        self._assign_splits(plans)
        if cfg.heldout_tiles:
            held = [n for n in self.sites if self.heldout_site(n)]
            first = len(plans)
            self._plan_group(plans, held, cfg.num_heldout_drone_sessions,
                             cfg.num_heldout_rover_sessions, 'heldout_')
            for p in plans[first:]:
                p.split, p.val_set = 'val', 'heldout_tile'
        return plans

    def _plan_group(self, plans: List[SessionPlan], sites: Sequence[str], num_drone: int,
                    num_rover: int, tag: str) -> None:
        """Append ``num_drone`` drone and ``num_rover`` rover sessions over ``sites``."""
        cfg = self.cfg
        weights = {n: (3.0 if self.sites[n].mesh.structure_categories() else 1.0)
                   for n in sites}
        current = dict.fromkeys(weights, 0.0)
        total = sum(weights.values())
        counters: Counter = Counter()
        for i in range(num_drone if sites else 0):
            for n in current:
                current[n] += weights[n]
            site = max(current, key=lambda n: (current[n], -list(current).index(n)))
            current[site] -= total
            kind = DRONE_KINDS[i % len(DRONE_KINDS)]
            alt = cfg.drone_altitudes[(i // len(DRONE_KINDS) + i % len(DRONE_KINDS))
                                      % len(cfg.drone_altitudes)]
            # 'drone_survey' -> drone_survey_000 / drone_heldout_survey_000
            name = f"drone_{tag}{kind[len('drone_'):]}_{counters[kind]:03d}"
            counters[kind] += 1
            plans.append(SessionPlan(name, kind, site, len(plans), float(alt)))
        road_sites = [n for n in self.rover_sites() if n in sites] if num_rover else []
        if num_rover and not road_sites:
            logger.warning('no %ssite has roads a rover can drive on: the %d rover session(s) '
                           'are skipped', 'held-out ' if tag else '', num_rover)
        elif road_sites:
            for i in range(num_rover):
                plans.append(SessionPlan(f'rover_{tag}{i:03d}', ROVER_KIND,
                                         road_sites[i % len(road_sites)], len(plans)))

    def rover_sites(self) -> List[str]:
        """Sites with roads wide enough for a rover (``tran:Road`` polygons only).

        A site whose road polygons leave no drivable area once :data:`ROVER_MARGIN` is kept
        from their edges is left out with a warning naming its files (the run goes on).
        """
        out = []
        for name, site in self.sites.items():
            if site.mesh.road_area is None:
                continue
            if drivable_parts(site.mesh.road_area, ROVER_MARGIN):
                out.append(name)
            else:
                logger.warning('%s: the roads of site %s are too narrow for a rover (%.1f m '
                               'margin from the edges); no rover session there',
                               ', '.join(site.mesh.sources), name, ROVER_MARGIN)
        return out

    def _assign_splits(self, plans: List[SessionPlan]) -> None:
        """Mark about ``val_fraction`` of the sessions as val, whole sessions only.

        The number of val sessions is ``round(val_fraction * N)`` (at least 1 when N >= 2);
        they go first one per kind (rover first, then the drone kinds), then to the kinds
        furthest below their share; every kind keeps at least one train session. Which
        session of a kind is chosen is random (seeded).
        """
        n = len(plans)
        if self.cfg.val_fraction <= 0 or n < 2:
            return
        n_val = max(1, int(round(self.cfg.val_fraction * n)))
        order = [ROVER_KIND] + list(DRONE_KINDS)
        groups = {k: [p for p in plans if p.kind == k] for k in order}
        groups = {k: g for k, g in groups.items() if len(g) >= 2}
        given = dict.fromkeys(groups, 0)
        for k in groups:
            if n_val == sum(given.values()):
                break
            given[k] = 1
        while sum(given.values()) < n_val:
            open_kinds = [k for k in groups if given[k] < len(groups[k]) - 1]
            if not open_kinds:
                break
            k = max(open_kinds, key=lambda k_: (self.cfg.val_fraction * len(groups[k_])
                                                - given[k_], -order.index(k_)))
            given[k] += 1
        rng = np.random.default_rng([self.cfg.seed, 7919])
        for k, g in groups.items():
            for j in rng.permutation(len(g))[:given[k]]:
                g[j].split, g[j].val_set = 'val', 'heldout_session'

    def simulate(self, plan: SessionPlan) -> Trajectory:
        """Trajectory of a planned session (deterministic given the seed and the plan)."""
        cfg = self.cfg
        site = self.sites[plan.site]
        rng = np.random.default_rng([cfg.seed, plan.index])
        if plan.kind == ROVER_KIND:
            return rover_trajectory(rng, site.mesh.road_area, cfg.frames_per_session,
                                    cfg.frame_rate_hz, ground_height=site.mesh.ground_height,
                                    margin=ROVER_MARGIN)
        anchors = site.mesh.anchors if len(site.mesh.anchors) else None
        return drone_trajectory(plan.kind, rng, site.mesh.flight_area(20.0), plan.altitude,
                                cfg.frames_per_session, cfg.frame_rate_hz, anchors=anchors,
                                dsm=site.dsm, clearance=cfg.drone_clearance)

    # ------------------------------------------------------------------ frames
    def simulate_traffic(self, plan: SessionPlan, traj: Trajectory) -> TrafficResult:
        """Moving agents around a session (deterministic given the seeds and the plan).

        The traffic area is the session's path plus the grid radius and 10 m; a rover's path is
        kept clear (:class:`.traffic.EgoPath`), other drones keep their distance from an ego
        drone. The seed is ``[traffic.seed, session index]``.
        """
        tcfg = self.cfg.traffic_config()
        site = self.sites[plan.site]
        reach = self.spec.radius + 10.0
        xy = traj.positions[:, :2]
        area = np.concatenate([xy.min(0) - reach, xy.max(0) + reach])
        tmap = TrafficMap.from_scene(site.mesh, area, tcfg.resolution)
        ego = EgoPath('rover' if plan.kind == ROVER_KIND else 'drone', traj.timestamps,
                      traj.positions, traj.yaw)
        return simulate_traffic(tmap, tcfg, traj.timestamps, ego, f'{plan.site}/{plan.name}',
                                rng_key=[plan.index])

    def render_frame(self, plan: SessionPlan, traj: Trajectory, i: int,
                     traffic: Optional[TrafficResult] = None
                     ) -> Tuple[np.ndarray, Optional[np.ndarray], dict, Optional[dict]]:
        """Occupancy, LiDAR, pose record and agent annotations of frame ``i`` of a session.

        With traffic the static grid's free label becomes the traffic class list's, the agents
        are voxelised over free voxels (:func:`.traffic_boxes.voxelise_boxes`) and added to
        the LiDAR's scene.

        Returns:
            tuple: ``occupancy`` (X, Y, Z) uint8, ``lidar`` (N, 4) float32 or None,
            ``pose`` dict in the contract's JSON layout, ``annotations`` dict
            (:func:`.traffic_boxes.annotation_record`) or None without traffic.
        """
        site = self.sites[plan.site]
        if site.grid is None:
            raise RuntimeError(f'site {plan.site} has no prepared grid; call prepare_grid')
        p = traj.positions[i]
        occ = site.grid.ego_occupancy(p[0], p[1], traj.yaw[i])
        agents = traffic.frame(i) if traffic is not None else None
        n_vox = None
        if agents is not None:
            occ[occ == PLATEAU_FREE_LABEL] = PLATEAU_TRAFFIC_FREE_LABEL
            spec = self.spec
            n_vox = voxelise_boxes(occ, agents, spec.point_cloud_range, spec.voxel_size,
                                   p[:2], float(traj.yaw[i]), PLATEAU_TRAFFIC_FREE_LABEL)
        lidar = n_pts = None
        if self.cfg.lidar:
            spec = self.cfg.lidar_spec('rover' if plan.kind == ROVER_KIND else 'drone')
            lidar, _, box_idx = site.lidar.scan_with_agents(p, traj.rotation_matrix(i), spec,
                                                            agents)
            if agents is not None:
                n_pts = np.bincount(box_idx[box_idx >= 0], minlength=len(agents))
        ann = None
        if agents is not None:
            ann = annotation_record(agents, float(traj.timestamps[i]), self.classes, p[:2],
                                    float(p[2]), float(traj.yaw[i]), n_pts, n_vox)
        return occ, lidar, pose_record(traj, i), ann

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class names of the output (with the dynamic classes when traffic is on)."""
        return plateau_classes(self.cfg.traffic is not None)[0]

    # ------------------------------------------------------------------ writing
    def convert(self, out_dir: str, overwrite: bool = False) -> dict:
        """Simulate and write every session and the index files.

        Args:
            out_dir (str): output folder (created; must be empty unless ``overwrite``).
            overwrite (bool): remove previous converter outputs in ``out_dir`` first.

        Returns:
            dict: summary (sessions, frames, seconds, sizes).

        Raises:
            FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
            ValueError: every planned session was skipped (no output folder is left).

        A tile whose roads are too narrow for a rover skips its rover sessions with a warning
        naming the files; a run that fails leaves no output folder it created.
        """
        t0 = time.perf_counter()
        if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or
                                        (os.listdir(out_dir) and not overwrite)):
            prepare_output_dir(out_dir, overwrite)  # refuses (names the folder) before any work
        plans = self.plan_sessions()
        trajs = {}
        for p in plans:
            try:
                trajs[p.name] = self.simulate(p)
            except RoadsTooNarrowError as exc:
                logger.warning('%s: rover session %s skipped: %s',
                               ', '.join(self.sites[p.site].mesh.sources), p.name, exc)
        plans = [p for p in plans if p.name in trajs]
        if not plans:
            raise ValueError('nothing to convert: every session was skipped (files: '
                             f'{[f for s in self.sites.values() for f in s.mesh.sources]})')
        with remove_on_failure(out_dir):
            prepare_output_dir(out_dir, overwrite)
            return self._write(out_dir, plans, trajs, t0)

    def _write(self, out_dir: str, plans: List[SessionPlan], trajs: Dict[str, Trajectory],
               t0: float) -> dict:
        """Voxelise the sites, render and write every frame and the index files."""
        # one-time voxelisation per site, over what its sessions can see
        radius = self.spec.radius + 2.0
        prep = 0.0
        for site_name in self.sites:
            pos = [trajs[p.name].positions[:, :2] for p in plans if p.site == site_name]
            if not pos:
                continue
            pos = np.concatenate(pos)
            area = np.concatenate([pos.min(0) - radius, pos.max(0) + radius])
            self.prepare_grid(site_name, area)
            prep += self.sites[site_name].prep_seconds
        t_frames = time.perf_counter()
        entries = {'train': [], 'val': []}
        n_frames = 0
        with_traffic = self.cfg.traffic is not None
        self.traffic_summaries: Dict[str, dict] = {}
        for k, plan in enumerate(plans):
            traj = trajs[plan.name]
            traffic = None
            if with_traffic:
                t_sim = time.perf_counter()
                traffic = self.simulate_traffic(plan, traj)
                self.traffic_summaries[plan.name] = traffic.summary()
                logger.info('traffic of session %s (%d/%d): %s in %.1f s', plan.name, k + 1,
                            len(plans), self.traffic_summaries[plan.name],
                            time.perf_counter() - t_sim)
            make_session_dirs(os.path.join(out_dir, plan.name), self.cfg.lidar, with_traffic)
            t_sess = time.perf_counter()
            for i in range(len(traj)):
                occ, lidar, pose, ann = self.render_frame(plan, traj, i, traffic)
                entry = write_frame(out_dir, plan.name, i, occ, lidar, pose, annotations=ann)
                if plan.val_set is not None:
                    entry['val_set'] = plan.val_set
                entries[plan.split].append(entry)
                n_frames += 1
            done = time.perf_counter() - t_frames
            eta = done / (k + 1) * (len(plans) - k - 1)
            print(f'[plateau_to_occ] {os.path.basename(os.path.normpath(out_dir))}: session '
                  f'{k + 1}/{len(plans)} {plan.name} ({plan.site}, {plan.split}'
                  f'{"/" + plan.val_set if plan.val_set else ""}) {len(traj)} frames in '
                  f'{time.perf_counter() - t_sess:.1f} s; ETA {eta:.0f} s', flush=True)
        frame_seconds = time.perf_counter() - t_frames
        h = config_hash(self.cfg, self.tile_dirs)
        write_split_indexes(out_dir, entries, lambda split: self.metainfo(plans, h, split))
        summary = dict(
            out_dir=out_dir, sessions=len(plans),
            train_sessions=sum(p.split == 'train' for p in plans),
            val_sessions=sum(p.split == 'val' for p in plans),
            heldout_tile_sessions=sum(p.val_set == 'heldout_tile' for p in plans),
            frames=n_frames,
            mesh_seconds=round(self.mesh_seconds, 2), grid_seconds=round(prep, 2),
            frame_seconds=round(frame_seconds, 2),
            frames_per_second=round(n_frames / max(frame_seconds, 1e-9), 2),
            total_seconds=round(time.perf_counter() - t0 + self.mesh_seconds, 2),
            bytes=dir_size(out_dir), config_hash=h)
        logger.info('wrote %s', summary)
        return summary

    def metainfo(self, plans: Sequence[SessionPlan], h: str, split: str) -> dict:
        """Index ``metainfo`` (contract keys plus provenance)."""
        spec = self.spec
        classes, free_label, _ = plateau_classes(self.cfg.traffic is not None)
        summaries = getattr(self, 'traffic_summaries', {})
        return index_metainfo(
            self.cfg.dataset_name, classes, free_label,
            spec.point_cloud_range, spec.voxel_size, spec.grid_size, 'ground',
            self.cfg.frame_rate_hz, split, h, CONVERTER_VERSION, self.cfg.to_dict(),
            sites={n: dict(s.mesh.frame.to_dict(),
                           sources=[_tile_relative(f) for f in s.mesh.sources],
                           ground_synthesized=s.mesh.ground_synthesized)
                   for n, s in self.sites.items()},
            sessions={p.name: dict(site=p.site, kind=p.kind, split=p.split,
                                   altitude=p.altitude,
                                   **({'val_set': p.val_set} if p.val_set else {}),
                                   **({'traffic': summaries[p.name]}
                                      if p.name in summaries else {})) for p in plans},
            attribution='出典：国土交通省 PLATEAU (MLIT Japan, PLATEAU open data)')


def pose_record(traj: Trajectory, i: int) -> dict:
    """The pose JSON of frame ``i`` of a trajectory (:func:`.session_io.pose_json`).

    Args:
        traj (Trajectory): the session's trajectory.
        i (int): frame index.

    Returns:
        dict: ``pose_13d`` (13 floats), ``timestamp`` (s), ``position`` {x, y, z},
        ``orientation`` {x, y, z, w}, ``velocity`` {linear {x, y, z}, angular {x, y, z}}.
    """
    return pose_json(traj.poses_13d()[i], traj.timestamps[i])


def prepare_output_dir(out_dir: str, overwrite: bool,
                       sessions: Optional[Sequence[str]] = None) -> None:
    """:func:`.session_io.prepare_output_dir` with the PLATEAU session prefixes."""
    _prepare_output_dir(out_dir, overwrite, sessions, SESSION_PREFIXES)


def _tile_relative(path: str) -> str:
    """``<tile folder>/<file name>`` of a source file (machine-independent provenance)."""
    return '/'.join([os.path.basename(os.path.dirname(os.path.abspath(path))),
                     os.path.basename(path)])


def convert_plateau(tile_dirs: Sequence[str], out_dir: str,
                    cfg: Optional[ConverterConfig] = None, overwrite: bool = False) -> dict:
    """Convert PLATEAU tiles into AerialWorld sessions (see :class:`PlateauOccupancyConverter`).

    Args:
        tile_dirs (Sequence[str]): folders of ``*.gml`` files.
        out_dir (str): output data root.
        cfg (ConverterConfig | None): options (defaults: tokyo grid).
        overwrite (bool): replace previous outputs in ``out_dir``.

    Returns:
        dict: summary of what was written.
    """
    return PlateauOccupancyConverter(tile_dirs, cfg).convert(out_dir, overwrite)
