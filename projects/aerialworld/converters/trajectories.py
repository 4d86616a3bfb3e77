"""Deterministic drone and rover trajectories over a PLATEAU site.

Every generator integrates a smooth motion model on a dense time grid (20 Hz by default),
derives velocities and body angular velocities by central differences, and samples the frames
(2 Hz by default). All randomness comes from a ``numpy.random.Generator`` passed in, so the
same seed gives the same trajectory.

Kinds:

* ``drone_survey``: lawn-mower survey lines (straight legs joined by half-circle turns) over
  a rotated rectangle near a structure, constant altitude.
* ``drone_orbit``: circle around a building (or the site centre), camera yaw looking at the
  centre.
* ``drone_random_walk``: smooth random heading (filtered noise) with soft steering back into
  the flight area, slowly varying speed and altitude.
* ``rover``: a ground robot driving inside the union of the road polygons, steering towards
  the heading with the longest free look-ahead, speed reduced before the road edge.

Drones follow the terrain and the structures: their altitude is raised to keep a clearance
above the digital surface model (max-filtered and smoothed, so climbs start early and are
smooth). Drone roll and pitch follow the horizontal acceleration (coordinated flight, clipped
to 20 deg); rovers stay level.

Poses use the contract's convention: position in the site frame (x east, y north, z above the
datum, metres), body-to-world quaternion ``(w, x, y, z)``, linear velocity in the world frame
(m/s), angular velocity in the body frame (rad/s).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import shapely
from scipy.ndimage import gaussian_filter1d, maximum_filter, maximum_filter1d
from scipy.spatial.transform import Rotation

GRAVITY = 9.81
DRONE_KINDS = ('drone_survey', 'drone_orbit', 'drone_random_walk')
ROVER_KIND = 'rover'


def finite_difference_rates(times: np.ndarray, positions: np.ndarray, rotations: Rotation,
                            at: Optional[np.ndarray] = None
                            ) -> Tuple[np.ndarray, np.ndarray]:
    """Linear and body angular velocities of a pose stream by central differences.

    Linear velocity: ``np.gradient`` of the positions over the (non-uniform) times (second
    order inside, one-sided at the ends), world frame, m/s. Angular velocity (body frame,
    rad/s): ``rotvec(R_{k-1}^T R_{k+1}) / (t_{k+1} - t_{k-1})``, one-sided at the ends.

    Args:
        times (np.ndarray): (M,) float64 strictly increasing seconds.
        positions (np.ndarray): (M, 3) float64 metres.
        rotations (Rotation): M body-to-world rotations (scipy).
        at (np.ndarray, optional): (K,) int indices at which to return the rates (default:
            all M).

    Returns:
        tuple: ``(linear (K, 3), angular (K, 3))`` float64; zeros when M == 1.
    """
    idx = np.arange(len(times)) if at is None else np.asarray(at, np.int64)
    if len(times) < 2:
        return np.zeros((len(idx), 3)), np.zeros((len(idx), 3))
    vel = np.gradient(np.asarray(positions, np.float64), times, axis=0)[idx]
    prev = np.clip(idx - 1, 0, len(times) - 1)
    nxt = np.clip(idx + 1, 0, len(times) - 1)
    ang = (rotations[prev].inv() * rotations[nxt]).as_rotvec() / \
        (times[nxt] - times[prev])[:, None]
    return vel, ang


@dataclass
class Trajectory:
    """Sampled poses of one session.

    Attributes:
        kind (str): ``drone_survey`` | ``drone_orbit`` | ``drone_random_walk`` | ``rover``.
        timestamps (np.ndarray): (T,) float64 seconds from the session start.
        positions (np.ndarray): (T, 3) float64 metres, site frame.
        quaternions (np.ndarray): (T, 4) float64 ``w, x, y, z`` body-to-world, unit norm,
            sign-continuous along the session.
        linear_velocity (np.ndarray): (T, 3) float64 m/s, world frame.
        angular_velocity (np.ndarray): (T, 3) float64 rad/s, body frame.
        yaw (np.ndarray): (T,) float64 heading (rad, counter-clockwise from east, unwrapped).
    """

    kind: str
    timestamps: np.ndarray
    positions: np.ndarray
    quaternions: np.ndarray
    linear_velocity: np.ndarray
    angular_velocity: np.ndarray
    yaw: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    def poses_13d(self) -> np.ndarray:
        """(T, 13) float64 ``[x, y, z, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz]``."""
        return np.concatenate([self.positions, self.quaternions, self.linear_velocity,
                               self.angular_velocity], axis=1)

    def rotation_matrix(self, i: int) -> np.ndarray:
        """(3, 3) float64 body-to-world rotation of frame ``i``."""
        return Rotation.from_quat(self.quaternions[i, [1, 2, 3, 0]]).as_matrix()

    def rotation_matrices(self) -> np.ndarray:
        """(T, 3, 3) float64 body-to-world rotations."""
        return Rotation.from_quat(self.quaternions[:, [1, 2, 3, 0]]).as_matrix()


@dataclass
class SurfaceModel:
    """Digital surface model used for drone clearance.

    Attributes:
        heights (np.ndarray): (NX, NY) float32 highest surface (m above the datum).
        origin (np.ndarray): (2,) float64 corner of cell (0, 0).
        resolution (float): cell size (m).
    """

    heights: np.ndarray
    origin: np.ndarray
    resolution: float

    def dilated(self, radius: float) -> 'SurfaceModel':
        """Max-filtered copy (an obstacle anywhere within ``radius`` metres counts)."""
        size = max(1, int(np.ceil(2 * radius / self.resolution)) | 1)
        return SurfaceModel(maximum_filter(self.heights, size=size, mode='nearest'),
                            self.origin, self.resolution)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Heights (N,) float64 at points (N, 2) (nearest cell, clamped at the border)."""
        ij = np.floor((np.asarray(xy)[:, :2] - self.origin) / self.resolution).astype(int)
        ij[:, 0] = np.clip(ij[:, 0], 0, self.heights.shape[0] - 1)
        ij[:, 1] = np.clip(ij[:, 1], 0, self.heights.shape[1] - 1)
        return self.heights[ij[:, 0], ij[:, 1]].astype(np.float64)


# ----------------------------------------------------------------------------- helpers
def _finish(kind: str, xy: np.ndarray, z: np.ndarray, yaw: np.ndarray, dt: float,
            num_frames: int, frame_rate: float, pad: int, tilt: bool) -> Trajectory:
    """Dense path -> sampled :class:`Trajectory` (derivatives by central differences).

    ``xy`` (N, 2), ``z`` (N,), ``yaw`` (N,) are dense samples at ``dt``; the first ``pad``
    samples precede frame 0 so derivatives at the first and last frames are central.
    """
    pos = np.concatenate([xy, z[:, None]], axis=1)
    vel = np.gradient(pos, dt, axis=0)
    yaw = np.unwrap(yaw)
    if tilt:
        acc = gaussian_filter1d(np.gradient(vel, dt, axis=0), 2.0, axis=0)
        c, s = np.cos(yaw), np.sin(yaw)
        a_fwd = c * acc[:, 0] + s * acc[:, 1]
        a_left = -s * acc[:, 0] + c * acc[:, 1]
        lim = np.deg2rad(20.0)
        pitch = np.clip(np.arctan2(a_fwd, GRAVITY), -lim, lim)  # nose down when speeding up
        roll = np.clip(-np.arctan2(a_left, GRAVITY), -lim, lim)  # bank into the turn
    else:
        pitch = roll = np.zeros_like(yaw)
    rot = Rotation.from_euler('ZYX', np.stack([yaw, pitch, roll], axis=1))
    # body angular velocity: rotvec(R_{i-1}^T R_{i+1}) / (2 dt)
    ang = np.zeros_like(pos)
    ang[1:-1] = (rot[:-2].inv() * rot[2:]).as_rotvec() / (2 * dt)
    step = int(round(1.0 / (frame_rate * dt)))
    idx = pad + step * np.arange(num_frames)
    quat = rot[idx].as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar-last
    for i in range(1, len(quat)):  # sign continuity (q and -q are the same rotation)
        if np.dot(quat[i], quat[i - 1]) < 0:
            quat[i] = -quat[i]
    if quat[0, 0] < 0:
        quat = -quat
    return Trajectory(kind=kind, timestamps=np.arange(num_frames) / frame_rate,
                      positions=pos[idx], quaternions=quat, linear_velocity=vel[idx],
                      angular_velocity=ang[idx], yaw=yaw[idx])


def _terrain_follow(xy: np.ndarray, z_base: np.ndarray, dsm: Optional[SurfaceModel],
                    clearance: float, dt: float) -> np.ndarray:
    """Raise a dense altitude profile to keep ``clearance`` above the surface, smoothly."""
    if dsm is None:
        return z_base
    need = dsm(xy) + clearance
    z = np.maximum(z_base, need)
    win = max(1, int(round(3.0 / dt)))  # start climbing ~1.5 s before an obstacle
    z = maximum_filter1d(z, size=win, mode='nearest')
    z = gaussian_filter1d(z, sigma=win / 4.0, mode='nearest')
    return np.maximum(z, need)


def _arc_path(points: np.ndarray, s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Positions (N, 2) and tangent headings (N,) at arc lengths ``s`` along a dense
    polyline ``points`` (M, 2) (extrapolates linearly beyond its ends)."""
    seg = np.diff(points, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    keep = seg_len > 1e-9
    seg, seg_len = seg[keep], seg_len[keep]
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    k = np.clip(np.searchsorted(cum, s, side='right') - 1, 0, len(seg) - 1)
    frac = (s - cum[k]) / seg_len[k]
    start = np.concatenate([points[:1], points[1:][keep]])[:-1]
    pos = start[k] + frac[:, None] * seg[k]
    heading = np.arctan2(seg[k, 1], seg[k, 0])
    return pos, heading


def _smooth_heading(heading: np.ndarray, sigma: float) -> np.ndarray:
    """Low-pass an angle sequence (filters its unit vector, so wrap-around is harmless)."""
    c = gaussian_filter1d(np.cos(heading), sigma, mode='nearest')
    s = gaussian_filter1d(np.sin(heading), sigma, mode='nearest')
    return np.unwrap(np.arctan2(s, c))


def _pick_centre(rng: np.random.Generator, area: np.ndarray,
                 anchors: Optional[np.ndarray], jitter: float) -> np.ndarray:
    """A random point near a random anchor (building centre) or anywhere in ``area``."""
    if anchors is not None and len(anchors):
        c = anchors[rng.integers(len(anchors))] + rng.normal(0, jitter, 2)
    else:
        c = area[:2] + rng.random(2) * (area[2:] - area[:2])
    return np.clip(c, area[:2], area[2:])


# ----------------------------------------------------------------------------- drones
def drone_trajectory(kind: str, rng: np.random.Generator, area: np.ndarray, altitude: float,
                     num_frames: int, frame_rate: float = 2.0,
                     anchors: Optional[np.ndarray] = None, dsm: Optional[SurfaceModel] = None,
                     clearance: float = 5.0, speed_range: Tuple[float, float] = (6.0, 10.0),
                     dt: float = 0.05) -> Trajectory:
    """Simulate one drone flight.

    Args:
        kind (str): one of :data:`DRONE_KINDS`.
        rng (np.random.Generator): randomness source.
        area (np.ndarray): (4,) xmin, ymin, xmax, ymax flight area (m, site frame).
        altitude (float): nominal altitude above the datum (m).
        num_frames (int): frames to sample (>= 2).
        frame_rate (float): frames per second.
        anchors (np.ndarray | None): (K, 2) points of interest (building centres) that
            surveys and orbits are placed around.
        dsm (SurfaceModel | None): surface model for obstacle clearance (already dilated).
        clearance (float): metres kept above the surface model.
        speed_range (tuple): horizontal speed range (m/s).
        dt (float): dense integration step (s); ``1 / (frame_rate * dt)`` must be an integer.

    Returns:
        Trajectory: the sampled poses.
    """
    if kind not in DRONE_KINDS:
        raise ValueError(f'unknown drone trajectory kind {kind!r}; expected one of '
                         f'{DRONE_KINDS}')
    if num_frames < 2:
        raise ValueError(f'num_frames must be >= 2, got {num_frames}')
    step = 1.0 / (frame_rate * dt)
    if abs(step - round(step)) > 1e-6:
        raise ValueError(f'1 / (frame_rate * dt) must be an integer (frame_rate={frame_rate}, '
                         f'dt={dt})')
    pad = int(round(1.0 / dt))  # 1 s before the first / after the last frame
    n = pad * 2 + int(round(step)) * (num_frames - 1) + 1
    t = np.arange(n) * dt
    speed = rng.uniform(*speed_range)
    if kind == 'drone_survey':
        centre = _pick_centre(rng, area, anchors, 20.0)
        spacing = rng.uniform(15.0, 30.0)
        leg = rng.uniform(60.0, 160.0)
        theta = rng.uniform(-np.pi, np.pi)
        total = speed * t[-1] + 10.0
        n_legs = int(np.ceil(total / (leg + np.pi * spacing / 2))) + 1
        pts = []
        r = spacing / 2
        for i in range(n_legs):  # leg i along +x (even) or -x (odd), at y = i * spacing
            y0 = i * spacing
            xs = np.linspace(0, leg, max(2, int(leg / 0.5)))
            pts.append(np.stack([xs if i % 2 == 0 else leg - xs, np.full_like(xs, y0)], 1))
            ang = np.linspace(-np.pi / 2, np.pi / 2, 40)[1:-1]
            if i % 2 == 0:  # turn at x = leg, counter-clockwise
                pts.append(np.stack([leg + r * np.cos(ang), y0 + r + r * np.sin(ang)], 1))
            else:  # turn at x = 0
                pts.append(np.stack([-r * np.cos(ang), y0 + r + r * np.sin(ang)], 1))
        path = np.concatenate(pts)
        path -= np.array([leg / 2, (n_legs - 1) * spacing / 2])
        c, s = np.cos(theta), np.sin(theta)
        path = path @ np.array([[c, s], [-s, c]]) + centre
        s0 = rng.uniform(0, leg / 2)
        xy, _ = _arc_path(path, s0 + speed * t)
        yaw = _smooth_heading(np.arctan2(*np.gradient(xy, axis=0)[:, ::-1].T), 0.5 / dt)
        z = np.full(n, altitude)
    elif kind == 'drone_orbit':
        centre = _pick_centre(rng, area, anchors, 5.0)
        radius = rng.uniform(20.0, 50.0)
        direction = rng.choice([-1.0, 1.0])
        phi = rng.uniform(-np.pi, np.pi) + direction * speed / radius * t
        xy = centre + radius * np.stack([np.cos(phi), np.sin(phi)], 1)
        yaw = phi + np.pi + rng.uniform(-0.2, 0.2)  # look at the centre
        z = altitude + 2.0 * np.sin(2 * np.pi * t / rng.uniform(15.0, 30.0))
    else:  # drone_random_walk
        xy = np.zeros((n, 2))
        yaw = np.zeros(n)
        xy[0] = _pick_centre(rng, area, anchors, 30.0)
        heading = rng.uniform(-np.pi, np.pi)
        noise = gaussian_filter1d(rng.normal(0, 1.0, n), 1.0 / dt) * np.sqrt(1.0 / dt)
        v = speed + 1.5 * gaussian_filter1d(rng.normal(0, 1.0, n), 2.0 / dt) * np.sqrt(2.0 / dt)
        v = np.clip(v, *speed_range)
        centre = 0.5 * (area[:2] + area[2:])
        for i in range(n):
            yaw[i] = heading
            if i + 1 == n:
                break
            rate = 0.25 * noise[i]
            out = np.maximum(area[:2] - xy[i], 0) + np.maximum(xy[i] - area[2:], 0)
            if np.any(out > 0) or np.any(np.abs(xy[i] - centre) > 0.45 * (area[2:] - area[:2])):
                to_c = np.arctan2(*(centre - xy[i])[::-1])
                rate += 0.5 * np.sin(to_c - heading)  # soft steering back into the area
            heading += np.clip(rate, -0.6, 0.6) * dt
            xy[i + 1] = xy[i] + v[i] * dt * np.array([np.cos(heading), np.sin(heading)])
        yaw = _smooth_heading(yaw, 0.3 / dt)
        z = altitude + 4.0 * gaussian_filter1d(rng.normal(0, 1.0, n), 3.0 / dt) * np.sqrt(3 / dt)
    z = _terrain_follow(xy, z, dsm, clearance, dt)
    return _finish(kind, xy, z, yaw, dt, num_frames, frame_rate, pad, tilt=True)


# ----------------------------------------------------------------------------- rover
class RoadsTooNarrowError(ValueError):
    """The road polygons leave no area where a rover keeps its margin from the edges."""


def drivable_parts(road_area, margin: float = 1.0, min_area: float = 1.0) -> list:
    """Pieces of the road area a rover can drive in.

    Slivers are closed (0.25 m buffer out and back), then the area is shrunk by ``margin``
    so the rover stays off the edges; pieces smaller than ``min_area`` are dropped.

    Args:
        road_area: shapely (Multi)Polygon, union of the road polygons (site frame, m).
        margin (float): distance kept from the road edge (m).
        min_area (float): smallest usable piece (m^2).

    Returns:
        list: shapely Polygons (empty when the roads are too narrow).
    """
    drivable = road_area.buffer(0.25).buffer(-0.25 - margin)
    return [g for g in getattr(drivable, 'geoms', [drivable])
            if not g.is_empty and g.area > min_area]


def rover_trajectory(rng: np.random.Generator, road_area, num_frames: int,
                     frame_rate: float = 2.0, ground_height=None,
                     speed_range: Tuple[float, float] = (3.0, 6.0), margin: float = 1.0,
                     dt: float = 0.05) -> Trajectory:
    """Simulate a ground robot driving inside the road polygons.

    Args:
        rng (np.random.Generator): randomness source.
        road_area: shapely (Multi)Polygon, union of the road polygons (site frame, m).
        num_frames (int): frames to sample (>= 2).
        frame_rate (float): frames per second.
        ground_height (callable | None): ``(N, 2) -> (N,)`` ground z (m); None = 0.
        speed_range (tuple): cruise speed range (m/s).
        margin (float): distance kept from the road edge (m).
        dt (float): dense integration step (s).

    Returns:
        Trajectory: poses on the ground (z = ground height), level (no roll / pitch).

    Raises:
        RoadsTooNarrowError: when the roads are too narrow for the margin.
        ValueError: invalid timing.
    """
    step = 1.0 / (frame_rate * dt)
    if abs(step - round(step)) > 1e-6 or num_frames < 2:
        raise ValueError(f'invalid rover timing: frame_rate={frame_rate}, dt={dt}, '
                         f'num_frames={num_frames}')
    parts = drivable_parts(road_area, margin)
    if not parts:
        raise RoadsTooNarrowError(f'roads too narrow for a rover with margin {margin} m')
    weights = np.array([g.area for g in parts])
    part = parts[rng.choice(len(parts), p=weights / weights.sum())]
    shapely.prepare(part)
    x0, y0, x1, y1 = part.bounds
    for _ in range(1000):
        start = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        if shapely.contains_xy(part, start[0], start[1]):
            break
    else:
        raise ValueError('could not place a rover inside the road polygons')

    look = np.linspace(1.0, 10.0, 10)
    cand = np.linspace(-1.2, 1.2, 25)

    def free_distance(p, headings):
        hx = p[0] + np.cos(headings)[:, None] * look[None]
        hy = p[1] + np.sin(headings)[:, None] * look[None]
        inside = shapely.contains_xy(part, hx, hy)
        blocked = ~inside
        first = np.where(blocked.any(1), blocked.argmax(1), len(look))
        return np.concatenate([[0.0], look])[first]

    all_dirs = np.linspace(-np.pi, np.pi, 36, endpoint=False)
    heading = all_dirs[np.argmax(free_distance(start, all_dirs) + 0.01 * rng.random(36))]
    pad = int(round(1.0 / dt))
    n = pad * 2 + int(round(step)) * (num_frames - 1) + 1
    cruise = rng.uniform(*speed_range)
    pref = gaussian_filter1d(rng.normal(0, 1.0, n), 1.0 / dt) * np.sqrt(1.0 / dt) * 0.3
    xy = np.zeros((n, 2))
    yaw = np.zeros(n)
    xy[0] = start
    v, rate = 0.0, 0.0
    turning_to = None  # absolute heading while turning on the spot at a dead end
    target, v_target = 0.0, cruise
    for i in range(n):
        yaw[i] = heading
        if i + 1 == n:
            break
        if turning_to is not None:
            err = float(np.angle(np.exp(1j * (turning_to - heading))))
            if abs(err) < 0.15:
                turning_to = None
            else:
                target, v_target = err, 0.0
        if turning_to is None and i % 2 == 0:  # re-plan at 10 Hz
            fd = free_distance(xy[i], heading + cand)
            if fd.max() < 2.5:  # dead end: turn on the spot towards the most open side
                fd_all = free_distance(xy[i], heading + all_dirs)
                turning_to = heading + all_dirs[int(np.argmax(fd_all))]
                target, v_target = float(np.angle(np.exp(1j * (turning_to - heading)))), 0.0
            else:
                best = int(np.argmax(fd - 2.0 * np.abs(cand - pref[i])))
                target, v_target = cand[best], min(cruise, 0.8 * fd[best])
        rate_cmd = np.clip(2.0 * target, -1.0, 1.0)
        rate += (rate_cmd - rate) * min(1.0, dt / 0.3)  # first-order lag: smooth heading
        v += np.clip(v_target - v, -1.5 * dt, 1.0 * dt)  # bounded acceleration
        heading += rate * dt
        target -= rate * dt
        nxt = xy[i] + v * dt * np.array([np.cos(heading), np.sin(heading)])
        if shapely.contains_xy(part, nxt[0], nxt[1]):
            xy[i + 1] = nxt
        else:  # never leave the road: stop (the planner turns next)
            xy[i + 1] = xy[i]
            v = 0.0
    z = np.zeros(n) if ground_height is None else ground_height(xy)
    return _finish(ROVER_KIND, xy, z, yaw, dt, num_frames, frame_rate, pad, tilt=False)


def assign_altitudes(levels: Sequence[float], count: int) -> np.ndarray:
    """Cycle through altitude levels for ``count`` sessions.

    Args:
        levels (Sequence[float]): altitudes (m).
        count (int): number of sessions.

    Returns:
        np.ndarray: (count,) float64 altitudes.
    """
    levels = np.asarray(levels, np.float64)
    return levels[np.arange(count) % len(levels)]
