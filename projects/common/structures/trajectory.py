"""Planar trajectory geometry shared by the driving systems and the trajectory metric.

Conventions: trajectories live in the ego frame at the current time t0 (x forward, y left,
metres; yaw counter-clockwise from +x, radians); time steps are ``dt`` seconds apart
(10 Hz, ``dt = 0.1`` by default); the pose at t0 is the origin with yaw 0 and is *not* part
of a future trajectory (step ``k`` of a ``(T, 3)`` trajectory is the pose at ``(k + 1) dt``).

Unicycle model (kinematic bicycle without slip): state ``(x, y, θ, v)``, controls
acceleration ``a`` (m/s²) and curvature ``κ`` (1/m), yaw rate ``ω = κ v``. One step of the
trapezoidal rule (Heun's method on the velocity, see e.g. LaValle, *Planning Algorithms*,
2006, §13.1.2 for the model)::

    v' = v + a dt
    θ' = θ + κ (v + v') / 2 dt
    x' = x + (v cos θ + v' cos θ') / 2 dt
    y' = y + (v sin θ + v' sin θ') / 2 dt

The inverse (:func:`unicycle_inverse`) is a smoothness-regularised non-linear least-squares fit
of the controls to the target positions (Gauss-Newton).
"""
import math

import torch

from .pose import wrap_angle

__all__ = [
    'wrap_angle', 'unicycle_rollout', 'unicycle_inverse', 'unicycle_inverse_exact',
    'estimate_velocity_ls',
    'constant_velocity_baseline', 'yaw_from_rotation', 'rotation_from_yaw',
    'ego_history_features'
]


def unicycle_rollout(actions, v0, dt=0.1):
    """Integrate unicycle controls with the trapezoidal rule (see the module docstring).

    Args:
        actions (Tensor): (..., T, 2) float, ``[acceleration m/s², curvature 1/m]`` applied
            over each step.
        v0 (Tensor): (...,) float, signed speed at t0 along the t0 heading (m/s).
        dt (float): step in seconds.

    Returns:
        Tensor: (..., T, 4) float ``[x, y, yaw, v]`` at ``dt, 2 dt, ..., T dt`` (metres,
        radians, m/s), starting from the origin with yaw 0.
    """
    acc, curv = actions[..., 0], actions[..., 1]
    # speeds at 0..T (cumulative sum, vectorised)
    v = torch.cat([v0.unsqueeze(-1), v0.unsqueeze(-1) + torch.cumsum(acc * dt, dim=-1)], dim=-1)
    v_mid = 0.5 * (v[..., :-1] + v[..., 1:])
    yaw = torch.cat([torch.zeros_like(v0).unsqueeze(-1),
                     torch.cumsum(curv * v_mid * dt, dim=-1)], dim=-1)
    vx, vy = v * torch.cos(yaw), v * torch.sin(yaw)
    x = torch.cumsum(0.5 * (vx[..., :-1] + vx[..., 1:]) * dt, dim=-1)
    y = torch.cumsum(0.5 * (vy[..., :-1] + vy[..., 1:]) * dt, dim=-1)
    return torch.stack([x, y, yaw[..., 1:], v[..., 1:]], dim=-1)


def unicycle_inverse(traj_xy, v0, dt=0.1, action_scale=(1.0, 0.05), smooth_weight=0.1,
                     ridge=1e-4, num_iters=8):
    """Recover unicycle controls whose rollout follows ``traj_xy`` (teacher actions).

    Regularised non-linear least squares solved by Gauss-Newton / Levenberg-Marquardt
    (batched, float64, Jacobians by forward-mode autodiff ``torch.func.jacfwd``)::

        min_u  Σ_t ‖rollout(u ⊙ s, v0)_t - p_t‖²  +  w Σ_t ‖u_{t+1} - u_t‖²  +  ρ ‖u‖²

    with ``u`` the controls divided by ``action_scale`` ``s``. The smoothness term ``w``
    suppresses the alternating (zig-zag) solutions that an exact step-by-step inversion of the
    trapezoidal rule produces from position noise or a mismatched ``v0``; the tiny ridge
    ``ρ`` makes the curvature determined at standstill (where it does not move the vehicle).
    On real nuScenes ego tracks the rollout of the result stays within a few centimetres of the
    target over 6.4 s (tested).

    Args:
        traj_xy (Tensor): (..., T, 2) float target positions at ``dt .. T dt`` (metres, ego
            frame at t0).
        v0 (Tensor): (...,) float speed at t0 (m/s), e.g. from :func:`estimate_velocity_ls`.
        dt (float): step in seconds.
        action_scale (tuple[float]): scale of (acceleration m/s², curvature 1/m).
        smooth_weight (float): ``w``.
        ridge (float): ``ρ``.
        num_iters (int): Gauss-Newton iterations.

    Returns:
        Tensor: (..., T, 2) ``[acceleration m/s², curvature 1/m]``, dtype of ``traj_xy``.
    """
    from torch.func import jacfwd, vmap
    shape = traj_xy.shape[:-2]
    num_steps = traj_xy.shape[-2]
    target = traj_xy.detach().reshape(-1, num_steps, 2).double()
    speed0 = v0.detach().double().expand(shape).reshape(-1)
    scale = torch.tensor(action_scale, dtype=torch.float64, device=traj_xy.device)

    def residual(u_flat, v, tgt):
        roll = unicycle_rollout(u_flat.view(num_steps, 2) * scale, v, dt)
        return (roll[:, :2] - tgt).reshape(-1)

    n = 2 * num_steps
    eye = torch.eye(n, dtype=torch.float64, device=traj_xy.device)
    diff = (eye[2:] - eye[:-2])  # first differences per channel (interleaved a, κ)
    reg = smooth_weight * diff.T @ diff + ridge * eye
    u = target.new_zeros(target.shape[0], n)
    jac_fn = vmap(jacfwd(residual), in_dims=(0, 0, 0))
    res_fn = vmap(residual, in_dims=(0, 0, 0))
    for _ in range(num_iters):
        jac = jac_fn(u, speed0, target)  # (N, 2T, 2T)
        res = res_fn(u, speed0, target)
        lhs = jac.transpose(1, 2) @ jac + reg
        rhs = (jac.transpose(1, 2) @ res[..., None])[..., 0] + u @ reg
        u = u - torch.linalg.solve(lhs, rhs[..., None])[..., 0]
    actions = u.view(*shape, num_steps, 2) * scale
    return actions.to(traj_xy.dtype)


def unicycle_inverse_exact(traj_xy, v0, dt=0.1, max_curvature=1.0, min_speed=0.2):
    """Step-wise exact inverse of :func:`unicycle_rollout` (closed loop, no smoothing).

    From the *integrated* state ``(p, θ, v)`` the next target position fixes
    ``w = 2 (p* - p) / dt - v (cos θ, sin θ) = v' (cos θ', sin θ')``, hence ``θ'`` and ``v'``
    (negative when reversing needs the smaller turn). The curvature ``κ = Δθ / (v̄ dt)`` is
    clipped to ``±max_curvature`` and 0 below ``min_speed``; after a clip ``v'`` is the
    projection of ``w`` on the reachable heading and the next step corrects the residual, so
    errors do not accumulate. Integrating the result reproduces ``traj_xy`` to floating-point
    accuracy wherever no clip applies; the price is that position noise or a mismatched ``v0``
    shows up as alternating (zig-zag) accelerations — use :func:`unicycle_inverse` for
    training targets.

    Args:
        traj_xy (Tensor): (..., T, 2) float target positions (metres).
        v0 (Tensor): (...,) float speed at t0 (m/s).
        dt (float): step in seconds.
        max_curvature (float): curvature clip (1/m).
        min_speed (float): mean step speed (m/s) under which the curvature is 0.

    Returns:
        Tensor: (..., T, 2) ``[acceleration m/s², curvature 1/m]``.
    """
    shape = traj_xy.shape[:-2]
    p = traj_xy.new_zeros(*shape, 2)
    yaw = traj_xy.new_zeros(shape)
    v = v0.to(traj_xy.dtype).expand(shape).clone()
    out = []
    for t in range(traj_xy.shape[-2]):
        heading = torch.stack([torch.cos(yaw), torch.sin(yaw)], dim=-1)
        w = 2.0 * (traj_xy[..., t, :] - p) / dt - v.unsqueeze(-1) * heading
        dyaw = wrap_angle(torch.atan2(w[..., 1], w[..., 0]) - yaw)
        reverse = dyaw.abs() > math.pi / 2
        dyaw = torch.where(reverse, wrap_angle(dyaw + math.pi), dyaw)
        speed = torch.linalg.norm(w, dim=-1)
        v_new = torch.where(reverse, -speed, speed)
        v_mid = 0.5 * (v + v_new)
        moving = v_mid.abs() >= min_speed
        safe = torch.where(moving, v_mid, torch.ones_like(v_mid))
        curv = torch.where(moving, dyaw / (safe * dt), torch.zeros_like(dyaw))
        curv = curv.clamp(-max_curvature, max_curvature)
        reach = yaw + curv * v_mid * dt
        clipped = (curv * v_mid * dt - dyaw).abs() > 1e-9
        reach_heading = torch.stack([torch.cos(reach), torch.sin(reach)], dim=-1)
        v_new = torch.where(clipped, (w * reach_heading).sum(-1), v_new)
        new_yaw = yaw + curv * 0.5 * (v + v_new) * dt
        new_heading = torch.stack([torch.cos(new_yaw), torch.sin(new_yaw)], dim=-1)
        out.append(torch.stack([(v_new - v) / dt, curv], dim=-1))
        p = p + 0.5 * dt * (v.unsqueeze(-1) * heading + v_new.unsqueeze(-1) * new_heading)
        yaw, v = new_yaw, v_new
    return torch.stack(out, dim=-2)


def estimate_velocity_ls(hist_xy, dt=0.1, num_points=6, ridge=1.0):
    """Velocity at t0 from the ego history by ridge-regularised least squares.

    Fits ``p(t) = p0 + v t + ½ a t²`` per axis to the last ``num_points`` history positions
    (t = -(n-1) dt .. 0) with an L2 penalty ``ridge`` on ``a`` (and none on ``p0``, ``v``),
    which damps the jitter of finite differences without lagging like a plain average.
    Closed form ``(AᵀA + R)⁻¹ Aᵀ p``.

    Args:
        hist_xy (Tensor): (..., H, 2) float history positions, oldest first, the last one at
            t0 (metres).
        dt (float): step in seconds.
        num_points (int): number of most recent points used (≥ 2).
        ridge (float): penalty on the acceleration coefficient.

    Returns:
        Tensor: (..., 2) float velocity at t0 (m/s) in the frame of ``hist_xy``.

    Raises:
        ValueError: if fewer than 2 history points are available.
    """
    n = min(num_points, hist_xy.shape[-2])
    if n < 2:
        raise ValueError(f'estimate_velocity_ls needs >= 2 history points, got {n}')
    pts = hist_xy[..., -n:, :]
    t = torch.arange(-(n - 1), 1, dtype=hist_xy.dtype, device=hist_xy.device) * dt
    design = torch.stack([torch.ones_like(t), t, 0.5 * t * t], dim=-1)  # (n, 3)
    gram = design.T @ design + torch.diag(t.new_tensor([0.0, 0.0, ridge]))
    coef = torch.linalg.solve(gram, design.T @ pts)  # (..., 3, 2)
    return coef[..., 1, :]


def constant_velocity_baseline(hist_xy, num_future=64, dt=0.1, **ls_kwargs):
    """Constant-velocity extrapolation from the ego history (the metric's baseline).

    The velocity vector comes from :func:`estimate_velocity_ls`; the trajectory is the
    straight line ``p_k = v (k + 1) dt`` from the t0 origin, yaw = the velocity heading
    (0 when slower than 0.2 m/s).

    Args:
        hist_xy (Tensor): (..., H, 2) float history positions, last at t0 (metres).
        num_future (int): number of future steps.
        dt (float): step in seconds.
        **ls_kwargs: forwarded to :func:`estimate_velocity_ls`.

    Returns:
        Tensor: (..., num_future, 3) float ``[x, y, yaw]``.
    """
    vel = estimate_velocity_ls(hist_xy, dt=dt, **ls_kwargs)
    t = torch.arange(1, num_future + 1, dtype=hist_xy.dtype, device=hist_xy.device) * dt
    xy = vel.unsqueeze(-2) * t[:, None]
    speed = torch.linalg.norm(vel, dim=-1)
    yaw = torch.where(speed > 0.2, torch.atan2(vel[..., 1], vel[..., 0]), torch.zeros_like(speed))
    return torch.cat([xy, yaw[..., None, None].expand(*xy.shape[:-1], 1)], dim=-1)


def yaw_from_rotation(rot):
    """Yaw of rotation matrices (rotation about +z, Z-Y-X convention).

    Args:
        rot (Tensor | ndarray): (..., 3, 3) rotation matrices.

    Returns:
        Same type, (...,) yaw in radians, ``atan2(R[1, 0], R[0, 0])``.
    """
    if isinstance(rot, torch.Tensor):
        return torch.atan2(rot[..., 1, 0], rot[..., 0, 0])
    import numpy as np
    return np.arctan2(rot[..., 1, 0], rot[..., 0, 0])


def rotation_from_yaw(yaw):
    """Rotation matrices about +z.

    Args:
        yaw (ndarray): (...,) radians.

    Returns:
        ndarray: (..., 3, 3) float rotation matrices.
    """
    import numpy as np
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros(yaw.shape + (3, 3), dtype=np.float64)
    rot[..., 0, 0], rot[..., 0, 1], rot[..., 1, 0], rot[..., 1, 1] = c, -s, s, c
    rot[..., 2, 2] = 1.0
    return rot


def ego_history_features(hist_xy, hist_yaw, dt=0.1):
    """The 6-D ego-history features ``[x, y, sin yaw, cos yaw, vx, vy]`` (DESIGN §4, 16 × 6).

    Velocities are backward differences (the first step copies the second).

    Args:
        hist_xy (Tensor): (..., H, 2) float positions (metres), last at t0.
        hist_yaw (Tensor): (..., H) float yaw (radians).
        dt (float): step in seconds.

    Returns:
        Tensor: (..., H, 6) float.
    """
    vel = torch.diff(hist_xy, dim=-2) / dt
    vel = torch.cat([vel[..., :1, :], vel], dim=-2)
    return torch.cat([hist_xy, torch.sin(hist_yaw)[..., None], torch.cos(hist_yaw)[..., None],
                      vel], dim=-1)
