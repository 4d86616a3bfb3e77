"""OccVQVAE tokenizer: shapes, straight-through gradients, z-reduction, learning."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from aerialworld_model_helpers import TINY_TOKENIZER, synthetic_batch
from projects.registry import MODELS


def _build(**overrides):
    cfg = copy.deepcopy(TINY_TOKENIZER)
    cfg.update(overrides)
    return MODELS.build(cfg)


def test_encode_quantize_decode_shapes_with_padding():
    torch.manual_seed(0)
    tok = _build(channel_mults=(1, 2, 2))  # 4x down: 10 is padded to 12 -> 3x3 tokens
    assert tok.token_grid == (3, 3)
    occ = torch.randint(0, 4, (2, 10, 10, 6), dtype=torch.uint8)
    z_e = tok.encode(occ)
    assert z_e.shape == (2, 16, 3, 3)
    z_q, idx, vq_loss = tok.quantize(z_e)
    assert z_q.shape == z_e.shape and idx.shape == (2, 3, 3) and idx.dtype == torch.long
    assert idx.min() >= 0 and idx.max() < 32 and vq_loss.dim() == 0
    logits = tok.decode(z_q)
    assert logits.shape == (2, 4, 10, 10, 6)
    assert torch.allclose(tok.decode_indices(idx), tok.decode(tok.embed_indices(idx)))
    # no BatchNorm anywhere (frozen in stage 2, DDP friendly)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in tok.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in tok.modules())


def test_straight_through_gradients():
    torch.manual_seed(0)
    tok = _build()
    tok.train()
    out = tok.forward_train(torch.randint(0, 4, (2, 10, 10, 6)))
    recon = F.cross_entropy(out['logits'], torch.randint(0, 4, (2, 10, 10, 6)))
    (recon + out['vq_loss']).backward()
    # the reconstruction gradient reaches the encoder through the straight-through estimator
    assert tok.enc_in.weight.grad is not None and tok.enc_in.weight.grad.abs().sum() > 0
    assert tok.class_embeds.weight.grad.abs().sum() > 0
    assert tok.codebook.grad is not None and tok.codebook.grad.abs().sum() > 0
    # data-dependent codebook initialisation happened on the first training step
    assert bool(tok.quantizer.initialized)


def test_dead_code_restart():
    torch.manual_seed(0)
    tok = _build(num_codes=64)  # 50 token vectors per batch: some codes stay unused
    tok.train()
    occ = torch.randint(0, 4, (2, 10, 10, 6))
    tok.forward_train(occ)  # initialises the codebook from the data
    used = torch.unique(tok.tokenize(occ))
    unused = torch.tensor([c for c in range(64) if c not in set(used.tolist())])
    assert unused.numel() > 0
    before = tok.codebook.detach().clone()
    tok.quantizer.usage[unused] = 0.0  # pretend they have been dead for long
    with torch.no_grad():
        tok.forward_train(occ)
    # re-seeded from encoder outputs, usage reset
    assert torch.all(tok.quantizer.usage[unused] == 1.0)
    assert not torch.equal(before[unused], tok.codebook.detach()[unused])


@pytest.mark.parametrize('reduction,reduced', [(4, 31), (8, 16)])
def test_z_reduction_tall_grid(reduction, reduced):
    torch.manual_seed(0)
    tok = _build(grid_size=(8, 8, 121), z_reduction=reduction, z_embed_dim=6)
    assert tok.reduced_z == reduced
    occ = torch.randint(0, 4, (1, 8, 8, 121), dtype=torch.uint8)
    out = tok.forward_train(occ)
    assert out['logits'].shape == (1, 4, 8, 8, 121)
    out['logits'].sum().backward()
    assert tok.z_stem.weight.grad.abs().sum() > 0


def test_grid_mismatch_and_bad_config():
    tok = _build()
    with pytest.raises(ValueError, match='grid_size'):
        tok.encode(torch.zeros(1, 10, 10, 7, dtype=torch.uint8))
    with pytest.raises(ValueError, match='z_reduction'):
        _build(z_reduction=0)
    with pytest.raises(ValueError, match='free_label'):
        _build(free_label=7)


def test_tokenizer_learns_round_trip():
    """A tiny tokenizer overfits a structured volume: loss falls, voxels come back."""
    torch.manual_seed(0)
    tok = _build(num_codes=64)
    occ = synthetic_batch(batch=2, frames=2)['occupancy'].flatten(0, 1)  # (4, 10, 10, 6)
    focal = MODELS.build(dict(type='OccupancyFocalLoss', alpha=0.9))
    opt = torch.optim.Adam(tok.parameters(), lr=3e-3)
    tok.train()
    losses = []
    for _ in range(100):
        out = tok.forward_train(occ)
        loss = F.cross_entropy(out['logits'], occ.long()) + focal(out['logits'], occ) \
            + out['vq_loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10
    tok.eval()
    with torch.no_grad():
        recon = tok.decode_indices(tok.tokenize(occ)).argmax(1)
    assert (recon == occ.long()).float().mean() > 0.95


def test_channel_layer_norm_keeps_uniform_maps_that_group_norm_erases():
    """A spatially uniform map (all roof) survives the output norm only with 'layer'."""
    from projects.aerialworld.models.vqvae import ChannelLayerNorm2d, build_norm2d
    x = torch.arange(8.0).reshape(1, 8, 1, 1).expand(2, 8, 5, 5).contiguous()
    assert build_norm2d('group', 8)(x).abs().max() < 1e-3  # per-sample spatial mean removed
    ln = ChannelLayerNorm2d(8)
    y = ln(x)
    expected = (torch.arange(8.0) - 3.5) / torch.arange(8.0).var(unbiased=False).add(1e-6).sqrt()
    assert torch.allclose(y[0, :, 2, 3], expected, atol=1e-5)
    # same parameter names and shapes as GroupNorm (checkpoint layouts stay comparable)
    assert {k: v.shape for k, v in ln.state_dict().items()} == \
        {k: v.shape for k, v in nn.GroupNorm(8, 8).state_dict().items()}
    tok = _build(out_norm='layer')
    assert isinstance(tok.enc_norm, ChannelLayerNorm2d) and isinstance(tok.dec_norm,
                                                                       ChannelLayerNorm2d)
    assert isinstance(tok.encoder[0].norm1, nn.GroupNorm)  # blocks keep `norm`
    with pytest.raises(ValueError, match='out_norm'):
        _build(out_norm='batch')


def test_cosine_codebook_quantises_by_angle():
    """normalize_codes: unit-length codes, nearest code by cosine similarity."""
    torch.manual_seed(0)
    tok = _build(normalize_codes=True, init_codebook_from_data=False)
    q = tok.quantizer
    with torch.no_grad():
        q.embedding.weight.copy_(torch.randn_like(q.embedding.weight) * 5)
    codes = tok.codebook
    assert torch.allclose(codes.norm(dim=1), torch.ones(len(codes)), atol=1e-5)
    z_e = torch.randn(2, tok.code_dim, 3, 3) * 7
    z_q, idx, _ = tok.quantize(z_e)
    flat = F.normalize(z_e.permute(0, 2, 3, 1).reshape(-1, tok.code_dim), dim=1)
    assert torch.equal(idx.flatten(), (flat @ codes.t()).argmax(1))
    assert torch.allclose(z_q, tok.embed_indices(idx), atol=1e-6)
    assert torch.allclose(tok.embed_indices(idx).norm(dim=1), torch.ones(2, 3, 3), atol=1e-5)


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    ref = _build()
    tok = _build(channels_last=True)
    tok.load_state_dict(ref.state_dict())
    assert tok.enc_in.weight.is_contiguous(memory_format=torch.channels_last)
    occ = torch.randint(0, 4, (2, 10, 10, 6))
    ref.eval()
    tok.eval()
    with torch.no_grad():
        assert torch.allclose(ref.encode(occ), tok.encode(occ), atol=1e-5)
        z = ref.encode(occ)
        assert torch.allclose(ref.decode(z), tok.decode(z), atol=1e-5)


@pytest.mark.parametrize('z_reduction', [1, 2])
def test_with_cp_same_values_and_gradients(z_reduction):
    """Checkpointing the stem, the blocks and the output head changes memory, not results."""
    occ = torch.randint(0, 4, (2, 10, 10, 6), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(1))
    grads, values = [], []
    for with_cp in (False, True):
        torch.manual_seed(0)
        tok = _build(z_reduction=z_reduction, with_cp=with_cp, init_codebook_from_data=False,
                     restart_dead_codes=False)
        tok.train()
        out = tok.forward_train(occ)
        loss = F.cross_entropy(out['logits'], occ.long()) + out['vq_loss']
        loss.backward()
        values.append(out['logits'].detach())
        grads.append({n: p.grad.clone() for n, p in tok.named_parameters()
                      if p.grad is not None})
    assert torch.allclose(values[0], values[1], atol=1e-6)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5), name
    # the frozen decoder of the world stage (eval mode) still back-propagates to its input
    tok.eval()
    z_q = tok.embed_indices(torch.zeros(1, *tok.token_grid, dtype=torch.long))
    z_q = z_q.detach().requires_grad_(True)
    tok.decode(z_q).sum().backward()
    assert z_q.grad is not None and z_q.grad.abs().sum() > 0
