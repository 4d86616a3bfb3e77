"""Agent types, options, the ego path and the result of the traffic simulation.

Part of the traffic simulation (:mod:`.traffic`, which re-exports the public names):
:class:`AgentType` and :data:`AGENT_TYPES` (sizes and motion limits), :class:`TrafficConfig`
(the converter's ``traffic=dict(...)``, validated), :class:`EgoPath` (the ego the traffic
keeps clear of), :class:`AgentState` (one agent's mutable state) and :class:`TrafficResult`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from projects.aerialworld.datasets.classes import PLATEAU_TRAFFIC_CLASSES
from .traffic_boxes import AgentBoxes
from .traffic_map import TrafficMap
from .traffic_roads import RoadNetwork

__all__ = ['AgentType', 'AGENT_TYPES', 'TrafficConfig', 'EgoPath', 'AgentState',
           'TrafficResult']


@dataclass(frozen=True)
class AgentType:
    """Size and motion limits of an agent type.

    Attributes:
        name (str): type name.
        cls (str): semantic class (``vehicle``, ``pedestrian``, ``drone``).
        size (tuple): (3,) length, width, height (m).
        v_max (float): top speed (m/s).
        a_max (float): largest acceleration (m/s^2).
        b_comf (float): comfortable deceleration of the IDM (m/s^2).
        b_max (float): largest deceleration (m/s^2).
    """

    name: str
    cls: str
    size: Tuple[float, float, float]
    v_max: float
    a_max: float
    b_comf: float
    b_max: float

    @property
    def label(self) -> int:
        """Class index of ``cls`` in :data:`PLATEAU_TRAFFIC_CLASSES`."""
        return PLATEAU_TRAFFIC_CLASSES.index(self.cls)


#: Agent types (a Japanese passenger car, a community bus, an adult, a small quadcopter).
AGENT_TYPES = {
    'car': AgentType('car', 'vehicle', (4.4, 1.8, 1.5), 11.0, 2.0, 2.0, 5.0),
    'bus': AgentType('bus', 'vehicle', (8.5, 2.3, 3.0), 8.0, 1.2, 1.5, 4.0),
    'pedestrian': AgentType('pedestrian', 'pedestrian', (0.5, 0.6, 1.7), 1.8, 1.5, 1.5, 3.0),
    'drone': AgentType('drone', 'drone', (0.8, 0.8, 0.35), 8.0, 3.0, 3.0, 4.0),
}


@dataclass
class TrafficConfig:
    """Options of the traffic simulation (the converter's ``traffic=dict(...)``).

    Attributes:
        num_vehicles (int): vehicles kept in the area (cars and buses).
        num_pedestrians (int): pedestrians.
        num_drones (int): other drones.
        seed (int): random seed (combined with the session index by the converter).
        bus_fraction (float): share of the vehicles that are buses (where buses fit).
        dt (float): simulation step (s).
        warmup (float): seconds simulated before the first frame (a multiple of ``dt``).
        resolution (float): raster cell size (m).
        corridor_clearance (float): least distance (m) from a derived corridor's centreline
            to a building.
        drone_clearance (float): metres drones keep above the structures under their loop.
        drone_separation (float): least distance (m) between drone centres and to the ego.
        rover_margin (float): metres the rover's box is grown by for the keep-off region.
        stop_dwell (tuple): (2,) range of the wait at a stop line (s).
    """

    num_vehicles: int = 8
    num_pedestrians: int = 12
    num_drones: int = 2
    seed: int = 0
    bus_fraction: float = 0.2
    dt: float = 0.05
    warmup: float = 4.0
    resolution: float = 0.5
    corridor_clearance: float = 5.0
    drone_clearance: float = 8.0
    drone_separation: float = 6.0
    rover_margin: float = 1.0
    stop_dwell: Tuple[float, float] = (0.5, 1.5)

    @classmethod
    def from_dict(cls, d) -> 'TrafficConfig':
        """Build from a dict (or pass a TrafficConfig through), naming a bad key or value.

        Raises:
            ValueError: unknown key or invalid value (named as ``traffic.<key>``).
        """
        if isinstance(d, TrafficConfig):
            cfg = d
        else:
            if not isinstance(d, dict):
                raise ValueError(f'traffic must be a dict or None, got {type(d).__name__}')
            known = set(cls.__dataclass_fields__)
            bad = sorted(set(d) - known)
            if bad:
                raise ValueError(f'traffic: unknown option(s) {bad}; known: {sorted(known)}')
            d = dict(d)
            if 'stop_dwell' in d:
                d['stop_dwell'] = tuple(float(v) for v in d['stop_dwell'])
            cfg = cls(**d)
        for k in ('num_vehicles', 'num_pedestrians', 'num_drones'):
            if int(getattr(cfg, k)) < 0:
                raise ValueError(f'traffic.{k} must be >= 0, got {getattr(cfg, k)}')
        if not 0 <= cfg.bus_fraction <= 1:
            raise ValueError(f'traffic.bus_fraction must be in [0, 1], got {cfg.bus_fraction}')
        if cfg.dt <= 0 or abs(cfg.warmup / cfg.dt - round(cfg.warmup / cfg.dt)) > 1e-6:
            raise ValueError(f'traffic.warmup ({cfg.warmup}) must be a multiple of traffic.dt '
                             f'({cfg.dt} > 0)')
        if cfg.resolution <= 0 or cfg.resolution > 1.0:
            raise ValueError(f'traffic.resolution must be in (0, 1] m, got {cfg.resolution}')
        return cfg

    def to_dict(self) -> dict:
        """JSON-serialisable copy."""
        d = asdict(self)
        d['stop_dwell'] = list(self.stop_dwell)
        return d


@dataclass
class EgoPath:
    """The ego's motion, which traffic must keep clear of.

    Attributes:
        kind (str): ``'rover'`` (ground) or ``'drone'``.
        times (np.ndarray): (T,) seconds (the frames).
        positions (np.ndarray): (T, 3) metres, site frame.
        yaw (np.ndarray): (T,) rad.
        size (tuple): (3,) length, width, height of the ego body (m).
    """

    kind: str
    times: np.ndarray
    positions: np.ndarray
    yaw: np.ndarray
    size: Tuple[float, float, float] = (1.2, 0.8, 1.0)

    def at(self, t: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Positions (N, 3) and yaw (N,) at times ``t`` (linear, clamped at the ends)."""
        t = np.asarray(t, np.float64)
        pos = np.stack([np.interp(t, self.times, self.positions[:, k]) for k in range(3)], 1)
        yaw = np.interp(t, self.times, np.unwrap(self.yaw))
        return pos, yaw


@dataclass
class AgentState:
    """Mutable state of one simulated agent (the simulator's bookkeeping).

    Attributes:
        tid (int): track id (unique within a simulation, from 1).
        atype (AgentType): size and limits.
        xy (np.ndarray): (2,) float64 centre (m, site frame).
        yaw (float): heading (rad).
        v (float): horizontal speed (m/s).
        z (float): centre height (m).
        vz (float): vertical speed (m/s).
        path (int): vehicles: index of the current :class:`~.traffic_roads.Path` (-1: none).
        s (float): vehicles: arc length along ``path`` (m).
        next_path (int): vehicles: the path chosen to follow (-1: none).
        waited (float): vehicles: seconds waited at the stop line.
        dwell (float): vehicles: seconds to wait at the next stop line.
        cleared (bool): vehicles: allowed into the junction ahead.
        goal (np.ndarray | None): pedestrians: (2,) walking goal (m).
        stuck (float): pedestrians: seconds without progress.
        loop (dict | None): drones: ``pos`` (S, 3) and ``vel`` (S, 3) along the loop.
    """

    tid: int
    atype: AgentType
    xy: np.ndarray
    yaw: float
    v: float = 0.0
    z: float = 0.0
    vz: float = 0.0
    # vehicles
    path: int = -1
    s: float = 0.0
    next_path: int = -1
    waited: float = 0.0
    dwell: float = 1.0
    cleared: bool = False
    # pedestrians
    goal: Optional[np.ndarray] = None
    stuck: float = 0.0
    # drones
    loop: Optional[dict] = None


@dataclass
class TrafficResult:
    """Output of :func:`simulate_traffic`.

    Attributes:
        times (np.ndarray): (S,) step times (s; negative during the warm-up).
        steps (list[AgentBoxes]): the boxes at every step.
        frame_steps (np.ndarray): (F,) step index of every frame.
        corridors (str): ``'roads'`` (road polygons) or ``'derived'`` (open ground).
        network (RoadNetwork | None): the lane graph.
        tmap (TrafficMap): the map.
        walkable (np.ndarray): (NX, NY) bool pedestrian area.
        stats (Counter): counts (vehicles entered / left, held moves, ...).
    """

    times: np.ndarray
    steps: List[AgentBoxes]
    frame_steps: np.ndarray
    corridors: str
    network: Optional[RoadNetwork]
    tmap: TrafficMap
    walkable: np.ndarray
    stats: Counter = field(default_factory=Counter)

    def frame(self, i: int) -> AgentBoxes:
        """Boxes at frame ``i``."""
        return self.steps[int(self.frame_steps[i])]

    def summary(self) -> dict:
        """Plain-dict summary (for the index metainfo)."""
        ids = {int(t) for b in self.steps for t in b.track_ids}
        return dict(corridors=self.corridors, tracks=len(ids),
                    centreline_m=round(self.network.centreline_length(), 1)
                    if self.network is not None else 0.0,
                    stats={k: int(v) for k, v in sorted(self.stats.items())})
