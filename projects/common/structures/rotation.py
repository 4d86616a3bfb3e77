"""Unit-quaternion and rotation helpers (torch, batched, differentiable).

Convention: scalar-first Hamilton quaternions ``[qw, qx, qy, qz]`` (the 13-D pose layout of
``docs/aerialworld_data_and_model_contract.md``); ``q`` and ``-q`` are the same rotation.
Rotation matrices act on column vectors (``v_world = R v_body``).

Formulas: Hamilton product and quaternion <-> matrix conversion as in J. Sola, "Quaternion
kinematics for the error-state Kalman filter", arXiv:1711.02508, 2017 (Eqs. 12, 115);
matrix -> quaternion picks the best-conditioned of the four closed forms (S. W. Shepperd,
"Quaternion from rotation matrix", J. Guidance and Control 1(3), 1978); the continuous 6-D
rotation representation is Y. Zhou et al., "On the Continuity of Rotation Representations in
Neural Networks", CVPR 2019 (Gram-Schmidt on two 3-vectors, Eq. 16).
"""
import torch

__all__ = [
    'quat_normalize', 'quat_canonical', 'quat_conjugate', 'quat_multiply', 'quat_rotate',
    'quat_to_matrix', 'matrix_to_quat', 'rotation_6d_to_matrix', 'quat_angle',
    'quat_geodesic_distance', 'quat_from_yaw', 'quat_yaw'
]


def _check_quat(q: torch.Tensor, name: str) -> None:
    if q.shape[-1] != 4:
        raise ValueError(f'{name}: expected quaternions (..., 4) [qw, qx, qy, qz], got '
                         f'{tuple(q.shape)}')


def quat_normalize(q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale quaternions to unit norm.

    Args:
        q (torch.Tensor): ``(..., 4)`` float quaternions.
        eps (float): Lower bound of the norm (avoids a division by zero). Defaults to 1e-12.

    Returns:
        torch.Tensor: ``(..., 4)`` unit quaternions, same dtype.

    Raises:
        ValueError: If the last dimension is not 4.
    """
    _check_quat(q, 'quat_normalize')
    return q / q.norm(dim=-1, keepdim=True).clamp(min=eps)


def quat_canonical(q: torch.Tensor) -> torch.Tensor:
    """Pick the representative with ``qw >= 0`` of ``{q, -q}`` (same rotation).

    Args:
        q (torch.Tensor): ``(..., 4)`` float quaternions.

    Returns:
        torch.Tensor: ``(..., 4)`` with a non-negative scalar part.
    """
    _check_quat(q, 'quat_canonical')
    return torch.where(q[..., :1] < 0, -q, q)


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    """Conjugate ``[qw, -qx, -qy, -qz]`` (the inverse rotation for unit quaternions).

    Args:
        q (torch.Tensor): ``(..., 4)`` float quaternions.

    Returns:
        torch.Tensor: ``(..., 4)``.
    """
    _check_quat(q, 'quat_conjugate')
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def quat_multiply(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``p (x) q`` (rotation ``q`` first, then ``p``), broadcasting.

    Args:
        p (torch.Tensor): ``(..., 4)`` quaternions.
        q (torch.Tensor): ``(..., 4)`` quaternions, broadcastable to ``p``.

    Returns:
        torch.Tensor: ``(..., 4)`` product.
    """
    _check_quat(p, 'quat_multiply')
    _check_quat(q, 'quat_multiply')
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack([
        pw * qw - px * qx - py * qy - pz * qz,
        pw * qx + px * qw + py * qz - pz * qy,
        pw * qy - px * qz + py * qw + pz * qx,
        pw * qz + px * qy - py * qx + pz * qw,
    ], dim=-1)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate 3-vectors by unit quaternions: ``R(q) v``.

    Uses ``v' = v + 2 w (u x v) + 2 u x (u x v)`` with ``q = [w, u]`` (no matrix built).

    Args:
        q (torch.Tensor): ``(..., 4)`` unit quaternions.
        v (torch.Tensor): ``(..., 3)`` vectors, broadcastable against ``q``'s batch shape.

    Returns:
        torch.Tensor: ``(..., 3)`` rotated vectors.

    Raises:
        ValueError: If the last dimensions are not 4 and 3.
    """
    _check_quat(q, 'quat_rotate')
    if v.shape[-1] != 3:
        raise ValueError(f'quat_rotate: expected vectors (..., 3), got {tuple(v.shape)}')
    u, v = torch.broadcast_tensors(q[..., 1:], v)
    w = q[..., :1]
    uv = torch.cross(u, v, dim=-1)
    return v + 2.0 * (w * uv + torch.cross(u, uv, dim=-1))


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of (normalised) quaternions.

    Args:
        q (torch.Tensor): ``(..., 4)`` quaternions (normalised here).

    Returns:
        torch.Tensor: ``(..., 3, 3)`` rotation matrices.
    """
    w, x, y, z = quat_normalize(q).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(rot: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Unit quaternions (``qw >= 0``) of rotation matrices, differentiable.

    All four closed forms (one per largest component ``4 c^2 = 1 +- R00 +- R11 +- R22``) are
    evaluated and the one with the largest pivot is taken per matrix (Shepperd 1978), so the
    division is never by a small number; the square roots are clamped at ``eps`` so the
    branches that are not selected never produce NaN gradients.

    Args:
        rot (torch.Tensor): ``(..., 3, 3)`` rotation matrices.
        eps (float): Clamp of the squared pivots. Defaults to 1e-8.

    Returns:
        torch.Tensor: ``(..., 4)`` unit quaternions ``[qw, qx, qy, qz]`` with ``qw >= 0``.

    Raises:
        ValueError: If ``rot`` is not ``(..., 3, 3)``.
    """
    if rot.shape[-2:] != (3, 3):
        raise ValueError(f'matrix_to_quat: expected (..., 3, 3), got {tuple(rot.shape)}')
    r = rot.reshape(*rot.shape[:-2], 9)
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = r.unbind(-1)
    sq = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22,
                      1 - r00 + r11 - r22, 1 - r00 - r11 + r22], dim=-1)
    piv = torch.sqrt(sq.clamp(min=eps))  # 2 |c| for the pivot component c
    a, b, c = r21 - r12, r02 - r20, r10 - r01  # 4 w x, 4 w y, 4 w z
    d, e, f = r01 + r10, r02 + r20, r12 + r21  # 4 x y, 4 x z, 4 y z
    p0, p1, p2, p3 = piv.unbind(-1)
    cands = torch.stack([
        torch.stack([p0 * p0, a, b, c], -1) / (2 * p0[..., None]),
        torch.stack([a, p1 * p1, d, e], -1) / (2 * p1[..., None]),
        torch.stack([b, d, p2 * p2, f], -1) / (2 * p2[..., None]),
        torch.stack([c, e, f, p3 * p3], -1) / (2 * p3[..., None]),
    ], dim=-2)  # (..., 4 candidates, 4)
    best = sq.argmax(dim=-1)
    q = cands.gather(-2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    return quat_canonical(quat_normalize(q))


def rotation_6d_to_matrix(d6: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rotation matrices from the continuous 6-D representation (Zhou et al. 2019).

    ``b1 = a1 / |a1|``, ``b2 = normalise(a2 - <b1, a2> b1)``, ``b3 = b1 x b2``; the matrix has
    columns ``[b1, b2, b3]``. ``a1 = (1, 0, 0), a2 = (0, 1, 0)`` gives the identity.

    Args:
        d6 (torch.Tensor): ``(..., 6)`` float ``[a1, a2]``.
        eps (float): Lower bound of the norms. Defaults to 1e-8.

    Returns:
        torch.Tensor: ``(..., 3, 3)`` rotation matrices.

    Raises:
        ValueError: If the last dimension is not 6.
    """
    if d6.shape[-1] != 6:
        raise ValueError(f'rotation_6d_to_matrix: expected (..., 6), got {tuple(d6.shape)}')
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp(min=eps)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True).clamp(min=eps)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def quat_angle(q: torch.Tensor) -> torch.Tensor:
    """Rotation angle of quaternions in ``[0, pi]`` (sign invariant).

    ``angle = 2 atan2(|u|, |w|)`` for ``q = [w, u]`` (normalised): stable at 0 and at pi,
    unlike ``2 acos(|w|)`` whose derivative is infinite at ``|w| = 1``.

    Args:
        q (torch.Tensor): ``(..., 4)`` quaternions.

    Returns:
        torch.Tensor: ``(...)`` radians.
    """
    q = quat_normalize(q)
    # sqrt(sum^2) with a zero-safe gradient: the norm of an exactly zero vector gets a zero
    # (sub)gradient instead of NaN.
    sq = (q[..., 1:] ** 2).sum(-1)
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    vec_norm = torch.where(sq > 0, torch.sqrt(safe), torch.zeros_like(sq))
    return 2.0 * torch.atan2(vec_norm, q[..., 0].abs())


def quat_geodesic_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Geodesic distance on SO(3): the angle of ``R(p)^T R(q)`` in ``[0, pi]`` radians.

    Computed as :func:`quat_angle` of ``conj(p) (x) q``; ``q`` and ``-q`` give the same value
    (D. Q. Huynh, "Metrics for 3D Rotations: Comparison and Analysis", J. Math. Imaging and
    Vision 35, 2009, metric Phi_6 up to the factor 2).

    Args:
        p (torch.Tensor): ``(..., 4)`` quaternions (normalised here).
        q (torch.Tensor): ``(..., 4)`` quaternions, broadcastable to ``p``.

    Returns:
        torch.Tensor: ``(...)`` angles in radians.
    """
    return quat_angle(quat_multiply(quat_conjugate(quat_normalize(p)), quat_normalize(q)))


def quat_from_yaw(yaw: torch.Tensor) -> torch.Tensor:
    """Quaternions of rotations by ``yaw`` radians about +z: ``[cos(yaw/2), 0, 0, sin(yaw/2)]``.

    Args:
        yaw (torch.Tensor): ``(...)`` radians.

    Returns:
        torch.Tensor: ``(..., 4)``.
    """
    half = 0.5 * yaw
    zeros = torch.zeros_like(yaw)
    return torch.stack([torch.cos(half), zeros, zeros, torch.sin(half)], dim=-1)


def quat_yaw(q: torch.Tensor) -> torch.Tensor:
    """Yaw (ZYX Euler, about world z) of quaternions, ``(-pi, pi]`` radians.

    Args:
        q (torch.Tensor): ``(..., 4)`` quaternions (normalised here).

    Returns:
        torch.Tensor: ``(...)`` radians.
    """
    w, x, y, z = quat_normalize(q).unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
