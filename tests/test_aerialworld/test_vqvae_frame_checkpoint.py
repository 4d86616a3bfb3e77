"""Per-frame checkpointing of the tokenizer stage (``OccVQVAE.checkpoint_frames``).

The checkpointed path (encoder -> quantiser -> decoder -> per-frame loss terms, one chunk of
frames at a time) must give the losses, parameter gradients and codebook updates of the
whole-batch path, and must update the codebook statistics exactly once per step although the
chunks are recomputed in the backward pass.
"""
import copy

import pytest
import torch

from aerialworld_model_helpers import TINY_TOKENIZER
from projects.registry import MODELS

HEAD = dict(
    type='OccForecastHead', num_classes=4, free_label=3,
    losses=[
        dict(type='OccupancyFocalLoss', target='recon', name='focal', alpha='adaptive',
             gamma=2.0),
        dict(type='OccupancyDiceLoss', target='recon', name='dice'),
        dict(type='MeanMatchingLoss', target='recon', name='mm', loss_weight=10.0),
        dict(type='TokenCrossEntropyLoss', target='recon', name='ce'),
    ])


def _occ(frames: int, seed: int) -> torch.Tensor:
    """Labels ``(frames, 10, 10, 6)`` uint8 with a mostly free (class 3) volume."""
    g = torch.Generator().manual_seed(seed)
    occ = torch.randint(0, 3, (frames, 10, 10, 6), dtype=torch.uint8, generator=g)
    free = torch.rand(frames, 10, 10, 6, generator=g) < 0.6
    return torch.where(free, torch.full_like(occ, 3), occ)


def _build(checkpoint_frames: int, **overrides):
    torch.manual_seed(0)
    cfg = copy.deepcopy(TINY_TOKENIZER)
    # a high dead-code threshold restarts codes at every step: the recomputation in the
    # backward pass runs after the codebook was changed in place
    cfg.update(free_label=3, with_cp=True, checkpoint_frames=checkpoint_frames,
               code_usage_decay=0.5, dead_code_threshold=0.9, **overrides)
    tok = MODELS.build(cfg)
    tok.train()
    return tok, MODELS.build(copy.deepcopy(HEAD))


def _run(checkpoint_frames: int, steps: int = 2, **overrides):
    """Losses, gradients and codebook of ``steps`` steps (gradients of the last step)."""
    tok, head = _build(checkpoint_frames, **overrides)
    history = []
    for step in range(steps):
        tok.zero_grad()
        before = tok.quantizer.embedding.weight.detach().clone()
        torch.manual_seed(100 + step)  # same RNG stream for the codebook restarts
        losses = head.loss_tokenizer(tok, _occ(3, seed=step))
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        history.append(dict(
            losses={k: v.detach().clone() for k, v in losses.items()},
            grads={n: p.grad.clone() for n, p in tok.named_parameters() if p.grad is not None},
            codebook=tok.quantizer.embedding.weight.detach().clone(),
            restarted=(tok.quantizer.embedding.weight.detach() != before).any(1) & (step > 0),
            usage=tok.quantizer.usage.clone()))
    return history


@pytest.mark.parametrize('frames, normalize', [(1, False), (2, False), (1, True)])
def test_frame_checkpoint_same_losses_gradients_and_codebook(frames, normalize):
    ref = _run(0, normalize_codes=normalize)
    new = _run(frames, normalize_codes=normalize)
    for r, n in zip(ref, new):
        assert list(r['losses']) == list(n['losses'])
        assert {'loss_recon_focal', 'loss_recon_dice', 'loss_recon_mm', 'loss_recon_ce',
                'loss_vq', 'recon_iou', 'recon_acc', 'code_usage'} == set(r['losses'])
        for key in r['losses']:
            assert torch.allclose(r['losses'][key], n['losses'][key], rtol=1e-5,
                                  atol=1e-6), key
        assert r['grads'].keys() == n['grads'].keys() and len(r['grads']) > 10
        assert torch.equal(r['restarted'], n['restarted'])
        for name in r['grads']:
            g_ref, g_new = r['grads'][name], n['grads'][name]
            if normalize and name == 'quantizer.embedding.weight':
                # The whole-batch path saves the codebook parameter for the normalisation's
                # backward and evaluates it at the restarted rows' new values (updated in
                # place after the forward); the frame path at the values its forward used.
                g_ref, g_new = g_ref[~r['restarted']], g_new[~r['restarted']]
            assert torch.allclose(g_ref, g_new, rtol=1e-4, atol=1e-5), name
        assert torch.equal(r['usage'], n['usage'])
        assert torch.allclose(r['codebook'], n['codebook'], atol=1e-6)
    # codes were restarted, so the backward pass recomputed after an in-place update
    assert not torch.equal(new[0]['codebook'], new[1]['codebook'])


def test_codebook_statistics_update_once_per_step(monkeypatch):
    tok, head = _build(1, restart_dead_codes=True)
    calls, seen = [], []
    update = tok.quantizer.update_codebook

    def counting(z_flat, indices, min_dist=None):
        calls.append((z_flat.shape[0], indices.numel()))
        seen.append(indices.clone())
        return update(z_flat, indices, min_dist)

    monkeypatch.setattr(tok.quantizer, 'update_codebook', counting)
    occ = _occ(3, seed=0)
    tokens = 3 * tok.token_grid[0] * tok.token_grid[1]
    losses = head.loss_tokenizer(tok, occ)
    # first step: data initialisation from all frames, then one usage update
    assert calls == [(tokens, 0), (tokens, tokens)]
    usage_after_forward = tok.quantizer.usage.clone()
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert len(calls) == 2  # the backward pass recomputed 3 chunks without updating
    assert torch.equal(tok.quantizer.usage, usage_after_forward)

    calls.clear()
    usage = tok.quantizer.usage.clone()
    losses = head.loss_tokenizer(tok, occ)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert calls == [(tokens, tokens)]
    # the EMA of the relative usage of all 3 frames' codes, applied once; codes that fall
    # under the dead threshold (0.9) are restarted with usage 1
    counts = torch.bincount(seen[-1], minlength=tok.num_codes).float()
    expected = usage * 0.5 + 0.5 * counts * tok.num_codes / counts.sum()
    expected[expected < 0.9] = 1.0
    assert torch.allclose(tok.quantizer.usage, expected)


def test_framewise_path_falls_back_for_non_decomposable_losses():
    tok, _ = _build(1)
    cfg = copy.deepcopy(HEAD)
    cfg['losses'][1]['per_class'] = True  # class sums over the batch: not per-frame terms
    head = MODELS.build(cfg)
    called = []
    monkey = tok.forward_terms
    tok.forward_terms = lambda *a, **k: called.append(1) or monkey(*a, **k)
    losses = head.loss_tokenizer(tok, _occ(2, seed=0))
    assert not called and torch.isfinite(losses['loss_recon_dice'])


@pytest.mark.parametrize('loss_cfg', [
    dict(type='OccupancyFocalLoss', alpha=0.9, gamma=2.0, free_label=3),
    dict(type='OccupancyDiceLoss', free_label=3),
    dict(type='MeanMatchingLoss', free_label=3),
    dict(type='TokenCrossEntropyLoss'),
    dict(type='TokenCrossEntropyLoss', label_smoothing=0.1, ignore_index=2),
])
def test_sample_terms_of_log_probabilities_match_logits(loss_cfg):
    """``normalized=True`` (shared log-softmax) gives the terms and gradients of logits."""
    loss = MODELS.build(loss_cfg)
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 5, 4, 3, generator=g)
    target = torch.randint(0, 4, (2, 5, 4, 3), generator=g)
    ctx = loss.batch_context(target, 4)
    results = []
    for normalized in (False, True):
        x = logits.clone().requires_grad_(True)
        pred = torch.log_softmax(x, dim=1) if normalized else x
        terms = loss.sample_terms(pred, target, normalized=normalized, **ctx)
        value = loss.reduce_terms(terms)
        value.backward()
        results.append((terms.detach(), value.detach(), x.grad))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)
    assert torch.allclose(results[0][2], results[1][2], atol=1e-6)
    # and forward() of the whole batch is the reduction of the per-sample terms
    assert torch.allclose(loss(logits, target), results[0][1], atol=1e-6)
