"""Compatibility with the public OccWorld release (wzzheng/OccWorld, Apache-2.0).

OccWorld (W. Zheng et al., "OccWorld: Learning a 3D Occupancy World Model for Autonomous
Driving", arXiv:2311.16038, 2023) publishes a nuScenes checkpoint (``latest.pth``) whose
``state_dict`` holds 768 tensors (72,385,578 parameters) under four prefixes:

* ``vae.*``: the VQ-VAE tokenizer (class embedding 18 x 8, height folded into 16 * 8 = 128
  channels, 2-D ResNet encoder 64/128/256 channels with 2 blocks per level and single-head
  attention at the 50 x 50 level, codebook 512 x 128, mirrored decoder);
* ``transformer.*``: a conv U-Net (50 -> 25 -> 12 token maps, widths 128/256/512) with 6
  post-norm causal temporal cross-attention layers per level and a parallel pose-query
  stream;
* ``pose_encoder.*`` / ``pose_decoder.*``: MLPs for ``[dx, dy] + 3-way command one-hot``
  (5 inputs) and ``3 modes x (dx, dy)`` (6 outputs).

This module provides (and re-exports from its parts)

* :func:`occworld_model_cfg` (:mod:`.occworld_config`): the ``model`` of
  ``configs/finetune_nuscenes.py``, the :class:`AerialWorld` config whose modules match the
  release as closely as our architecture allows (the tokenizer exactly), and
  :func:`resolve_class_map`;
* :func:`convert_occworld_state_dict`: key remapping with shape checks; every source key is
  reported as ``mapped`` (copied bit-identically), ``adapted`` (transformed by a stated
  rule) or ``dropped`` (with the architectural reason); every destination key is either
  filled (``mapped`` / ``adapted`` targets, or ``synthesized`` by a stated rule) or listed
  in ``from_scratch`` with a reason. Keys matching no rule are ``unexplained``. The rules
  live in :mod:`.occworld_vae` (tokenizer) and :mod:`.occworld_transformer` (transformer and
  pose MLPs), the bookkeeping in :mod:`.occworld_conversion`;
* :func:`report_counts` and :func:`format_report` (:mod:`.occworld_report`): the report.

Only key names and shapes of the release are used here (no code of the OccWorld repository).
The layout facts each rule relies on (all checked against the release key shapes) are stated
in :mod:`.occworld_vae` and :mod:`.occworld_transformer`; in short, the tokenizer is the same
function (height-major fold, pre-activation residual blocks, single-head attention with fused
``qkv``), and the transformer consumes the raw code vectors (before ``post_quant_conv``).
"""
import re
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .occworld_config import (DEFAULT_CONFIG, OCC3D_NUSCENES_CLASSES, OCCWORLD_FREE_LABEL,
                              OCCWORLD_GRID, OCCWORLD_NUM_HEADS, OCCWORLD_TEMPORAL_LAYERS,
                              occworld_model_cfg, resolve_class_map)
from .occworld_conversion import Conversion
from .occworld_report import DST_CATEGORIES, SRC_CATEGORIES, format_report, report_counts
from .occworld_transformer import convert_transformer
from .occworld_vae import convert_vae

#: Why a destination key is left at its initialisation: (pattern, reason), first match wins.
_SCRATCH_REASONS = [
    (r'^tokenizer\.quantizer\.(usage|initialized)$',
     'codebook bookkeeping buffer (not in the release)'),
    (r'^tokenizer\.z_(un)?stem\.', 'z-reduction stem: the release folds all height cells '
     'without a learned stem'),
    (r'^tokenizer\.', 'release counterpart dropped (see the dropped source keys) or absent '
     'in the destination layout'),
    (r'^transformer\.spatial_embed$', 'the release has no absolute spatial embedding '
     '(positions reach its conv U-Net through zero padding); learned from scratch'),
    (r'^transformer\.embed\.', 'token embedding: the release feeds code vectors directly; '
     'identity only applies when code_dim == d_model'),
    (r'^transformer\.blocks\.0\.norm_t\.', 'the release has no LayerNorm before its first '
     'temporal attention (post-norm layers)'),
    (r'^transformer\.blocks\.\d+\.(norm_s|spatial)\.', 'spatial attention mixer: the release '
     'mixes space with its conv U-Net (dropped), no attention counterpart'),
    (r'^transformer\.blocks\.\d+\.', 'no release level-0 temporal layer for this block (or '
     'its shape / head count differs)'),
    (r'^transformer\.temporal_embed$', 'release temporal embedding has a different width'),
    (r'^transformer\.norm_out\.', 'the release computes logits from conv decoder features '
     'without a final LayerNorm'),
    (r'^transformer\.head\.', 'the release logits head is a 3x3 conv on U-Net decoder '
     'features (dropped)'),
    (r'^transformer\.pose_(en|de)coder\.', 'release pose MLP could not be adapted (width or '
     'dimension differs)'),
    (r'', 'not part of the OccWorld release'),
]


def convert_occworld_state_dict(
        src_sd: Mapping[str, torch.Tensor],
        dst_model_or_sd: Union[nn.Module, Mapping[str, torch.Tensor]],
        class_map: Union[None, str, Sequence[Optional[int]]] = None
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Convert an OccWorld release state dict into an :class:`AerialWorld` state dict.

    Args:
        src_sd (Mapping[str, torch.Tensor]): The release ``state_dict`` (keys ``vae.*``,
            ``transformer.*``, ``pose_encoder.*``, ``pose_decoder.*``; a ``module.`` prefix
            is stripped).
        dst_model_or_sd (nn.Module | Mapping[str, torch.Tensor]): The destination
            ``AerialWorld`` (preferred: head counts are then verified) or its state dict.
            Its tensors provide the shapes and the initial values of rows an adaptation
            does not overwrite; it is not modified.
        class_map: See :func:`resolve_class_map`.

    Returns:
        tuple: ``new_sd`` (destination key -> tensor, only the keys filled from the release
        or synthesized; mapped tensors are the source tensors themselves, bit-identical)
        and ``report``: a dict with

        * ``mapped``: ``{src_key: {'dst', 'rule'}}``, same shape, copied unchanged;
        * ``adapted``: ``{src_key: {'dst', 'rule'}}``, transformed by ``rule``;
        * ``dropped``: ``{src_key: reason}``;
        * ``unexplained``: source keys no rule covers (empty for the release);
        * ``synthesized``: ``{dst_key: rule}``, filled without a source key;
        * ``from_scratch``: ``{dst_key: reason}``, left at the model's initialisation
          (exactly the missing keys of ``model.load_state_dict(new_sd, strict=False)``);
        * ``notes``: other remarks; ``counts``: sizes of the categories.

    Raises:
        TypeError: If ``src_sd`` is not a mapping of string keys to tensors, or the
            destination is neither a module nor a mapping.
        ValueError: On an invalid ``class_map`` (see :func:`resolve_class_map`).
    """
    if not isinstance(src_sd, Mapping):
        raise TypeError(f'src_sd must be a mapping of parameter names to tensors, got '
                        f'{type(src_sd).__name__}')
    src = {}
    stripped = False
    for key, value in src_sd.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise TypeError(f'src_sd entry {key!r} is not a (str, Tensor) pair '
                            f'({type(value).__name__})')
        if key.startswith('module.'):
            key, stripped = key[len('module.'):], True
        src[key] = value
    if isinstance(dst_model_or_sd, nn.Module):
        dst_module = dst_model_or_sd
        dst = dict(dst_module.state_dict())
    elif isinstance(dst_model_or_sd, Mapping):
        dst_module = None
        dst = dict(dst_model_or_sd)
    else:
        raise TypeError(f'dst_model_or_sd must be an nn.Module or a state dict, got '
                        f'{type(dst_model_or_sd).__name__}')
    c = Conversion(src, dst, dst_module)
    if stripped:
        c.report['notes'].append("source keys had a 'module.' (DDP) prefix; stripped")
    if dst_module is None:
        c.report['notes'].append('destination given as a state dict: attention head counts '
                                 f'are assumed to match the release ({OCCWORLD_NUM_HEADS} in '
                                 'the transformer, 1 in the tokenizer)')
    convert_vae(c, class_map)
    convert_transformer(c)
    c.report['unexplained'] = sorted(k for k in src if k not in c.claimed)
    for dst_key in dst:
        if dst_key not in c.out:
            reason = next(r for p, r in _SCRATCH_REASONS if re.search(p, dst_key))
            c.report['from_scratch'][dst_key] = reason
    c.report['counts'] = report_counts(c.report)
    return c.out, c.report


__all__ = [
    'OCC3D_NUSCENES_CLASSES', 'OCCWORLD_FREE_LABEL', 'OCCWORLD_GRID', 'OCCWORLD_NUM_HEADS',
    'OCCWORLD_TEMPORAL_LAYERS', 'SRC_CATEGORIES', 'DST_CATEGORIES', 'occworld_model_cfg',
    'DEFAULT_CONFIG', 'resolve_class_map', 'convert_occworld_state_dict', 'report_counts',
    'format_report'
]
