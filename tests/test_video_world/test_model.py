"""Video world model: value range, FiLM action conditioning, rollouts, losses, checkpointing."""
import os.path as osp

import pytest
import torch

from video_world_helpers import (build_tiny, randomize_zero_inits, synthetic_batch,
                                 tiny_model_cfg)
from projects.registry import MODELS
from projects.video_world.models import (ConvLSTMCell, FiLM, HorizonWeightedPredictionLoss,
                                         PerceptualLoss, VideoDataPreprocessor,
                                         horizon_weights)

torch.set_num_threads(1)


def _prep(model, batch, training=False):
    return model.data_preprocessor(batch, training)


def test_preprocessor_maps_uint8_to_unit_range_and_rejects_other_ranges():
    pre = VideoDataPreprocessor(action_mean=[1.0, 0.0, 0.0], action_std=[2.0, 1.0, 1.0])
    frames = torch.tensor([0, 255, 127], dtype=torch.uint8).view(1, 1, 3, 1, 1).expand(
        1, 2, 3, 1, 1)
    out = pre(dict(inputs=dict(frames=frames, actions=torch.tensor([[[3.0, 1.0, 2.0]]]))))
    assert out['inputs']['frames'].dtype == torch.float32
    torch.testing.assert_close(out['inputs']['frames'][0, 0, :, 0, 0],
                               torch.tensor([-1.0, 1.0, 127 / 127.5 - 1]))
    torch.testing.assert_close(out['inputs']['actions'][0, 0], torch.tensor([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r'\[-1, 1\]'):
        pre(dict(inputs=dict(frames=torch.rand(1, 2, 3, 4, 4) * 255,
                             actions=torch.zeros(1, 1, 3))))
    with pytest.raises(ValueError, match='T - 1'):
        pre(dict(inputs=dict(frames=frames, actions=torch.zeros(1, 2, 3))))
    with pytest.raises(TypeError):
        pre(dict(inputs=dict(frames=frames.long(), actions=torch.zeros(1, 1, 3))))


def test_outputs_stay_in_unit_range_even_with_large_weights():
    model = build_tiny()
    randomize_zero_inits(model, std=5.0)
    with torch.no_grad():
        for p in model.head.decoder.parameters():
            p.mul_(20)
    data = _prep(model, synthetic_batch())
    out = model.rollout(data['inputs']['frames'], data['inputs']['actions'])
    for key in ('recon', 'pred_frames'):
        assert out[key].min() >= -1 and out[key].max() <= 1, key
    assert out['pred_frames'].shape == (2, 4, 3, 16, 16)
    assert out['latents'].shape == (2, 5, 16, 4, 4)


def test_untrained_dynamics_is_latent_copy_and_film_is_identity():
    model = build_tiny()
    z = torch.randn(2, 16, 4, 4)
    nxt, _ = model.dynamics(z, torch.randn(2, 3))
    torch.testing.assert_close(nxt, z)
    film = FiLM(3, 16)
    torch.testing.assert_close(film(z, torch.randn(2, 3)), z)


def test_film_changes_predictions_when_actions_change():
    model = build_tiny()
    randomize_zero_inits(model)
    model.eval()
    data = _prep(model, synthetic_batch())
    frames, actions = data['inputs']['frames'], data['inputs']['actions']
    with torch.no_grad():
        a = model.rollout(frames, actions)['pred_frames']
        b = model.rollout(frames, actions.clone())['pred_frames']
        changed = actions.clone()
        changed[:, 2] += 1.0  # the action that moves frame 2 to frame 3
        c = model.rollout(frames, changed)['pred_frames']
    torch.testing.assert_close(a, b)
    # predictions of frames 1..3 do not depend on the action taken at frame 2 ...
    torch.testing.assert_close(a[:, :2], c[:, :2])
    # ... the prediction of frame 3 and later ones do.
    assert (a[:, 2:] - c[:, 2:]).abs().max() > 1e-3


def test_teacher_forced_vs_open_loop_rollouts():
    model = build_tiny(num_context=2)
    randomize_zero_inits(model)
    model.eval()
    data = _prep(model, synthetic_batch(frames=6))
    frames, actions = data['inputs']['frames'], data['inputs']['actions']
    with torch.no_grad():
        ol = model.rollout(frames, actions, 'open_loop')
        tf = model.rollout(frames, actions, 'teacher_forced')
        # Predictions of frames 1 and 2 start from observed frames in both modes.
        torch.testing.assert_close(ol['pred_frames'][:, :2], tf['pred_frames'][:, :2])
        assert (ol['pred_frames'][:, 2:] - tf['pred_frames'][:, 2:]).abs().max() > 1e-4
        assert ol['horizons'].tolist() == [1, 1, 2, 3, 4]
        assert tf['horizons'].tolist() == [1, 1, 1, 1, 1]
        # Open loop never looks at frames after the context; teacher forcing does.
        altered = frames.clone()
        altered[:, 3] = -altered[:, 3]
        ol2 = model.rollout(altered, actions, 'open_loop')
        tf2 = model.rollout(altered, actions, 'teacher_forced')
    torch.testing.assert_close(ol['pred_frames'], ol2['pred_frames'])
    torch.testing.assert_close(tf['pred_frames'][:, :3], tf2['pred_frames'][:, :3])
    assert (tf['pred_frames'][:, 3] - tf2['pred_frames'][:, 3]).abs().max() > 1e-4


def test_predict_fills_data_samples_with_open_loop_and_shuffled_rollouts():
    model = build_tiny()
    randomize_zero_inits(model)
    model.eval()
    batch = synthetic_batch(frames=5)
    batch['inputs']['shuffled_actions'] = [a.flip(0) for a in batch['inputs']['actions']]
    data = _prep(model, batch)
    with torch.no_grad():
        samples = model(**data, mode='predict')
    s = samples[0]
    assert s.pred_frames.shape == (3, 3, 16, 16)  # T - num_context
    assert s.pred_frames_shuffled.shape == (3, 3, 16, 16)
    assert s.gt_frames.shape == (5, 3, 16, 16) and s.num_context == 2
    assert (s.pred_frames - s.pred_frames_shuffled).abs().max() > 1e-4


def test_compositing_with_full_mask_copies_previous_frame():
    model = build_tiny()
    frames = torch.rand(1, 4, 3, 16, 16) * 2 - 1
    rgb = torch.zeros(1, 3, 3, 16, 16)
    mask = torch.ones(1, 3, 1, 16, 16)
    out = model.head.compose(rgb, mask, frames, observed=[True, True, False])
    torch.testing.assert_close(out[:, 0], frames[:, 0])
    torch.testing.assert_close(out[:, 1], frames[:, 1])
    torch.testing.assert_close(out[:, 2], frames[:, 1])  # open loop: previous prediction


def test_compositing_sources_hand_computed():
    """mask 0.5, rgb 0: 'previous' halves the previous prediction at every open-loop step,
    'last_observed' halves the last observed frame at every step (no compounding)."""
    frames = torch.rand(1, 5, 3, 8, 8) * 2 - 1
    rgb = torch.zeros(1, 4, 3, 8, 8)
    mask = torch.full((1, 4, 1, 8, 8), 0.5)
    observed = [True, True, False, False]
    prev = build_tiny().head.compose(rgb, mask, frames, observed)
    last = build_tiny(head=dict(tiny_model_cfg()['head'], composite_source='last_observed')
                      ).head.compose(rgb, mask, frames, observed)
    for out in (prev, last):
        torch.testing.assert_close(out[:, 0], 0.5 * frames[:, 0])
        torch.testing.assert_close(out[:, 1], 0.5 * frames[:, 1])
    torch.testing.assert_close(prev[:, 2], 0.25 * frames[:, 1])
    torch.testing.assert_close(prev[:, 3], 0.125 * frames[:, 1])
    torch.testing.assert_close(last[:, 2], 0.5 * frames[:, 1])
    torch.testing.assert_close(last[:, 3], 0.5 * frames[:, 1])
    with pytest.raises(ValueError, match='composite_source'):
        build_tiny(head=dict(tiny_model_cfg()['head'], composite_source='first'))


def test_prediction_loss_ssim_mix_hand_computed():
    """alpha = 1: the loss is the horizon-weighted 1 - SSIM; a perfect prediction scores 0;
    alpha = 0.5 averages the pixel and SSIM terms."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 3, 3, 16, 16, generator=g) * 2 - 1
    pred = (frames[:, 1:] + 0.3 * torch.randn(2, 2, 3, 16, 16, generator=g)).clamp(-1, 1)
    rollout = dict(frames=frames, pred_frames=pred, horizons=torch.tensor([1, 2]))
    d = [1 - ssim((pred[:, j] + 1) / 2, (frames[:, j + 1] + 1) / 2, data_range=1.0)
         for j in range(2)]
    w = torch.tensor([1.0, 2.0]) / 1.5
    full = HorizonWeightedPredictionLoss(kind='mse', ssim_weight=1.0)(rollout)
    torch.testing.assert_close(full, (w[0] * d[0] + w[1] * d[1]) / 2)
    mse = [((pred[:, j] - frames[:, j + 1]) ** 2).mean() for j in range(2)]
    half = HorizonWeightedPredictionLoss(kind='mse', ssim_weight=0.5)(rollout)
    torch.testing.assert_close(
        half, sum(w[j] * (0.5 * mse[j] + 0.5 * d[j]) for j in range(2)) / 2)
    perfect = dict(rollout, pred_frames=frames[:, 1:])
    assert HorizonWeightedPredictionLoss(ssim_weight=0.84)(perfect).abs() < 1e-5
    with pytest.raises(ValueError, match='ssim_weight'):
        HorizonWeightedPredictionLoss(ssim_weight=1.5)


def test_horizon_weights_hand_computed():
    h = torch.tensor([1, 1, 2, 3])
    torch.testing.assert_close(horizon_weights(h, 'linear'), torch.tensor([1, 1, 2, 3]) / 1.75)
    torch.testing.assert_close(horizon_weights(h, 'uniform'), torch.ones(4))
    torch.testing.assert_close(horizon_weights(h, [1.0, 3.0]),
                               torch.tensor([1.0, 1.0, 3.0, 3.0]) / 2.0)
    with pytest.raises(ValueError):
        horizon_weights(h, 'cubic')


def test_training_reduces_the_loss_on_a_fixed_batch():
    model = build_tiny()
    model.train()
    data = _prep(model, synthetic_batch(seed=3), True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(15):
        losses = model(**data, mode='loss')
        assert set(losses) == {'loss_recon', 'loss_pred', 'loss_perceptual', 'loss_latent_reg',
                               'loss_latent_consistency'}
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss))
    assert history[-1] < 0.9 * history[0], history
    assert sum(history[-3:]) < sum(history[:3]), history


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for cp in (False, True):
        model = build_tiny(gradient_checkpointing=cp)
        randomize_zero_inits(model)
        model.train()
        data = _prep(model, synthetic_batch(), True)
        loss = sum(model(**data, mode='loss').values())
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()
                                if p.grad is not None]))
    assert model.encoder.stages[0][0].with_cp and model.dynamics.with_cp
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_context_only_reconstruction_encodes_future_without_gradients():
    model = build_tiny(recon_frames='context')
    model.train()
    data = _prep(model, synthetic_batch(), True)
    out = model.rollout(data['inputs']['frames'], data['inputs']['actions'], 'open_loop',
                        'context')
    assert out['recon'].shape[1] == 2 and out['latents'].shape[1] == 5
    assert not out['latents'][:, 2:].requires_grad or out['latents'][:, 2:].grad_fn is not None


def test_convlstm_dynamics_and_bad_configs():
    model = build_tiny(dynamics=dict(type='FiLMRecurrentDynamics', latent_dim=16, action_dim=3,
                                     hidden_dim=8, num_layers=2, cell='lstm'))
    assert isinstance(model.dynamics.cells[0], ConvLSTMCell)
    data = _prep(model, synthetic_batch())
    assert model(**data, mode='tensor').shape == (2, 4, 3, 16, 16)
    with pytest.raises(ValueError, match='cell'):
        MODELS.build(dict(type='FiLMRecurrentDynamics', cell='rnn'))
    with pytest.raises(ValueError, match='latent_dim'):
        build_tiny(dynamics=dict(type='FiLMRecurrentDynamics', latent_dim=8, action_dim=3))
    with pytest.raises(ValueError, match='action_dim'):
        model.dynamics(torch.zeros(1, 16, 4, 4), torch.zeros(1, 5))


def test_perceptual_loss_falls_back_to_ms_ssim_and_says_so(monkeypatch):
    import projects.video_world.models.losses as losses_mod
    messages = []
    monkeypatch.setattr(losses_mod, 'print_log', lambda msg, **kw: messages.append(msg))
    loss = PerceptualLoss(ms_ssim_betas=(0.5, 0.5), ms_ssim_kernel_size=3)
    assert loss.mode == 'ms_ssim'
    assert any('no vgg_checkpoint given, using 1 - MS-SSIM' in m for m in messages)
    frames = torch.rand(1, 3, 3, 16, 16) * 2 - 1
    same = loss(dict(frames=frames, pred_frames=frames[:, 1:]))
    other = loss(dict(frames=frames, pred_frames=-frames[:, 1:]))
    assert float(same) == pytest.approx(0.0, abs=1e-4) and float(other) > 0.01


def test_perceptual_loss_vgg_checkpoint_plumbing(tmp_path):
    from projects.video_world.models.losses import VGGFeatureExtractor
    torch.manual_seed(0)
    state, cin, i = {}, 3, 0
    for v in VGGFeatureExtractor.CFG:
        if v == 'M':
            i += 1
            continue
        state[f'features.{i}.weight'] = torch.randn(v, cin, 3, 3) * 0.05
        state[f'features.{i}.bias'] = torch.zeros(v)
        cin, i = v, i + 2
    path = osp.join(tmp_path, 'vgg16.pth')
    torch.save(state, path)
    loss = PerceptualLoss(vgg_checkpoint=path)
    assert loss.mode == 'vgg' and not any(p.requires_grad for p in loss.parameters())
    frames = torch.rand(1, 2, 3, 32, 32) * 2 - 1
    assert float(loss(dict(frames=frames, pred_frames=frames[:, 1:]))) == 0.0
    assert float(loss(dict(frames=frames, pred_frames=-frames[:, 1:]))) > 0
    del state['features.0.weight']
    torch.save(state, path)
    with pytest.raises(KeyError, match='features.0.weight'):
        PerceptualLoss(vgg_checkpoint=path)
    with pytest.raises(FileNotFoundError):
        PerceptualLoss(vgg_checkpoint=str(tmp_path / 'none.pth'))
