"""View-aware transformers: query/view validation, sector assignment, view masking."""
import math

import pytest
import torch

from projects.lidar_llm.models.vat import (VIEW_NAMES, SensorTokenProjector, VATBlock, VATLiDAR,
                                           VATVision, bev_cell_centres, bev_view_ids)

torch.set_num_threads(1)


def test_n_queries_must_divide_by_six():
    with pytest.raises(ValueError, match='divisible by the number of views'):
        VATLiDAR(c_in=4, d_model=16, n_queries=10, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match='n_queries=1000 must be divisible'):
        VATVision(d_model=16, n_queries=1000, n_layers=1, n_heads=2)
    VATLiDAR(c_in=4, d_model=16, n_queries=12, n_layers=1, n_heads=2)


def test_view_ids_of_hand_made_points():
    xy = torch.tensor([[10.0, 0.0], [10.0, 10.0], [-1.0, 10.0], [-10.0, 0.5], [-10.0, -8.0],
                       [10.0, -10.0], [5.0, -0.1]])
    # 0°, 45°, 95.7°, 177°, -141° (=219°), -45° (=315°), -1.1°
    assert bev_view_ids(xy).tolist() == [0, 1, 2, 3, 4, 5, 0]
    assert VIEW_NAMES[1] == 'front-left' and VIEW_NAMES[5] == 'front-right'


def test_bev_cell_centres_follow_pointpillars_layout():
    c = bev_cell_centres(2, 4, (-4, -2, 4, 2))  # H along y, W along x
    assert c.shape == (2, 4, 2)
    assert c[0, 0].tolist() == [-3.0, -1.0] and c[1, 3].tolist() == [3.0, 1.0]


def test_view_masked_query_groups_only_see_their_sector():
    torch.manual_seed(0)
    vat = VATLiDAR(c_in=4, d_model=16, n_queries=12, n_layers=1, n_heads=2,
                   bev_range=(-6, -6, 6, 6), view_masked=True).eval()
    bev = torch.randn(1, 4, 12, 12)
    views = bev_view_ids(bev_cell_centres(12, 12, vat.bev_range))  # (H, W)
    bev2 = bev.clone()
    bev2[:, :, views == 3] += 5.0  # change only the 'back' sector
    with torch.no_grad():
        a, b = vat(bev), vat(bev2)
    changed = (a - b).abs().amax(-1)[0] > 1e-5  # (12,) per query
    # the 3x3 depthwise conv leaks one cell across a sector border, so the neighbouring
    # groups 2 and 4 may change too; the groups on the far side must not
    assert changed.view(6, 2)[3].all()
    assert not changed.view(6, 2)[[0, 1, 5]].any()


def test_vat_block_and_vision_shapes():
    blk = VATBlock(16, 2)
    assert blk(torch.randn(2, 5, 16), torch.randn(2, 7, 16)).shape == (2, 5, 16)
    vv = VATVision(d_model=16, n_queries=12, n_layers=1, n_heads=2, max_tokens_per_cam=8)
    assert vv(torch.randn(2, 6, 8, 16)).shape == (2, 12, 16)
    with pytest.raises(ValueError, match='VATVision expects'):
        vv(torch.randn(2, 5, 8, 16))


def test_projector_scales_tokens():
    p = SensorTokenProjector(8, 16, init_scale=3.0)
    y = p(torch.randn(2, 4, 8))
    assert y.shape == (2, 4, 16)
    # LayerNorm output has unit RMS per token, times the learned scale
    assert torch.allclose(y.pow(2).mean(-1).sqrt(), torch.full((2, 4), 3.0), atol=1e-3)
    assert math.isclose(float(p.scale.detach()), 3.0)
