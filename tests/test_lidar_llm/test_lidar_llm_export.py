"""Seed-layout export -> import round trip of every trained part."""
import copy
import os

import pytest
import torch

from projects.lidar_llm.checkpoint_io import export_seed_layout, import_seed_layout


def _randomise_trainable(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_export_import_round_trip(tiny_model, tmp_path):
    src = copy.deepcopy(tiny_model)
    _randomise_trainable(src, 1)
    export_seed_layout(src, str(tmp_path), tag='latest', merge_lora=True)
    names = sorted(os.listdir(tmp_path))
    for expected in ('vat_lidar_latest.pt', 'projector_latest.pt', 'qwen2_lora_adapter_latest',
                     'text_only_lora_adapter_latest', 'delimiter_embeddings_latest.pt',
                     'merged_llm_latest'):
        assert expected in names, names
    assert os.path.isfile(tmp_path / 'qwen2_lora_adapter_latest' / 'adapter_config.json')
    with pytest.raises(FileExistsError):
        export_seed_layout(src, str(tmp_path), tag='latest')
    dst = copy.deepcopy(tiny_model)
    _randomise_trainable(dst, 2)
    loaded = import_seed_layout(dst, str(tmp_path), tag='latest')
    assert {'vat_lidar', 'projector', 'llm', 'llm_text_only', 'delimiter_embed'} <= set(loaded)
    a, b = src.state_dict(), dst.state_dict()
    trainable = {n for n, p in src.named_parameters() if p.requires_grad}
    for n in trainable:
        assert torch.equal(a[n], b[n]), n
    # the merged LLM gives the same logits as base + LoRA
    from transformers import AutoModelForCausalLM
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / 'merged_llm_latest'))
    ids = torch.tensor([[1, 2, 3, src.delim_ids['<lidar>']]])
    emb = src.llm.get_input_embeddings()(ids).detach()
    emb[0, 3] = src.delimiter_embed[0].detach()
    with torch.no_grad():
        ref = src.llm(inputs_embeds=emb).logits
        out = merged(input_ids=ids).logits
    # tied embeddings: the merged model's output rows of the delimiter tokens are their
    # trained input embeddings; every other vocabulary entry must match
    first_delim = min(src.delim_ids.values())
    assert torch.allclose(ref[..., :first_delim], out[..., :first_delim], atol=1e-4)
    with pytest.raises(FileNotFoundError, match='missing from the seed layout'):
        os.remove(tmp_path / 'vat_lidar_latest.pt')
        import_seed_layout(dst, str(tmp_path))


def test_export_round_trip_with_trained_norms_and_output_head(tmp_path):
    """Tiny random LLM configs also train the RMSNorms and the output head (peft
    modules_to_save): they travel in the adapter folder, and the merged LLM keeps the trained
    head untied from the input embeddings."""
    from mmengine.registry import init_default_scope

    from conftest import LORA, tiny_model_cfg
    from projects.registry import MODELS
    init_default_scope('projects')
    torch.manual_seed(0)
    src = MODELS.build(tiny_model_cfg(lora=dict(LORA, modules_to_save=['norm', 'lm_head']),
                                      text_only_baseline=False))
    llm_trainable = [n for n, p in src.llm.named_parameters() if p.requires_grad]
    assert {n.split('.modules_to_save')[0].rsplit('.', 1)[-1] for n in llm_trainable
            if 'lora_' not in n} == {'input_layernorm', 'post_attention_layernorm', 'norm',
                                     'lm_head'}
    _randomise_trainable(src, 3)
    export_seed_layout(src, str(tmp_path), tag='t', merge_lora=True)
    dst = MODELS.build(tiny_model_cfg(lora=dict(LORA, modules_to_save=['norm', 'lm_head']),
                                      text_only_baseline=False))
    import_seed_layout(dst, str(tmp_path), tag='t')
    a, b = src.state_dict(), dst.state_dict()
    for n, p in src.named_parameters():
        if p.requires_grad:
            assert torch.equal(a[n], b[n]), n
    from transformers import AutoModelForCausalLM
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / 'merged_llm_t'))
    assert not merged.config.tie_word_embeddings
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        ref = src.llm(input_ids=ids).logits
        out = merged(input_ids=ids).logits
    assert torch.allclose(ref, out, atol=1e-4)
