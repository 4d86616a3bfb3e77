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
