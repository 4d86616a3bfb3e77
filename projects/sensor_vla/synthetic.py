"""Generated needle-insertion episodes for the sensor VLA (OCT A-scans are GENERATED).

No public OCT A-scan recording exists, so this module *generates* them; everything that uses
these episodes says so. What is real and what is generated:

- **Force channel (real):** the Fz trace (newtons) of a real robot screw-driving episode
  (``data/force_torque/screw_driving/sensor_data.csv``, 726 rows), linearly resampled from its
  timestamps to the stream rate; every episode takes a different segment.
- **A-scans (generated):** 1025 depth samples per time sample at ``rate_hz`` (650 Hz), depth
  spacing ``dz_mm`` (5 µm, 5.12 mm range). Model of one A-scan at needle-to-surface distance
  ``d`` (mm): a needle-tip reflection at depth 0, Rayleigh speckle background, and from the
  tissue surface at index ``i_s = d / dz_mm`` on a bright surface reflection (Gaussian, 3
  samples wide) followed by tissue scattering decaying as ``exp(-(i - i_s) dz_mm / 1.2 mm)``
  with multiplicative speckle. So the interface depth in the A-scan *is* the insertion state.
- **Images (generated, simple renders):** a 64 x 64 top view: tissue texture, the target
  marker (red disc) and the needle tip (white dot) at their lateral positions. The distance
  to the tissue along the needle axis is not visible in the image.
- **Actions (expert policy):** ``dx, dy = 0.35 * (target - tip)`` (lateral servoing, seen in the
  image), ``dz = -0.3 * (d - d_target)`` mm converted to metres (depends on ``d``, seen only in
  the A-scan), rotations 0, gripper 1 (closed on the needle). The state then evolves with the
  action: ``d <- d + dz``, ``tip <- tip + (dx, dy)``.
"""
import os.path as osp
from typing import Dict

import cv2
import numpy as np

__all__ = ['load_force_trace', 'generate_ascan', 'render_topview', 'generate_episode',
           'ASCAN_SAMPLES']

ASCAN_SAMPLES = 1025


def load_force_trace(csv_path: str, rate_hz: float) -> np.ndarray:
    """The real Fz trace of the screw-driving episode resampled to ``rate_hz``.

    Args:
        csv_path (str): ``sensor_data.csv`` (columns ``timestamp`` in ms, ``Fz`` in N).
        rate_hz (float): Output rate.

    Returns:
        ndarray: ``(N,)`` float32 newtons.

    Raises:
        FileNotFoundError: When the CSV is missing.
        KeyError: When it lacks ``timestamp`` or ``Fz``.
    """
    if not osp.exists(csv_path):
        raise FileNotFoundError(f'force/torque trace not found: {csv_path}')
    arr = np.genfromtxt(csv_path, delimiter=',', names=True)
    for k in ('timestamp', 'Fz'):
        if k not in arr.dtype.names:
            raise KeyError(f'{csv_path}: no column {k!r}')
    t = (arr['timestamp'] - arr['timestamp'][0]) / 1000.0
    grid = np.arange(0.0, t[-1], 1.0 / rate_hz)
    return np.interp(grid, t, arr['Fz']).astype(np.float32)


def generate_ascan(depth_mm: np.ndarray, rng: np.random.Generator, dz_mm: float = 0.005,
                   samples: int = ASCAN_SAMPLES) -> np.ndarray:
    """Generated A-scans for a sequence of needle-to-surface distances (see module doc).

    Args:
        depth_mm (ndarray): ``(N,)`` distances in mm.
        rng (Generator): Noise source.
        dz_mm (float): Depth spacing of the samples in mm. Defaults to 0.005.
        samples (int): Samples per A-scan. Defaults to 1025.

    Returns:
        ndarray: ``(N, samples)`` float32 intensities (arbitrary units, ~0..1).
    """
    idx = np.arange(samples, dtype=np.float32)[None]
    surf = (np.asarray(depth_mm, dtype=np.float32) / dz_mm)[:, None]
    n = len(depth_mm)
    speckle = rng.rayleigh(0.03, size=(n, samples)).astype(np.float32)
    tip = 0.6 * np.exp(-0.5 * (idx / 2.0) ** 2)
    peak = 1.0 * np.exp(-0.5 * ((idx - surf) / 3.0) ** 2)
    below = idx >= surf
    tissue = np.where(below, 0.35 * np.exp(-(idx - surf) * dz_mm / 1.2), 0.0)
    tissue = tissue * rng.rayleigh(1.0, size=(n, samples)).astype(np.float32) * 0.8
    return (speckle + tip + peak + tissue).astype(np.float32)


def render_topview(tip_xy: np.ndarray, target_xy: np.ndarray, texture: np.ndarray,
                   size: int = 64) -> np.ndarray:
    """A 64 x 64 top view: tissue texture, target (red disc), needle tip (white dot).

    Args:
        tip_xy, target_xy (ndarray): ``(2,)`` lateral positions in [-1, 1].
        texture (ndarray): ``(size, size, 3)`` uint8 background.

    Returns:
        ndarray: ``(size, size, 3)`` uint8 RGB.
    """
    img = texture.copy()

    def px(p):
        return tuple(int(round((v + 1) / 2 * (size - 1))) for v in p)
    cv2.circle(img, px(target_xy), 5, (220, 40, 40), -1)
    cv2.circle(img, px(tip_xy), 2, (255, 255, 255), -1)
    return img


def generate_episode(rng: np.random.Generator, force_trace: np.ndarray, num_steps: int = 12,
                     control_hz: float = 10.0, rate_hz: float = 650.0, window: int = 650,
                     with_sensor: bool = True, d_target_mm: float = 0.5) -> Dict:
    """One insertion episode (see the module doc for the model).

    Args:
        rng (Generator): Randomness of this episode.
        force_trace (ndarray): Real force trace at ``rate_hz`` (:func:`load_force_trace`).
        num_steps (int): Control steps T. Defaults to 12.
        control_hz (float): Control rate. Defaults to 10.
        rate_hz (float): Sensor rate. Defaults to 650.
        window (int): Stream samples recorded before the first step. Defaults to 650.
        with_sensor (bool): Record the stream (False: a camera-only session).
        d_target_mm (float): Target distance. Defaults to 0.5 mm.

    Returns:
        dict: ``images`` ``(T, 1, 64, 64, 3)`` uint8, ``actions`` ``(T, 7)`` float32,
        ``state`` ``(T, 3)`` (tip x, y, d in mm), and with a sensor ``sensor`` ``(N, 1026)``
        float16 and ``sensor_end`` ``(T,)``; ``instruction`` str.
    """
    per_step = int(round(rate_hz / control_hz))
    tex = (rng.normal(150, 12, size=(64, 64, 3)).clip(0, 255)).astype(np.uint8)
    tex[..., 0] = np.clip(tex[..., 0].astype(int) + 40, 0, 255)
    tex = cv2.GaussianBlur(tex, (5, 5), 1.5)
    tip = rng.uniform(-0.6, 0.6, 2)
    target = rng.uniform(-0.6, 0.6, 2)
    d = rng.uniform(0.8, 4.5)
    images, actions, states, depth_track = [], [], [], []
    for _ in range(num_steps):
        images.append(render_topview(tip, target, tex)[None])
        states.append([tip[0], tip[1], d])
        dxy = 0.35 * (target - tip)
        dz_mm = -0.3 * (d - d_target_mm)
        actions.append([dxy[0] * 0.01, dxy[1] * 0.01, dz_mm * 1e-3, 0, 0, 0, 1.0])
        # distance during the next control period (linear within the period)
        depth_track.append(d + dz_mm * np.arange(1, per_step + 1) / per_step)
        tip = tip + dxy
        d = d + dz_mm
    out = dict(images=np.stack(images), actions=np.asarray(actions, np.float32),
               state=np.asarray(states, np.float32),
               instruction='insert the needle at the red target to the set depth')
    if with_sensor:
        # before the first step the needle holds still for `window` samples
        d0 = states[0][2]
        depth = np.concatenate([np.full(window, d0)] + depth_track[:-1])
        n = len(depth)
        start = int(rng.integers(0, max(1, len(force_trace) - n)))
        force = np.resize(force_trace[start:start + n], n)
        ascan = generate_ascan(depth, rng)
        out['sensor'] = np.concatenate([force[:, None], ascan], axis=1).astype(np.float16)
        out['sensor_end'] = window + per_step * np.arange(num_steps, dtype=np.int64)
    return out
