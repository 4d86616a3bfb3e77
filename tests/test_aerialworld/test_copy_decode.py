"""Copy-through decoding of AerialWorld rollouts (``AerialWorld(copy_decode=...)``)."""
import pytest
import torch

from aerialworld_model_helpers import TINY_CLASSES, synthetic_batch, tiny_model_cfg
from projects.registry import MODELS

# The tiny grid is 10 x 10 x 6 with 1 m voxels; the tokenizer's stride is 2 (5 x 5 tokens).
RANGE = [-5.0, -5.0, 0.0, 5.0, 5.0, 6.0]
FREE = TINY_CLASSES - 1


def _model(**copy_decode):
    cfg = tiny_model_cfg(train_stage='world',
                         copy_decode=dict(point_cloud_range=RANGE, **copy_decode))
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    occ_last = torch.randint(0, TINY_CLASSES, (1, 10, 10, 6), generator=g).to(torch.uint8)
    decoded = torch.randint(0, TINY_CLASSES, (1, 2, 10, 10, 6), generator=g).to(torch.uint8)
    tokens_last = torch.randint(0, 32, (1, 5, 5), generator=g)
    tokens = torch.randint(0, 32, (1, 2, 5, 5), generator=g)
    return occ_last, tokens_last, tokens, decoded


def _motion(dx):
    return torch.tensor([[[dx, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])


def test_static_scene_without_motion_keeps_the_observed_voxels():
    model = _model()
    occ_last, tokens_last, tokens, decoded = _case()
    out = model.copy_decoder(occ_last, tokens_last, tokens, decoded, _motion(0.0))
    assert out.shape == (1, 2, 10, 10, 6) and out.dtype == torch.uint8
    assert torch.equal(out[:, 0], occ_last) and torch.equal(out[:, 1], occ_last)


def test_warp_follows_accumulated_motion_and_new_space_is_decoded():
    model = _model(same_position=False)
    occ_last, tokens_last, tokens, decoded = _case()
    motion = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]])  # 1 m, then 2 m
    out = model.copy_decoder(occ_last, tokens_last, tokens, decoded, motion)
    # step 1: 1 m ahead, the front row is new; step 2: 3 m ahead in total
    assert torch.equal(out[0, 0, :9], occ_last[0, 1:])
    assert torch.equal(out[0, 0, 9], decoded[0, 0, 9])
    assert torch.equal(out[0, 1, :7], occ_last[0, 3:])
    assert torch.equal(out[0, 1, 7:], decoded[0, 1, 7:])


def test_same_position_copy_only_for_tokens_predicted_unchanged():
    model = _model()
    occ_last, tokens_last, tokens, decoded = _case()
    tokens = tokens.clone()
    tokens[0, 0, 1, 2] = tokens_last[0, 1, 2]  # unchanged code at token (1, 2)
    tokens[0, 0, 3, 4] = (tokens_last[0, 3, 4] + 1) % 32  # changed at (3, 4)
    out = model.copy_decoder(occ_last, tokens_last, tokens, decoded, _motion(100.0))
    # the ego moved far away: no voxel is covered by the warp
    assert torch.equal(out[0, 0, 2:4, 4:6], occ_last[0, 2:4, 4:6])
    assert torch.equal(out[0, 0, 6:8, 8:10], decoded[0, 0, 6:8, 8:10])
    same = (tokens[0, 0] == tokens_last[0]).repeat_interleave(2, 0).repeat_interleave(2, 1)
    expected = torch.where(same[..., None], occ_last[0], decoded[0, 0])
    assert torch.equal(out[0, 0], expected)


def test_dynamic_classes_are_not_warped():
    model = _model(static_classes=[0, 2], same_position=False)  # class 1 moves
    occ_last, tokens_last, tokens, decoded = _case()
    out = model.copy_decoder(occ_last, tokens_last, tokens, decoded, _motion(0.0))
    dynamic = (occ_last == 1) | (decoded[:, 0] == 1)
    assert bool(dynamic.any()) and bool((~dynamic).any())
    assert torch.equal(out[:, 0][dynamic], decoded[:, 0][dynamic])
    assert torch.equal(out[:, 0][~dynamic], occ_last[~dynamic])


def test_six_dof_motion_uses_its_planar_part():
    cfg = tiny_model_cfg(train_stage='world', pose_mode='6dof',
                         copy_decode=dict(point_cloud_range=RANGE, same_position=False))
    model = MODELS.build(cfg).eval()
    occ_last, tokens_last, tokens, decoded = _case()
    motion = torch.zeros(1, 2, 13)
    motion[..., 3] = 1.0  # identity quaternion
    motion[0, 0, 0] = 1.0  # 1 m forward in step 1
    out = model.copy_decoder(occ_last, tokens_last, tokens, decoded, motion)
    assert torch.equal(out[0, 0, :9], occ_last[0, 1:])
    assert torch.equal(out[0, 1, :9], occ_last[0, 1:])


def test_predict_reports_the_plain_decoding_too():
    model = _model()
    batch = synthetic_batch(batch=2, frames=4)
    out = model.predict(batch)
    for sample in out:
        assert sample.pred_occ.shape == sample.decoded_pred_occ.shape == (2, 10, 10, 6)
        assert sample.decoded_pred_occ.dtype == torch.uint8
    # the untrained pose head predicts small motions, so the copy keeps most of the last
    # frame while the untrained decoder does not
    last = batch['occupancy'][:, 1]
    agree = sum(float((s.pred_occ[0] == last[i]).float().mean()) for i, s in enumerate(out))
    agree_dec = sum(float((s.decoded_pred_occ[0] == last[i]).float().mean())
                    for i, s in enumerate(out))
    assert agree > agree_dec
    plain = MODELS.build(tiny_model_cfg(train_stage='world')).eval()
    assert not hasattr(plain.predict(batch)[0], 'decoded_pred_occ')


def test_copy_decode_config_errors():
    with pytest.raises(ValueError, match='point_cloud_range'):
        MODELS.build(tiny_model_cfg(copy_decode=dict(point_cloud_range=[0, 0, 0, 1])))
    with pytest.raises(ValueError, match='unknown keys'):
        MODELS.build(tiny_model_cfg(copy_decode=dict(point_cloud_range=RANGE, warp=True)))
    with pytest.raises(ValueError, match='static_classes'):
        MODELS.build(tiny_model_cfg(copy_decode=dict(point_cloud_range=RANGE,
                                                     static_classes=[7])))
    with pytest.raises(ValueError, match='z_reference'):
        MODELS.build(tiny_model_cfg(copy_decode=dict(point_cloud_range=RANGE,
                                                     z_reference='sea')))
    assert MODELS.build(tiny_model_cfg()).copy_decoder is None  # plain VQ decoding
