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
    paths = export_seed_layout(src, str(tmp_path), tag='latest', merge_lora=True)
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
