"""Moving traffic for PLATEAU sites: vehicles, pedestrians and drones, deterministic by seed.

Modules: :mod:`.traffic_agents` (agent types, options, the ego path, the result),
:mod:`.traffic_map` (the raster map and derived corridors), :mod:`.traffic_roads` (the lane
graph), :mod:`.traffic_vehicles` (vehicle rules), :mod:`.traffic_boxes` (oriented boxes);
this module runs the simulation.

:func:`simulate_traffic` runs a fixed-step (``dt``, default 0.05 s) simulation over a traffic
area (:class:`.traffic_roads.TrafficMap`) and returns every agent's oriented box at every step
and at the session's frames (:class:`TrafficResult`). All randomness comes from
``numpy.random.default_rng([seed, ...])``, so the same seed and inputs give the same traffic.

Agents (sizes in :data:`AGENT_TYPES`):

* **Vehicles** (``car``, ``bus``; class ``vehicle``) drive on the lanes of a
  :class:`.traffic_roads.RoadNetwork` built from the road polygons, or, where the area has none,
  from corridors derived from the open ground between buildings
  (:func:`.traffic_roads.derive_corridors`, logged). Longitudinal control is the Intelligent
  Driver Model (Treiber, Hennecke & Helbing, Phys. Rev. E 62, 2000) towards the nearest
  constraint ahead: the vehicle in front, a stop line, the rover's future path; the desired speed
  follows the curvature (``sqrt(a_lat / kappa)``, braking ahead of curves). Acceleration is
  clamped to ``[-b_max, a_max]``. Every junction is an all-way stop: a vehicle stops at the
  line, waits ``stop_dwell`` seconds, and enters when the junction is free (one vehicle at a
  time) and its exit lane has room; it then follows a Bezier turning path to a randomly chosen
  exit (no U-turns). Vehicles reaching a dead end leave the area; new ones enter at dead ends.
* **Pedestrians** (class ``pedestrian``) walk to random goals on the ground that no vehicle
  path sweeps (sidewalks of the road polygons and open ground), choosing each step among
  rate-limited headings and speeds the one heading best to the goal whose stopping path is free
  of obstacles and other agents.
* **Drones** (class ``drone``) fly closed elliptical loops with a gentle altitude wave, above
  the highest structure under the loop plus a clearance, each on its own layer, re-layered
  until it keeps ``drone_separation`` from the other drones and from the ego drone.

Safety: boxes never leave the drivable / walkable rasters (checked against the distance to their
edges), never overlap each other (a hard check after every move; a move that would overlap is
not made and counted in ``stats['held']``), and keep off the rover's path: the raster of the
last time the rover occupies each cell (its box grown by ``rover_margin``) is a region agents
may enter only after the rover has left it for good, so the rover never meets an agent.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import distance_transform_edt, maximum_filter

from .traffic_agents import (AGENT_TYPES, AgentState, AgentType, EgoPath, TrafficConfig,
                             TrafficResult)
from .traffic_boxes import AgentBoxes, box_corners_xy, boxes_overlap_xy
from .traffic_roads import RoadNetwork, TrafficMap, derive_corridors
from .traffic_vehicles import VehicleRules

logger = logging.getLogger(__name__)

__all__ = ['AgentType', 'AGENT_TYPES', 'TrafficConfig', 'EgoPath', 'TrafficResult',
           'simulate_traffic']


# ----------------------------------------------------------------------------- simulator
class _Simulator(VehicleRules):
    """State and update rules of one traffic simulation (see :func:`simulate_traffic`)."""

    def __init__(self, tmap: TrafficMap, cfg: TrafficConfig, frame_times: np.ndarray,
                 ego: Optional[EgoPath], name: str, rng_key: Sequence[int]):
        self.tmap, self.cfg, self.ego, self.name = tmap, cfg, ego, name
        self.rng = np.random.default_rng([int(cfg.seed)] + [int(k) for k in rng_key])
        self.stats: Counter = Counter()
        self.agents: List[AgentState] = []
        self.next_tid = 1
        self.junction_holder: Dict[int, int] = {}
        res = tmap.resolution
        sizes = {k: AGENT_TYPES[k].size[:2] for k in ('car', 'bus')}
        drivable = tmap.road & ~tmap.obstacle
        self.corridors = 'roads'
        if drivable.sum() * res * res < 20.0:
            drivable = derive_corridors(tmap, cfg.corridor_clearance)
            self.corridors = 'derived'
        self.net = RoadNetwork(tmap, drivable, sizes, self.rng)
        if self.corridors == 'derived':
            logger.info('traffic %s: no road polygons in the %.0f x %.0f m traffic area: '
                        'derived drivable corridors from the open ground between buildings '
                        '(medial axis at >= %.1f m clearance): %.0f m of centreline, %d '
                        'junctions', name, tmap.area[2] - tmap.area[0],
                        tmap.area[3] - tmap.area[1], cfg.corridor_clearance,
                        self.net.centreline_length(), int((self.net.degree >= 3).sum()))
        # carriageway: what any feasible vehicle box may sweep (grown by 0.5 m)
        sweep = np.zeros(tmap.shape, bool)
        for vt in ('car', 'bus'):
            pts = [p.pts for p in self.net.paths if p.feasible.get(vt)]
            if pts:
                mark = np.zeros(tmap.shape, bool)
                i, j = tmap.to_cell(np.concatenate(pts))
                mark[i, j] = True
                r = 0.5 * np.hypot(*sizes[vt]) + 0.5 + res
                sweep |= distance_transform_edt(~mark) * res <= r
        walk = ~tmap.obstacle & ~sweep
        walk[[0, -1], :] = False
        walk[:, [0, -1]] = False
        self.walkable = walk
        self.walk_dist = distance_transform_edt(walk) * res - 0.5 * res
        # rover keep-off: last time (s) the grown rover box covers each cell, per agent type
        self.rover_last = None
        if ego is not None and ego.kind == 'rover':
            self.rover_last = self._rover_raster(ego)
        t_end = float(frame_times[-1]) if len(frame_times) else 0.0
        n_warm = int(round(cfg.warmup / cfg.dt))
        self.times = (np.arange(n_warm + int(round(t_end / cfg.dt)) + 1) - n_warm) * cfg.dt
        self.frame_steps = n_warm + np.round(np.asarray(frame_times) / cfg.dt).astype(int)

    # ------------------------------------------------------------------ rover
    def _rover_raster(self, ego: EgoPath) -> Dict[str, np.ndarray]:
        tm, cfg = self.tmap, self.cfg
        t = np.arange(ego.times[0], ego.times[-1] + cfg.dt / 2, cfg.dt / 2)
        pos, yaw = ego.at(t)
        last = np.full(tm.shape, -np.inf)
        xs, ys = tm.cell_centres()
        reach = 0.5 * np.hypot(ego.size[0], ego.size[1]) + cfg.rover_margin
        for p, y, tt in zip(pos, yaw, t):
            i0, j0 = tm.to_cell(p[None, :2] - reach)
            i1, j1 = tm.to_cell(p[None, :2] + reach)
            gx, gy = np.meshgrid(xs[i0[0]:i1[0] + 1], ys[j0[0]:j1[0] + 1], indexing='ij')
            u = np.cos(y) * (gx - p[0]) + np.sin(y) * (gy - p[1])
            v = -np.sin(y) * (gx - p[0]) + np.cos(y) * (gy - p[1])
            inside = ((np.abs(u) <= 0.5 * ego.size[0] + cfg.rover_margin)
                      & (np.abs(v) <= 0.5 * ego.size[1] + cfg.rover_margin))
            sub = last[i0[0]:i1[0] + 1, j0[0]:j1[0] + 1]
            sub[inside] = tt
        out = {}
        for name, at in AGENT_TYPES.items():
            r = int(np.ceil((0.5 * np.hypot(*at.size[:2]) + tm.resolution) / tm.resolution))
            yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
            out[name] = maximum_filter(last, footprint=xx ** 2 + yy ** 2 <= r * r,
                                       mode='constant', cval=-np.inf)
        return out

    def _rover_blocked(self, atype: str, xy: np.ndarray, t: float) -> np.ndarray:
        """(N,) bool: the rover will still pass within reach of these points after ``t``."""
        if self.rover_last is None:
            return np.zeros(len(xy), bool)
        i, j = self.tmap.to_cell(xy)
        return self.rover_last[atype][i, j] >= t

    # ------------------------------------------------------------------ helpers
    def _corners(self, exclude: int = -1) -> Tuple[np.ndarray, List[int]]:
        ag = [a for a in self.agents if a.tid != exclude and a.atype.cls != 'drone']
        if not ag:
            return np.zeros((0, 4, 2)), []
        c = box_corners_xy(np.array([a.xy for a in ag]), np.array([a.atype.size[0] for a in ag]),
                           np.array([a.atype.size[1] for a in ag]), np.array([a.yaw for a in ag]))
        return c, [a.tid for a in ag]

    def _free(self, atype: AgentType, xy: np.ndarray, yaw: float, exclude: int,
              margin: float = 0.1) -> bool:
        """Whether a box of ``atype`` at ``xy``, ``yaw`` overlaps no other ground agent."""
        ag = [a for a in self.agents if a.tid != exclude and a.atype.cls != 'drone']
        if not ag:
            return True
        centres = np.array([a.xy for a in ag])
        reach = np.array([0.5 * np.hypot(*a.atype.size[:2]) for a in ag])
        near = np.linalg.norm(centres - xy, axis=1) < reach + 0.5 * np.hypot(*atype.size[:2]) \
            + margin
        if not near.any():
            return True
        idx = np.flatnonzero(near)
        c = box_corners_xy(centres[idx], [ag[k].atype.size[0] for k in idx],
                           [ag[k].atype.size[1] for k in idx], [ag[k].yaw for k in idx])
        me = box_corners_xy(xy[None], [atype.size[0]], [atype.size[1]], [yaw])
        return not boxes_overlap_xy(me, c, margin).any()

    def _new_agent(self, atype: AgentType, xy, yaw, **kw) -> AgentState:
        a = AgentState(self.next_tid, atype, np.asarray(xy, np.float64), float(yaw), **kw)
        self.next_tid += 1
        self.agents.append(a)
        return a

    # ------------------------------------------------------------------ pedestrians
    def _walk_ok(self, xy: np.ndarray, t: float) -> np.ndarray:
        at = AGENT_TYPES['pedestrian']
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        a = self.tmap.area
        inside = ((xy[:, 0] > a[0]) & (xy[:, 0] < a[2]) & (xy[:, 1] > a[1])
                  & (xy[:, 1] < a[3]))
        i, j = self.tmap.to_cell(xy)
        r = 0.5 * np.hypot(*at.size[:2]) + 0.1
        return inside & (self.walk_dist[i, j] >= r) & ~self._rover_blocked('pedestrian', xy, t)

    def _random_walk_point(self, near: Optional[np.ndarray], t: float,
                           radius: float = 25.0) -> Optional[np.ndarray]:
        ok = np.argwhere(self.walk_dist >= 0.5 * np.hypot(*AGENT_TYPES['pedestrian'].size[:2])
                         + 0.3)
        if len(ok) == 0:
            return None
        xs, ys = self.tmap.cell_centres()
        pts = np.stack([xs[ok[:, 0]], ys[ok[:, 1]]], 1)
        if near is not None:
            close = np.linalg.norm(pts - near, axis=1) < radius
            if close.any():
                pts = pts[close]
        for _ in range(20):
            p = pts[self.rng.integers(len(pts))]
            if self._walk_ok(p[None], t)[0]:
                return p
        return None

    def _place_pedestrian(self, t: float) -> bool:
        at = AGENT_TYPES['pedestrian']
        for _ in range(20):
            p = self._random_walk_point(None, t)
            if p is None:
                return False
            yaw = float(self.rng.uniform(-np.pi, np.pi))
            if self._free(at, p, yaw, -1, margin=0.5):
                a = self._new_agent(at, p, yaw, goal=self._random_walk_point(p, t))
                a.z = float(self.tmap.ground(p[None])[0]) + 0.5 * at.size[2]
                return True
        return False

    def _step_pedestrian(self, a: AgentState, t: float) -> None:
        at, dt = a.atype, self.cfg.dt
        if a.goal is None or np.linalg.norm(a.goal - a.xy) < 1.0 or a.stuck > 3.0:
            a.goal = self._random_walk_point(a.xy, t)
            a.stuck = 0.0
        if a.goal is None:
            a.v = max(0.0, a.v - at.b_max * dt)
            return
        pref = 1.0 + 0.4 * ((a.tid * 0.618) % 1.0)  # walking speed of this person
        to_goal = np.arctan2(*(a.goal - a.xy)[::-1])
        others = [b for b in self.agents if b.tid != a.tid and b.atype.cls != 'drone']
        o_xy = np.array([b.xy for b in others]).reshape(-1, 2)
        o_vel = np.array([b.v * np.array([np.cos(b.yaw), np.sin(b.yaw)])
                          for b in others]).reshape(-1, 2)
        o_r = np.array([0.5 * np.hypot(*b.atype.size[:2]) for b in others])
        r_me = 0.5 * np.hypot(*at.size[:2])
        dh = np.repeat([-0.12, -0.06, 0.0, 0.06, 0.12], 3)
        vs = np.clip(np.tile([a.v - at.b_comf * dt, a.v, a.v + at.a_max * dt], 5), 0.0, pref)
        hs = a.yaw + dh
        dirs = np.stack([np.cos(hs), np.sin(hs)], 1)  # (15, 2)
        tau = np.linspace(0, 1.0, 5)
        stop = vs * dt + vs * vs / (2 * at.b_comf) + 0.3
        ahead = a.xy + dirs[:, None] * np.minimum(vs[:, None] * tau, stop[:, None])[..., None]
        ok = self._walk_ok(ahead.reshape(-1, 2), t).reshape(len(vs), len(tau)).all(1)
        if len(others):
            fut = o_xy[None] + tau[:, None, None] * o_vel[None]  # (5, M, 2)
            dist = np.linalg.norm(ahead[:, :, None] - fut[None], axis=-1)  # (15, 5, M)
            ok &= ~(dist < r_me + o_r[None, None] + 0.3).any((1, 2))
        score = np.cos(to_goal - hs) * (vs / pref + 0.05)
        best = None
        if ok.any():
            k = int(np.argmax(np.where(ok, score, -np.inf)))
            best = (float(hs[k]), float(vs[k]))
        if best is None:  # brake straight ahead
            h, v = a.yaw, max(0.0, a.v - at.b_max * dt)
        else:
            h, v = best
        xy = a.xy + 0.5 * (a.v + v) * dt * np.array([np.cos(h), np.sin(h)])
        if not (self._walk_ok(xy[None], t + dt)[0] and self._free(at, xy, h, a.tid, 0.05)):
            self.stats['held'] += int(v > 0)
            a.v = max(0.0, a.v - at.b_max * dt)
            a.stuck += dt
            return
        a.stuck = a.stuck + dt if v < 0.2 else 0.0
        if best is None and v == 0.0:
            a.stuck += dt
        if v > 0.05:  # turn toward the goal while standing still is allowed
            a.yaw = float(h)
        elif best is not None:
            a.yaw = float(a.yaw + np.clip(np.angle(np.exp(1j * (to_goal - a.yaw))), -0.12, 0.12))
        a.xy, a.v = xy, v

    # ------------------------------------------------------------------ drones
    def _place_drones(self) -> None:
        cfg, tm = self.cfg, self.tmap
        at = AGENT_TYPES['drone']
        t = self.times
        placed: List[np.ndarray] = []
        ego_xyz = self.ego.at(t)[0] if self.ego is not None else None
        xs, ys = tm.cell_centres()
        for k in range(cfg.num_drones):
            for _ in range(30):
                span = tm.area[2:] - tm.area[:2]
                c = tm.area[:2] + span * self.rng.uniform(0.25, 0.75, 2)
                ra, rb = self.rng.uniform(12.0, 35.0, 2)
                th = self.rng.uniform(-np.pi, np.pi)
                v = self.rng.uniform(3.0, 7.0)
                rmax = max(ra, rb)
                w = min(v / rmax, np.sqrt(0.8 * at.a_max / rmax)) * self.rng.choice([-1, 1])
                phi = self.rng.uniform(-np.pi, np.pi) + w * t
                loc = np.stack([ra * np.cos(phi), rb * np.sin(phi)], 1)
                R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
                xy = c + loc @ R.T
                lo = np.floor((c - rmax - 5.0 - tm.area[:2]) / tm.resolution).astype(int)
                hi = np.ceil((c + rmax + 5.0 - tm.area[:2]) / tm.resolution).astype(int)
                sub = tm.obstacle_top[max(lo[0], 0):max(hi[0], 1), max(lo[1], 0):max(hi[1], 1)]
                ground = float(tm.ground(xy).max())
                base = max(float(sub.max()) if sub.size else 0.0, ground) + cfg.drone_clearance
                period = self.rng.uniform(20.0, 40.0)
                wave = np.sin(2 * np.pi * t / period + self.rng.uniform(0, 2 * np.pi))
                for layer in range(12):
                    z = max(base, 15.0) + 4.0 * layer + 1.0 * wave
                    pos = np.concatenate([xy, z[:, None]], 1)
                    clear = all(np.linalg.norm(pos - q, axis=1).min() >= cfg.drone_separation
                                for q in placed)
                    if ego_xyz is not None and self.ego.kind == 'drone':
                        clear &= np.linalg.norm(pos - ego_xyz, axis=1).min() \
                            >= cfg.drone_separation
                    if clear:
                        break
                else:
                    continue
                placed.append(pos)
                vel = np.gradient(pos, cfg.dt, axis=0)
                a = self._new_agent(at, pos[0, :2], float(np.arctan2(vel[0, 1], vel[0, 0])),
                                    loop=dict(pos=pos, vel=vel))
                a.z = float(pos[0, 2])
                a.v, a.vz = float(np.hypot(vel[0, 0], vel[0, 1])), float(vel[0, 2])
                break
            else:
                logger.warning('traffic %s: drone %d could not be placed clear of the others '
                               'and the ego', self.name, k)
                self.stats['drones_not_placed'] += 1

    # ------------------------------------------------------------------ loop
    def run(self) -> TrafficResult:
        cfg = self.cfg
        t0 = float(self.times[0])
        if self.net.paths:
            for vt in self._vehicle_types():
                if not self._place_vehicle(vt, t0):
                    self.stats['vehicles_not_placed'] += 1
        elif cfg.num_vehicles:
            logger.warning('traffic %s: no drivable lane in the area; no vehicles', self.name)
        for _ in range(cfg.num_pedestrians):
            if not self._place_pedestrian(t0):
                self.stats['pedestrians_not_placed'] += 1
        self._place_drones()
        self.stats['vehicles_entered'] = sum(a.atype.cls == 'vehicle' for a in self.agents)
        target = self.stats['vehicles_entered']
        steps: List[AgentBoxes] = []
        for n, t in enumerate(self.times):
            if n:
                for a in list(self.agents):
                    if a.atype.cls == 'vehicle':
                        self._step_vehicle(a, float(self.times[n - 1]))
                    elif a.atype.cls == 'pedestrian':
                        self._step_pedestrian(a, float(self.times[n - 1]))
                    else:
                        a.xy = a.loop['pos'][n, :2]
                        a.z = float(a.loop['pos'][n, 2])
                        vel = a.loop['vel'][n]
                        a.v, a.vz = float(np.hypot(vel[0], vel[1])), float(vel[2])
                        a.yaw = float(np.arctan2(vel[1], vel[0]))
                n_veh = sum(a.atype.cls == 'vehicle' for a in self.agents)
                if n_veh < target and n % 20 == 0:
                    src = {vt: self.net.sources(vt) for vt in ('car', 'bus')}
                    bus = self.rng.random() < cfg.bus_fraction
                    vt = 'bus' if bus and src['bus'] else 'car'
                    if src[vt] and self._place_vehicle(vt, float(t), src[vt], at_start=True):
                        self.stats['vehicles_entered'] += 1
            steps.append(self._snapshot())
        return TrafficResult(self.times, steps, self.frame_steps, self.corridors, self.net,
                             self.tmap, self.walkable, self.stats)

    def _snapshot(self) -> AgentBoxes:
        ag = sorted(self.agents, key=lambda a: a.tid)
        if not ag:
            return AgentBoxes()
        yaw = np.array([a.yaw for a in ag])
        vel = np.array([[a.v * np.cos(a.yaw), a.v * np.sin(a.yaw), a.vz] for a in ag])
        return AgentBoxes(
            centers=np.array([[a.xy[0], a.xy[1], a.z] for a in ag]),
            sizes=np.array([a.atype.size for a in ag], np.float64), yaw=yaw, velocity=vel,
            labels=np.array([a.atype.label for a in ag], np.int64),
            track_ids=np.array([a.tid for a in ag], np.int64), types=[a.atype.name for a in ag])


def simulate_traffic(tmap: TrafficMap, cfg: TrafficConfig, frame_times: Sequence[float],
                     ego: Optional[EgoPath] = None, name: str = '',
                     rng_key: Sequence[int] = ()) -> TrafficResult:
    """Simulate traffic over a map for the span of a session.

    Args:
        tmap (TrafficMap): the traffic area.
        cfg (TrafficConfig): options (``TrafficConfig.from_dict`` validates a dict).
        frame_times (Sequence[float]): (F,) frame times (s, from 0, multiples of ``cfg.dt``).
        ego (EgoPath, optional): the ego; a rover's path is kept clear, drones keep
            ``drone_separation`` from an ego drone.
        name (str): name used in log messages (site / session).
        rng_key (Sequence[int]): further integers mixed into the seed (the session index).

    Returns:
        TrafficResult: boxes at every step and at the frames.
    """
    cfg = TrafficConfig.from_dict(cfg)
    frame_times = np.asarray(frame_times, np.float64)
    if len(frame_times) and np.any(np.abs(frame_times / cfg.dt
                                          - np.round(frame_times / cfg.dt)) > 1e-6):
        raise ValueError(f'frame times must be multiples of traffic.dt={cfg.dt}')
    return _Simulator(tmap, cfg, frame_times, ego, name, rng_key).run()
