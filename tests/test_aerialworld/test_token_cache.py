"""World-stage token cache: hits, rebuilds on new weights / frames, equality with encoding."""
import os

import numpy as np
import torch

from aerialworld_model_helpers import synthetic_batch, tiny_model_cfg
from projects.aerialworld.models.token_cache import MARKER, TokenCache, frame_hash
from projects.registry import MODELS


def _world_model(tmp_path, **kw):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(train_stage='world',
                                        token_cache=dict(cache_dir=str(tmp_path / 'cache')),
                                        **kw))
    return model.train()  # the tokenizer stays in eval mode in the world stage


def _files(tmp_path):
    out = []
    for root, _, names in os.walk(tmp_path / 'cache'):
        out += [os.path.join(root, n) for n in names if n.endswith('.npy')]
    return sorted(out)


def test_cached_tokens_equal_on_the_fly_encoding_and_losses(tmp_path):
    model = _world_model(tmp_path)
    batch = synthetic_batch(batch=2, frames=4)
    occ = batch['occupancy']
    expected = model.tokenizer.tokenize(occ.flatten(0, 1)).reshape(2, 4, 5, 5)
    assert torch.equal(model._tokenize_sequence(occ), expected)  # miss: encoded and stored
    assert model.token_cache.misses == 8 and len(_files(tmp_path)) == 8
    assert torch.equal(model._tokenize_sequence(occ), expected)  # hit (memory)
    assert model.token_cache.hits == 8 and model.token_cache.misses == 8
    # a new cache object (new process) reads the files: no encoding at all
    fresh = TokenCache(str(tmp_path / 'cache'))
    calls = []
    orig = model.tokenizer.tokenize
    model.tokenizer.tokenize = lambda x: calls.append(x) or orig(x)
    assert torch.equal(fresh.tokenize(model.tokenizer, occ.flatten(0, 1)),
                       expected.flatten(0, 1))
    assert calls == [] and fresh.hits == 8
    model.tokenizer.tokenize = orig
    # world-stage losses are the same with and without the cache
    torch.manual_seed(1)
    cached = model.loss(batch)
    plain = _world_model(tmp_path / 'none')
    plain.token_cache = None
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    ref = plain.loss(batch)
    for key in ref:
        assert torch.equal(cached[key], ref[key]), key


def test_rebuild_when_the_tokenizer_weights_change(tmp_path):
    model = _world_model(tmp_path)
    occ = synthetic_batch(batch=1, frames=3)['occupancy'][0]
    model.token_cache.tokenize(model.tokenizer, occ)
    first_dir = {os.path.dirname(f) for f in _files(tmp_path)}
    with torch.no_grad():  # new weights, e.g. another stage-1 checkpoint
        model.tokenizer.quantizer.embedding.weight.mul_(-1.0)
    tokens = model.token_cache.tokenize(model.tokenizer, occ)
    assert torch.equal(tokens, model.tokenizer.tokenize(occ))
    assert model.token_cache.misses == 6  # encoded again
    dirs = {os.path.dirname(f) for f in _files(tmp_path)}
    assert len(dirs) == 2 and first_dir < dirs  # a new directory; the old one stays valid
    assert all(os.path.isfile(os.path.join(d, MARKER)) for d in dirs)


def test_rebuild_when_a_frame_changes_and_duplicates_encode_once(tmp_path):
    model = _world_model(tmp_path)
    occ = synthetic_batch(batch=1, frames=2)['occupancy'][0]
    model.token_cache.tokenize(model.tokenizer, occ)
    changed = occ.clone()
    changed[1, :4] = 0  # the frame file was rewritten with other content
    assert frame_hash(changed[1]) != frame_hash(occ[1])
    tokens = model.token_cache.tokenize(model.tokenizer, changed)
    assert torch.equal(tokens, model.tokenizer.tokenize(changed))
    assert model.token_cache.hits == 1 and model.token_cache.misses == 3
    dup = torch.stack([changed[0], changed[0], changed[0]])
    model.token_cache.tokenize(model.tokenizer, dup)
    assert model.token_cache.misses == 3  # no new encoding
    # files are int16 (h, w) codes
    arr = np.load(_files(tmp_path)[0])
    assert arr.dtype == np.int16 and arr.shape == (5, 5)


def test_cache_only_in_the_world_stage(tmp_path):
    model = _world_model(tmp_path)
    model.set_stage('joint')  # tokenizer trainable: codes change every step
    model._tokenize_sequence(synthetic_batch(batch=1, frames=2)['occupancy'])
    assert model.token_cache.misses == 0 and _files(tmp_path) == []
