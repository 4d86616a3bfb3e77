"""QuestionAwareReadout, the sensors-after-question prompt, and their export round trip."""
import os

import pytest
import torch

from projects.lidar_llm.checkpoint_io import export_seed_layout, import_seed_layout
from projects.lidar_llm.models.readout import QuestionAwareReadout


def _build(**overrides):
    from mmengine.registry import init_default_scope

    import projects.lidar_llm.models  # noqa: F401
    from projects.registry import MODELS
    from tests.test_lidar_llm.conftest import tiny_model_cfg
    init_default_scope('projects')
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg(**overrides))


def test_readout_shapes_masking_and_question_dependence():
    torch.manual_seed(0)
    r = QuestionAwareReadout(d_model=16, text_dim=8, n_queries=3, n_layers=2, n_heads=4).eval()
    lidar = torch.randn(2, 12, 16)
    text = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = r(lidar, text, mask)
    assert out.shape == (2, 3, 16)
    # padded question positions are never attended: changing them changes nothing
    text2 = text.clone()
    text2[0, 3:] = 100.0
    assert torch.allclose(r(lidar, text2, mask), out, atol=1e-6)
    # a different question (or different LiDAR queries) gives different readout tokens
    text3 = text.clone()
    text3[0, 0] += 1.0
    assert not torch.allclose(r(lidar, text3, mask)[0], out[0])
    assert not torch.allclose(r(torch.randn_like(lidar), text, mask)[0], out[0])
    with pytest.raises(ValueError, match='do not match'):
        r(lidar, text[:1], mask[:1])


def test_model_appends_readout_tokens_and_puts_sensors_after_the_question():
    from tests.test_lidar_llm.test_sector_count_head import _sample
    m = _build(question_readout=dict(n_queries=4), sensors_after_question=True,
               text_only_baseline=False,
               aux_heads=[dict(type='ReadoutAnswerHead', in_dim=32),
                          dict(type='SectorCountHead', in_dim=64, num_classes=3,
                               input_key='tokens')])
    p = m.build_prompt('How many cars?')
    assert p == '<|im_start|>user\nHow many cars?\n<lidar></lidar><|im_end|>\n' \
                '<|im_start|>assistant\n'
    samples = [_sample([[5, 0]], [0], 'a'), _sample([[5, 0]], [0], 'a')]
    samples[1].question = 'Is there a car to the back of the ego car within 30 m?'
    samples[0].set_metainfo(dict(template_type='count'))
    samples[0].gt_count = 1
    samples[1].set_metainfo(dict(template_type='exist'))
    samples[1].answer = 'no'
    bev = torch.randn(2, 8, 8, 8)
    bev[1] = bev[0]
    heads_saw = []
    for head in m.aux_heads:
        def head_spy(x, s, orig=head.loss):
            heads_saw.append((tuple(x.shape), len(s)))
            return orig(x, s)
        head.loss = head_spy
    seen = {}
    orig = type(m)._embed_batch

    def spy(self, llm, prompts, sensors, answers=None):
        seen['lidar'] = sensors['lidar']
        return orig(self, llm, prompts, sensors, answers)
    type(m)._embed_batch = spy
    try:
        losses = m(dict(bev=bev), samples, 'loss')
    finally:
        type(m)._embed_batch = orig
    lidar = seen['lidar']
    assert lidar.shape == (2, 12 + 4, 64)
    # one sample: the VAT tokens are shared, the readout tokens follow each question
    assert torch.allclose(lidar[0, :12], lidar[1, :12])
    assert not torch.allclose(lidar[0, 12:], lidar[1, 12:])
    # the readout head gets the readout of every question, the token head the projected
    # LiDAR tokens of the one distinct sample
    assert heads_saw == [((2, 4, 32), 2), ((1, 12, 64), 1)]
    assert {'loss_readout_answer', 'loss_sector_count_tokens'} <= set(losses)
    losses['loss_answer'].backward()
    assert m.question_readout.queries.grad.abs().sum() > 0
    m.zero_grad()
    losses = m(dict(bev=bev), samples, 'loss')
    losses['loss_readout_answer'].backward()
    assert m.question_readout.queries.grad.abs().sum() > 0
    m.aux_heads.append(m.aux_heads[1])  # two heads logging the same loss name
    with pytest.raises(ValueError, match='loss_sector_count_tokens'):
        m(dict(bev=bev), samples, 'loss')


def test_export_import_round_trip_with_readout_and_aux_head(tmp_path):
    kw = dict(question_readout=dict(n_queries=2, n_layers=1),
              aux_heads=[dict(type='SectorCountHead', in_dim=32, num_classes=3),
                         dict(type='BEVSemanticHead', in_channels=8, num_classes=3,
                              feat_channels=8),
                         dict(type='CenterHeatmapHead', in_channels=8, num_classes=3,
                              feat_channels=8, bev_range=(-10, -10, 10, 10))],
              text_only_baseline=False)
    src, dst = _build(**kw), _build(**kw)
    with torch.no_grad():
        for p in src.parameters():
            if p.requires_grad:
                p.add_(0.1)
        for n, buf in src.named_buffers():  # BatchNorm statistics of the BEV heads travel too
            if n.startswith('aux_heads') and buf.is_floating_point():
                buf.add_(0.3)
    export_seed_layout(src, str(tmp_path))
    assert {'question_readout_latest.pt', 'aux_heads_latest.pt'} <= set(os.listdir(tmp_path))
    loaded = import_seed_layout(dst, str(tmp_path))
    assert {'question_readout', 'aux_heads'} <= set(loaded)
    a, b = src.state_dict(), dst.state_dict()
    for n, p in src.named_parameters():
        if p.requires_grad:
            assert torch.equal(a[n], b[n]), n
    heads = [n for n in a if n.startswith('aux_heads.')]
    assert any('.net.0.bn.running_mean' in n for n in heads)
    for n in heads:
        assert torch.equal(a[n], b[n]), n


def test_view_labels_precede_each_view_group_and_are_never_supervised():
    from tests.test_lidar_llm.test_sector_count_head import _sample
    names = ('front', 'front-left', 'back-left', 'back', 'back-right', 'front-right')
    m = _build(view_labels=names, text_only_baseline=False)
    samples = [_sample([[5, 0]], [0], 'a')]
    bev = torch.randn(1, 8, 8, 8)
    sensors = m.sensor_tokens(dict(bev=bev))
    prompt = m.build_prompt(samples[0].question)
    embeds, mask, labels = m._embed_batch(m.llm, [prompt], sensors, ['1'])
    label_ids = [m.tokenizer(f'{n}:', add_special_tokens=False).input_ids for n in names]
    n_text = len(m.tokenizer(prompt, add_special_tokens=False).input_ids)
    n_answer = len(m.answer_ids('1'))
    # 12 LiDAR tokens in 6 groups of 2, each after its label's tokens
    assert embeds.shape[1] == n_text + 12 + sum(map(len, label_ids)) + n_answer
    start = int((m.tokenizer(prompt, add_special_tokens=False).input_ids).index(
        m.delim_ids['<lidar>'])) + 1
    emb = m.llm.get_input_embeddings().weight
    pos = start
    for v, ids in enumerate(label_ids):
        for t in ids:
            assert torch.allclose(embeds[0, pos], emb[t])
            pos += 1
        assert torch.allclose(embeds[0, pos:pos + 2], sensors['lidar'][0, 2 * v:2 * v + 2])
        pos += 2
    assert (labels[0, :pos] == -100).all() and (labels[0] != -100).sum() == n_answer
    with pytest.raises(ValueError, match='view_labels'):
        _build(view_labels=names[:5], text_only_baseline=False)
