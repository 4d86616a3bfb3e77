"""World transformer causality and the AerialWorld model (stages, losses, predict)."""
import math
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.structures import BaseDataElement

from aerialworld_model_helpers import TINY_TOKENIZER, TINY_TRANSFORMER, synthetic_batch, tiny_model_cfg
from projects.common.hooks.checkpoint_compat import history_buffers_to_plain
from projects.common.structures import ego_motion_from_poses
from projects.registry import MODELS


def _transformer(**overrides):
    cfg = copy.deepcopy(TINY_TRANSFORMER)
    cfg.update(num_codes=32, token_grid=(5, 5), code_dim=16, token_embed='table')
    cfg.update(overrides)
    return MODELS.build(cfg).eval()


@pytest.mark.parametrize('spatial_mode', ['attn', 'conv'])
def test_transformer_is_causal(spatial_mode):
    torch.manual_seed(0)
    net = _transformer(spatial_mode=spatial_mode, spatial_scales=(1, 2))
    tokens = torch.randint(0, 32, (2, 6, 5, 5))
    motion = torch.randn(2, 6, 4)
    logits, pose = net(tokens, motion)
    assert logits.shape == (2, 6, 32, 5, 5) and pose.shape == (2, 6, 4)
    for t in range(5):
        tok2, mot2 = tokens.clone(), motion.clone()
        tok2[:, t + 1:] = torch.randint(0, 32, tok2[:, t + 1:].shape)
        mot2[:, t + 1:] += 1.0
        logits2, pose2 = net(tok2, mot2)
        assert torch.equal(logits2[:, :t + 1], logits[:, :t + 1])
        assert torch.equal(pose2[:, :t + 1], pose[:, :t + 1])
        assert not torch.equal(logits2[:, t + 1:], logits[:, t + 1:])


@pytest.mark.parametrize('overrides', [
    dict(),
    dict(spatial_mode='conv', copy_prior=6.0, copy_warp_range=[-20, -20, 20, 20],
         pose_residual=True, pose_envelope=1.0)])
def test_generate_with_key_value_cache_equals_full_window_rollout(overrides):
    """The cached rollout (new frame only through the blocks) gives the same codes and
    motion as running the whole window at every step (``use_cache=False``), with and
    without a plan; a rollout longer than max_frames slides the window (no cache) and still
    runs."""
    torch.manual_seed(0)
    net = _transformer(max_frames=10, **overrides)
    with torch.no_grad():  # weights far from init so that every path matters
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    tokens = torch.randint(0, 32, (2, 4, 5, 5))
    motion = torch.randn(2, 4, 4)
    codes, mot = net.generate(tokens, motion, None, 6)
    ref_codes, ref_mot = net.generate(tokens, motion, None, 6, use_cache=False)
    assert torch.equal(codes, ref_codes)
    assert torch.allclose(mot, ref_mot, atol=1e-5)
    # a different codebook entry somewhere: the rollout is not trivially constant
    assert codes.unique().numel() > 1
    plan = torch.randn(2, 6, 4)
    codes, mot = net.generate(tokens, motion, None, 6, plan)
    ref_codes, _ = net.generate(tokens, motion, None, 6, plan, use_cache=False)
    assert torch.equal(codes, ref_codes) and torch.equal(mot, plan)
    # block-level: new frames over the cache equal the last rows of the full window (one
    # new frame: no mask; two: causal among themselves)
    x = torch.randn(1, 6, 5, 5, net.d_model)
    block = net.blocks[0]
    for split in (5, 4):
        _, cache = block(x[:, :split], use_cache=True)
        new, cache = block(x[:, split:], cache, use_cache=True)
        assert torch.allclose(new, block(x)[:, split:], atol=1e-5)
        assert cache[0].shape[2] == 6
    codes, _ = net.generate(tokens, motion, None, 8)  # 4 + 7 > max_frames: sliding window
    assert codes.shape == (2, 8, 5, 5)


def test_aerialworld_end_to_end_causal():
    """Changing the occupancy / pose of frame t+1 leaves outputs for frames <= t unchanged."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(train_stage='world')).eval()
    batch = synthetic_batch(frames=4)
    logits, motion = model(batch, mode='tensor')
    occ2 = batch['occupancy'].clone()
    occ2[:, 2:] = torch.randint(0, 4, occ2[:, 2:].shape, dtype=torch.uint8)
    poses2 = batch['poses'].clone()
    poses2[:, 2:, :3] += 5.0
    logits2, motion2 = model(dict(occupancy=occ2, poses=poses2), mode='tensor')
    assert torch.equal(logits2[:, :2], logits[:, :2])
    assert torch.equal(motion2[:, :2], motion[:, :2])


def _train(model, batch, steps, lr=3e-3):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    totals = []
    for _ in range(steps):
        losses = model(batch, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(total.item())
    return totals, losses


def test_losses_decrease_in_both_stages_and_tokenizer_frozen():
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(train_stage='tokenizer'))
    batch = synthetic_batch(frames=4)
    totals, losses = _train(model, batch, 25)
    assert {'loss_recon_focal', 'loss_recon_dice', 'loss_recon_mm', 'loss_vq'} <= set(losses)
    assert 'recon_iou' in losses and 'loss' not in 'recon_iou'
    assert sum(totals[-5:]) < 0.7 * sum(totals[:5])

    model.set_stage('world')
    model.train()
    assert not model.tokenizer.training and model.transformer.training
    assert all(not p.requires_grad for p in model.tokenizer.parameters())
    tok_state = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    totals, losses = _train(model, batch, 25)
    assert {'loss_token', 'loss_pose', 'loss_pred_focal', 'loss_pred_dice',
            'loss_pred_mm', 'acc_token', 'acc_token_copy_last'} <= set(losses)
    assert sum(totals[-5:]) < 0.8 * sum(totals[:5])
    assert all(p.grad is None for p in model.tokenizer.parameters())
    for k, v in model.tokenizer.state_dict().items():
        assert torch.equal(v, tok_state[k]), k  # weights, codebook and buffers untouched

    model.set_stage('tokenizer')
    model.train()
    assert model.tokenizer.training
    assert all(p.requires_grad for p in model.tokenizer.parameters())


def test_joint_stage_has_both_losses():
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(train_stage='joint', world_occ_loss_frames='all'))
    losses = model(synthetic_batch(frames=4), mode='loss')
    assert {'loss_recon_focal', 'loss_vq', 'loss_token', 'loss_pred_focal'} <= set(losses)


def test_predict_contract_fields():
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(train_stage='world')).eval()
    batch = synthetic_batch(batch=2, frames=5)
    samples = [BaseDataElement(metainfo=dict(session='s', sample_idx=i)) for i in range(2)]
    out = model(batch, samples, mode='predict')
    assert len(out) == 2
    motion = ego_motion_from_poses(batch['poses'])
    for i, s in enumerate(out):
        assert s.metainfo['session'] == 's' and s.metainfo['sample_idx'] == i
        for key in ('pred_occ', 'gt_occ', 'baseline_occ'):
            v = getattr(s, key)
            assert v.dtype == torch.uint8 and v.shape == (2, 10, 10, 6) and v.device.type == 'cpu'
        for key in ('pred_ego_motion', 'gt_ego_motion', 'baseline_ego_motion'):
            v = getattr(s, key)
            assert v.dtype == torch.float32 and v.shape == (2, 4)
        # history = frames 0, 1; future = frames 2, 3
        assert torch.equal(s.gt_occ, batch['occupancy'][i, 2:4])
        assert torch.equal(s.baseline_occ[0], batch['occupancy'][i, 1])
        assert torch.equal(s.baseline_occ[1], batch['occupancy'][i, 1])
        assert torch.allclose(s.gt_ego_motion, motion[i, 1:3])
        assert torch.allclose(s.baseline_ego_motion, motion[i, 0:1].expand(2, 4))
        assert int(s.pred_occ.max()) < 4
    out = model(batch, mode='predict')  # no data samples: new ones are created
    assert out[0].metainfo['num_future'] == 2
    with pytest.raises(ValueError, match='num_history'):
        model(synthetic_batch(frames=3), mode='predict')


def test_tokenizer_checkpoint_loading(tmp_path):
    torch.manual_seed(0)
    stage1 = MODELS.build(tiny_model_cfg(train_stage='tokenizer'))
    hub = MessageHub.get_instance('aw_test_hub')
    hub.update_scalar('train/loss', 1.0)
    hub_state = hub.state_dict()
    raw = dict(meta=dict(iter=1),
               state_dict={'module.' + k: v for k, v in stage1.state_dict().items()},
               message_hub=hub_state)
    torch.save(raw, str(tmp_path / 'raw.pth'))
    with pytest.raises(RuntimeError, match='CheckpointCompatHook'):
        MODELS.build(tiny_model_cfg(tokenizer_ckpt=str(tmp_path / 'raw.pth'))).init_weights()
    # as written by the runner with CheckpointCompatHook (message hub as plain data)
    hub_state['log_scalars'] = history_buffers_to_plain(hub_state['log_scalars'])
    path = str(tmp_path / 'stage1.pth')
    torch.save(dict(raw, message_hub=hub_state), path)
    # MMEngine's Pretrained init_cfg (checked strictly first); DDP-saved keys: 'module.' prefix
    stage2 = MODELS.build(tiny_model_cfg(train_stage='world', tokenizer=dict(
        TINY_TOKENIZER, init_cfg=dict(type='Pretrained', checkpoint=path,
                                      prefix='module.tokenizer.'))))
    stage2.init_weights()
    for k, v in stage1.tokenizer.state_dict().items():
        assert torch.equal(stage2.tokenizer.state_dict()[k], v), k
    # a bare tokenizer state dict works too; a mismatching one names the option
    torch.save(stage1.tokenizer.state_dict(), str(tmp_path / 'tok.pth'))
    bare = MODELS.build(tiny_model_cfg(tokenizer=dict(
        TINY_TOKENIZER, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'tok.pth')))))
    bare.init_weights()
    other = tiny_model_cfg()
    other['tokenizer']['code_dim'] = 8
    with pytest.raises(RuntimeError, match='tokenizer_ckpt'):
        MODELS.build(dict(other, tokenizer=dict(other['tokenizer'], init_cfg=dict(
            type='Pretrained', checkpoint=path, prefix='module.tokenizer.')))).init_weights()


def test_config_errors():
    cfg = tiny_model_cfg()
    cfg['transformer']['token_grid'] = (4, 4)
    with pytest.raises(ValueError, match='transformer.token_grid'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='train_stage'):
        MODELS.build(tiny_model_cfg(train_stage='stage2'))
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(tiny_model_cfg(num_classes=5))
    model = MODELS.build(tiny_model_cfg())
    bad = synthetic_batch(grid=(10, 10, 7))
    with pytest.raises(ValueError, match='grid_size'):
        model(bad, mode='loss')


def test_copy_prior_starts_from_copy_last_and_stays_causal():
    from projects.registry import MODELS
    model = MODELS.build(dict(type='OccWorldTransformer', num_codes=16, token_grid=(4, 5),
                              token_embed='table', d_model=16, num_blocks=1, num_heads=2,
                              max_frames=4, pose_hidden=8, copy_prior=20.0)).eval()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    tokens = torch.randint(0, 16, (2, 4, 4, 5))
    motion = torch.zeros(2, 4, 4)
    logits, _ = model(tokens, motion)
    # head outputs 0 everywhere, so the prediction for t+1 is exactly the tokens of t
    assert torch.equal(logits.argmax(2), tokens)
    assert torch.allclose(logits.gather(2, tokens.unsqueeze(2)), torch.full((2, 4, 1, 4, 5), 20.0))
    changed = tokens.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 16
    logits2, _ = model(changed, motion)
    assert torch.equal(logits2[:, :3], logits[:, :3])
    (logits[:, :, 0].sum()).backward()
    assert model.copy_logit.grad is not None


def test_motion_compensated_copy_prior_shifts_tokens_with_ego_motion():
    from projects.registry import MODELS
    # 4 x 5 token map over x in [-4, 4], y in [-5, 5]: 2 m x 2 m tokens
    model = MODELS.build(dict(type='OccWorldTransformer', num_codes=32, token_grid=(4, 5),
                              token_embed='table', d_model=16, num_blocks=1, num_heads=2,
                              max_frames=4, pose_hidden=8, copy_prior=20.0,
                              copy_warp_range=[-4.0, -5.0, 4.0, 5.0])).eval()
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    tokens = torch.arange(20).reshape(1, 1, 4, 5).repeat(1, 2, 1, 1)
    # ego moves 2 m forward (one token in x): token (i, j) of t+1 sees token (i+1, j) of t
    nxt = torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    logits, _ = model(tokens, torch.zeros(1, 2, 4), next_motion=nxt)
    pred = logits[0, 0].argmax(0)
    assert torch.equal(pred[:3], tokens[0, 0, 1:])            # shifted by one row
    assert torch.all(logits[0, 0, :, 3].max(0).values == 0)   # last row left the map: no bonus
    assert torch.equal(logits[0, 1].argmax(0), tokens[0, 1])  # no motion: plain copy
    # moving 2 m to the left (one token in y): token (i, j) of t+1 sees token (i, j+1) of t
    left = torch.tensor([[[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    logits, _ = model(tokens, torch.zeros(1, 2, 4), next_motion=left)
    assert torch.equal(logits[0, 0].argmax(0)[:, :4], tokens[0, 0, :, 1:])
    # turning by 180 degrees maps (x, y) -> (-x, -y): token (i, j) sees token (3-i, 4-j)
    turn = torch.tensor([[[0.0, 0.0, 0.0, math.pi], [0.0, 0.0, 0.0, 0.0]]])
    logits, _ = model(tokens, torch.zeros(1, 2, 4), next_motion=turn)
    assert torch.equal(logits[0, 0].argmax(0), tokens[0, 0].flip(0).flip(1))
    # without next_motion the model's own (detached) motion prediction is used
    logits, motion = model(tokens, torch.zeros(1, 2, 4))
    assert logits.shape == (1, 2, 32, 4, 5) and motion.shape == (1, 2, 4)


@pytest.mark.parametrize('pose_dims', [4, 13])
def test_pose_residual_starts_at_constant_velocity_and_learns(pose_dims):
    from projects.common.structures.rotation import quat_from_yaw
    torch.manual_seed(0)
    net = _transformer(pose_dims=pose_dims, pose_residual=True).train()
    tokens = torch.randint(0, 32, (2, 4, 5, 5))
    if pose_dims == 4:
        motion = torch.randn(2, 4, 4)
    else:
        motion = torch.cat([torch.randn(2, 4, 3), quat_from_yaw(torch.rand(2, 4) - 0.5),
                            torch.randn(2, 4, 6)], dim=-1)
    _, pred = net(tokens, motion)
    # untrained: the next motion is the frame's own motion (constant velocity)
    assert torch.allclose(pred, motion, atol=1e-6)
    # a 6-DoF frame without motion (zero quaternion) counts as the identity rotation
    if pose_dims == 13:
        still = torch.zeros(2, 4, 13)
        _, pred0 = net(tokens, still)
        assert torch.allclose(pred0[..., 3:7], torch.tensor([1.0, 0, 0, 0]).expand(2, 4, 4))
    # causal: later motions do not change earlier predictions
    later = motion.clone()
    later[:, 2:, :3] += 1.0
    _, pred_later = net(tokens, later)
    assert torch.equal(pred_later[:, :2], pred[:, :2])
    # the correction is learnable: fit a constant acceleration of +0.5 m in dx
    target = motion.clone()
    target[..., 0] += 0.5
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        _, out = net(tokens, motion)
        loss = (out[..., :3] - target[..., :3]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, out = net(tokens, motion)
    assert (out[..., 0] - target[..., 0]).abs().mean() < 0.1


def test_pose_residual_leaves_the_first_frame_out_of_the_pose_loss(monkeypatch):
    seen = {}
    for residual in (False, True):
        transformer = dict(TINY_TRANSFORMER, pose_residual=residual)
        model = MODELS.build(tiny_model_cfg(train_stage='world', transformer=transformer))
        calls = []
        orig = model.head.pose_losses
        monkeypatch.setattr(model.head, 'pose_losses',
                            lambda pred, gt: calls.append((pred.shape, gt.shape)) or
                            orig(pred, gt))
        model.loss(synthetic_batch(batch=2, frames=4))
        seen[residual] = calls[0]
    assert seen[False] == ((2, 3, 4), (2, 3, 4))  # frames 0..2 predict motions 1..3
    assert seen[True] == ((2, 2, 4), (2, 2, 4))  # frame 0 has no motion to continue


def test_world_occ_loss_samples_decodes_a_random_subset_of_frames():
    """``world_occ_loss_samples=1``: one randomly chosen target frame is decoded and scored,
    with the same decoded logits and loss terms as that frame has in the all-frames path."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(train_stage='world', world_occ_loss_frames='all'))
    batch = synthetic_batch(batch=2, frames=4)
    calls = []
    original = model.head.occupancy_losses

    def capture(logits, target, stage):
        calls.append((logits.detach().clone(), target.clone()))
        return original(logits, target, stage)

    model.head.occupancy_losses = capture
    model(batch, mode='loss')
    full_logits, full_gt = calls.pop()
    assert full_logits.shape[0] == 2 * 3  # B x targets 1..3
    full_logits = full_logits.unflatten(0, (2, 3))
    model.world_occ_loss_samples = 1
    seen = set()
    for seed in range(6):
        torch.manual_seed(seed)
        losses = model(batch, mode='loss')
        logits, gt = calls.pop()
        assert logits.shape[0] == 2
        frame = [f for f in range(3) if torch.equal(gt, batch['occupancy'][:, f + 1])]
        assert len(frame) == 1
        f = frame[0]
        seen.add(f)
        assert torch.allclose(logits, full_logits[:, f], atol=1e-5)
        expected = original(full_logits[:, f], batch['occupancy'][:, f + 1], 'pred')
        assert torch.allclose(losses['loss_pred_focal'], expected['loss_pred_focal'], atol=1e-6)
    assert len(seen) > 1  # the frame is drawn at random
    with pytest.raises(ValueError, match='world_occ_loss_samples'):
        MODELS.build(tiny_model_cfg(world_occ_loss_samples=0))


def test_world_occ_loss_samples_follow_the_runner_iteration():
    """Inside a runner the sampled frames depend on (seed, iteration) only, not on the global
    random stream, so a resumed run decodes the same frames as the uninterrupted one."""
    from mmengine.logging import MessageHub
    model = MODELS.build(tiny_model_cfg(train_stage='world', world_occ_loss_frames='all',
                                        world_occ_loss_samples=1))
    batch = synthetic_batch(batch=2, frames=4)
    targets = []
    original = model.head.occupancy_losses
    def capture(logits, target, stage):
        targets.append(target)
        return original(logits, target, stage)

    model.head.occupancy_losses = capture
    hub = MessageHub.get_instance('test_world_occ_loss_samples_iter')
    picked = {}
    try:
        for it in range(8):
            hub.update_info('iter', it)
            for draw in range(2):
                torch.rand(17 * (draw + 1))  # other code consuming the global stream
                model(batch, mode='loss')
                gt = targets.pop()
                frame = [f for f in range(3) if torch.equal(gt, batch['occupancy'][:, f + 1])][0]
                picked.setdefault(it, set()).add(frame)
    finally:
        hub.update_info('iter', None)
    assert all(len(v) == 1 for v in picked.values())  # same iteration, same frame
    assert len({next(iter(v)) for v in picked.values()}) > 1  # varies with the iteration
