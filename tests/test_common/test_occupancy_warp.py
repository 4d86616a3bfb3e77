"""Tests of the rigid occupancy warp against hand-computed voxel moves."""
import math

import pytest
import torch

from projects.common.structures.occupancy_warp import warp_occupancy

# 4 x 4 x 3 grid of 1 m voxels centred on the ego: x, y in [-2, 2), z in [0, 3).
RANGE = [-2.0, -2.0, 0.0, 2.0, 2.0, 3.0]
FREE = 9


def _grid() -> torch.Tensor:
    """Labels 0..47 laid out so every voxel is identifiable: 12 * i + 3 * j + k."""
    i, j, k = torch.meshgrid(torch.arange(4), torch.arange(4), torch.arange(3), indexing='ij')
    return (12 * i + 3 * j + k).to(torch.uint8)[None]


def test_identity_pose_returns_the_grid():
    occ = _grid()
    warped, valid = warp_occupancy(occ, torch.zeros(1, 4), RANGE, FREE)
    assert warped.dtype == torch.uint8 and torch.equal(warped, occ) and bool(valid.all())


def test_forward_motion_shifts_the_scene_backwards():
    # Ego moved 1 m forward (+x): target voxel i sees source voxel i + 1; the front row is new.
    occ = _grid()
    warped, valid = warp_occupancy(occ, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), RANGE, FREE)
    assert torch.equal(warped[0, :3], occ[0, 1:])
    assert bool((warped[0, 3] == FREE).all()) and not bool(valid[0, 3].any())
    assert bool(valid[0, :3].all())


def test_yaw_rotation_by_quarter_turn():
    # Ego turned +90 deg: target centre (x, y) is the source point (-y, x).
    occ = _grid()
    warped, valid = warp_occupancy(occ, torch.tensor([[0.0, 0.0, 0.0, math.pi / 2]]),
                                   RANGE, FREE)
    assert bool(valid.all())
    centres = torch.arange(4) - 1.5  # voxel centres (m)
    for i in range(4):
        for j in range(4):
            si = int(-centres[j] + 1.5)
            sj = int(centres[i] + 1.5)
            assert torch.equal(warped[0, i, j], occ[0, si, sj])


def test_z_reference_ego_shifts_height_ground_does_not():
    occ = _grid()
    up = torch.tensor([[0.0, 0.0, 1.0, 0.0]])  # ego 1 m higher
    warped, valid = warp_occupancy(occ, up, RANGE, FREE, z_reference='ego')
    assert torch.equal(warped[0, :, :, :2], occ[0, :, :, 1:])
    assert not bool(valid[0, :, :, 2].any()) and bool((warped[0, :, :, 2] == FREE).all())
    flat, flat_valid = warp_occupancy(occ, up, RANGE, FREE, z_reference='ground')
    assert torch.equal(flat, occ) and bool(flat_valid.all())


def test_batch_items_use_their_own_pose():
    occ = torch.cat([_grid(), _grid()])
    poses = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0]])
    warped, _ = warp_occupancy(occ, poses, RANGE, FREE)
    assert torch.equal(warped[0], occ[0])
    assert torch.equal(warped[1, :, 1:], occ[1, :, :3])  # moved right: scene shifts left


def test_bad_inputs_raise():
    occ = _grid()
    with pytest.raises(ValueError, match='rel_pose'):
        warp_occupancy(occ, torch.zeros(2, 4), RANGE, FREE)
    with pytest.raises(ValueError, match='point_cloud_range'):
        warp_occupancy(occ, torch.zeros(1, 4), [0, 0, 0, 1, 1], FREE)
    with pytest.raises(ValueError, match='z_reference'):
        warp_occupancy(occ, torch.zeros(1, 4), RANGE, FREE, z_reference='sea')
    with pytest.raises(ValueError, match='occ'):
        warp_occupancy(occ[0], torch.zeros(1, 4), RANGE, FREE)


def test_check_point_cloud_range_names_the_field():
    from projects.common.structures.occupancy_warp import check_point_cloud_range
    assert check_point_cloud_range((-1, -2, 0, 1, 2, 3), 'x') == [-1.0, -2.0, 0.0, 1.0, 2.0, 3.0]
    for bad in (None, [0, 0, 0, 1, 1], [0, 0, 0, 1, -1, 1], ['a'] * 6):
        with pytest.raises(ValueError, match=r'copy_decode\.point_cloud_range must be'):
            check_point_cloud_range(bad, 'copy_decode.point_cloud_range')
