"""Options and session plans of the PLATEAU converter (:mod:`.plateau_to_occ`)."""
from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

from .geodesy import FRAME_MODES, site_crs
from .grid import GRID_PRESETS, GridSpec
from .lidar import LIDAR_PRESETS, LidarSpec
from .traffic import TrafficConfig

__all__ = ['ConverterConfig', 'SessionPlan', 'find_gml_files', 'VAL_SETS']

#: Names of the val sets (``SessionPlan.val_set``, the index records' ``val_set``).
VAL_SETS = ('heldout_session', 'heldout_tile')


@dataclass
class ConverterConfig:
    """Options of the PLATEAU converter (all stored in the index metainfo).

    Attributes:
        grid (str | dict): a preset name of :data:`.scene.GRID_PRESETS` (``'tokyo'``,
            ``'test_local'``) or ``dict(point_cloud_range=[6], voxel_size=[3])``.
        num_drone_sessions (int): drone sessions (kinds cycle survey, orbit, random walk).
        num_rover_sessions (int): rover sessions (skipped when no site has roads).
        frames_per_session (int): frames per session (>= 2).
        frame_rate_hz (float): frames per second (the dense simulation runs at 20 Hz, so
            20 / frame_rate_hz must be an integer).
        drone_altitudes (tuple): nominal altitudes above the datum (m); sessions cycle
            through them (drones climb above obstacles regardless).
        drone_clearance (float): metres kept above the surface model.
        lidar (bool): write LiDAR sweeps.
        lidar_drone (str | dict): a preset of :data:`.scene.LIDAR_PRESETS` or LidarSpec kwargs.
        lidar_rover (str | dict): same, for rovers.
        val_fraction (float): share of sessions of each kind put in the val split.
        seed (int): random seed (trajectories and split).
        site_gap_m (float): objects farther apart than this form separate sites.
        dataset_name (str): ``metainfo['dataset']``.
        xy_resolution (float | None): column size of the global grid (default: voxel size).
        frame (str): metric frame of every site: ``'zone'`` (the JGD2011 plane rectangular
            zone chosen from the site's location), ``'local'`` (transverse Mercator centred
            on the site: true north, scale 1) or an explicit projected CRS
            (:func:`.geodesy.site_crs`).
        traffic (dict | None): moving agents (:class:`.traffic.TrafficConfig` keys, e.g.
            ``dict(num_vehicles=8, num_pedestrians=12, num_drones=2, seed=0)``); None (the
            default) converts the static city. With traffic the class list is
            :data:`~projects.aerialworld.datasets.classes.PLATEAU_TRAFFIC_CLASSES` (``free`` =
            9), agents are voxelised over free space, hit by the LiDAR, and their boxes are
            written per frame to ``<session>/annotations/<frame>.json``.
        heldout_tiles (tuple): names of tile folders (their base names) kept out of training:
            no train or session-split val session is planned on their sites; only the
            ``num_heldout_*`` sessions below fly / drive there, all in the val split with
            ``val_set='heldout_tile'`` (the other val sessions get ``'heldout_session'``).
            Empty (the default): no held-out tile, and the options (and config hash) are the
            ones of a conversion without this feature.
        num_heldout_drone_sessions (int): drone sessions on the held-out tiles' sites (kinds
            cycle survey, orbit, random walk as for the training sessions).
        num_heldout_rover_sessions (int): rover sessions there (skipped with a warning when no
            held-out site has roads a rover can drive on).
    """

    grid: Union[str, dict] = 'tokyo'
    num_drone_sessions: int = 6
    num_rover_sessions: int = 2
    frames_per_session: int = 20
    frame_rate_hz: float = 2.0
    drone_altitudes: Tuple[float, ...] = (20.0, 35.0, 50.0, 70.0, 90.0)
    drone_clearance: float = 5.0
    lidar: bool = True
    lidar_drone: Union[str, dict] = 'drone'
    lidar_rover: Union[str, dict] = 'rover'
    val_fraction: float = 0.2
    seed: int = 0
    site_gap_m: float = 300.0
    dataset_name: str = 'tokyo_plateau'
    xy_resolution: Optional[float] = None
    frame: str = 'zone'
    traffic: Optional[dict] = None
    heldout_tiles: Tuple[str, ...] = ()
    num_heldout_drone_sessions: int = 0
    num_heldout_rover_sessions: int = 0

    def grid_spec(self) -> GridSpec:
        """The output :class:`GridSpec`."""
        if isinstance(self.grid, str):
            if self.grid not in GRID_PRESETS:
                raise ValueError(f'unknown grid preset {self.grid!r}; choose one of '
                                 f'{sorted(GRID_PRESETS)} or pass point_cloud_range / '
                                 'voxel_size')
            return GRID_PRESETS[self.grid]
        return GridSpec(tuple(float(v) for v in self.grid['point_cloud_range']),
                        tuple(float(v) for v in self.grid['voxel_size']))

    def lidar_spec(self, which: str) -> LidarSpec:
        """LiDAR of ``'drone'`` or ``'rover'`` sessions."""
        spec = self.lidar_drone if which == 'drone' else self.lidar_rover
        if isinstance(spec, str):
            if spec not in LIDAR_PRESETS:
                raise ValueError(f'unknown LiDAR preset {spec!r}; choose one of '
                                 f'{sorted(LIDAR_PRESETS)}')
            return LIDAR_PRESETS[spec]
        spec = dict(spec)
        for k in ('elevations_deg', 'mount'):
            if k in spec:
                spec[k] = tuple(spec[k])
        return LidarSpec(**spec)

    def validate(self) -> None:
        """Raise ValueError on inconsistent options."""
        if self.frames_per_session < 2:
            raise ValueError(f'frames_per_session must be >= 2, got {self.frames_per_session}')
        if self.num_drone_sessions < 0 or self.num_rover_sessions < 0:
            raise ValueError('session counts must be >= 0')
        if self.num_drone_sessions + self.num_rover_sessions == 0:
            raise ValueError('nothing to convert: zero sessions requested')
        if self.num_heldout_drone_sessions < 0 or self.num_heldout_rover_sessions < 0:
            raise ValueError('num_heldout_drone_sessions / num_heldout_rover_sessions must be '
                             '>= 0')
        if not isinstance(self.heldout_tiles, (tuple, list)) or not all(
                isinstance(t, str) and t for t in self.heldout_tiles):
            raise ValueError('heldout_tiles must be a sequence of tile folder names, got '
                             f'{self.heldout_tiles!r}')
        if self.heldout_tiles and (self.num_heldout_drone_sessions +
                                   self.num_heldout_rover_sessions == 0):
            raise ValueError(f'heldout_tiles={list(self.heldout_tiles)} but no held-out session '
                             'is requested (num_heldout_drone_sessions / '
                             'num_heldout_rover_sessions)')
        if not self.heldout_tiles and (self.num_heldout_drone_sessions or
                                       self.num_heldout_rover_sessions):
            raise ValueError('num_heldout_*_sessions > 0 needs heldout_tiles (the tile folders '
                             'those sessions use)')
        step = 20.0 / self.frame_rate_hz
        if self.frame_rate_hz <= 0 or abs(step - round(step)) > 1e-6:
            raise ValueError(f'frame_rate_hz must divide 20 Hz, got {self.frame_rate_hz}')
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f'val_fraction must be in [0, 1), got {self.val_fraction}')
        if not self.drone_altitudes:
            raise ValueError('drone_altitudes is empty')
        self.grid_spec()
        self.lidar_spec('drone')
        self.lidar_spec('rover')
        if self.frame not in FRAME_MODES:
            site_crs(self.frame, 35.0, 139.0)  # raises ValueError on an unusable CRS
        if self.traffic is not None:
            tcfg = self.traffic_config()
            period = 1.0 / self.frame_rate_hz
            if abs(period / tcfg.dt - round(period / tcfg.dt)) > 1e-6:
                raise ValueError(f'traffic.dt={tcfg.dt} must divide the frame period '
                                 f'1 / frame_rate_hz = {1.0 / self.frame_rate_hz} s')

    def traffic_config(self) -> Optional[TrafficConfig]:
        """The validated :class:`.traffic.TrafficConfig`, or None without traffic."""
        return None if self.traffic is None else TrafficConfig.from_dict(self.traffic)

    def to_dict(self) -> dict:
        """JSON-serialisable copy."""
        d = dataclasses.asdict(self)
        d['drone_altitudes'] = list(self.drone_altitudes)
        if self.traffic is None:
            # static conversions keep the options (and the config hash) they had before
            # traffic existed, so existing data stays current
            del d['traffic']
        else:
            d['traffic'] = self.traffic_config().to_dict()
        if self.heldout_tiles:
            d['heldout_tiles'] = list(self.heldout_tiles)
        else:
            # conversions without a held-out tile keep their options (and config hash)
            for k in ('heldout_tiles', 'num_heldout_drone_sessions',
                      'num_heldout_rover_sessions'):
                del d[k]
        return d


@dataclass
class SessionPlan:
    """One session to simulate.

    Attributes:
        name (str): session folder name (``drone_<kind>_<NNN>`` or ``rover_<NNN>``).
        kind (str): trajectory kind.
        site (str): site name.
        index (int): global session index (seeds its random generator).
        altitude (float): nominal altitude (drones; 0 for rovers).
        split (str): ``'train'`` or ``'val'``.
        val_set (str | None): which val set a val session belongs to: ``'heldout_session'``
            (a session of a training tile's site kept out of training) or ``'heldout_tile'``
            (a session on a held-out tile, :attr:`ConverterConfig.heldout_tiles`); None for
            train sessions.
    """

    name: str
    kind: str
    site: str
    index: int
    altitude: float = 0.0
    split: str = 'train'
    val_set: Optional[str] = None


def find_gml_files(tile_dirs: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """List the CityGML files of tile folders.

    Args:
        tile_dirs (Sequence[str]): folders holding ``*.gml`` files.

    Returns:
        list: ``(tile_name, [files sorted])`` per folder.

    Raises:
        FileNotFoundError: a folder is missing or holds no ``.gml`` file (named).
    """
    out = []
    for d in tile_dirs:
        if not os.path.isdir(d):
            raise FileNotFoundError(f'PLATEAU tile folder not found: {d}')
        files = sorted(glob.glob(os.path.join(d, '*.gml')))
        if not files:
            raise FileNotFoundError(f'no .gml file in PLATEAU tile folder {d}')
        out.append((os.path.basename(os.path.normpath(d)), files))
    return out
