"""Seed checkpoint layout of the LiDAR-Vision LLM: export / import of every part.

Layout (``<tag>`` e.g. ``latest`` or ``best``)::

    vat_lidar_<tag>.pt            VATLiDAR state dict
    lidar_encoder_<tag>.pt        pillar BEV encoder (when the model has one)
    projector_<tag>.pt            LiDAR token projector
    question_readout_<tag>.pt     question-aware readout (when the model has one)
    aux_heads_<tag>.pt            auxiliary training heads, e.g. SectorCountHead (when any)
    vat_vision_<tag>.pt           VATVision
    vision_adapter_<tag>.pt       camera token projector
    camera_encoder_<tag>.pt       camera encoder weights (mmdet ResNet, or the token adapter
                                  of a transformers vision model)
    clip_lora_adapter_<tag>/      peft folder of the vision model's LoRA (transformers backend)
    qwen2_lora_adapter_<tag>/     peft folder of the LLM's LoRA
    delimiter_embeddings_<tag>.pt (4, D) embeddings of <lidar> </lidar> <image> </image>
    text_only_lora_adapter_<tag>/ peft folder of the text-only twin (when trained)
    merged_llm_<tag>/             optional: LoRA merged into the base weights, delimiter rows
                                  written into the embedding matrix, with the tokenizer

Every file is written to a temporary name and renamed into place.
"""
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List

import torch

from projects.common.utils.io import atomic_write

__all__ = ['export_seed_layout', 'import_seed_layout', 'SENSOR_PARTS']

#: attribute name of the model -> file stem in the seed layout
SENSOR_PARTS = {'vat_lidar': 'vat_lidar', 'lidar_encoder': 'lidar_encoder',
                'projector': 'projector', 'vat_vision': 'vat_vision',
                'vision_adapter': 'vision_adapter', 'question_readout': 'question_readout',
                'aux_heads': 'aux_heads'}


def _part(model, attr):
    """The model's module ``attr``, or None when it is absent or holds no state (e.g. an
    empty ``aux_heads`` list)."""
    module = getattr(model, attr, None)
    return module if module is not None and len(module.state_dict()) else None


def _save_pt(path, obj):
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _save_dir(path, write):
    parent = osp.dirname(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(path)}.', dir=parent)
    try:
        write(tmp)
        if osp.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def export_seed_layout(model, out_dir: str, tag: str = 'latest', merge_lora: bool = False,
                       overwrite: bool = False) -> List[str]:
    """Write every trained part of a :class:`LidarLLM` in the seed layout.

    Args:
        model (LidarLLM): the model (weights already loaded).
        out_dir (str): destination folder.
        tag (str): file tag. Defaults to ``'latest'``.
        merge_lora (bool): also write ``merged_llm_<tag>/``.
        overwrite (bool): replace existing files of the same tag.

    Returns:
        list[str]: paths written.

    Raises:
        FileExistsError: a file of this tag exists and ``overwrite`` is False.
    """
    os.makedirs(out_dir, exist_ok=True)
    existing = [f for f in os.listdir(out_dir) if f.endswith(f'_{tag}.pt') or
                f.endswith(f'_{tag}')]
    if existing and not overwrite:
        raise FileExistsError(f'{out_dir} already holds {sorted(existing)}; pass overwrite')
    written = []
    for attr, stem in SENSOR_PARTS.items():
        module = _part(model, attr)
        if module is not None:
            p = osp.join(out_dir, f'{stem}_{tag}.pt')
            _save_pt(p, {k: v.detach().cpu() for k, v in module.state_dict().items()})
            written.append(p)
    cam = getattr(model, 'camera_encoder', None)
    if cam is not None:
        p = osp.join(out_dir, f'camera_encoder_{tag}.pt')
        if cam.is_hf and hasattr(cam.backbone, 'save_pretrained') and \
                hasattr(cam.backbone, 'peft_config'):
            d = osp.join(out_dir, f'clip_lora_adapter_{tag}')
            _save_dir(d, cam.backbone.save_pretrained)
            written.append(d)
            state = {k: v for k, v in cam.state_dict().items() if not k.startswith('backbone.')}
        else:
            state = cam.state_dict()
        _save_pt(p, {k: v.detach().cpu() for k, v in state.items()})
        written.append(p)
    p = osp.join(out_dir, f'delimiter_embeddings_{tag}.pt')
    _save_pt(p, dict(tokens=list(model.delim_ids), ids=list(model.delim_ids.values()),
                     weight=model.delimiter_embed.detach().cpu()))
    written.append(p)
    for llm, stem in ((model.llm, 'qwen2_lora_adapter'),
                      (getattr(model, 'llm_text_only', None), 'text_only_lora_adapter')):
        if llm is not None and hasattr(llm, 'peft_config'):
            d = osp.join(out_dir, f'{stem}_{tag}')
            _save_dir(d, llm.save_pretrained)
            written.append(d)
    if merge_lora:
        import copy
        llm = copy.deepcopy(model.llm)
        merged = llm.merge_and_unload() if hasattr(llm, 'merge_and_unload') else llm
        emb = merged.get_input_embeddings().weight
        if merged.get_output_embeddings().weight is not emb:
            # a trained output head (peft modules_to_save, tiny random LLMs) is no longer
            # tied to the input embeddings: keep it as its own tensor in the saved model
            merged.config.tie_word_embeddings = False
            if hasattr(merged.config, 'get_text_config'):
                merged.config.get_text_config().tie_word_embeddings = False
        with torch.no_grad():
            for k, i in enumerate(model.delim_ids.values()):
                emb[i] = model.delimiter_embed[k].to(emb.dtype)
        d = osp.join(out_dir, f'merged_llm_{tag}')

        def _write(tmp):
            merged.save_pretrained(tmp)
            model.tokenizer.save_pretrained(tmp)
        _save_dir(d, _write)
        written.append(d)
    return written


def import_seed_layout(model, seed_dir: str, tag: str = 'latest') -> Dict[str, str]:
    """Load a seed-layout folder into a :class:`LidarLLM` built from the matching config.

    Args:
        model (LidarLLM): target model (its parts must have the same shapes).
        seed_dir (str): folder written by :func:`export_seed_layout` or the seed trainer.
        tag (str): file tag.

    Returns:
        dict[str, str]: part -> file it was loaded from.

    Raises:
        FileNotFoundError: a part the model has is missing from the folder (named).
        RuntimeError: a shape / key mismatch (from ``load_state_dict``, strict).
    """
    from peft import load_peft_weights, set_peft_model_state_dict
    loaded = {}

    def need(path):
        if not osp.exists(path):
            raise FileNotFoundError(f'{path}: missing from the seed layout folder {seed_dir}')
        return path
    for attr, stem in SENSOR_PARTS.items():
        module = _part(model, attr)
        if module is not None:
            p = need(osp.join(seed_dir, f'{stem}_{tag}.pt'))
            module.load_state_dict(torch.load(p, map_location='cpu', weights_only=True))
            loaded[attr] = p
    cam = getattr(model, 'camera_encoder', None)
    if cam is not None:
        p = need(osp.join(seed_dir, f'camera_encoder_{tag}.pt'))
        state = torch.load(p, map_location='cpu', weights_only=True)
        lora_dir = osp.join(seed_dir, f'clip_lora_adapter_{tag}')
        if osp.isdir(lora_dir):
            set_peft_model_state_dict(cam.backbone, load_peft_weights(lora_dir, device='cpu'))
            loaded['clip_lora'] = lora_dir
            cam.load_state_dict(state, strict=False)
        else:
            cam.load_state_dict(state)
        loaded['camera_encoder'] = p
    p = osp.join(seed_dir, f'delimiter_embeddings_{tag}.pt')
    if osp.isfile(p):
        d = torch.load(p, map_location='cpu', weights_only=True)
        if list(d['tokens']) != list(model.delim_ids):
            raise ValueError(f'{p}: delimiter tokens {d["tokens"]} differ from the model\'s '
                             f'{list(model.delim_ids)}')
        with torch.no_grad():
            model.delimiter_embed.copy_(d['weight'])
        loaded['delimiter_embed'] = p
    for attr, stem in (('llm', 'qwen2_lora_adapter'), ('llm_text_only', 'text_only_lora_adapter')):
        llm = getattr(model, attr, None)
        if llm is None or not hasattr(llm, 'peft_config'):
            continue
        d = osp.join(seed_dir, f'{stem}_{tag}')
        if attr == 'llm':
            need(d)
        elif not osp.isdir(d):
            continue
        res = set_peft_model_state_dict(llm, load_peft_weights(d, device='cpu'))
        if getattr(res, 'unexpected_keys', None):
            raise RuntimeError(f'{d}: unexpected LoRA keys {res.unexpected_keys[:5]}')
        loaded[attr] = d
    return loaded
