"""OccWorld release -> AerialWorld checkpoint converter (function and CLI).

The source is a random state dict with exactly the key names and shapes of the public OccWorld
nuScenes release (``tests/data/occworld_state_dict_keys.json``: 768 tensors, 72,385,578
parameters).
"""
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from projects.aerialworld.model_converters.occworld import (
    OCC3D_NUSCENES_CLASSES, convert_occworld_state_dict, format_report, occworld_model_cfg,
    resolve_class_map)
from projects.registry import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, 'tests', 'data', 'occworld_state_dict_keys.json')
TOOL = os.path.join(ROOT, 'tools', 'model_converters', 'occworld_to_mmembodied.py')
RELEASE_PARAMS = 72385578


def _load_tool():
    spec = importlib.util.spec_from_file_location('occworld_to_mmembodied', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def release_shapes():
    with open(FIXTURE, encoding='utf-8') as f:
        data = json.load(f)
    return data


@pytest.fixture(scope='module')
def release_sd(release_shapes):
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(*shape, generator=g) for k, shape in release_shapes['keys'].items()}


@pytest.fixture(scope='module')
def converted(release_sd):
    torch.manual_seed(0)
    model = MODELS.build(occworld_model_cfg())
    new_sd, report = convert_occworld_state_dict(release_sd, model)
    return model, new_sd, report


@pytest.fixture(scope='module')
def release_file(release_sd, tmp_path_factory):
    path = tmp_path_factory.mktemp('occworld') / 'latest.pth'
    torch.save({'state_dict': release_sd, 'epoch': 200, 'global_iter': 100000}, path)
    return str(path)


def test_fixture_is_the_release_layout(release_shapes, release_sd):
    keys = release_shapes['keys']
    assert len(keys) == 768
    assert sum(math.prod(s) for s in keys.values()) == RELEASE_PARAMS == \
        release_shapes['num_params']
    assert sum(v.numel() for v in release_sd.values()) == RELEASE_PARAMS
    assert {k.split('.')[0] for k in keys} == {'vae', 'transformer', 'pose_encoder',
                                               'pose_decoder'}


def test_every_source_key_explained_exactly_once(release_sd, converted):
    _, new_sd, report = converted
    assert report['unexplained'] == []
    cats = [set(report['mapped']), set(report['adapted']), set(report['dropped'])]
    assert set().union(*cats) == set(release_sd)
    assert sum(len(c) for c in cats) == len(release_sd)  # pairwise disjoint
    assert all(isinstance(r, str) and len(r) > 20 for r in report['dropped'].values())
    assert all(v['rule'] for v in report['adapted'].values())
    counts = report['counts']
    assert counts['source_keys'] == 768 and counts['unexplained'] == 0
    # the tokenizer converts completely; the summary pinned for the compat config
    vae = [k for k in release_sd if k.startswith('vae.')]
    assert len(vae) == 222 and not any(k in report['dropped'] for k in vae)
    assert (counts['mapped'], counts['adapted'], counts['dropped']) == (258, 45, 465)
    assert (counts['synthesized'], counts['from_scratch']) == (4, 103)
    text = format_report(report, release_sd)
    assert 'unexplained 0' in text and 'transformer.conv_out.weight' in text


def test_mapped_tensors_bit_identical_and_checkpoint_loads(release_sd, converted):
    model, new_sd, report = converted
    for src_key, entry in report['mapped'].items():
        assert torch.equal(new_sd[entry['dst']], release_sd[src_key]), src_key
    torch.manual_seed(1)
    fresh = MODELS.build(occworld_model_cfg())
    result = fresh.load_state_dict(new_sd, strict=False)
    assert sorted(result.missing_keys) == sorted(report['from_scratch'])
    assert result.unexpected_keys == []
    state = fresh.state_dict()
    for src_key, entry in report['mapped'].items():
        assert torch.equal(state[entry['dst']], release_sd[src_key]), src_key
    assert bool(fresh.tokenizer.quantizer.initialized)  # pretrained codebook is kept


def test_adaptation_rules(release_sd, converted):
    _, new_sd, report = converted
    src = release_sd
    assert torch.equal(new_sd['tokenizer.encoder.7.qkv.weight'], torch.cat(
        [src[f'vae.encoder.down.2.attn.0.{n}.weight'] for n in 'qkv']))
    assert torch.equal(new_sd['transformer.temporal_embed'][0, :, 0, 0],
                       src['transformer.temporal_embeddings.weight'])
    w_out, w0 = src['transformer.pose_out.weight'], src['pose_decoder.pose_decoder.0.weight']
    assert torch.allclose(new_sd['transformer.pose_decoder.0.weight'], w0 @ w_out, atol=1e-4)
    assert torch.allclose(new_sd['transformer.pose_decoder.0.bias'],
                          w0 @ src['transformer.pose_out.bias'] +
                          src['pose_decoder.pose_decoder.0.bias'], atol=1e-4)
    enc_w = new_sd['transformer.pose_encoder.0.weight']
    src_w = src['pose_encoder.pose_encoder.0.weight']
    assert torch.equal(enc_w[:, :2], src_w[:, :2]) and not enc_w[:, 2:].any()
    assert torch.allclose(new_sd['transformer.pose_encoder.0.bias'],
                          src['pose_encoder.pose_encoder.0.bias'] + src_w[:, 2:].mean(1))
    dec_w = new_sd['transformer.pose_decoder.2.weight']
    assert torch.allclose(dec_w[:2], src['pose_decoder.pose_decoder.2.weight'].reshape(
        3, 2, -1).mean(0)) and not dec_w[2:].any()
    assert torch.equal(new_sd['transformer.embed.weight'], torch.eye(128))
    assert new_sd['tokenizer.quantizer.initialized'].item() is True
    assert report['mapped']['vae.class_embeds.weight']['dst'] == 'tokenizer.class_embeds.weight'


def test_tokenizer_attention_matches_separate_qkv(release_sd, converted):
    """Fused qkv reproduces the release's single-head q/k/v/proj_out attention block."""
    model, new_sd, _ = converted
    block = type(model.tokenizer.encoder[7])(256, 1)
    block.load_state_dict({k[len('tokenizer.encoder.7.'):]: v for k, v in new_sd.items()
                           if k.startswith('tokenizer.encoder.7.')})
    p = {n: release_sd[f'vae.encoder.down.2.attn.0.{n}'] for n in (
        'norm.weight', 'norm.bias', 'q.weight', 'q.bias', 'k.weight', 'k.bias', 'v.weight',
        'v.bias', 'proj_out.weight', 'proj_out.bias')}
    x = torch.randn(2, 256, 3, 4, generator=torch.Generator().manual_seed(0))
    h = F.group_norm(x, 32, p['norm.weight'], p['norm.bias'], eps=1e-6)
    q, k, v = (F.conv2d(h, p[f'{n}.weight'], p[f'{n}.bias']).flatten(2) for n in 'qkv')
    attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(256), dim=-1)  # (B, HW, HW)
    out = (v @ attn.transpose(1, 2)).reshape(x.shape)
    ref = x + F.conv2d(out, p['proj_out.weight'], p['proj_out.bias'])
    with torch.no_grad():
        assert torch.allclose(block(x), ref, atol=1e-3, rtol=1e-4)


def test_transplanted_temporal_attention_matches_multihead_attention(release_sd, converted):
    """Our causal temporal attention with the transplanted weights = torch MHA on them."""
    model, new_sd, _ = converted
    attn = model.transformer.blocks[0].temporal
    attn.load_state_dict({'qkv.weight': new_sd['transformer.blocks.0.temporal.qkv.weight'],
                          'qkv.bias': new_sd['transformer.blocks.0.temporal.qkv.bias'],
                          'proj.weight': new_sd['transformer.blocks.0.temporal.proj.weight'],
                          'proj.bias': new_sd['transformer.blocks.0.temporal.proj.bias']})
    mha = nn.MultiheadAttention(128, 8, batch_first=True)
    prefix = 'transformer.temporal_attentions_en.0.0.0.'
    mha.load_state_dict({k[len(prefix):]: v for k, v in release_sd.items()
                         if k.startswith(prefix)})
    x = torch.randn(3, 6, 128, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(6, 6, dtype=torch.bool).triu(1)
    with torch.no_grad():
        ref = mha(x, x, x, attn_mask=mask, need_weights=False)[0]
        assert torch.allclose(attn(x), ref, atol=1e-4, rtol=1e-4)


def test_height_fold_layout_matches_release(converted):
    """Our encoder input is class embeddings folded height-major like the release's."""
    model, _, _ = converted
    tok = model.tokenizer
    captured = {}

    class _Stop(Exception):
        pass

    def hook(module, inputs):
        captured['x'] = inputs[0]
        raise _Stop

    handle = tok.enc_in.register_forward_pre_hook(hook)
    occ = torch.randint(0, 18, (1, 200, 200, 16), dtype=torch.uint8)
    try:
        with pytest.raises(_Stop), torch.no_grad():
            tok.encode(occ)
    finally:
        handle.remove()
    # release layout: embed (B, X, Y, Z, E) -> (B, X, Y, Z * E) -> channels first
    expected = tok.class_embeds(occ.long()).reshape(1, 200, 200, 16 * 8).permute(0, 3, 1, 2)
    assert torch.equal(captured['x'], expected)


def test_class_map_grid_and_frames_adaptation(release_sd):
    cfg = occworld_model_cfg(
        num_classes=7, free_label=6, num_history=4, copy_decode=None,
        tokenizer=dict(num_classes=7, free_label=6, grid_size=[40, 40, 8]),
        transformer=dict(max_frames=12, num_blocks=2))
    model = MODELS.build(cfg)
    dst_sd = model.state_dict()
    class_map = [0, 15, 15, 11, 14, 1, 17]  # other, building, bridge, road, terrain, ...
    new_sd, report = convert_occworld_state_dict(release_sd, dst_sd, class_map=class_map)
    assert report['unexplained'] == []
    emb = new_sd['tokenizer.class_embeds.weight']
    assert torch.equal(emb, release_sd['vae.class_embeds.weight'][class_map])
    assert 're-indexed' in report['adapted']['vae.class_embeds.weight']['rule']
    # height 16 -> 8: adjacent slice pairs averaged, times 16 / 8 (= their sum)
    src_w = release_sd['vae.encoder.conv_in.weight'].reshape(64, 8, 2, 8, 3, 3)
    assert torch.allclose(new_sd['tokenizer.enc_in.weight'],
                          src_w.sum(2).reshape(64, 64, 3, 3), atol=1e-5)
    dec_b = release_sd['vae.decoder.conv_out.bias'].reshape(8, 2, 8).mean(1).reshape(64)
    assert torch.allclose(new_sd['tokenizer.dec_out.bias'], dec_b, atol=1e-6)
    assert 'height re-fold' in report['adapted']['vae.encoder.conv_in.weight']['rule']
    assert torch.equal(new_sd['transformer.temporal_embed'][0, :, 0, 0],
                       release_sd['transformer.temporal_embeddings.weight'][:12])
    assert 'temporal_attentions_en.0.2.0.in_proj_weight' in ' '.join(report['dropped'])
    assert report['notes']  # head counts assumed for a state-dict destination
    result = model.load_state_dict(new_sd, strict=False)
    assert sorted(result.missing_keys) == sorted(report['from_scratch'])
    # 'none' leaves the class embedding to training
    _, report_none = convert_occworld_state_dict(release_sd, dst_sd, class_map='none')
    assert 'tokenizer.class_embeds.weight' in report_none['from_scratch']
    assert 'vae.class_embeds.weight' in report_none['dropped']
    with pytest.raises(ValueError, match='18 Occ3D-nuScenes classes'):
        convert_occworld_state_dict(release_sd, dst_sd, class_map='nuscenes')
    with pytest.raises(ValueError, match='7 classes'):
        resolve_class_map([0, 1], 7)
    with pytest.raises(ValueError, match='not a release class index'):
        resolve_class_map([0, 1, 2, 3, 4, 5, 18], 7)
    assert resolve_class_map(None, 18) == list(range(len(OCC3D_NUSCENES_CLASSES)))


def test_layout_divergence_and_unknown_keys_are_reported(release_sd):
    cfg = occworld_model_cfg(tokenizer=dict(grid_size=[40, 40, 16], num_res_blocks=1))
    model = MODELS.build(cfg)
    src = dict(release_sd)
    src['vae.extra_head.weight'] = torch.zeros(3)
    new_sd, report = convert_occworld_state_dict(src, model)
    assert report['unexplained'] == ['vae.extra_head.weight']
    assert report['mapped']['vae.encoder.down.0.block.0.conv1.weight']['dst'] == \
        'tokenizer.encoder.0.conv1.weight'
    assert 'layout divergence' in report['dropped']['vae.encoder.down.0.block.1.conv1.weight']
    assert any('diverges' in n for n in report['notes'])
    result = model.load_state_dict(new_sd, strict=False)
    assert sorted(result.missing_keys) == sorted(report['from_scratch'])
    with pytest.raises(TypeError, match='not a'):
        convert_occworld_state_dict({'vae.class_embeds.weight': [1.0]}, model)


def test_cli_converts_and_writes_mmengine_checkpoint(release_sd, release_file, tmp_path,
                                                     capsys):
    from mmengine.runner.checkpoint import load_checkpoint
    tool = _load_tool()
    dst = str(tmp_path / 'out' / 'occworld_nuscenes_mmembodied.pth')
    assert tool.main([release_file, dst]) == 0
    out = capsys.readouterr().out
    assert 'source keys: 768 = mapped 258 + adapted 45 + dropped 465 + unexplained 0' in out
    assert 'transformer.decoders.0.0.conv1.weight' in out  # every non-mapped key listed
    assert os.listdir(tmp_path / 'out') == ['occworld_nuscenes_mmembodied.pth']  # no temp
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert ckpt['meta']['conversion_counts']['unexplained'] == 0
    torch.manual_seed(2)
    model = MODELS.build(occworld_model_cfg())
    load_checkpoint(model, dst, map_location='cpu', strict=False)
    state = model.state_dict()
    for src_key, entry in ckpt['meta']['conversion_report']['mapped'].items():
        assert torch.equal(state[entry['dst']], release_sd[src_key]), src_key
    # refuses to overwrite, then overwrites when asked
    assert tool.main([release_file, dst]) == 2
    assert '--overwrite' in capsys.readouterr().err
    mtime = os.path.getmtime(dst)
    assert tool.main([release_file, dst, '--overwrite', '--class-map', 'none']) == 0
    assert os.path.getmtime(dst) >= mtime
    meta = torch.load(dst, map_location='cpu', weights_only=True)['meta']
    assert meta['class_map'] == 'none'
    assert 'vae.class_embeds.weight' in meta['conversion_report']['dropped']


def test_cli_with_config(release_file, tmp_path, capsys):
    tool = _load_tool()
    cfg = occworld_model_cfg(tokenizer=dict(grid_size=[40, 40, 16]))
    config = tmp_path / 'small_nuscenes.py'
    config.write_text(f'model = {cfg!r}\n')
    dst = str(tmp_path / 'small.pth')
    assert tool.main([release_file, dst, '--config', str(config)]) == 0
    meta = torch.load(dst, map_location='cpu', weights_only=True)['meta']
    assert meta['config'] == str(config) and meta['conversion_counts']['unexplained'] == 0
    capsys.readouterr()
    assert tool.main([release_file, dst + '2', '--config', str(tmp_path / 'nope.py')]) == 2
    assert 'nope.py: no such file' in capsys.readouterr().err


class _NotATensor:
    pass


def test_cli_bad_inputs_give_clear_errors(tmp_path, capsys):
    tool = _load_tool()
    dst = str(tmp_path / 'dst.pth')

    def err_of(*argv):
        assert tool.main(list(argv)) == 2
        return capsys.readouterr().err

    missing = str(tmp_path / 'missing.pth')
    assert missing in err_of(missing, dst) and 'no such file' in err_of(missing, dst)
    text = tmp_path / 'notes.txt'
    text.write_text('not a checkpoint')
    assert f'{text}: not a PyTorch checkpoint' in err_of(str(text), dst)
    bare = tmp_path / 'bare.pth'
    torch.save(torch.zeros(3), bare)
    assert "expected a dict with a 'state_dict'" in err_of(str(bare), dst)
    no_sd = tmp_path / 'no_sd.pth'
    torch.save({'model': {}}, no_sd)
    msg = err_of(str(no_sd), dst)
    assert str(no_sd) in msg and "keys ['model']" in msg
    bad_sd = tmp_path / 'bad_sd.pth'
    torch.save({'state_dict': {'a': 1}}, bad_sd)
    assert 'not a non-empty mapping' in err_of(str(bad_sd), dst)
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': {'a': torch.zeros(1)}, 'obj': _NotATensor()}, unsafe)
    msg = err_of(str(unsafe), dst)
    assert str(unsafe) in msg and 'weights_only=True' in msg
    class_map = tmp_path / 'map.json'
    class_map.write_text('{"a": 1}')
    assert 'JSON list' in err_of(str(bare), dst, '--class-map', str(class_map))
    assert "neither 'nuscenes'" in err_of(str(bare), dst, '--class-map', 'plateau')
    # unknown keys: nothing written, exit status 1
    odd = tmp_path / 'odd.pth'
    torch.save({'state_dict': {'foo.bar': torch.zeros(2)}}, odd)
    assert tool.main([str(odd), dst]) == 1
    assert 'match no conversion rule' in capsys.readouterr().err
    assert not os.path.exists(dst)
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def test_cli_runs_as_a_script(tmp_path):
    text = tmp_path / 'junk.pth'
    text.write_bytes(b'\x00\x01junk')
    proc = subprocess.run([sys.executable, TOOL, str(text), str(tmp_path / 'o.pth')],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert f'{text}: not a PyTorch checkpoint' in proc.stderr
