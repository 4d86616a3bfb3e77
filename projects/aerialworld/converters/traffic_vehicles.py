"""Vehicle behaviour of the traffic simulation: lanes, IDM car following, all-way stops.

Part of the traffic simulation (:mod:`.traffic`). :class:`VehicleRules` holds the vehicle
update rules of the simulator: placement on lanes, the Intelligent Driver Model (Treiber,
Hennecke & Helbing, Phys. Rev. E 62, 2000) towards the nearest constraint ahead (the vehicle
in front, a stop line, the rover's future path), curvature speed limits, the all-way-stop
junction protocol and the advance along the lane graph.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .traffic_agents import AGENT_TYPES, AgentState


class VehicleRules:
    """Vehicle update rules, mixed into the traffic simulator.

    The simulator provides the state these rules read and change: ``cfg``
    (:class:`~.traffic_agents.TrafficConfig`), ``net`` (:class:`~.traffic_roads.RoadNetwork`),
    ``tmap`` (:class:`~.traffic_map.TrafficMap`), ``rng`` (``np.random.Generator``),
    ``agents`` (list of :class:`~.traffic_agents.AgentState`), ``junction_holder``
    (junction node -> track id of the vehicle inside), ``stats`` (``Counter``),
    ``rover_last`` (the rover keep-off rasters or None), and the methods ``_rover_blocked``,
    ``_free`` and ``_new_agent``.
    """

    def _vehicle_types(self) -> List[str]:
        cfg = self.cfg
        out = []
        for k in range(cfg.num_vehicles):
            bus = self.rng.random() < cfg.bus_fraction
            out.append('bus' if bus and any(p.feasible.get('bus') for p in self.net.paths)
                       else 'car')
        return out

    def _choose_next(self, path: int, vtype: str) -> int:
        options = self.net.feasible_next(path, vtype)
        return int(options[self.rng.integers(len(options))]) if options else -1

    def _place_vehicle(self, vtype: str, t: float, lanes: Optional[List[int]] = None,
                       at_start: bool = False) -> bool:
        net, at = self.net, AGENT_TYPES[vtype]
        if lanes is None:
            lanes = [p.index for p in net.paths if p.kind == 'lane' and p.feasible.get(vtype)
                     and p.length > at.size[0] + 2.0]
        if not lanes:
            return False
        w = np.array([net.paths[k].length for k in lanes])
        for _ in range(30):
            k = lanes[self.rng.choice(len(lanes), p=w / w.sum())]
            p = net.paths[k]
            lo, hi = 0.5 * at.size[0], p.length - 0.5 * at.size[0] - 1.0
            if hi <= lo:
                continue
            s = lo if at_start else float(self.rng.uniform(lo, hi))
            xy, yaw, _ = p.at(s)
            ahead = np.array([p.at(min(s + d, p.length))[0] for d in (0.0, 5.0, 10.0)])
            if self._rover_blocked(vtype, ahead, t).any():
                continue
            if not self._free(at, xy, yaw, -1, margin=1.5):
                continue
            a = self._new_agent(at, xy, yaw, path=k, s=s,
                                dwell=float(self.rng.uniform(*self.cfg.stop_dwell)))
            a.next_path = self._choose_next(k, vtype)
            a.z = float(self.tmap.ground(xy[None])[0]) + 0.5 * at.size[2]
            return True
        return False

    def _constraints(self, a: AgentState, t: float, horizon: float
                     ) -> List[Tuple[float, float, float]]:
        """(gap m, speed m/s, standstill distance m) of everything the vehicle must not run
        into within ``horizon``: vehicles ahead (2 m), the stop line and the rover's path
        (0.3 m)."""
        net = self.net
        half = 0.5 * a.atype.size[0]
        out = []
        route = [(a.path, -a.s)]  # (path, offset of its start relative to the vehicle)
        p = net.paths[a.path]
        if a.next_path >= 0:
            route.append((a.next_path, p.length - a.s))
            nxt = net.paths[a.next_path]
            if nxt.kind == 'turn' and nxt.next:
                route.append((nxt.next[0], p.length - a.s + nxt.length))
        for b in self.agents:  # vehicles ahead on the route
            if b.tid == a.tid or b.path < 0:
                continue
            for k, off in route:
                if b.path == k and (k != a.path or b.s > a.s):
                    gap = off + b.s - 0.5 * b.atype.size[0] - half
                    if gap < horizon:
                        out.append((gap, b.v, 2.0))
                    break
        # stop line at the end of a lane that leads into a junction
        if p.kind == 'lane' and a.next_path >= 0 and not a.cleared:
            out.append((p.length - a.s - half, 0.0, 0.3))
        elif p.kind == 'lane' and a.next_path < 0 and not p.exit:
            out.append((p.length - a.s - half, 0.0, 0.3))  # no way on: park at the end
        # the rover's future path
        if self.rover_last is not None:
            for k, off in route:
                q = net.paths[k]
                lo = max(0.0, -off)
                sel = np.flatnonzero((q.s >= lo) & (q.s + off <= horizon))
                if sel.size == 0:
                    continue
                hit = self._rover_blocked(a.atype.name, q.pts[sel], t)
                if hit.any():
                    out.append((q.s[sel[int(np.argmax(hit))]] + off - half - 0.5, 0.0, 0.3))
                    break
        return out

    def _desired_speed(self, a: AgentState) -> float:
        """Speed allowed now by the curvature here and ahead (braking at ``b_comf``)."""
        net, at = self.net, a.atype
        v0 = at.v_max
        p = net.paths[a.path]
        seq = [(p, -a.s)]
        if a.next_path >= 0:
            seq.append((net.paths[a.next_path], p.length - a.s))
        for q, off in seq:
            d = q.s + off
            sel = (d >= -0.5 * at.size[0]) & (d <= 40.0)
            if sel.any():
                v0 = min(v0, float(np.min(np.sqrt(q.v_curve[sel] ** 2
                                                  + 2 * at.b_comf * np.maximum(d[sel], 0)))))
        return max(v0, 1.0)

    def _step_vehicle(self, a: AgentState, t: float) -> None:
        cfg, net, at = self.cfg, self.net, a.atype
        dt = cfg.dt
        v0 = self._desired_speed(a)
        acc = at.a_max * (1.0 - (a.v / v0) ** 4)
        headway = 1.2  # s, IDM time gap T
        root_ab = 2 * np.sqrt(at.a_max * at.b_comf)
        for gap, v_lead, s0 in self._constraints(a, t, 40.0 + a.v * 3):
            s_star = max(s0 + a.v * headway + a.v * (a.v - v_lead) / root_ab, 0.0)
            interaction = (s_star / max(gap, 0.05)) ** 2
            acc = min(acc, at.a_max * (1.0 - (a.v / v0) ** 4 - interaction))
        acc = float(np.clip(acc, -at.b_max, at.a_max))
        v_new = max(0.0, a.v + acc * dt)
        ds = 0.5 * (a.v + v_new) * dt
        p = net.paths[a.path]
        # junction: wait at the stop line, then enter when free
        if p.kind == 'lane' and a.next_path >= 0 and not a.cleared:
            stop_s = p.length - 0.5 * at.size[0]
            if stop_s - a.s < 1.0 and a.v < 0.2:
                a.waited += dt
                turn = net.paths[a.next_path]
                if a.waited >= a.dwell and self._junction_free(turn, a, t):
                    a.cleared = True
                    self.junction_holder[turn.junction] = a.tid
            if not a.cleared:
                s_new = min(a.s + ds, max(stop_s, a.s))
                if s_new < a.s + ds - 1e-6 and s_new - a.s < 1e-3:
                    self.stats['stop_line_overrun'] += 1  # IDM braked too late: stop here
                    v_new = 0.0
                ds = s_new - a.s
        self._advance(a, ds, v_new, t)

    def _junction_free(self, turn, a: AgentState, t: float) -> bool:
        holder = self.junction_holder.get(turn.junction)
        if holder is not None and any(b.tid == holder for b in self.agents):
            return False
        out_lane = self.net.paths[turn.next[0]]
        need = a.atype.size[0] + 4.0
        for b in self.agents:
            if b.path == out_lane.index and b.s - 0.5 * b.atype.size[0] < need:
                return False
            if b.path == turn.index:
                return False
        pts = np.concatenate([turn.pts, out_lane.pts[out_lane.s < need]])
        return not self._rover_blocked(a.atype.name, pts, t + 1.0).any()

    def _advance(self, a: AgentState, ds: float, v_new: float, t: float) -> None:
        net = self.net
        path, s, nxt, cleared = a.path, a.s + ds, a.next_path, a.cleared
        left = False
        while s > net.paths[path].length:
            if nxt < 0 and not net.paths[path].exit:
                s = net.paths[path].length  # parked at the end of a cut lane
                v_new = 0.0
                break
            if nxt < 0:
                left = True
                break
            s -= net.paths[path].length
            path = nxt
            if net.paths[path].kind == 'lane':
                cleared = False
            nxt = (net.paths[path].next[0] if net.paths[path].kind == 'turn'
                   else self._choose_next(path, a.atype.name))
        if left:
            self.agents.remove(a)
            self.stats['vehicles_left'] += 1
            return
        xy, yaw, _ = net.paths[path].at(s)
        t_new = t + self.cfg.dt
        if ds > 0 and (not self._free(a.atype, xy, yaw, a.tid, margin=0.05)
                       or self._rover_blocked(a.atype.name, xy[None], t_new)[0]):
            self.stats['held'] += 1
            a.v = max(0.0, a.v - a.atype.b_max * self.cfg.dt)
            return
        if net.paths[path].kind == 'lane' and net.paths[a.path].kind == 'turn':
            self.junction_holder.pop(net.paths[a.path].junction, None)
        if path != a.path and net.paths[path].kind == 'lane':
            a.waited = 0.0
            a.dwell = float(self.rng.uniform(*self.cfg.stop_dwell))
        a.path, a.s, a.next_path, a.cleared = path, s, nxt, cleared
        a.v, a.xy, a.yaw = v_new, xy, yaw
        a.z = float(self.tmap.ground(xy[None])[0]) + 0.5 * a.atype.size[2]
