"""Moving agents in AerialWorld: flow targets, the MotionNet-style head, decomposed decoding."""
import json
import math

import numpy as np
import pytest
import torch

from aerialworld_model_helpers import TINY_CLASSES, synthetic_batch, tiny_model_cfg
from projects.aerialworld.transforms import InvalidSampleError, LoadAgentFlow
from projects.registry import MODELS

# tiny grid: 10 x 10 x 6, 1 m voxels; classes 0 ground (static), 1 building (static),
# 2 vehicle (dynamic), 3 free
RANGE = [-5.0, -5.0, 0.0, 5.0, 5.0, 6.0]
FREE = TINY_CLASSES - 1
VEHICLE = 2


def _write_ann(path, ego, agents):
    rec = dict(ego=dict(x=ego[0], y=ego[1], yaw=ego[2]),
               agents=[dict(track_id=t, center=[x, y, 0.5], yaw=yaw, size=[l, w, 1.0])
                       for t, x, y, yaw, l, w in agents])
    path.write_text(json.dumps(rec))
    return str(path)


def _flow_window(tmp_path, frames):
    """Annotation paths of a 2-history / 2-future window; ``frames`` = (ego, agents) each."""
    paths = [_write_ann(tmp_path / f'{i}.json', ego, agents)
             for i, (ego, agents) in enumerate(frames)]
    return dict(ann_paths=paths, num_history=2, num_future=2)


def test_flow_targets_by_hand(tmp_path):
    # ego at (10, 0) heading +y (yaw pi/2) in the last history frame; a 2 m x 1.2 m car
    # whose centre sits 2 m ahead of the ego: site (10, 2), yaw pi/2 -> ego frame (2, 0),
    # yaw 0
    ego = (10.0, 0.0, math.pi / 2)
    car = lambda x, y, yaw: (7, x, y, yaw, 2.0, 1.2)  # noqa: E731
    frames = [(ego, []), (ego, [car(10.0, 2.0, math.pi / 2)]),
              (ego, [car(10.0, 3.0, math.pi / 2)]),     # +1 m along its heading
              (ego, [car(9.0, 4.0, math.pi)])]          # turned left by 90 degrees
    res = LoadAgentFlow(RANGE, (10, 10, 6), margin=0.0)(_flow_window(tmp_path, frames))
    flow, mask = res['agent_flow'], res['agent_flow_mask']
    assert flow.shape == (2, 2, 10, 10) and flow.dtype == np.float32
    assert mask.shape == (2, 10, 10) and mask.dtype == bool
    # cells with centres at x in {1.5, 2.5} (index 6, 7) and y in {-0.5, 0.5} (index 4, 5)
    on = np.zeros((10, 10), bool)
    on[6:8, 4:6] = True
    assert np.array_equal(mask[0], on) and np.array_equal(mask[1], on)
    # step 1: the car moved 1 m along +x of the ego frame
    np.testing.assert_allclose(flow[0, 0][on], 1.0, atol=1e-6)
    np.testing.assert_allclose(flow[0, 1][on], 0.0, atol=1e-6)
    # step 2: centre (4, 1) in the ego frame (site (9, 4) -> x = 4, y = 1), yaw +90 deg:
    # the cell at box-local (u, v) goes to (4 - v, 1 + u)
    for i in (6, 7):
        for j in (4, 5):
            px, py = -5 + i + 0.5, -5 + j + 0.5
            u, v = px - 2.0, py
            np.testing.assert_allclose(flow[1, :, i, j], [4 - v - px, 1 + u - py], atol=1e-6)
    assert not flow[:, :, ~on].any()


def test_flow_targets_mask_agents_that_leave(tmp_path):
    ego = (0.0, 0.0, 0.0)
    frames = [(ego, []), (ego, [(1, 0.0, 0.0, 0.0, 2.0, 2.0)]),
              (ego, [(1, 1.0, 0.0, 0.0, 2.0, 2.0)]), (ego, [])]
    res = LoadAgentFlow(RANGE, (10, 10, 6))(_flow_window(tmp_path, frames))
    assert res['agent_flow_mask'][0].sum() > 0
    assert res['agent_flow_mask'][1].sum() == 0  # gone at step 2: not supervised


def test_flow_targets_name_bad_files(tmp_path):
    ego = (0.0, 0.0, 0.0)
    win = _flow_window(tmp_path, [(ego, [])] * 4)
    (tmp_path / '2.json').write_text(json.dumps({'agents': []}))
    with pytest.raises(InvalidSampleError, match='2.json'):
        LoadAgentFlow(RANGE, (10, 10, 6))(dict(win))
    win['ann_paths'][3] = None
    with pytest.raises(KeyError, match='ann_path'):
        LoadAgentFlow(RANGE, (10, 10, 6))(dict(win))


def _model(reveal_gate=True, **kw):
    cfg = tiny_model_cfg(
        train_stage='world',
        copy_decode=dict(point_cloud_range=RANGE, static_classes=[0, 1]),
        agent_motion=dict(point_cloud_range=RANGE, channels=8, reveal_gate=reveal_gate), **kw)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_head_starts_at_zero_flow_and_learns_a_translation():
    torch.manual_seed(0)
    model = _model()
    head = model.agent_motion
    batch = synthetic_batch(batch=2, frames=4)
    occ = batch['occupancy'].clone()
    occ[:, :, 4:6, 4:6, 1] = VEHICLE
    motion = model.pose_codec.frame_motion(batch['poses'])
    out = head(occ[:, :2], motion[:, :2])
    flow, gate = out['flow'], out['gate_logits']
    assert flow.shape == (2, 2, 2, 10, 10) and gate.shape == (2, 2, 10, 10)
    assert not flow.any()  # zero-initialised output: agents stay (the warp baseline)
    target = torch.zeros(2, 2, 2, 10, 10)
    target[:, 0, 0], target[:, 1, 0] = 1.5, 3.0  # +1.5 m per step along x
    mask = torch.zeros(2, 2, 10, 10, dtype=torch.bool)
    mask[:, :, 4:6, 4:6] = True
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        losses = head.loss(head(occ[:, :2], motion[:, :2])['flow'], target, mask)
        first = first if first is not None else float(losses['agent_flow_epe'])
        opt.zero_grad()
        losses['loss_agent_flow'].backward()
        opt.step()
    assert float(losses['agent_flow_epe']) < 0.25 * first


def test_gate_targets_by_hand():
    head = _model().agent_motion
    last = torch.full((1, 10, 10, 6), FREE, dtype=torch.uint8)
    last[..., 0] = 0  # flat ground
    last[0, 9, 0, :3] = 1  # a building at the front-right corner
    last[0, 3, 3, 1] = VEHICLE
    future = last[:, None].repeat(1, 1, 1, 1, 1)
    future[0, 0, 9, 1, :3] = 1  # the building continues into new space at (9, 1)
    future[0, 0, 2, 2, 1] = VEHICLE  # agents do not count
    lut = torch.zeros(256, dtype=torch.bool)
    lut[VEHICLE] = True
    rel = torch.tensor([[[2.0, 0.0, 0.0, 0.0]]])  # 2 m forward: rows 8, 9 are new
    target, mask = head.gate_targets(last, future, rel, lut)
    assert mask.shape == (1, 1, 10, 10)
    assert mask[0, 0, 8:].all() and not mask[0, 0, :8].any()
    assert target[0, 0, 9, 0] == 1 and target[0, 0, 9, 1] == 0 and target[0, 0, 8, 5] == 1
    losses = head.gate_loss(torch.zeros(1, 1, 10, 10), target, mask)
    assert torch.isclose(losses['loss_reveal_gate'], torch.tensor(math.log(2.0)), atol=1e-5)


def test_rollout_gate_targets_by_hand():
    """Cost-sensitive reveal-gate targets: keep where the last column's IoU cost (missed
    voxels + 0.6 x false ones) is no higher than the decoded fill's, weighted by the
    difference; agents do not count."""
    head = _model().agent_motion
    keep = torch.full((1, 10, 10, 6), FREE, dtype=torch.uint8)
    keep[..., 0] = 0  # flat ground
    fill = keep[:, None].clone()
    truth = keep[:, None].clone()
    truth[0, 0, 9, 0, 1:3] = 1  # a 2-voxel building the last frame does not have at (9, 0)
    fill[0, 0, 9, 0, 1:4] = 1  # the decoder has it, one voxel too tall: cost 0.6 vs 2 missed
    fill[0, 0, 9, 1, 0] = FREE  # the decoder loses the ground at (9, 1): cost 1 vs 0
    fill[0, 0, 9, 2, 0] = 1  # (9, 2): a label change of an occupied voxel costs nothing
    truth[0, 0, 9, 3, 1] = VEHICLE  # an agent in the truth is free for the gate
    lut = torch.zeros(256, dtype=torch.bool)
    lut[VEHICLE] = True
    revealed = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    revealed[0, 0, 9] = True
    target, weight = head.rollout_gate_targets(keep, fill, revealed, truth, lut)
    assert target[0, 0, 9, 0] == 0 and weight[0, 0, 9, 0] == pytest.approx(1.4)  # decode
    assert target[0, 0, 9, 1] == 1 and weight[0, 0, 9, 1] == 1.0  # keep
    assert weight[0, 0, 9, 2] == 0 and weight[0, 0, 9, 3] == 0  # ties do not train it
    assert weight[0, 0, :9].sum() == 0  # only revealed columns
    logits = torch.zeros(1, 1, 10, 10)
    logits[0, 0, 9, 0] = -3.0  # right on (9, 0), undecided on (9, 1)
    losses = head.gate_loss(logits, target, weight)
    expected = (1.4 * math.log1p(math.exp(-3.0)) + math.log(2.0)) / 2.4
    assert torch.isclose(losses['loss_reveal_gate'], torch.tensor(expected), atol=1e-5)


def test_rollout_reveal_target_trains_the_gate_in_the_world_stage():
    torch.manual_seed(0)
    cfg = tiny_model_cfg(
        train_stage='world', num_history=2, num_future=2,
        copy_decode=dict(point_cloud_range=RANGE, static_classes=[0, 1]),
        agent_motion=dict(point_cloud_range=RANGE, channels=8, reveal_gate=True,
                          reveal_target='rollout'))
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    batch = synthetic_batch(batch=2, frames=4)
    losses = model.loss(batch)
    assert torch.isfinite(losses['loss_reveal_gate']) and model.training
    assert model.transformer.training  # the rollout ran in eval mode and restored it
    losses['loss_reveal_gate'].backward()
    assert model.agent_motion.gate_out.weight.grad is not None
    with pytest.raises(ValueError, match='reveal_target'):
        MODELS.build(tiny_model_cfg(
            train_stage='world', copy_decode=dict(point_cloud_range=RANGE,
                                                  static_classes=[0, 1]),
            agent_motion=dict(point_cloud_range=RANGE, reveal_gate=True,
                              reveal_target='iou')))


def test_decoder_moves_agents_and_leaves_free_space():
    model = _model()
    dec = model.copy_decoder
    last = torch.full((1, 10, 10, 6), FREE, dtype=torch.uint8)
    last[..., 0] = 0
    last[0, 4, 4, 1] = VEHICLE
    tokens_last = torch.zeros(1, 5, 5, dtype=torch.long)
    tokens = torch.ones(1, 2, 5, 5, dtype=torch.long)
    decoded = torch.full((1, 2, 10, 10, 6), VEHICLE, dtype=torch.uint8)  # junk agents
    motion = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]])  # ego +1 m / step
    flow = torch.zeros(1, 2, 2, 10, 10)
    flow[0, 0, 1, 4, 4] = 2.0  # step 1: the car moved 2 m along +y
    flow[0, 1, 1, 4, 4] = 4.0
    out = dec(last, tokens_last, tokens, decoded, motion, agent_flow=flow)
    # step 1: ego 1 m ahead -> x index - 1; the car at y + 2 m
    assert out[0, 0, 3, 6, 1] == VEHICLE
    assert int((out[0, 0] == VEHICLE).sum()) == 1  # decoder's agents dropped, old place free
    assert out[0, 0, 3, 4, 1] == FREE
    assert out[0, 1, 2, 8, 1] == VEHICLE
    # new space (the front row) comes from the decoder with its dynamic labels set free
    assert (out[0, 0, 9, :, :] == FREE).all()
    # zero flow: agents stay where they were in the world, as the CV warp baseline has them
    still = dec(last, tokens_last, tokens, decoded, motion, agent_flow=torch.zeros_like(flow))
    assert still[0, 0, 3, 4, 1] == VEHICLE and still[0, 1, 2, 4, 1] == VEHICLE


def test_fill_gate_keeps_the_last_column_in_new_space():
    model = _model()
    last = torch.full((1, 10, 10, 6), FREE, dtype=torch.uint8)
    last[..., 0] = 0
    decoded = torch.full((1, 1, 10, 10, 6), 1, dtype=torch.uint8)
    gate = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    gate[0, 0, 9, :5] = True
    out = model.copy_decoder(last, torch.zeros(1, 5, 5, dtype=torch.long),
                             torch.ones(1, 1, 5, 5, dtype=torch.long), decoded,
                             torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]),
                             agent_flow=torch.zeros(1, 1, 2, 10, 10), fill_gate=gate)
    assert torch.equal(out[0, 0, 9, :5], last[0, 9, :5])  # gated: the last column
    assert (out[0, 0, 9, 5:] == 1).all()  # not gated: the decoder


def test_model_losses_and_prediction_fields():
    torch.manual_seed(0)
    model = _model()
    batch = synthetic_batch(batch=2, frames=4)
    inputs = dict(batch, agent_flow=torch.zeros(2, 2, 2, 10, 10),
                  agent_flow_mask=torch.ones(2, 2, 10, 10, dtype=torch.bool))
    losses = model.loss(inputs)
    for key in ('loss_agent_flow', 'loss_reveal_gate', 'agent_flow_epe', 'loss_token'):
        assert key in losses and torch.isfinite(losses[key])
    losses['loss_agent_flow'].backward()
    assert model.agent_motion.out.weight.grad is not None
    # without flow targets only the gate is trained
    assert 'loss_agent_flow' not in model.loss(batch)
    model.eval()
    preds = model.predict(batch)
    assert preds[0].pred_agent_flow.shape == (2, 2, 10, 10)
    assert preds[0].pred_occ.shape == preds[0].decoded_pred_occ.shape == (2, 10, 10, 6)


def test_agent_motion_needs_static_classes():
    cfg = tiny_model_cfg(train_stage='world', copy_decode=dict(point_cloud_range=RANGE),
                         agent_motion=dict(point_cloud_range=RANGE))
    with pytest.raises(ValueError, match='static_classes'):
        MODELS.build(cfg)


def test_planar_column_warp_equals_the_voxel_warp():
    """The bit-packed column warp of ``bev_input`` (z_reference='ground') gives the same input
    as warping the voxels (the 'ego' path, identical when the motion has no z part)."""
    head = _model().agent_motion
    g = torch.Generator().manual_seed(3)
    occ = torch.randint(0, TINY_CLASSES, (2, 2, 10, 10, 6), generator=g).to(torch.uint8)
    motion = torch.zeros(2, 2, 4)
    motion[:, 1, 0], motion[:, 1, 1], motion[:, 1, 3] = 1.3, -0.7, 0.4  # x, y (m), yaw (rad)
    planar = head.bev_input(occ, motion)
    head.z_reference = 'ego'
    voxel = head.bev_input(occ, motion)
    assert planar.shape == (2, 2 * (2 * TINY_CLASSES - 1) + 4, 10, 10)
    assert torch.equal(planar, voxel)
    assert planar[:, :TINY_CLASSES].sum() > 0 and not torch.equal(planar[:, :3], planar[:, 7:10])


def test_motion_state_zeroes_the_flow_of_agents_classified_static():
    cfg = tiny_model_cfg(
        train_stage='world', copy_decode=dict(point_cloud_range=RANGE, static_classes=[0, 1]),
        agent_motion=dict(point_cloud_range=RANGE, channels=8, motion_state=True))
    model = MODELS.build(cfg)
    model.init_weights()
    head = model.agent_motion
    batch = synthetic_batch(batch=1, frames=4)
    motion = model.pose_codec.frame_motion(batch['poses'])
    torch.nn.init.constant_(head.out.bias, 1.0)  # every cell predicts +1 m
    out = head.train()(batch['occupancy'][:, :2], motion[:, :2])
    assert out['state_logits'].shape == (1, 10, 10) and (out['flow'] == 1).all()
    target = torch.zeros(1, 2, 2, 10, 10)
    target[0, 1, 0, 2, 3] = 2.0  # cell (2, 3) moves 2 m by step 2: moving
    mask = torch.zeros(1, 2, 10, 10, dtype=torch.bool)
    mask[0, :, 2:4, 3] = True  # cell (3, 3) stays: not moving
    # zero state logits: BCE log(2) on the two agent cells
    torch.nn.init.zeros_(head.state_out.weight)
    torch.nn.init.zeros_(head.state_out.bias)
    out = head(batch['occupancy'][:, :2], motion[:, :2])
    losses = head.loss(out['flow'], target, mask, out['state_logits'])
    assert torch.isclose(losses['loss_motion_state'], torch.tensor(math.log(2.0)), atol=1e-5)
    torch.nn.init.constant_(head.state_out.bias, -5.0)  # nothing moves
    assert not head.eval()(batch['occupancy'][:, :2], motion[:, :2])['flow'].any()
    torch.nn.init.constant_(head.state_out.bias, 5.0)  # everything moves
    assert (head(batch['occupancy'][:, :2], motion[:, :2])['flow'] == 1).all()


def test_seen_classes_only_restricts_the_decoding_of_new_space():
    torch.manual_seed(0)
    batch = synthetic_batch(batch=1, frames=4)
    occ = batch['occupancy']
    occ[occ == 1] = 0  # class 1 (building) never appears in this window
    preds = {}
    for flag in (True, False):
        torch.manual_seed(0)
        model = _model(seen_classes_only=flag).eval()
        model.tokenizer.decode_indices = lambda idx: torch.nn.functional.one_hot(  # noqa
            torch.ones(idx.shape[0], 10, 10, 6, dtype=torch.long), TINY_CLASSES
        ).permute(0, 4, 1, 2, 3).float() + 0.1 * torch.arange(TINY_CLASSES).view(1, -1, 1, 1, 1)
        preds[flag] = model.predict(dict(batch, occupancy=occ))[0]
    # the decoder says "building" everywhere; with the rule new space gets the next best
    # class the history showed, without it buildings appear
    assert (preds[False].pred_occ == 1).any()
    assert not (preds[True].pred_occ == 1).any()
    assert (preds[True].decoded_pred_occ == 1).all()  # the plain decoding is unchanged


def test_kinematic_flow_mode_by_hand():
    from projects.aerialworld.models.agent_motion import AgentMotionHead
    head = AgentMotionHead(num_classes=4, free_label=3, num_history=2, num_future=3,
                           point_cloud_range=RANGE, channels=8, flow_mode='kinematic')
    out = torch.zeros(1, 4, 2, 2)
    out[0, 0], out[0, 1], out[0, 2], out[0, 3] = 1.0, -2.0, 0.5, 0.0  # v = (1, -2), a = (.5, 0)
    flow = head.flow_from_output(out)
    assert flow.shape == (1, 3, 2, 2, 2)
    # d_f = v f + a f^2 / 2
    assert torch.allclose(flow[0, :, 0, 0, 0], torch.tensor([1.25, 3.0, 5.25]))
    assert torch.allclose(flow[0, :, 1, 1, 1], torch.tensor([-2.0, -4.0, -6.0]))
    with pytest.raises(ValueError, match='flow_mode'):
        AgentMotionHead(num_classes=4, free_label=3, num_history=2, num_future=3,
                        point_cloud_range=RANGE, flow_mode='spline')
    with pytest.raises(ValueError, match='velocity_prior'):
        AgentMotionHead(num_classes=4, free_label=3, num_history=2, num_future=3,
                        point_cloud_range=RANGE, velocity_prior=True, static_classes=[0])


def test_tracked_velocity_prior_by_hand():
    """Centroid tracking through the history; the untrained head continues it."""
    import math
    from projects.aerialworld.models.agent_motion import AgentMotionHead
    rng = [-20.0, -20.0, -5.0, 20.0, 20.0, 25.0]  # 0.8 m cells on a 50 x 50 grid
    head = AgentMotionHead(num_classes=10, free_label=9, num_history=3, num_future=4,
                           point_cloud_range=rng, channels=8, flow_mode='kinematic',
                           velocity_prior=True, static_classes=[0, 1, 2, 3, 4, 5],
                           track_radius=[6.0, 1.7, 4.8])
    assert head.tracked_classes == [6, 7, 8] and head.track_frames == 3
    still = torch.zeros(1, 4)
    last = torch.zeros(1, 50, 50, 3, dtype=torch.bool)
    prev = torch.zeros_like(last)
    last[0, 10:15, 20:22, 0] = prev[0, 8:13, 20:22, 0] = True  # car: +2 cells along x
    last[0, 30, 30, 1] = prev[0, 30, 31, 1] = True  # pedestrian: -1 cell along y
    prev[0, 31, 29, 2] = True  # a drone next to it: other class, never matched to it
    last[0, 45, 45, 2] = True  # drone 11 m from the only drone before: beyond its 4.8 m gate
    v = head.track_velocity([prev, last], [still, None])  # speed of the step, vx, vy, matched
    assert torch.allclose(v[0, :, 12, 21], torch.tensor([1.6, 1.6, 0.0, 1.0]))
    assert torch.allclose(v[0, :, 30, 30], torch.tensor([0.8, 0.0, -0.8, 1.0]))
    assert not v[0, :, 45, 45].any() and not v[0, :, 0, 0].any()
    # per-class gate: a pedestrian 3 cells (2.4 m > 1.7 m) from the one before is not matched
    far = torch.zeros_like(last)
    far[0, 30, 34, 1] = True
    assert not head.track_velocity([far, last], [still, None])[0, :, 30, 30].any()
    # least squares over three frames: x = -11.6, -10.8, -9.2 m -> slope 1.2 m per step
    frames = [torch.zeros_like(last) for _ in range(3)]
    for f, x in zip(frames, (10, 11, 13)):
        f[0, x, 5, 1] = True
    # (speeds 0.8 then 1.6 m per step: the agent speeds up)
    assert torch.allclose(head.track_velocity(frames, [still, still, None])[0, :, 13, 5],
                          torch.tensor([0.8, 1.6, 1.2, 0.0, 1.0]))
    # a track of two frames out of three: the older step's speed is 0
    frames[0][0, 10, 5, 1] = False
    assert torch.allclose(head.track_velocity(frames, [still, still, None])[0, :, 13, 5],
                          torch.tensor([0.0, 1.6, 1.6, 0.0, 1.0]))
    # a parked car seen from an ego that turned 90 degrees in place: the centroid (8, 0) m of
    # the frame before is (0, -8) m in the last one, so the car does not move
    before, now = torch.zeros_like(last), torch.zeros_like(last)
    before[0, 34:36, 24:26, 0] = True  # centre (8.0, 0.0) m
    now[0, 24:26, 14:16, 0] = True  # centre (0.0, -8.0) m
    turn = torch.tensor([[0.0, 0.0, 0.0, math.pi / 2]])
    v = head.track_velocity([before, now], [turn, None])
    assert torch.allclose(v[0, :, 24, 14], torch.tensor([0.0, 0.0, 0.0, 1.0]), atol=1e-5)
    with pytest.raises(ValueError, match='track_radius'):
        AgentMotionHead(num_classes=10, free_label=9, num_history=3, num_future=4,
                        point_cloud_range=rng, flow_mode='kinematic', velocity_prior=True,
                        static_classes=[0, 1, 2, 3, 4, 5], track_radius=[6.0, 1.7])
    with pytest.raises(ValueError, match='track_frames'):
        AgentMotionHead(num_classes=10, free_label=9, num_history=3, num_future=4,
                        point_cloud_range=rng, flow_mode='kinematic', velocity_prior=True,
                        static_classes=[0, 1, 2, 3, 4, 5], track_frames=1)
    # the untrained head (zero-initialised residual) forecasts the car at constant velocity
    occ = torch.full((1, 3, 50, 50, 30), 9, dtype=torch.uint8)
    occ[..., 0] = 4
    occ[0, 2, 10:15, 20:22, 1:3] = 6
    occ[0, 1, 8:13, 20:22, 1:3] = 6
    occ[0, 0, 6:11, 20:22, 1:3] = 6
    flow = head(occ, torch.zeros(1, 3, 4))['flow']
    assert torch.allclose(flow[0, :, 0, 12, 21], torch.tensor([1.6, 3.2, 4.8, 6.4]))
    assert not flow[0, :, 1, 12, 21].any() and not flow[0, :, :, 0, 0].any()


def test_rigid_agents_move_by_the_mean_flow_of_their_component():
    model = _model()
    dec = model.copy_decoder
    dec.rigid_agents = True
    last = torch.full((1, 10, 10, 6), FREE, dtype=torch.uint8)
    last[..., 0] = 0
    last[0, 4, 4:6, 1] = VEHICLE  # one car on two cells
    last[0, 8, 8, 1] = VEHICLE  # another, alone
    flow = torch.zeros(1, 1, 2, 10, 10)
    flow[0, 0, 0, 4, 4], flow[0, 0, 0, 4, 5] = 2.0, 0.0  # cells disagree: mean +1 m along x
    flow[0, 0, 0, 8, 8] = -2.0
    out = dec(last, torch.zeros(1, 5, 5, dtype=torch.long),
              torch.ones(1, 1, 5, 5, dtype=torch.long),
              torch.full((1, 1, 10, 10, 6), FREE, dtype=torch.uint8),
              torch.zeros(1, 1, 4), agent_flow=flow)
    assert out[0, 0, 5, 4, 1] == VEHICLE and out[0, 0, 5, 5, 1] == VEHICLE  # moved together
    assert out[0, 0, 4, 4, 1] == FREE and out[0, 0, 4, 5, 1] == FREE
    assert out[0, 0, 6, 8, 1] == VEHICLE  # the other car keeps its own motion
    assert int((out[0, 0] == VEHICLE).sum()) == 3


def test_tracked_agent_baseline_in_predictions_and_the_metric():
    """velocity_prior: predictions carry the no-learning 'CV-warp + tracked agents' forecast,
    and OccupancyMetric reports it as a baseline."""
    from projects.common.metrics import OccupancyMetric
    torch.manual_seed(0)
    cfg = tiny_model_cfg(
        train_stage='world',
        copy_decode=dict(point_cloud_range=RANGE, static_classes=[0, 1]),
        agent_motion=dict(point_cloud_range=RANGE, channels=8, flow_mode='kinematic',
                          velocity_prior=True))
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    batch = synthetic_batch(batch=1, frames=4)
    occ = batch['occupancy']
    occ[occ == VEHICLE] = FREE
    # the ego moves +1 m per frame along x, a car +2 m: +1 voxel per frame in the ego grid
    occ[0, 0, 3, 4, 1] = occ[0, 1, 4, 4, 1] = VEHICLE
    occ[0, 2, 5, 4, 1] = occ[0, 3, 6, 4, 1] = VEHICLE
    preds = model.predict(batch)
    track = preds[0].warp_track_occ
    assert track.shape == (2, 10, 10, 6) and track.dtype == torch.uint8
    # tracked at +2 m per step: where the true future frames have it
    assert track[0, 5, 4, 1] == VEHICLE and track[1, 6, 4, 1] == VEHICLE
    assert int((track == VEHICLE).sum()) == 2
    # the same decoder with zero flow leaves the car behind (1 m back per step)
    still = model.copy_decoder.warp_with_agents(occ[:, 1], torch.tensor([[[1.0, 0, 0, 0]] * 2]),
                                                torch.zeros(1, 2, 2, 10, 10))
    assert still[0, 0, 3, 4, 1] == VEHICLE and still[0, 1, 2, 4, 1] == VEHICLE
    metric = OccupancyMetric(num_classes=TINY_CLASSES, free_label=FREE,
                             point_cloud_range=RANGE, dynamic_classes=[VEHICLE])
    metric.process({'inputs': {'occupancy': list(occ), 'poses': list(batch['poses'])}}, preds)
    res = metric.compute_metrics(metric.results)
    assert res['warp_track/dynamic/mIoU@1'] == 100.0 and 'warp_track/IoU@mean' in res


def test_continue_gate_targets_and_eval_gating():
    """The continue gate learns 'go on' where the tracked forecast is closer to the truth than
    staying, 'stop' elsewhere; in eval mode a stopped agent keeps its place."""
    from projects.aerialworld.models.agent_motion import AgentMotionHead
    rng = [-20.0, -20.0, -5.0, 20.0, 20.0, 25.0]
    head = AgentMotionHead(num_classes=10, free_label=9, num_history=2, num_future=2,
                           point_cloud_range=rng, channels=8, flow_mode='kinematic',
                           velocity_prior=True, static_classes=[0, 1, 2, 3, 4, 5],
                           continue_gate=True, flow_residual=False)
    assert head.out is None
    occ = torch.full((1, 2, 50, 50, 30), 9, dtype=torch.uint8)
    occ[..., 0] = 4
    occ[0, 1, 10:15, 20:22, 1:3] = 6  # a car +2 cells (1.6 m) along x per frame
    occ[0, 0, 8:13, 20:22, 1:3] = 6
    out = head(occ, torch.zeros(1, 2, 4))
    flow, tracked = out['flow'], out['tracked']
    assert tracked[0, 12, 21] and not tracked[0, 0, 0]
    assert torch.allclose(flow[0, :, 0, 12, 21], torch.tensor([1.6, 3.2]))
    mask = torch.zeros(1, 2, 50, 50, dtype=torch.bool)
    mask[0, :, 10:15, 20:22] = True
    target = torch.zeros(1, 2, 2, 50, 50)
    target[0, 0, 0, 10:15, 20:22] = 1.5  # step 1: it went on (1.5 m: CV is 0.1 m off)
    target[0, 1, 0, 10:15, 20:22] = 1.5  # step 2: it stopped (CV 1.7 m off, staying 1.5 m)
    losses = head.continue_loss(torch.zeros_like(out['continue_logits']), flow, tracked,
                                target, mask)
    assert torch.isclose(losses['loss_continue_gate'], torch.tensor(math.log(2.0)), atol=1e-5)
    opt = torch.optim.Adam(head.parameters(), lr=2e-2)
    for _ in range(40):
        losses = head.continue_loss(head(occ, torch.zeros(1, 2, 4))['continue_logits'], flow,
                                    tracked, target, mask)
        opt.zero_grad()
        losses['loss_continue_gate'].backward()
        opt.step()
    assert float(losses['continue_gate_acc']) == 1.0
    head.eval()
    gated = head(occ, torch.zeros(1, 2, 4))['flow']
    assert torch.allclose(gated[0, 0, 0, 12, 21], torch.tensor(1.6))  # goes on at step 1
    assert not gated[0, 1, :, 12, 21].any()  # stopped at step 2
    with pytest.raises(ValueError, match='velocity_prior'):
        AgentMotionHead(num_classes=10, free_label=9, num_history=2, num_future=2,
                        point_cloud_range=rng, continue_gate=True)


def test_motion_state_does_not_undo_the_continue_gate():
    """With both gates, an agent classified as moving but stopped by the continue gate stays
    (the motion state used to re-apply itself to the ungated flow, dropping the continue
    gate's decisions at evaluation)."""
    from projects.aerialworld.models.agent_motion import AgentMotionHead
    rng = [-20.0, -20.0, -5.0, 20.0, 20.0, 25.0]
    head = AgentMotionHead(num_classes=10, free_label=9, num_history=2, num_future=2,
                           point_cloud_range=rng, channels=8, flow_mode='kinematic',
                           velocity_prior=True, static_classes=[0, 1, 2, 3, 4, 5],
                           continue_gate=True, flow_residual=False, motion_state=True)
    occ = torch.full((1, 2, 50, 50, 30), 9, dtype=torch.uint8)
    occ[0, 1, 10:15, 20:22, 1:3] = 6  # a car +2 cells (1.6 m) along x per frame
    occ[0, 0, 8:13, 20:22, 1:3] = 6
    head.eval()
    for layer in (head.state_out, head.continue_out):
        torch.nn.init.zeros_(layer.weight)
    torch.nn.init.constant_(head.state_out.bias, 5.0)  # every cell moves
    torch.nn.init.constant_(head.continue_out.bias, torch.tensor(5.0))
    head.continue_out.bias.data[1] = -5.0  # goes on at step 1, stops at step 2
    flow = head(occ, torch.zeros(1, 2, 4))['flow']
    assert torch.allclose(flow[0, 0, 0, 12, 21], torch.tensor(1.6))
    assert not flow[0, 1, :, 12, 21].any()
    torch.nn.init.constant_(head.state_out.bias, -5.0)  # nothing moves: no flow at all
    assert not head(occ, torch.zeros(1, 2, 4))['flow'].any()


def test_agent_mean_pools_each_agent():
    """Per-agent mean of per-cell maps (continue gate): by hand, and gradients reach every
    cell of the agent."""
    from projects.aerialworld.models.agent_motion import AgentMotionHead
    maps = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(2, 2, 4, 4).requires_grad_()
    cells = torch.zeros(2, 4, 4, dtype=torch.bool)
    cells[0, 0, 0] = cells[0, 1, 1] = True  # one agent (diagonal neighbours, 8-connected)
    cells[0, 3, 3] = True  # another
    out = AgentMotionHead.agent_mean(maps, cells)
    assert out[0, 0, 0, 0] == out[0, 0, 1, 1] == (0 + 5) / 2
    assert out[0, 1, 0, 0] == (16 + 21) / 2
    assert out[0, 0, 3, 3] == 15 and out[0, 0, 0, 1] == 1  # alone / not an agent: unchanged
    assert torch.equal(out[1], maps[1])  # no agents in the second sample
    out[0, 0, 0, 0].backward()
    assert maps.grad[0, 0, 0, 0] == maps.grad[0, 0, 1, 1] == 0.5
    assert maps.grad.sum() == 1.0
