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

This module provides

* :func:`occworld_model_cfg`: the ``model`` of ``configs/finetune_nuscenes.py``, the
  :class:`AerialWorld` config whose modules match the release as closely as our architecture
  allows (the tokenizer exactly);
* :func:`convert_occworld_state_dict`: key remapping with shape checks; every source key is
  reported as ``mapped`` (copied bit-identically), ``adapted`` (transformed by a stated
  rule) or ``dropped`` (with the architectural reason); every destination key is either
  filled (``mapped`` / ``adapted`` targets, or ``synthesized`` by a stated rule) or listed
  in ``from_scratch`` with a reason. Keys matching no rule are ``unexplained``.

Only key names and shapes of the release are used here (no code of the OccWorld repository).
Layout facts the mapping relies on (all checked against the release key shapes):

* occupancy is embedded per voxel and folded height-major (channel ``z * E + e``) into 2-D
  maps over ``(X, Y)``, exactly like :class:`OccVQVAE` with ``z_reduction=1``; the decoder
  output is unfolded the same way and scored against the class-embedding table;
* encoder / decoder residual blocks are pre-activation (GroupNorm(32), SiLU, 3x3 conv) x 2
  with a 1x1 ``nin_shortcut`` when widths change, like :class:`ResBlock2d`; down-sampling is
  a stride-2 3x3 conv with padding 1, up-sampling nearest x2 then a 3x3 conv;
* attention blocks are single-head with separate 1x1 ``q``, ``k``, ``v`` convs and
  ``proj_out``; :class:`AttnBlock2d` fuses them into one ``qkv`` conv (same maths);
* the transformer consumes the raw code vectors (before ``post_quant_conv``).
"""
import copy
import os.path as osp
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from projects.aerialworld.datasets.classes import OCC3D_FREE_LABEL, OCC3D_NUSCENES_CLASSES
from projects.aerialworld.models.vqvae_blocks import AttnBlock2d

#: The OccWorld-compatible config (repository-relative).
DEFAULT_CONFIG = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__))))), 'configs', 'finetune_nuscenes.py')

#: Free label of the release (Occ3D's).
OCCWORLD_FREE_LABEL = OCC3D_FREE_LABEL

#: Occupancy grid of the release (Occ3D-nuScenes, 0.4 m voxels).
OCCWORLD_GRID = (200, 200, 16)

#: Attention heads of the release transformer (its config leaves the default of 8).
OCCWORLD_NUM_HEADS = 8

#: Temporal attention layers per U-Net level in the release.
OCCWORLD_TEMPORAL_LAYERS = 6

#: Report categories of source keys.
SRC_CATEGORIES = ('mapped', 'adapted', 'dropped', 'unexplained')

#: Report categories of destination keys (besides being a ``mapped``/``adapted`` target).
DST_CATEGORIES = ('synthesized', 'from_scratch')


def occworld_model_cfg(config: Optional[str] = None, **overrides) -> dict:
    """The ``model`` of the OccWorld-compatible config, with overrides.

    The destination layout lives in one place, ``configs/finetune_nuscenes.py`` (tokenizer
    identical to the release VAE: grid 200 x 200 x 16, 18 classes, free 17, class embedding 8,
    base 64 channels x (1, 2, 4), 2 residual blocks per level, single-head attention at the
    lowest level, codebook 512 x 128; world transformer of width 128, 8 heads, 6 blocks, MLP
    ratio 4, 16 frames, pose MLPs of width 128, spatial scales (1, 2, 4)); this reads it.

    Args:
        config (str, optional): Config file. Defaults to :data:`DEFAULT_CONFIG`.
        **overrides: Top-level model keys replacing the config's (``tokenizer`` /
            ``transformer`` dicts are merged key by key).

    Returns:
        dict: A config for ``MODELS.build``.

    Raises:
        FileNotFoundError: If ``config`` does not exist.
        KeyError: If it has no ``model``.
    """
    from mmengine.config import Config
    config = config or DEFAULT_CONFIG
    if not osp.isfile(config):
        raise FileNotFoundError(f'OccWorld-compatible config {config}: no such file')
    cfg = Config.fromfile(config)
    if 'model' not in cfg:
        raise KeyError(f'{config}: has no `model`')
    model = cfg.model.to_dict()
    for key, value in overrides.items():
        if key in ('tokenizer', 'transformer') and isinstance(value, Mapping):
            model[key].update(copy.deepcopy(dict(value)))
        else:
            model[key] = copy.deepcopy(value)
    return model


def resolve_class_map(class_map: Union[None, str, Sequence[Optional[int]]],
                      num_dst_classes: int,
                      num_src_classes: int = len(OCC3D_NUSCENES_CLASSES)
                      ) -> Optional[List[Optional[int]]]:
    """Normalise a class map to ``[src_index or None] * num_dst_classes`` (or None).

    Args:
        class_map: ``None`` (identity when the destination has the release's class count,
            else an error), ``'nuscenes'`` (identity over :data:`OCC3D_NUSCENES_CLASSES`),
            ``'none'`` (no correspondence: the class embedding is not converted), or a
            sequence whose entry ``i`` is the release class index for destination class
            ``i`` (``None`` / negative: no source class, the row keeps its initial value).
        num_dst_classes (int): Classes of the destination model.
        num_src_classes (int): Classes of the source. Defaults to 18.

    Returns:
        list | None: The per-destination-class source index, or None for ``'none'``.

    Raises:
        ValueError: On an unknown name, a length mismatch, an out-of-range index, or an
            identity map requested for a different class count.
    """
    if isinstance(class_map, str):
        name = class_map.lower()
        if name == 'none':
            return None
        if name != 'nuscenes':
            raise ValueError(f"class_map must be 'nuscenes', 'none' or a sequence, got "
                             f'{class_map!r}')
        class_map = None
        if num_dst_classes != num_src_classes:
            raise ValueError(f"class_map='nuscenes' is the identity over the "
                             f'{num_src_classes} Occ3D-nuScenes classes, but the destination '
                             f'model has {num_dst_classes} classes; pass an explicit map')
    if class_map is None:
        if num_dst_classes != num_src_classes:
            raise ValueError(f'the destination model has {num_dst_classes} classes, the '
                             f'OccWorld release {num_src_classes}; pass class_map (a sequence '
                             f"of release class indices per destination class, or 'none')")
        return list(range(num_src_classes))
    mapping = list(class_map)
    if len(mapping) != num_dst_classes:
        raise ValueError(f'class_map has {len(mapping)} entries, the destination model '
                         f'{num_dst_classes} classes')
    out = []
    for i, src in enumerate(mapping):
        if src is None or int(src) < 0:
            out.append(None)
        elif not 0 <= int(src) < num_src_classes:
            raise ValueError(f'class_map[{i}]={src} is not a release class index '
                             f'(0..{num_src_classes - 1})')
        else:
            out.append(int(src))
    return out


# ---------------------------------------------------------------------- the converter
_RES_PARAMS = {'norm1': 'norm1', 'conv1': 'conv1', 'norm2': 'norm2', 'conv2': 'conv2',
               'nin_shortcut': 'shortcut'}
_TRANSPLANT = {
    '0.in_proj_weight': 'temporal.qkv.weight',
    '0.in_proj_bias': 'temporal.qkv.bias',
    '0.out_proj.weight': 'temporal.proj.weight',
    '0.out_proj.bias': 'temporal.proj.bias',
    '1.weight': 'norm_m.weight',
    '1.bias': 'norm_m.bias',
    '2.fc1.weight': 'mlp.0.weight',
    '2.fc1.bias': 'mlp.0.bias',
    '2.fc2.weight': 'mlp.2.weight',
    '2.fc2.bias': 'mlp.2.bias',
}
_TRANSPLANT_RULE = (
    'transplant: release level-0 temporal layer j (causal attention over frames per 50x50 '
    'token location, width 128, 8 heads, GELU FFN x4) -> our block j; identical tensor '
    'layout (in_proj q|k|v rows = our fused qkv rows, heads split the same way), but the '
    'release layer is post-norm cross-attention (queries carry the next-frame temporal '
    'embedding) between conv U-Net stages, ours pre-norm self-attention between spatial '
    'mixers: a warm start, not an equivalent function')
_REASONS = {
    'unet': ('the release transformer mixes space with a conv U-Net (UnetBlocks with '
             'LayerNorm over (C, H, W), 2x2 strided conv / transposed-conv resampling, '
             '50 -> 25 -> 12 token maps); ours mixes space with multi-scale attention on one '
             '50x50 token stream, so these convolutions have no counterpart'),
    'temporal_deeper': ('release temporal layer of U-Net level {lvl} ({width} wide at the '
                        '{res} map, acting on conv-U-Net features); our transformer has a '
                        'single-resolution stream, only level-0 layers (on the code vectors '
                        'themselves) are transplanted'),
    'temporal_extra': ('release level-0 temporal layer {j} has no destination block (the '
                       'destination has {n} blocks)'),
    'pose_stream': ('the release predicts ego motion with a pose-query stream (pose tokens '
                    'attending over time and to the scene tokens at every U-Net level); '
                    'ours decodes ego motion from the spatially averaged scene features with '
                    'an MLP, so this stream has no counterpart'),
    'conv_out': ('release logits head: a 3x3 conv over U-Net decoder features; our head is '
                 'a Linear on the LayerNorm-ed block output, a different feature space'),
    'queries': ('learnable-query variant of the release transformer (not used by the '
                'released nuScenes model); no counterpart'),
    'ln_last': ('post-FFN LayerNorm of the last transplanted release layer: in the release '
                'it feeds the conv U-Net stage, our next pre-norm (if any) belongs to no '
                'transplanted layer'),
}
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


class _Conversion:
    """State of one conversion: source, destination, output and report."""

    def __init__(self, src: Mapping[str, torch.Tensor], dst: Dict[str, torch.Tensor],
                 dst_module: Optional[nn.Module]) -> None:
        self.src = src
        self.dst = dst
        self.dst_module = dst_module
        self.out: Dict[str, torch.Tensor] = {}
        self.report = dict(mapped={}, adapted={}, dropped={}, unexplained=[], synthesized={},
                           from_scratch={}, notes=[])
        self.claimed = set()

    # ---------------------------------------------------------------- bookkeeping
    def _claim(self, key: str) -> None:
        if key in self.claimed:
            raise RuntimeError(f'occworld converter: source key {key!r} handled twice')
        self.claimed.add(key)

    def _fill(self, dst_key: str, value: torch.Tensor) -> None:
        if dst_key in self.out:
            raise RuntimeError(f'occworld converter: destination key {dst_key!r} filled twice')
        ref = self.dst[dst_key]
        if tuple(value.shape) != tuple(ref.shape):
            raise RuntimeError(f'occworld converter: {dst_key!r} built with shape '
                               f'{tuple(value.shape)}, destination {tuple(ref.shape)}')
        self.out[dst_key] = value if value.dtype == ref.dtype else value.to(ref.dtype)

    def drop(self, key: str, reason: str) -> None:
        """Report ``key`` as dropped with ``reason``."""
        self._claim(key)
        self.report['dropped'][key] = reason

    def copy(self, key: str, dst_key: str, rule: str = 'rename') -> bool:
        """Copy ``key`` to ``dst_key`` when both exist with the same shape, else drop it."""
        if dst_key not in self.dst:
            self.drop(key, f'destination has no {dst_key} (layout differs from the release)')
            return False
        src_shape, dst_shape = tuple(self.src[key].shape), tuple(self.dst[dst_key].shape)
        if src_shape != dst_shape:
            self.drop(key, f'shape mismatch: release {list(src_shape)} vs destination '
                      f'{dst_key} {list(dst_shape)} (destination config differs from the '
                      f'release; see configs/finetune_nuscenes.py)')
            return False
        self._claim(key)
        self._fill(dst_key, self.src[key])
        self.report['mapped'][key] = dict(dst=dst_key, rule=rule)
        return True

    def adapt(self, keys: Sequence[str], dst_key: str, value: torch.Tensor, rule: str) -> None:
        """Fill ``dst_key`` with ``value`` computed from source ``keys`` by ``rule``."""
        for key in keys:
            self._claim(key)
            self.report['adapted'][key] = dict(dst=dst_key, rule=rule)
        self._fill(dst_key, value.detach().contiguous().clone())

    def synthesize(self, dst_key: str, value: torch.Tensor, rule: str) -> None:
        """Fill ``dst_key`` (no source key) with ``value`` by ``rule``."""
        self._fill(dst_key, value)
        self.report['synthesized'][dst_key] = rule

    # ---------------------------------------------------------------- helpers
    def dst_module_attr(self, path: str, attr: str):
        """``getattr`` of a destination sub-module, or None without a module."""
        if self.dst_module is None:
            return None
        mod = self.dst_module
        for part in path.split('.'):
            mod = getattr(mod, part, None) if not part.isdigit() else (
                mod[int(part)] if isinstance(mod, (nn.ModuleList, nn.Sequential)) and
                int(part) < len(mod) else None)
            if mod is None:
                return None
        return getattr(mod, attr, None)


def _src_sequence(keys: Sequence[str], part: str) -> List[Tuple[str, str]]:
    """Execution-ordered ``(kind, prefix)`` modules of the release VAE ``part``.

    ``kind`` is ``'res'``, ``'attn'`` or ``'resample'``; ``prefix`` the key prefix below
    ``vae.<part>.`` (e.g. ``'down.2.attn.0'``).
    """
    blocks, attns, resample = {}, {}, set()
    mid = set()
    stage = 'down' if part == 'encoder' else 'up'
    pat = re.compile(rf'^vae\.{part}\.{stage}\.(\d+)\.(block|attn|downsample|upsample)'
                     rf'(?:\.(\d+))?\.')
    for key in keys:
        m = pat.match(key)
        if m:
            lvl, kind, idx = int(m.group(1)), m.group(2), m.group(3)
            if kind == 'block':
                blocks.setdefault(lvl, set()).add(int(idx))
            elif kind == 'attn':
                attns.setdefault(lvl, set()).add(int(idx))
            else:
                resample.add(lvl)
            continue
        m = re.match(rf'^vae\.{part}\.mid\.(block_1|attn_1|block_2)\.', key)
        if m:
            mid.add(m.group(1))
    mid_seq = [(('attn' if name.startswith('attn') else 'res'), f'mid.{name}')
               for name in ('block_1', 'attn_1', 'block_2') if name in mid]
    levels = sorted(set(blocks) | set(attns) | resample)
    level_seq = []
    for lvl in (levels if part == 'encoder' else reversed(levels)):
        for b in sorted(blocks.get(lvl, ())):
            level_seq.append(('res', f'{stage}.{lvl}.block.{b}'))
            if b in attns.get(lvl, ()):
                level_seq.append(('attn', f'{stage}.{lvl}.attn.{b}'))
        if lvl in resample:
            name = 'downsample' if part == 'encoder' else 'upsample'
            level_seq.append(('resample', f'{stage}.{lvl}.{name}'))
    return level_seq + mid_seq if part == 'encoder' else mid_seq + level_seq


def _dst_sequence(keys: Sequence[str], part: str) -> List[Tuple[str, str]]:
    """Execution-ordered ``(kind, prefix)`` modules of our ``tokenizer.<part>`` list."""
    kinds = {}
    pat = re.compile(rf'^tokenizer\.{part}\.(\d+)\.(norm1|qkv|conv)\.')
    for key in keys:
        m = pat.match(key)
        if m:
            kinds[int(m.group(1))] = {'norm1': 'res', 'qkv': 'attn', 'conv': 'resample'}[
                m.group(2)]
    return [(kinds[i], f'tokenizer.{part}.{i}') for i in sorted(kinds)]


def _resample_height(weight: torch.Tensor, axis: int, z_src: int, e: int, z_dst: int,
                     scale: bool) -> torch.Tensor:
    """Resample the folded (height-major, ``e`` embedding channels) axis of ``weight``.

    The ``axis`` of size ``z_src * e`` is split into ``(z_src, e)``; the height is resampled
    to ``z_dst`` by adaptive averaging (fewer slices) or linear interpolation with
    ``align_corners=True`` (more slices); with ``scale`` the result is multiplied by
    ``z_src / z_dst`` so that the summed response to a height-uniform column is preserved.
    """
    w = weight.float().movedim(axis, -1)
    lead = w.shape[:-1]
    w = w.reshape(-1, z_src, e).permute(0, 2, 1)  # (N, e, z_src)
    if z_dst < z_src:
        w = F.adaptive_avg_pool1d(w, z_dst)
    elif z_dst > z_src:
        w = F.interpolate(w, size=z_dst, mode='linear', align_corners=True)
    if scale:
        w = w * (z_src / z_dst)
    w = w.permute(0, 2, 1).reshape(*lead, z_dst * e).movedim(-1, axis)
    return w.to(weight.dtype)


def _convert_vae(c: _Conversion, class_map: Union[None, str, Sequence[Optional[int]]]) -> None:
    """Map all ``vae.*`` keys (see module docstring)."""
    src_keys = [k for k in c.src if k.startswith('vae.')]
    # class embedding
    key = 'vae.class_embeds.weight'
    src_e = c.src[key].shape[1] if key in c.src else None
    if key in c.src:
        dst_key = 'tokenizer.class_embeds.weight'
        if dst_key not in c.dst:
            c.drop(key, 'destination has no tokenizer class embedding')
        else:
            n_src = c.src[key].shape[0]
            mapping = resolve_class_map(class_map, c.dst[dst_key].shape[0], n_src)
            if mapping is None:
                c.drop(key, "class_map='none': the destination class set has no "
                       'correspondence with the 18 Occ3D-nuScenes classes, its embedding '
                       'is learned from scratch')
            elif c.src[key].shape[1] != c.dst[dst_key].shape[1]:
                c.drop(key, f'class embedding width differs: release {c.src[key].shape[1]} '
                       f'vs destination {c.dst[dst_key].shape[1]}')
            elif mapping == list(range(n_src)):
                c.copy(key, dst_key, 'class embedding; identity class map (release Occ3D '
                       'order, free = 17 = last)')
            else:
                value = c.dst[dst_key].detach().clone()
                kept = [i for i, s in enumerate(mapping) if s is not None]
                for i in kept:
                    value[i] = c.src[key][mapping[i]]
                missing = [i for i, s in enumerate(mapping) if s is None]
                c.adapt([key], dst_key, value,
                        'class-embedding rows re-indexed by the class map (destination row i '
                        '= release row class_map[i]: ' +
                        ', '.join(f'{i}<-{mapping[i]}' for i in kept) + ')' +
                        (f'; rows {missing} keep their initial values (no release class)'
                         if missing else ''))
    # codebook and 1x1 convs around it
    for src_name, dst_name, rule in (
            ('vae.vqvae.embedding.weight', 'tokenizer.quantizer.embedding.weight',
             'codebook kept (512 x 128 code vectors)'),
            ('vae.vqvae.quant_conv.weight', 'tokenizer.quant_conv.weight', 'rename'),
            ('vae.vqvae.quant_conv.bias', 'tokenizer.quant_conv.bias', 'rename'),
            ('vae.vqvae.post_quant_conv.weight', 'tokenizer.post_quant_conv.weight', 'rename'),
            ('vae.vqvae.post_quant_conv.bias', 'tokenizer.post_quant_conv.bias', 'rename')):
        if src_name in c.src:
            c.copy(src_name, dst_name, rule)
    if 'tokenizer.quantizer.embedding.weight' in c.out:
        c.synthesize('tokenizer.quantizer.initialized', torch.tensor(True),
                     'True: the codebook comes from the release, so the data-dependent '
                     'initialisation must not overwrite it on the first training step')
        c.synthesize('tokenizer.quantizer.usage', torch.ones_like(c.dst[
            'tokenizer.quantizer.usage']), 'ones (uniform code usage; restarts dead codes '
                     'only after real usage statistics accumulate)')
    # heads / tails of encoder and decoder; input / output convs may be re-folded
    dst_e = None
    if 'tokenizer.z_stem.weight' in c.dst:
        dst_e = c.dst['tokenizer.z_stem.weight'].shape[0]
    elif 'tokenizer.class_embeds.weight' in c.dst:
        dst_e = c.dst['tokenizer.class_embeds.weight'].shape[1]
    for src_name, dst_name, axis, scale in (
            ('vae.encoder.conv_in.weight', 'tokenizer.enc_in.weight', 1, True),
            ('vae.decoder.conv_out.weight', 'tokenizer.dec_out.weight', 0, False),
            ('vae.decoder.conv_out.bias', 'tokenizer.dec_out.bias', 0, False)):
        if src_name not in c.src:
            continue
        w = c.src[src_name]
        if dst_name not in c.dst or tuple(w.shape) == tuple(c.dst[dst_name].shape):
            fold = (f'{w.shape[axis] // src_e} height slices x {src_e} channels'
                    if src_e and w.shape[axis] % src_e == 0 else f'{w.shape[axis]} channels')
            c.copy(src_name, dst_name, f'rename (same height fold: {fold})')
            continue
        d = c.dst[dst_name]
        other_same = all(w.shape[i] == d.shape[i] for i in range(w.dim()) if i != axis)
        if (src_e is None or dst_e is None or src_e != dst_e or w.shape[axis] % src_e or
                d.shape[axis] % dst_e or not other_same or w.dim() != d.dim()):
            c.copy(src_name, dst_name)  # reports the shape mismatch
            continue
        z_src, z_dst = w.shape[axis] // src_e, d.shape[axis] // dst_e
        c.adapt([src_name], dst_name,
                _resample_height(w, axis, z_src, src_e, z_dst, scale),
                f'height re-fold: channels split into (height {z_src}, embedding {src_e}), '
                f'height resampled to {z_dst} slices (area average when fewer, linear '
                f'align_corners=True when more)' +
                (f', scaled by {z_src}/{z_dst} so a height-uniform column gives the same '
                 f'response' if scale else '') +
                '; assumes both grids span the same height range proportionally' +
                ('; the destination z-stem makes these channels learned features, so this '
                 'is a warm start only' if 'tokenizer.z_stem.weight' in c.dst else ''))
    for src_name, dst_name in (('vae.encoder.conv_in.bias', 'tokenizer.enc_in.bias'),
                               ('vae.encoder.norm_out.weight', 'tokenizer.enc_norm.weight'),
                               ('vae.encoder.norm_out.bias', 'tokenizer.enc_norm.bias'),
                               ('vae.encoder.conv_out.weight', 'tokenizer.enc_out.weight'),
                               ('vae.encoder.conv_out.bias', 'tokenizer.enc_out.bias'),
                               ('vae.decoder.conv_in.weight', 'tokenizer.dec_in.weight'),
                               ('vae.decoder.conv_in.bias', 'tokenizer.dec_in.bias'),
                               ('vae.decoder.norm_out.weight', 'tokenizer.dec_norm.weight'),
                               ('vae.decoder.norm_out.bias', 'tokenizer.dec_norm.bias')):
        if src_name in c.src:
            c.copy(src_name, dst_name)
    # residual / attention / resampling modules, zipped in execution order
    attn_heads = None
    if c.dst_module is not None and hasattr(c.dst_module, 'tokenizer'):
        heads = {m.num_heads for m in c.dst_module.tokenizer.modules()
                 if isinstance(m, AttnBlock2d)}
        attn_heads = max(heads) if heads else None
    for part in ('encoder', 'decoder'):
        src_seq = _src_sequence(src_keys, part)
        dst_seq = _dst_sequence(list(c.dst), part)
        pairs = {}
        diverged_at = None
        for pos, (s, d) in enumerate(zip(src_seq, dst_seq)):
            if s[0] != d[0]:
                diverged_at = (pos, s[0], d[0])
                break
            pairs[s[1]] = d
        if diverged_at is None and len(src_seq) != len(dst_seq):
            diverged_at = (min(len(src_seq), len(dst_seq)), 'end' if len(src_seq) < len(
                dst_seq) else src_seq[len(dst_seq)][0], 'end' if len(dst_seq) < len(
                    src_seq) else dst_seq[len(src_seq)][0])
        if diverged_at is not None:
            c.report['notes'].append(
                f'tokenizer {part} layout diverges from the release at module position '
                f'{diverged_at[0]} (release {diverged_at[1]}, destination {diverged_at[2]}); '
                f'release modules from there on are dropped')
        prefix = f'vae.{part}.'
        for key in src_keys:
            if not key.startswith(prefix) or key in c.claimed:
                continue
            rest = key[len(prefix):]
            owner = next((p for _, p in src_seq if rest.startswith(p + '.')), None)
            if owner is None:
                continue  # left for the unexplained check
            if owner not in pairs:
                c.drop(key, f'release {part} module {owner} lies after the layout divergence '
                       f'(release and destination tokenizer configs differ)')
                continue
            kind, dst_prefix = pairs[owner]
            param = rest[len(owner) + 1:]
            name, _, leaf = param.partition('.')
            if kind == 'res':
                if name not in _RES_PARAMS:
                    c.drop(key, f'residual-block parameter {name} has no counterpart '
                           f'(our blocks use a 1x1 shortcut)')
                else:
                    c.copy(key, f'{dst_prefix}.{_RES_PARAMS[name]}.{leaf}')
            elif kind == 'resample':
                c.copy(key, f'{dst_prefix}.{param}')
            elif name in ('norm', 'proj_out'):
                c.copy(key, f'{dst_prefix}.{"norm" if name == "norm" else "proj"}.{leaf}')
            elif name in ('q', 'k', 'v'):
                group = [f'{prefix}{owner}.{n}.{leaf}' for n in ('q', 'k', 'v')]
                dst_key = f'{dst_prefix}.qkv.{leaf}'
                if not all(g in c.src for g in group) or dst_key not in c.dst:
                    c.drop(key, 'incomplete q/k/v group or no destination qkv conv')
                    continue
                fused = torch.cat([c.src[g] for g in group], dim=0)
                if tuple(fused.shape) != tuple(c.dst[dst_key].shape):
                    for g in group:
                        c.drop(g, f'shape mismatch: fused q|k|v {list(fused.shape)} vs '
                               f'destination {dst_key} {list(c.dst[dst_key].shape)}')
                    continue
                note = ('' if attn_heads in (None, 1) else
                        f' (destination uses {attn_heads} heads: not equivalent)')
                c.adapt(group, dst_key, fused,
                        'q, k, v 1x1 convs concatenated along output channels (q|k|v) into '
                        'the fused qkv conv; single-head attention with scale C^-1/2 is '
                        'unchanged' + note)
            else:
                c.drop(key, f'attention parameter {name} has no counterpart')


def _convert_transformer(c: _Conversion) -> None:
    """Map ``transformer.*``, ``pose_encoder.*`` and ``pose_decoder.*`` keys."""
    src_keys = list(c.src)
    dst_heads = c.dst_module_attr('transformer.blocks.0.temporal', 'num_heads')
    n_blocks = len({m.group(1) for k in c.dst
                    for m in [re.match(r'^transformer\.blocks\.(\d+)\.', k)] if m})
    # temporal embedding
    key, dst_key = 'transformer.temporal_embeddings.weight', 'transformer.temporal_embed'
    if key in c.src:
        src = c.src[key]
        if dst_key not in c.dst or src.dim() != 2 or c.dst[dst_key].shape[-1] != src.shape[1]:
            c.copy(key, dst_key)  # reports the mismatch
        else:
            ref = c.dst[dst_key]
            t_src, t_dst = src.shape[0], ref.shape[1]
            value = ref.detach().clone()
            n = min(t_src, t_dst)
            value[0, :n, 0, 0] = src[:n]
            rule = (f'reshaped ({t_src}, {src.shape[1]}) -> {list(ref.shape)}: row t = '
                    f'embedding of input frame t (the release adds row t to the tokens of '
                    f'frame t; its queries also use row t+1, we have no separate queries)')
            if t_dst < t_src:
                rule += f'; rows {t_dst}..{t_src - 1} truncated (max_frames={t_dst})'
            elif t_dst > t_src:
                rule += f'; rows {t_src}..{t_dst - 1} keep their initial values'
            c.adapt([key], dst_key, value, rule)
    # transplant of level-0 temporal layers
    pat = re.compile(r'^transformer\.temporal_attentions_(en|de)\.(\d+)\.(\d+)\.(.+)$')
    heads_ok = dst_heads is None or dst_heads == OCCWORLD_NUM_HEADS
    for key in src_keys:
        m = pat.match(key)
        if not m:
            continue
        side, lvl, j, param = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        if side == 'de' or lvl > 0:
            ln_key = f'transformer.temporal_attentions_{side}.{lvl}.{j}.1.weight'
            width = c.src[ln_key].shape[0] if ln_key in c.src else '?'
            res = {0: '50x50', 1: '25x25', 2: '12x12'}.get(lvl, f'level-{lvl}') \
                if side == 'en' else {0: '25x25', 1: '50x50'}.get(lvl, f'level-{lvl}')
            c.drop(key, _REASONS['temporal_deeper'].format(
                lvl=f'{"encoder" if side == "en" else "decoder"} {lvl}', width=width, res=res))
            continue
        if j >= n_blocks:
            c.drop(key, _REASONS['temporal_extra'].format(j=j, n=n_blocks))
            continue
        if not heads_ok:
            c.drop(key, f'destination blocks use {dst_heads} heads, the release '
                   f'{OCCWORLD_NUM_HEADS}: the attention weights would be split differently')
            continue
        rule = _TRANSPLANT_RULE
        if param in _TRANSPLANT:
            if param.startswith('1.'):
                rule += ('; its post-attention LayerNorm (which feeds the FFN) becomes our '
                         'pre-FFN norm_m')
            c.copy(key, f'transformer.blocks.{j}.{_TRANSPLANT[param]}', rule)
        elif param in ('3.weight', '3.bias'):
            dst_key = f'transformer.blocks.{j + 1}.norm_t.{param[2:]}'
            nxt = f'transformer.temporal_attentions_en.0.{j + 1}.0.in_proj_weight'
            if j + 1 < n_blocks and nxt in c.src:
                c.copy(key, dst_key, rule + '; its post-FFN LayerNorm (which feeds release '
                       'layer j+1) becomes the pre-attention norm_t of block j+1')
            else:
                c.drop(key, _REASONS['ln_last'])
        else:
            c.drop(key, f'temporal-layer parameter {param} has no counterpart')
    # families without counterpart
    for key in src_keys:
        if key in c.claimed or not key.startswith('transformer.'):
            continue
        if re.match(r'^transformer\.(encoders|decoders|mid|downsamples|upsamples)\.', key):
            c.drop(key, _REASONS['unet'])
        elif re.match(r'^transformer\.(pose_attn_en|pose_attn_de|pose_en|pose_de|pose_up|'
                      r'pose_mid)\.', key) or key == 'transformer.pose_temporal_embeddings.weight':
            c.drop(key, _REASONS['pose_stream'])
        elif key in ('transformer.queries.weight', 'transformer.pose_queries.weight'):
            c.drop(key, _REASONS['queries'])
        elif re.match(r'^transformer\.conv_out\.(weight|bias)$', key):
            c.drop(key, _REASONS['conv_out'])
    # token embedding: the release feeds code vectors directly
    w_key, b_key = 'transformer.embed.weight', 'transformer.embed.bias'
    if w_key in c.dst and c.dst[w_key].dim() == 2 and \
            c.dst[w_key].shape[0] == c.dst[w_key].shape[1] and b_key in c.dst:
        c.synthesize(w_key, torch.eye(c.dst[w_key].shape[0], dtype=c.dst[w_key].dtype),
                     'identity: the release transformer consumes the raw code vectors '
                     '(before post_quant_conv) without an input projection')
        c.synthesize(b_key, torch.zeros_like(c.dst[b_key]), 'zeros (see embed.weight)')
    _convert_pose(c)


def _convert_pose(c: _Conversion) -> None:
    """Adapt the release pose encoder / decoder (and fold ``transformer.pose_out``)."""
    act_note = ('; the release MLP uses ReLU, ours GELU (close for large |x|): a warm start')
    # encoder: [dx, dy, mode one-hot (3)] -> hidden -> width
    w0, b0 = 'pose_encoder.pose_encoder.0.weight', 'pose_encoder.pose_encoder.0.bias'
    d0w, d0b = 'transformer.pose_encoder.0.weight', 'transformer.pose_encoder.0.bias'
    if w0 in c.src and b0 in c.src:
        sw, sb = c.src[w0], c.src[b0]
        ok = (d0w in c.dst and d0b in c.dst and sw.dim() == 2 and sw.shape[1] == 5 and
              c.dst[d0w].shape[0] == sw.shape[0] and c.dst[d0w].shape[1] >= 2)
        if ok:
            new_w = torch.zeros_like(c.dst[d0w])
            new_w[:, :2] = sw[:, :2]
            new_b = sb + sw[:, 2:5].mean(dim=1)
            rule = ('input columns: release (dx, dy) -> our (dx, dy) (both metres in the '
                    'previous ego frame, x forward, y left); our extra inputs (dz, dyaw) get '
                    'zero columns (the release never saw them); the 3 command one-hot '
                    'columns are marginalised into the bias (uniform command prior: bias + '
                    'mean of the 3 columns), our model has no command input' + act_note)
            c.adapt([w0], d0w, new_w, rule)
            c.adapt([b0], d0b, new_b, rule)
        else:
            for k in (w0, b0):
                c.drop(k, 'release pose-encoder input layer ([dx, dy] + 3 command one-hot '
                       '-> hidden) does not fit the destination pose encoder')
    for s, d in (('pose_encoder.pose_encoder.2.weight', 'transformer.pose_encoder.2.weight'),
                 ('pose_encoder.pose_encoder.2.bias', 'transformer.pose_encoder.2.bias')):
        if s in c.src:
            c.copy(s, d, 'pose encoder output layer' + act_note + '; the release feeds the '
                   'result to its pose-query stream, ours adds it to every scene token')
    # decoder layer 0 composed with transformer.pose_out (Linear -> Linear, no activation)
    pw, pb = 'transformer.pose_out.weight', 'transformer.pose_out.bias'
    w0, b0 = 'pose_decoder.pose_decoder.0.weight', 'pose_decoder.pose_decoder.0.bias'
    d0w, d0b = 'transformer.pose_decoder.0.weight', 'transformer.pose_decoder.0.bias'
    have = all(k in c.src for k in (pw, pb, w0, b0))
    if have and d0w in c.dst and d0b in c.dst and \
            tuple((c.src[w0] @ c.src[pw]).shape) == tuple(c.dst[d0w].shape):
        rule = ('composition of two Linear layers with nothing in between: our pose_decoder.0 '
                '= release pose_decoder.0 o transformer.pose_out (W = W0 @ Wout, b = W0 @ '
                'bout + b0); the release applies it to its final pose query, ours to the '
                'spatially averaged scene features' + act_note)
        c.adapt([w0, pw], d0w, c.src[w0].double() @ c.src[pw].double(), rule)
        c.adapt([b0, pb], d0b, c.src[w0].double() @ c.src[pb].double() + c.src[b0].double(),
                rule)
    else:
        for k in (pw, pb, w0, b0):
            if k in c.src and k not in c.claimed:
                c.drop(k, 'release pose_out / pose_decoder.0 cannot be composed into the '
                       'destination pose_decoder.0 (missing key or shape mismatch)')
    # decoder output: 3 modes x (dx, dy) -> our (dx, dy, dz, dyaw)
    w2, b2 = 'pose_decoder.pose_decoder.2.weight', 'pose_decoder.pose_decoder.2.bias'
    d2w, d2b = 'transformer.pose_decoder.2.weight', 'transformer.pose_decoder.2.bias'
    if w2 in c.src and b2 in c.src:
        sw, sb = c.src[w2], c.src[b2]
        ok = (d2w in c.dst and d2b in c.dst and sw.shape[0] % 2 == 0 and
              c.dst[d2w].shape[1] == sw.shape[1] and c.dst[d2w].shape[0] >= 2)
        if ok:
            modes = sw.shape[0] // 2
            new_w = torch.zeros_like(c.dst[d2w])
            new_b = torch.zeros_like(c.dst[d2b])
            new_w[:2] = sw.reshape(modes, 2, -1).mean(dim=0)
            new_b[:2] = sb.reshape(modes, 2).mean(dim=0)
            rule = (f'output rows: release rows (mode m, coord c) at 2m + c, {modes} command '
                    f'modes; our (dx, dy) rows = mean over modes (the command-marginal '
                    f'prediction, linear layer), our (dz, dyaw) rows and biases zero '
                    f'(predict no change until fine-tuned)' + act_note)
            c.adapt([w2], d2w, new_w, rule)
            c.adapt([b2], d2b, new_b, rule)
        else:
            for k in (w2, b2):
                c.drop(k, 'release pose-decoder output layer does not fit the destination')


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
    c = _Conversion(src, dst, dst_module)
    if stripped:
        c.report['notes'].append("source keys had a 'module.' (DDP) prefix; stripped")
    if dst_module is None:
        c.report['notes'].append('destination given as a state dict: attention head counts '
                                 f'are assumed to match the release ({OCCWORLD_NUM_HEADS} in '
                                 'the transformer, 1 in the tokenizer)')
    _convert_vae(c, class_map)
    _convert_transformer(c)
    c.report['unexplained'] = sorted(k for k in src if k not in c.claimed)
    for dst_key in dst:
        if dst_key not in c.out:
            reason = next(r for p, r in _SCRATCH_REASONS if re.search(p, dst_key))
            c.report['from_scratch'][dst_key] = reason
    c.report['counts'] = report_counts(c.report)
    return c.out, c.report


def report_counts(report: dict) -> Dict[str, int]:
    """Sizes of the report categories (source and destination keys).

    Args:
        report (dict): A report of :func:`convert_occworld_state_dict`.

    Returns:
        dict[str, int]: ``source_keys``, ``mapped``, ``adapted``, ``dropped``,
        ``unexplained``, ``destination_keys``, ``filled``, ``synthesized``,
        ``from_scratch``.
    """
    filled = ({v['dst'] for v in report['mapped'].values()} |
              {v['dst'] for v in report['adapted'].values()} | set(report['synthesized']))
    counts = {k: len(report[k]) for k in SRC_CATEGORIES}
    counts['source_keys'] = sum(counts[k] for k in SRC_CATEGORIES)
    counts['filled'] = len(filled)
    counts['synthesized'] = len(report['synthesized'])
    counts['from_scratch'] = len(report['from_scratch'])
    counts['destination_keys'] = counts['filled'] + counts['from_scratch']
    order = ('source_keys', 'mapped', 'adapted', 'dropped', 'unexplained',
             'destination_keys', 'filled', 'synthesized', 'from_scratch')
    return {k: counts[k] for k in order}


def format_report(report: dict, src_sd: Optional[Mapping[str, torch.Tensor]] = None) -> str:
    """Human-readable report: counts, then every non-mapped key with its rule / reason.

    Identical reasons are listed once with their keys under them.

    Args:
        report (dict): A report of :func:`convert_occworld_state_dict`.
        src_sd (Mapping[str, torch.Tensor], optional): The source, to add parameter counts
            per category.

    Returns:
        str: Multi-line text.
    """
    counts = report.get('counts') or report_counts(report)
    lines = ['OccWorld -> mmembodied conversion report',
             '  source keys: {source_keys} = mapped {mapped} + adapted {adapted} + dropped '
             '{dropped} + unexplained {unexplained}'.format(**counts),
             '  destination keys: {destination_keys} = filled {filled} (incl. synthesized '
             '{synthesized}) + from scratch {from_scratch}'.format(**counts)]
    if src_sd is not None:
        numel = {cat: sum(src_sd[k].numel() for k in report[cat] if k in src_sd)
                 for cat in SRC_CATEGORIES}
        lines.append('  source parameters: ' + ', '.join(f'{k} {v:,}' for k, v in
                                                         numel.items()))

    def grouped(title, items):
        """``items``: (line, text); lines sharing a text are listed under it once."""
        if not items:
            return
        lines.append(f'{title} ({len(items)}):')
        groups = {}
        for line, text in items:
            groups.setdefault(text, []).append(line)
        for text, group in groups.items():
            lines.append(f'  - {text}')
            lines.extend(f'      {line}' for line in group)

    grouped('ADAPTED source keys', [(f'{k} -> {v["dst"]}', v['rule'])
                                    for k, v in report['adapted'].items()])
    grouped('MAPPED source keys with a note (the others are plain renames)',
            [(f'{k} -> {v["dst"]}', v['rule']) for k, v in report['mapped'].items()
             if v['rule'] != 'rename'])
    grouped('DROPPED source keys', [(k, v) for k, v in report['dropped'].items()])
    grouped('UNEXPLAINED source keys', [(k, 'no conversion rule covers these keys')
                                        for k in report['unexplained']])
    grouped('SYNTHESIZED destination keys', [(k, v) for k, v in report['synthesized'].items()])
    grouped('FROM-SCRATCH destination keys', [(k, v)
                                              for k, v in report['from_scratch'].items()])
    if report.get('notes'):
        lines.append('Notes:')
        lines.extend(f'  - {n}' for n in report['notes'])
    return '\n'.join(lines)


__all__ = [
    'OCC3D_NUSCENES_CLASSES', 'OCCWORLD_FREE_LABEL', 'OCCWORLD_GRID', 'OCCWORLD_NUM_HEADS',
    'occworld_model_cfg', 'DEFAULT_CONFIG', 'resolve_class_map', 'convert_occworld_state_dict',
    'report_counts', 'format_report'
]
