"""Unit tests of the sensor VLA models: leak-freedom, fusion shapes / gradients, sensor
encoder, weighted loss, flow matching on a known 1-D distribution, VL backbone modes."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import projects  # noqa: F401  (registers everything)
from projects.registry import MODELS
from projects.sensor_vla.models.losses import weighted_chunk_loss
from projects.sensor_vla.structures import VLADataSample

torch.set_num_threads(1)
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def tiny_model_cfg(strategy='none', head='L1RegressionActionHead', **kw):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/models/sensor_vla_tiny.py')).model
    cfg = copy.deepcopy(cfg.to_dict())
    cfg['fusion']['strategy'] = strategy
    cfg['sensor_encoder'].update(temporal_length=64, conv_channels=(16, 16, 32, 64))
    cfg['action_head']['type'] = head
    if head == 'FlowMatchingActionHead':
        cfg['action_head']['losses'] = [dict(type='WeightedActionMSELoss')]
        cfg['action_head']['num_steps'] = 4
    cfg.update(kw)
    return cfg


def make_batch(b=3, has=(True, False, True), seed=0, sensor=True):
    g = torch.Generator().manual_seed(seed)
    inputs = dict(images=torch.randint(0, 255, (b, 2, 32, 32, 3), generator=g,
                                       dtype=torch.uint8),
                  sensor=torch.randn(b, 64, 1026, generator=g) if sensor else None,
                  has_sensor=torch.tensor(has[:b]), prev_action=torch.randn(b, 7, generator=g))
    samples = []
    for i in range(b):
        s = VLADataSample(metainfo=dict(instruction=['pick cup', 'open drawer', 'insert'][i % 3],
                                        has_sensor=bool(has[i]), sensor_loss_weight=2.0,
                                        episode=f'ep{i}', step=0))
        s.gt_actions = torch.randn(8, 7, generator=g)
        s.action_mask = torch.ones(8, dtype=torch.bool)
        s.prev_action = inputs['prev_action'][i]
        samples.append(s)
    return inputs, samples


@pytest.mark.parametrize('head', ['L1RegressionActionHead', 'FlowMatchingActionHead'])
@pytest.mark.parametrize('strategy', ['concat', 'none'])
def test_decoder_output_ignores_ground_truth(head, strategy):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(strategy, head, use_prev_action=True,
                                        prev_action_to_queries=True)).eval()
    inputs, samples = make_batch()
    with torch.no_grad():
        out1 = model(inputs, samples, mode='tensor')
        changed = copy.deepcopy(samples)
        for s in changed:
            s.gt_actions = torch.full((8, 7), 1e3)
            s.action_mask = torch.zeros(8, dtype=torch.bool)
        out2 = model(inputs, changed, mode='tensor')
        pred = model(inputs, copy.deepcopy(changed), mode='predict')
    assert out1.shape == (3, 8, 7)
    assert torch.equal(out1, out2)
    assert pred[0].pred_actions.shape == (8, 7)
    # the expert's forward signature has no action argument at all
    import inspect
    assert 'gt' not in ''.join(inspect.signature(model.action_head.expert.forward).parameters)


@pytest.mark.parametrize('strategy,ctx_extra', [('concat', 1 + 4), ('cross_attention', 0),
                                                ('gated', 0), ('none', 0)])
def test_fusion_shapes_and_gradients(strategy, ctx_extra):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(strategy)).train()
    inputs, samples = make_batch()
    vl_tok, vl_mask = model.vl(inputs['images'], [s.instruction for s in samples])
    ctx, mask = model.extract_context(inputs, samples)
    assert ctx.shape == (3, vl_tok.shape[1] + ctx_extra, 64)
    assert mask.shape == ctx.shape[:2]
    if strategy == 'concat':  # absent rows keep only the no-sensor token of the sensor part
        assert mask[1, vl_tok.shape[1]:].tolist() == [True] + [False] * 4
        assert mask[0, vl_tok.shape[1]:].all()
    losses = model(inputs, samples, mode='loss')
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    total.backward()
    enc = model.sensor_encoder
    if strategy == 'none':  # the sensor encoder is not even built
        assert enc is None
        return
    conv_grad = enc.conv[0].weight.grad
    assert conv_grad is not None and conv_grad.abs().sum() > 0
    for name, p in model.fusion.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('strategy', ['concat', 'cross_attention', 'gated'])
def test_no_sensor_rows_give_no_sensor_gradient(strategy):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(strategy)).train()
    for m in model.modules():  # dropout off: compare gradients exactly
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0
    inputs, samples = make_batch(has=(False, False, False))
    losses = model(inputs, samples, mode='loss')
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    enc = model.sensor_encoder
    for name, p in enc.named_parameters():
        if name == 'no_sensor_token':
            assert p.grad is not None and p.grad.abs().sum() > 0
        else:
            assert p.grad is None or p.grad.abs().sum() == 0, name
    # mixed batch: the encoder gradient equals that of the sensor rows alone, i.e. the
    # absent row's stream (random values here) never reaches the encoder.
    grads = []
    for stream_fill in (None, 1e3):
        model.zero_grad()
        inputs, samples = make_batch(has=(True, False, True))
        if stream_fill is not None:
            inputs['sensor'][1] = stream_fill
        losses = model(inputs, samples, mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        grads.append(enc.conv[0].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1])


def test_sensor_encoder_shapes_resampling_and_validation():
    enc = MODELS.build(dict(type='SensorEncoder', input_channels=1026, temporal_length=650,
                            output_dim=32, conv_channels=(8, 8, 16, 16), num_heads=4)).eval()
    assert enc.num_tokens == 41  # 650 -> 325 -> 163 -> 82 -> 41
    pooled, tokens, mask = enc(torch.randn(2, 650, 1026), torch.tensor([True, False]))
    assert pooled.shape == (2, 32) and tokens.shape == (2, 42, 32)
    assert torch.equal(pooled[1], enc.no_sensor_token.detach())
    assert mask[1].sum() == 1 and mask[0].all()
    p2, _, _ = enc(torch.randn(2, 300, 1026))  # other lengths are resampled to 650
    assert p2.shape == (2, 32)
    with pytest.raises(ValueError, match='output_dim=32 does not match.*hidden size 64'):
        enc.check_output_dim(64)
    with pytest.raises(ValueError, match=r'expects \(B, T, 1026\)'):
        enc(torch.randn(2, 650, 1000))
    cfg = tiny_model_cfg('concat')
    cfg['sensor_encoder']['output_dim'] = 48
    with pytest.raises(ValueError, match='model.sensor_encoder.output_dim=64'):
        MODELS.build(cfg)


def test_weighted_loss_matches_hand_computation():
    err = torch.zeros(2, 2, 1)
    err[0] = torch.tensor([[1.0], [3.0]])  # sample 0 mean = 2
    err[1] = torch.tensor([[4.0], [100.0]])  # sample 1: second step masked -> 4
    mask = torch.tensor([[True, True], [True, False]])
    w = torch.tensor([2.0, 1.0])  # sample 0 has a sensor (weight 2)
    # (2 * 2 + 1 * 4) / 2 = 4
    assert weighted_chunk_loss(err, mask, w).item() == pytest.approx(4.0)
    # through the model: the sensor sample's weight comes from its metainfo
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg('none')).eval()
    inputs, samples = make_batch(has=(True, False, True))
    ctx, cmask = model.extract_context(inputs, samples)
    pred = model.action_head(ctx, cmask)
    tgt = torch.stack([s.gt_actions for s in samples])
    per = (pred - tgt).abs().mean(dim=(1, 2))
    expected = (2 * per[0] + per[1] + 2 * per[2]) / 3
    got = model.loss(ctx, cmask, samples)
    assert got['loss_l1'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert got['sensor_samples'].item() == 2


def test_flow_matching_recovers_1d_bimodal_distribution():
    """Targets: a in {-1, +1} with p = 0.3 / 0.7 (no conditioning); samples must reproduce
    both modes and their weights."""
    torch.manual_seed(0)
    head = MODELS.build(dict(type='FlowMatchingActionHead', action_dim=1, num_steps=20,
                             sample_seed=None,
                             expert=dict(type='ActionExpert', context_dim=8, dim=64,
                                         chunk_size=1, num_layers=1, num_heads=4,
                                         dropout=0.0)))
    opt = torch.optim.Adam(head.parameters(), lr=2e-3)
    ctx, cmask = torch.zeros(256, 1, 8), torch.ones(256, 1, dtype=torch.bool)
    for _ in range(400):
        tgt = torch.where(torch.rand(256, 1, 1) < 0.3, -1.0, 1.0)
        loss = head.loss(ctx, cmask, tgt, torch.ones(256, 1, dtype=torch.bool),
                         torch.ones(256))['loss_flow']
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    x = head.predict(torch.zeros(2000, 1, 8), torch.ones(2000, 1, dtype=torch.bool)).flatten()
    near = ((x.abs() - 1).abs() < 0.25).float().mean().item()
    frac_neg = (x < 0).float().mean().item()
    assert near > 0.8, near
    assert abs(frac_neg - 0.3) < 0.08, frac_neg
    assert abs(x[x > 0].mean().item() - 1) < 0.15 and abs(x[x < 0].mean().item() + 1) < 0.15


def test_flow_head_euler_steps_configurable_and_deterministic():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='FlowMatchingActionHead', num_steps=3,
                             expert=dict(type='ActionExpert', context_dim=8, dim=32,
                                         num_layers=1, num_heads=4))).eval()
    calls = []
    head.expert.register_forward_hook(lambda *a: calls.append(1))
    ctx, m = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    a = head.predict(ctx, m)
    assert len(calls) == 3 and a.shape == (2, 8, 7)
    assert torch.equal(a, head.predict(ctx, m))  # seeded noise: same answer
    head.predict(ctx, m, num_steps=7)
    assert len(calls) == 3 + 3 + 7


@pytest.mark.parametrize('mode', ['none', 'lora', 'full'])
def test_vl_backbone_finetune_modes(mode):
    cfg = tiny_model_cfg()['vl_backbone']
    cfg.update(finetune_vl=mode, unfreeze_last_n=1)
    vl = MODELS.build(cfg)
    trainable = {n for n, p in vl.named_parameters() if p.requires_grad}
    if mode == 'none':
        assert not trainable and not vl.trains
    elif mode == 'lora':
        assert trainable and all('lora_' in n for n in trainable)
        assert all('visual' not in n for n in trainable)
        lcfg = vl.model.peft_config['default']
        assert (lcfg.r, lcfg.lora_alpha, lcfg.lora_dropout) == (16, 32, 0.05)
        assert vl.lora_weight_abs_mean() > 0
    else:
        assert any('language_model.layers.1.' in n for n in trainable)
        assert not any('language_model.layers.0.' in n for n in trainable)
        assert any('visual.merger' in n for n in trainable)
    imgs = torch.randint(0, 255, (2, 3, 64, 64, 3), dtype=torch.uint8)
    tok, mask = vl(imgs, ['put the carrot on the plate', 'flip pot'])
    # max_pixels=56*56: every 64x64 view becomes 56x56 = 16 patches -> 4 merged tokens
    n_img = 3 * (1 + 4 + 1)
    assert tok.shape[0] == 2 and tok.shape[2] == 64
    assert mask[1].sum() < mask[0].sum() and mask[0, :n_img].all()


def test_vl_backbone_max_pixels_sets_token_budget():
    cfg = tiny_model_cfg()['vl_backbone']
    cfg.update(max_pixels=112 * 112)
    vl = MODELS.build(cfg)
    inp = vl.build_inputs(torch.zeros(1, 1, 112, 112, 3, dtype=torch.uint8), ['x'])
    assert int((inp['input_ids'] == 151655).sum()) == 16  # (112 / 28) ** 2
    with pytest.raises(ValueError, match=r'images \(B, V, H, W, 3\)'):
        vl.build_inputs(torch.zeros(1, 112, 112, 3, dtype=torch.uint8), ['x'])


def test_flow_eval_decodings_are_separate_rows():
    torch.manual_seed(0)
    cfg = tiny_model_cfg('none', 'FlowMatchingActionHead', use_prev_action=True)
    cfg['action_head'].update(num_samples=3, eval_decodings=dict(
        single=dict(num_samples=1), zero_noise=dict(num_samples=1, noise_scale=0.0)))
    model = MODELS.build(cfg).eval()
    inputs, samples = make_batch()
    with torch.no_grad():
        out = model(inputs, samples, mode='predict')
        ctx, mask = model.extract_context(inputs, samples)
        head = model.action_head
        zero = head.predict(ctx, mask, noise=torch.zeros(3, 8, 7))
        single = head.predict(ctx, mask, num_samples=1)
    rows = out[0].metainfo['pred_variants']
    assert list(rows) == ['sampler', 'single', 'zero_noise']  # configured sampler first
    norm = model.action_normalizer
    for i, s in enumerate(out):
        v = s.metainfo['pred_variants']
        assert torch.equal(v['sampler'], s.pred_actions)  # the headline is the config's sampler
        assert torch.allclose(v['zero_noise'], norm.denormalize(zero)[i], atol=1e-5)
        assert torch.allclose(v['single'], norm.denormalize(single)[i], atol=1e-5)
    assert not torch.allclose(rows['single'], rows['sampler'])
    with pytest.raises(ValueError, match="eval_decodings\\['x'\\] has unknown keys"):
        MODELS.build(dict(type='FlowMatchingActionHead', eval_decodings=dict(x=dict(seed=1)),
                          expert=dict(type='ActionExpert', context_dim=8, dim=32,
                                      num_layers=1, num_heads=4)))


def test_vl_token_dropout_and_previous_action_on_the_queries():
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg('none', use_prev_action=True,
                                        prev_action_to_queries=True, vl_token_dropout=0.5))
    inputs, samples = make_batch()
    tokens, mask = model.vl_features(inputs['images'], ['a', 'b', 'c'])
    n_vl = int(mask.sum())
    model.train()
    kept = []
    for _ in range(40):
        _, m = model.fuse(tokens, mask, inputs)
        assert m[:, -1].all()  # the previous-action token is never dropped
        assert (m[:, :-1] & ~mask).sum() == 0 and m[:, :-1].any(1).all()
        kept.append(int(m[:, :-1].sum()) / n_vl)
    assert abs(sum(kept) / len(kept) - 0.5) < 0.05
    model.eval()
    _, m = model.fuse(tokens, mask, inputs)
    assert torch.equal(m[:, :-1], mask.bool())  # no dropout at inference
    with torch.no_grad():
        a = model(inputs, samples, mode='tensor')
        inputs2 = dict(inputs, prev_action=inputs['prev_action'] + 1.0)
        b = model(inputs2, samples, mode='tensor')
        model.prev_query_embed.weight.zero_()
        model.prev_query_embed.bias.zero_()
        model.prev_action_embed.weight.zero_()
        model.prev_action_embed.bias.zero_()
        c = model(inputs2, samples, mode='tensor')
        d = model(inputs, samples, mode='tensor')
    assert not torch.allclose(a, b)  # the previous action conditions the chunk
    assert torch.allclose(c, d)  # only through the two embeddings
    with pytest.raises(ValueError, match='needs use_prev_action'):
        MODELS.build(tiny_model_cfg('none', prev_action_to_queries=True))
    with pytest.raises(ValueError, match='vl_token_dropout'):
        MODELS.build(tiny_model_cfg('none', vl_token_dropout=1.0))
