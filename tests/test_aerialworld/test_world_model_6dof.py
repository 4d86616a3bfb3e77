"""AerialWorld 6-DoF pose branch, copy-prior warp with 6-DoF motion, planned-path rollout."""
import copy
import math

import pytest
import torch
from mmengine.structures import BaseDataElement

from aerialworld_model_helpers import TINY_TRANSFORMER, head_cfg, synthetic_batch, tiny_model_cfg
from projects.common.structures import (ego_motion_6dof_from_poses, identity_motion_6dof,
                                        quat_from_yaw, quat_multiply)
from projects.registry import MODELS

LOSSES_6DOF = dict(head=head_cfg(pose=dict(type='TranslationLoss'),
                                 rot=dict(type='GeodesicRotationLoss'),
                                 vel=dict(type='VelocityLoss', linear_weight=0.2)))


def _model_6dof(**overrides):
    cfg = tiny_model_cfg(train_stage='world', pose_mode='6dof', **LOSSES_6DOF)
    cfg.update(overrides)
    return MODELS.build(cfg)


def _tilted_batch(frames=4, seed=0):
    """Synthetic window whose ego turns (yaw), pitches, climbs and has velocities."""
    batch = synthetic_batch(frames=frames, seed=seed)
    t = torch.arange(frames, dtype=torch.float32)
    pitch = torch.tensor([0.0, 0.1, 0.0, 0.0])  # qw, qx, qy, qz increment (normalised below)
    quat = quat_multiply(quat_from_yaw(0.2 * t), torch.nn.functional.normalize(
        torch.tensor([1.0, 0.0, 0.0, 0.0]) + pitch, dim=0).expand(frames, 4))
    batch['poses'][..., 3:7] = quat
    batch['poses'][..., 2] = 0.5 * t
    batch['poses'][..., 7] = 2.0
    batch['poses'][..., 12] = 0.4
    return batch


def test_transformer_6dof_head_outputs_unit_quaternions_and_is_causal():
    torch.manual_seed(0)
    for repr_ in ('6d', 'quat'):
        cfg = copy.deepcopy(TINY_TRANSFORMER)
        cfg.update(num_codes=32, token_grid=(5, 5), token_embed='table', pose_dims=13,
                   rotation_repr=repr_)
        net = MODELS.build(cfg).eval()
        raw = torch.zeros(2, 15 if repr_ == '6d' else 13)
        assert torch.allclose(net.decode_motion(raw), identity_motion_6dof(2))
        tokens = torch.randint(0, 32, (2, 5, 5, 5))
        motion = identity_motion_6dof(2, 5) + 0.1 * torch.randn(2, 5, 13)
        _, pose = net(tokens, motion)
        assert pose.shape == (2, 5, 13)
        assert torch.allclose(pose[..., 3:7].norm(dim=-1), torch.ones(2, 5), atol=1e-5)
        assert (pose[..., 3] >= 0).all()
        mot2 = motion.clone()
        mot2[:, 3:] += 1.0
        _, pose2 = net(tokens, mot2)
        assert torch.equal(pose2[:, :3], pose[:, :3]) and not torch.equal(pose2, pose)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match='transformer.pose_dims'):
        cfg = tiny_model_cfg(pose_mode='6dof')
        cfg['transformer']['pose_dims'] = 4
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='transformer.pose_dims'):
        cfg = tiny_model_cfg()
        cfg['transformer']['pose_dims'] = 13
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='pose_mode'):
        MODELS.build(tiny_model_cfg(pose_mode='se3'))
    with pytest.raises(ValueError, match='loss_rot'):
        MODELS.build(tiny_model_cfg(head=head_cfg(rot=dict(type='GeodesicRotationLoss'))))
    with pytest.raises(ValueError, match='pose_dims'):
        cfg = copy.deepcopy(TINY_TRANSFORMER)
        cfg.update(num_codes=8, token_grid=(2, 2), token_embed='table', pose_dims=6)
        MODELS.build(cfg)


def test_6dof_world_losses_decrease():
    torch.manual_seed(0)
    model = _model_6dof()
    batch = _tilted_batch()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    totals = []
    for _ in range(20):
        losses = model(batch, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    assert {'loss_token', 'loss_pose', 'loss_rot', 'loss_vel', 'rot_err_deg',
            'pose_l2'} <= set(losses)
    assert sum(totals[-4:]) < 0.8 * sum(totals[:4])
    assert all(p.grad is None for p in model.tokenizer.parameters())


def test_6dof_predict_fields():
    torch.manual_seed(0)
    model = _model_6dof().eval()
    batch = _tilted_batch(frames=4)
    out = model(batch, [BaseDataElement(metainfo=dict(session='s'))] * 2, mode='predict')
    motion = ego_motion_6dof_from_poses(batch['poses'])
    for i, s in enumerate(out):
        assert s.metainfo['pose_mode'] == '6dof' and s.metainfo['session'] == 's'
        for key in ('pred_ego_motion', 'gt_ego_motion', 'baseline_ego_motion'):
            v = getattr(s, key)
            assert v.shape == (2, 13) and v.dtype == torch.float32
        assert torch.allclose(s.gt_ego_motion, motion[i, 1:3])
        assert torch.allclose(s.baseline_ego_motion, motion[i, 0:1].expand(2, 13))
        assert torch.allclose(s.pred_ego_motion[:, 3:7].norm(dim=-1), torch.ones(2), atol=1e-5)
        assert s.pred_occ.shape == (2, 10, 10, 6) and s.pred_occ.dtype == torch.uint8
    poses = model.predicted_poses(torch.stack([s.pred_ego_motion for s in out]),
                                  batch['poses'][:, 1])
    assert poses.shape == (2, 2, 13)


def _copy_model():
    net = MODELS.build(dict(type='OccWorldTransformer', num_codes=32, token_grid=(4, 5),
                            token_embed='table', d_model=16, num_blocks=1, num_heads=2,
                            max_frames=4, pose_hidden=8, pose_dims=13, copy_prior=20.0,
                            copy_warp_range=[-4.0, -5.0, 4.0, 5.0])).eval()
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    return net


def test_copy_prior_warp_uses_planar_part_of_6dof_motion():
    net = _copy_model()
    tokens = torch.arange(20).reshape(1, 1, 4, 5).repeat(1, 2, 1, 1)
    motion = identity_motion_6dof(1, 2)
    # 2 m forward with a pitched attitude (roll / pitch do not move a gravity-aligned grid)
    fwd = identity_motion_6dof(1, 2)
    fwd[0, 0, 0] = 2.0
    fwd[0, 0, 3:7] = torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 0.2, 0.0]), dim=0)
    logits, _ = net(tokens, motion, next_motion=fwd)
    assert torch.equal(logits[0, 0].argmax(0)[:3], tokens[0, 0, 1:])
    # 180-degree yaw as a quaternion: token (i, j) sees token (3 - i, 4 - j)
    turn = identity_motion_6dof(1, 2)
    turn[0, 0, 3:7] = quat_from_yaw(torch.tensor(math.pi))
    logits, _ = net(tokens, motion, next_motion=turn)
    assert torch.equal(logits[0, 0].argmax(0), tokens[0, 0].flip(0).flip(1))
    with pytest.raises(ValueError, match='next_motion'):
        net(tokens, motion, next_motion=torch.zeros(1, 2, 4))


def _planned_model(pose_mode):
    """Tiny world model whose prediction is exactly the copy-prior warp of the last frame."""
    torch.manual_seed(0)
    cfg = tiny_model_cfg(train_stage='world', pose_mode=pose_mode)
    cfg['transformer'].update(copy_prior=30.0, copy_warp_range=[-5.0, -5.0, 5.0, 5.0])
    model = MODELS.build(cfg).eval()
    torch.nn.init.zeros_(model.transformer.head.weight)
    torch.nn.init.zeros_(model.transformer.head.bias)
    return model


def _yaw_plan(poses, hist, fut, yaw):
    """Plan: stay at the last history pose, turning by ``yaw`` radians per step."""
    last = poses[:, hist - 1]
    plan = last[:, None].repeat(1, fut, 1)
    for f in range(fut):
        plan[:, f, 3:7] = quat_multiply(quat_from_yaw(torch.tensor(yaw * (f + 1))), last[:, 3:7])
    plan[:, :, 7:] = 0.0
    return plan


@pytest.mark.parametrize('pose_mode', ['planar4', '6dof'])
def test_planned_rollout_follows_the_plan(pose_mode):
    model = _planned_model(pose_mode)
    batch = synthetic_batch(frames=4)
    hist, fut = model.num_history, model.num_future
    tokens = model._tokenize_sequence(batch['occupancy'][:, :hist])
    # a pure 180-degree yaw plan flips the token map of the last history frame
    plan = _yaw_plan(batch['poses'], hist, fut, math.pi)
    motion = model.pose_codec.step_motion(torch.cat([batch['poses'][:, hist - 1:hist], plan], dim=1))
    pred_tokens, pred_motion = model.rollout(
        batch['occupancy'][:, :hist], model.pose_codec.frame_motion(batch['poses'][:, :hist]), fut,
        planned_motion=motion)
    assert torch.equal(pred_motion, motion)
    assert torch.equal(pred_tokens[:, 0], tokens[:, -1].flip(1).flip(2))
    assert torch.equal(pred_tokens[:, 1], tokens[:, -1])  # second half turn: back to start
    # the same through predict_with_plan; a different plan gives a different prediction
    out_turn = model.predict_with_plan(batch, plan)
    out_gt = model.predict_with_plan(batch, batch['poses'][:, hist:hist + fut])
    out_still = model.predict_with_plan(batch, _yaw_plan(batch['poses'], hist, fut, 0.0))
    for i in range(2):
        assert out_turn[i].metainfo['pred_source'] == 'plan'
        assert torch.equal(out_turn[i].pred_occ[0],
                           model._decode_tokens(pred_tokens[i:i + 1, :1])[0, 0])
        assert not torch.equal(out_turn[i].pred_occ, out_gt[i].pred_occ)
        assert not torch.equal(out_still[i].pred_occ[0], out_gt[i].pred_occ[0])
        assert torch.equal(out_gt[i].gt_occ, batch['occupancy'][i, hist:hist + fut])
        assert out_gt[i].planned_poses.shape == (fut, 13)
    # standing still: the copy prior copies the last history frame (decoded)
    still_tokens = model._tokenize_sequence(batch['occupancy'][:, hist - 1:hist])
    assert torch.equal(out_still[0].pred_occ[0], model._decode_tokens(still_tokens)[0, 0])


def test_predict_with_plan_errors():
    model = _planned_model('6dof')
    batch = synthetic_batch(frames=4)
    with pytest.raises(ValueError, match=r'planned_poses must be \(2, F, 13\)'):
        model.predict_with_plan(batch, torch.zeros(2, 2, 7))
    bad = batch['poses'][:, 2:4].clone()
    bad[..., 3:7] = 0.0
    with pytest.raises(ValueError, match='zero quaternion'):
        model.predict_with_plan(batch, bad)
    # a (F, 13) plan is broadcast; fewer frames than num_history + F is fine
    out = model.predict_with_plan(dict(occupancy=batch['occupancy'][:, :2],
                                       poses=batch['poses'][:, :2]), batch['poses'][0, 2:3])
    assert out[0].pred_occ.shape == (1, 10, 10, 6) and 'gt_occ' not in out[0]
    model.set_stage('tokenizer')
    with pytest.raises(ValueError, match='tokenizer'):
        model.predict_with_plan(batch, batch['poses'][:, 2:4])
