"""Where vehicles may drive: the lane graph of a drivable raster.

Part of the traffic simulation (:mod:`.traffic`). The raster itself (:class:`TrafficMap`, the
corridors :func:`derive_corridors` derives where a site has no road polygons, and
:func:`box_clearance_ok`) is in :mod:`.traffic_map` and re-exported here.

* :class:`RoadNetwork`: the centreline graph of the drivable area (its medial axis, spurs
  pruned, nearby junctions merged, chains smoothed), a lane per direction offset to the left
  (Japan drives on the left) where the road holds two lanes and a one-way lane where it holds
  one, Bezier turning paths through each junction, and per vehicle type which paths keep the
  vehicle's whole box inside the drivable area.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import networkx as nx
import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d
from skimage.morphology import medial_axis

from .traffic_map import TrafficMap, box_clearance_ok, derive_corridors

__all__ = ['TrafficMap', 'derive_corridors', 'Path', 'RoadNetwork', 'box_clearance_ok']


@dataclass
class Path:
    """A drivable path: a lane (one direction of a road edge) or a turn through a junction.

    Attributes:
        index (int): position in :attr:`RoadNetwork.paths`.
        kind (str): ``'lane'`` or ``'turn'``.
        pts (np.ndarray): (K, 2) float64 samples (m) about ``step`` apart.
        s (np.ndarray): (K,) arc length (m).
        heading (np.ndarray): (K,) tangent heading (rad).
        v_curve (np.ndarray): (K,) speed allowed by the curvature (m/s).
        node_from (int): junction / end node it leaves (-1 for a turn's start).
        node_to (int): node it reaches.
        edge (int): road edge (lanes; -1 for turns).
        next (list[int]): paths that may follow.
        feasible (dict[str, bool]): per vehicle type, whether its box stays drivable.
        junction (int): node of a turn (-1 for lanes).
        exit (bool): at the end of a lane without a feasible continuation, vehicles leave the
            area when True (an uncut lane) and park when False (a lane cut short).
    """

    index: int
    kind: str
    pts: np.ndarray
    s: np.ndarray
    heading: np.ndarray
    v_curve: np.ndarray
    node_from: int
    node_to: int
    edge: int = -1
    next: List[int] = field(default_factory=list)
    feasible: Dict[str, bool] = field(default_factory=dict)
    junction: int = -1
    exit: bool = False

    @property
    def length(self) -> float:
        """Arc length of the path (m)."""
        return float(self.s[-1])

    def at(self, s: float) -> Tuple[np.ndarray, float, float]:
        """Position (2,), heading (rad) and curvature speed limit at arc length ``s``."""
        k = int(np.clip(np.searchsorted(self.s, s, side='right') - 1, 0, len(self.s) - 2))
        f = float(np.clip((s - self.s[k]) / max(self.s[k + 1] - self.s[k], 1e-9), 0, 1))
        p = self.pts[k] + f * (self.pts[k + 1] - self.pts[k])
        h = self.heading[k] + f * np.angle(np.exp(1j * (self.heading[k + 1] - self.heading[k])))
        return p, float(h), float(min(self.v_curve[k], self.v_curve[k + 1]))


def _resample(pts: np.ndarray, step: float) -> np.ndarray:
    """Polyline (K, 2) resampled at ``step`` (m) arc-length spacing (ends kept)."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-9])
    pts = pts[keep]
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    if cum[-1] <= 0:
        return pts[:1]
    n = max(2, int(np.ceil(cum[-1] / step)) + 1)
    t = np.linspace(0, cum[-1], n)
    return np.stack([np.interp(t, cum, pts[:, 0]), np.interp(t, cum, pts[:, 1])], 1)


def _smooth(pts: np.ndarray, window: int = 5) -> np.ndarray:
    """Moving-average smoothing of a polyline with fixed ends."""
    if len(pts) <= 2 * window:
        return pts
    kern = np.ones(2 * window + 1) / (2 * window + 1)
    out = pts.copy()
    for d in range(2):
        padded = np.concatenate([np.full(window, pts[0, d]), pts[:, d],
                                 np.full(window, pts[-1, d])])
        out[:, d] = np.convolve(padded, kern, mode='valid')
    out[0], out[-1] = pts[0], pts[-1]
    return out


def _path_arrays(pts: np.ndarray, a_lat: float, v_cap: float
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arc length, heading and curvature speed limit ``sqrt(a_lat / kappa)`` of samples."""
    d = np.diff(pts, axis=0)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(d, axis=1))])
    head = np.arctan2(d[:, 1], d[:, 0])
    head = np.unwrap(np.concatenate([head, head[-1:]]))
    if len(pts) > 2:
        # curvature of the heading low-passed over ~2 m (raster staircase is not curvature)
        dh = np.abs(np.gradient(gaussian_filter1d(head, 4.0, mode='nearest'), s))
        kappa = np.maximum(dh, 1e-6)
        v = np.minimum(np.sqrt(a_lat / kappa), v_cap)
        v = np.minimum(v, np.minimum(np.roll(v, 1), np.roll(v, -1)))
    else:
        v = np.full(len(pts), v_cap)
    return s, head, v


class RoadNetwork:
    """Lane graph of a drivable raster (see the module docstring).

    Args:
        tmap (TrafficMap): the map (resolution and area).
        drivable (np.ndarray): (NX, NY) bool drivable cells (roads or derived corridors,
            obstacles excluded).
        vehicle_sizes (dict): ``type -> (length, width)`` (m) of the vehicle types.
        rng (np.random.Generator): chooses one-way directions.
        lane_offset (float): distance of a lane from the centreline on two-lane roads (m).
        margin (float): clearance kept between a vehicle box and the drivable edge (m).
        min_spur (float): dead-end branches shorter than this are pruned (m).
        merge_dist (float): junctions closer than this are merged (m).
        step (float): path sample spacing (m).
        a_lat (float): lateral acceleration that sets curve speeds (m/s^2).

    Attributes:
        nodes (np.ndarray): (V, 2) node positions; ``degree`` (V,) their degree.
        edges (list[tuple[int, int, np.ndarray]]): ``(u, v, centreline (K, 2))``.
        paths (list[Path]): lanes then turns.
        dist (np.ndarray): (NX, NY) float distance (m) to the drivable edge.
    """

    def __init__(self, tmap: TrafficMap, drivable: np.ndarray,
                 vehicle_sizes: Dict[str, Tuple[float, float]], rng: np.random.Generator,
                 lane_offset: float = 1.6, margin: float = 0.25, min_spur: float = 8.0,
                 merge_dist: float = 8.0, step: float = 0.5, a_lat: float = 2.0):
        self.tmap = tmap
        drivable = drivable.copy()
        drivable[[0, -1], :] = False  # the area's border is an edge: boxes stay inside it
        drivable[:, [0, -1]] = False
        self.drivable = drivable
        self.vehicle_sizes = dict(vehicle_sizes)
        self.margin = margin
        self.step = step
        res = tmap.resolution
        self.dist = distance_transform_edt(drivable) * res
        self.nodes = np.zeros((0, 2))
        self.degree = np.zeros(0, np.int64)
        self.edges: List[Tuple[int, int, np.ndarray]] = []
        self.paths: List[Path] = []
        if drivable.sum() < 10:
            return
        skel = medial_axis(drivable, rng=0)  # seeded tie-breaking: deterministic
        g = self._pixel_graph(skel)
        self._prune(g, min_spur / res)
        self._chains(g, merge_dist)
        self._lanes(rng, lane_offset, a_lat)
        self._turns(a_lat)
        self._feasibility()

    # ------------------------------------------------------------------ graph
    def dist_at(self, xy: np.ndarray) -> np.ndarray:
        """Distance (m) to the drivable edge at points (N, 2) (0 outside the raster)."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        i, j = self.tmap.to_cell(xy)
        a = self.tmap.area
        inside = ((xy[:, 0] >= a[0]) & (xy[:, 0] < a[2]) & (xy[:, 1] >= a[1])
                  & (xy[:, 1] < a[3]))
        return np.where(inside, self.dist[i, j] - 0.5 * self.tmap.resolution, 0.0)

    def _pixel_graph(self, skel: np.ndarray) -> nx.Graph:
        ij = np.argwhere(skel)
        g = nx.Graph()
        g.add_nodes_from(map(tuple, ij))
        occupied = skel
        for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
            for a in ij:
                b = (a[0] + di, a[1] + dj)
                if not (0 <= b[0] < skel.shape[0] and 0 <= b[1] < skel.shape[1]):
                    continue
                if not occupied[b]:
                    continue
                if di and dj and (occupied[a[0] + di, a[1]] or occupied[a[0], a[1] + dj]):
                    continue  # a diagonal step that an orthogonal path already makes
                g.add_edge(tuple(a), b, w=float(np.hypot(di, dj)))
        return g

    @staticmethod
    def _prune(g: nx.Graph, min_len: float) -> None:
        """Remove dead-end spurs shorter than ``min_len`` cells and tiny components."""
        for comp in list(nx.connected_components(g)):
            if len(comp) < 2 * min_len:
                g.remove_nodes_from(comp)
        for _ in range(3):
            removed = False
            for leaf in [n for n in g.nodes if g.degree(n) == 1]:
                if leaf not in g or g.degree(leaf) != 1:
                    continue
                chain, cur, prev, length = [leaf], leaf, None, 0.0
                while True:
                    nbrs = [n for n in g.neighbors(cur) if n != prev]
                    if len(nbrs) != 1:
                        break
                    length += g.edges[cur, nbrs[0]]['w']
                    prev, cur = cur, nbrs[0]
                    if g.degree(cur) != 2:
                        break
                    chain.append(cur)
                if g.degree(cur) >= 3 and length < min_len:
                    g.remove_nodes_from(chain)
                    removed = True
            if not removed:
                break

    def _chains(self, g: nx.Graph, merge_dist: float) -> None:
        """Key nodes (degree != 2), chains between them, merging close junctions."""
        res = self.tmap.resolution
        origin = self.tmap.area[:2]

        def xy(p):
            return origin + (np.asarray(p, np.float64) + 0.5) * res

        keys = {n for n in g.nodes if g.degree(n) != 2}
        for comp in nx.connected_components(g):  # pure loops: pick a key node
            if not keys & comp:
                keys.add(min(comp))
        chains, seen = [], set()
        for k in sorted(keys):
            for nb in g.neighbors(k):
                if (k, nb) in seen:
                    continue
                path, prev, cur = [k, nb], k, nb
                while cur not in keys:
                    nxt = [n for n in g.neighbors(cur) if n != prev][0]
                    path.append(nxt)
                    prev, cur = cur, nxt
                seen.add((path[-1], path[-2]))
                seen.add((k, nb))
                chains.append(path)
        key_list = sorted(keys)
        kid = {k: i for i, k in enumerate(key_list)}
        parent = list(range(len(key_list)))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        polys = [np.array([xy(p) for p in c]) for c in chains]
        lengths = [float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) for p in polys]
        for c, ln in zip(chains, lengths):
            a, b = c[0], c[-1]
            if a != b and ln < merge_dist and g.degree(a) >= 3 and g.degree(b) >= 3:
                parent[find(kid[a])] = find(kid[b])
        roots = sorted({find(i) for i in range(len(key_list))})
        rid = {r: i for i, r in enumerate(roots)}
        members: Dict[int, list] = {}
        for i, k in enumerate(key_list):
            members.setdefault(rid[find(i)], []).append(xy(k))
        self.nodes = np.array([np.mean(members[i], axis=0) for i in range(len(roots))])
        for c, p, ln in zip(chains, polys, lengths):
            u, v = rid[find(kid[c[0]])], rid[find(kid[c[-1]])]
            if u == v and ln < 4 * merge_dist:
                continue  # a short loop inside one junction
            p = np.concatenate([self.nodes[u][None], p, self.nodes[v][None]])
            p = _resample(_smooth(_resample(p, 1.0), 3), self.step)
            if len(p) >= 3:
                self.edges.append((u, v, p))
        self.degree = np.zeros(len(self.nodes), np.int64)
        for u, v, _ in self.edges:
            self.degree[u] += 1
            self.degree[v] += 1

    # ------------------------------------------------------------------ paths
    def _lanes(self, rng: np.random.Generator, lane_offset: float, a_lat: float) -> None:
        car_w = min(w for _, w in self.vehicle_sizes.values())
        for e, (u, v, p) in enumerate(self.edges):
            cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
            r_u = self._junction_radius(u)
            r_v = self._junction_radius(v)
            keep = (cum >= r_u) & (cum <= cum[-1] - r_v)
            # at a dead end the skeleton runs into the road edge: stop where a car still fits
            need = float(np.hypot(0.5 * car_w, 0.5 * car_w)) + self.margin + 0.5
            fits = self.dist_at(p) >= need
            if fits.any() and self.degree[u] <= 1:
                keep[:int(np.argmax(fits))] = False
            if fits.any() and self.degree[v] <= 1:
                keep[len(p) - int(np.argmax(fits[::-1])):] = False
            if keep.sum() < 3:
                continue
            tangent = np.gradient(p, axis=0)
            tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
            left = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
            half = self.dist_at(p[keep])
            two_lane = half.min() >= lane_offset + 0.5 * car_w + self.margin + 0.3
            if two_lane:
                lanes = [(p + lane_offset * left)[keep], (p - lane_offset * left)[keep][::-1]]
                ends = [(u, v), (v, u)]
            else:  # one lane: one way, direction drawn by the seed
                forward = bool(rng.random() < 0.5)
                lanes = [p[keep] if forward else p[keep][::-1]]
                ends = [(u, v) if forward else (v, u)]
            for pts, (a, b) in zip(lanes, ends):
                pts = _resample(pts, self.step)
                s, head, vc = _path_arrays(pts, a_lat, 30.0)
                self.paths.append(Path(len(self.paths), 'lane', pts, s, head, vc, a, b, e))

    def _junction_radius(self, node: int) -> float:
        if self.degree[node] <= 1:
            return 0.0
        return float(max(4.0, self.dist_at(self.nodes[node][None])[0] + 0.5))

    def _turns(self, a_lat: float) -> None:
        lanes = [p for p in self.paths if p.kind == 'lane']
        for a in lanes:
            for b in lanes:
                if a.node_to != b.node_from or self.degree[a.node_to] <= 1:
                    continue
                if a.edge == b.edge and self.degree[a.node_to] > 1 and \
                        (a.node_from == b.node_to) and a.node_from != a.node_to:
                    continue  # no U-turns
                p0, p2 = a.pts[-1], b.pts[0]
                h0 = np.array([np.cos(a.heading[-1]), np.sin(a.heading[-1])])
                h2 = np.array([np.cos(b.heading[0]), np.sin(b.heading[0])])
                ctrl = self.nodes[a.node_to]
                m = np.stack([h0, -h2], 1)
                if abs(np.linalg.det(m)) > 1e-3:
                    t = np.linalg.solve(m, p2 - p0)
                    if 0 < t[0] < 3 * np.linalg.norm(p2 - p0) and t[1] > 0:
                        ctrl = p0 + t[0] * h0
                else:
                    ctrl = 0.5 * (p0 + p2)
                w = np.linspace(0, 1, 60)[:, None]
                curve = (1 - w) ** 2 * p0 + 2 * w * (1 - w) * ctrl + w ** 2 * p2
                pts = _resample(curve, self.step)
                if len(pts) < 3:
                    continue
                s, head, vc = _path_arrays(pts, a_lat, 30.0)
                t_path = Path(len(self.paths), 'turn', pts, s, head, vc, -1, b.node_from,
                              next=[b.index], junction=a.node_to)
                a.next.append(t_path.index)
                self.paths.append(t_path)

    def _feasibility(self) -> None:
        """Per vehicle type, whether each path keeps the whole box drivable.

        A lane that fails somewhere (a corridor narrowing) is cut to its longest stretch where
        the smallest vehicle fits (at least 8 m, else it is dropped for every type): a cut end
        no longer continues (vehicles park there, :attr:`Path.exit` False) and the turns into a
        cut start are closed.
        """
        small = min(self.vehicle_sizes, key=lambda k: self.vehicle_sizes[k][1])
        length, width = self.vehicle_sizes[small]
        closed = set()
        for p in self.paths:
            if p.kind != 'lane':
                continue
            p.exit = True  # without a feasible continuation, an uncut lane leaves the area
            ok = box_clearance_ok(self.dist_at, p.pts, p.heading, length, width, self.margin)
            if ok.all():
                continue
            best, start = (0, 0), None
            for k, good in enumerate(np.append(ok, False)):
                if good and start is None:
                    start = k
                elif not good and start is not None:
                    if k - start > best[1] - best[0]:
                        best = (start, k)
                    start = None
            a, b = best
            if b - a < 2 or p.s[b - 1] - p.s[a] < 8.0:
                p.feasible.update({vt: False for vt in self.vehicle_sizes})
                closed.add(p.index)
                continue
            if a > 0:
                closed.add(p.index)
            if b < len(p.pts):
                p.next = []
                p.exit = False
            p.pts, p.heading, p.v_curve = p.pts[a:b], p.heading[a:b], p.v_curve[a:b]
            p.s = p.s[a:b] - p.s[a]
        for p in self.paths:
            if p.kind == 'turn' and p.next[0] in closed:
                p.feasible.update({vt: False for vt in self.vehicle_sizes})
            for vtype, (ln, wd) in self.vehicle_sizes.items():
                if vtype not in p.feasible:
                    p.feasible[vtype] = bool(box_clearance_ok(
                        self.dist_at, p.pts, p.heading, ln, wd, self.margin).all())

    def sources(self, vtype: str) -> List[int]:
        """Feasible lanes no feasible turn leads into (vehicles enter the area there)."""
        fed = {q for p in self.paths if p.kind == 'turn' and p.feasible[vtype]
               for q in p.next}
        return [p.index for p in self.paths if p.kind == 'lane' and p.feasible[vtype]
                and p.index not in fed]

    def feasible_next(self, path: int, vtype: str) -> List[int]:
        """Paths a vehicle of ``vtype`` may take after ``path`` (empty: it leaves the area)."""
        return [q for q in self.paths[path].next if self.paths[q].feasible[vtype]
                and all(self.paths[r].feasible[vtype] for r in self.paths[q].next)]

    def centreline_length(self) -> float:
        """Total length of the road edges (m)."""
        return float(sum(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()
                         for _, _, p in self.edges))
