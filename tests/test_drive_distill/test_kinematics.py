"""Unicycle integration (hand-computed) and inverse round trips on real nuScenes ego tracks."""
import os.path as osp

import numpy as np
import pytest
import torch

from projects.common.structures.trajectory import (estimate_velocity_ls, unicycle_inverse,
                                                   unicycle_inverse_exact, unicycle_rollout)
from projects.drive_distill.converters.scenarionet import convert_scenario
from projects.drive_distill.transforms.scene_transforms import to_ego_frame

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_rollout_hand_computed():
    # v0 = 2 m/s, a = 1 m/s², κ = 0 for 2 steps of 0.5 s: v = 2, 2.5, 3
    out = unicycle_rollout(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor(2.0), dt=0.5)
    assert out[:, 0].tolist() == pytest.approx([0.5 * 0.5 * (2 + 2.5), 1.125 + 0.25 * 5.5])
    assert out[:, 3].tolist() == pytest.approx([2.5, 3.0])
    # constant speed 1 m/s, κ = 1 (yaw rate 1 rad/s), dt = 0.1: yaw 0.1; trapezoid position
    out = unicycle_rollout(torch.tensor([[0.0, 1.0]]), torch.tensor(1.0), dt=0.1)
    x = 0.05 * (1 + np.cos(0.1))
    y = 0.05 * np.sin(0.1)
    assert out[0].tolist() == pytest.approx([x, y, 0.1, 1.0], abs=1e-6)


def _real_windows():
    path = osp.join(ROOT, 'data', 'scenarionet', 'sd_nuscenes_v1.0-mini_scene-0796.pkl')
    _, scene = convert_scenario(path)
    hist, fut = [], []
    for t0 in range(15, len(scene['ego_xy']) - 64, 10):
        e = to_ego_frame(scene['ego_xy'][t0 - 15:t0 + 65], scene['ego_xy'][t0],
                         scene['ego_yaw'][t0])
        hist.append(e[:16])
        fut.append(e[16:])
    return torch.tensor(np.array(hist)), torch.tensor(np.array(fut))


def test_exact_inverse_round_trip_real_tracks():
    hist, fut = _real_windows()
    v0 = estimate_velocity_ls(hist)[..., 0]
    actions = unicycle_inverse_exact(fut, v0, max_curvature=1e9, min_speed=1e-3)
    back = unicycle_rollout(actions, v0)[..., :2]
    assert (back - fut).norm(dim=-1).max() < 0.05  # 5 cm over 6.4 s


def test_regularised_inverse_is_smooth_and_close():
    hist, fut = _real_windows()
    v0 = estimate_velocity_ls(hist)[..., 0]
    actions = unicycle_inverse(fut, v0, smooth_weight=0.1)
    back = unicycle_rollout(actions, v0)[..., :2]
    err = (back - fut).norm(dim=-1)
    assert err.median() < 0.05
    assert actions[..., 0].abs().max() < 10.0  # no zig-zag accelerations
