"""Conversion rules of the release VQ-VAE (``vae.*``) onto the AerialWorld tokenizer.

Part of :mod:`.occworld`. Layout facts the mapping relies on (all checked against the
release key shapes):

* occupancy is embedded per voxel and folded height-major (channel ``z * E + e``) into 2-D
  maps over ``(X, Y)``, exactly like :class:`OccVQVAE` with ``z_reduction=1``; the decoder
  output is unfolded the same way and scored against the class-embedding table; input /
  output convolutions of a destination with another height are re-folded
  (:func:`_resample_height`);
* encoder / decoder residual blocks are pre-activation (GroupNorm(32), SiLU, 3x3 conv) x 2
  with a 1x1 ``nin_shortcut`` when widths change, like :class:`ResBlock2d`; down-sampling is
  a stride-2 3x3 conv with padding 1, up-sampling nearest x2 then a 3x3 conv; release and
  destination modules are zipped in execution order;
* attention blocks are single-head with separate 1x1 ``q``, ``k``, ``v`` convs and
  ``proj_out``; :class:`AttnBlock2d` fuses them into one ``qkv`` conv (same maths).
"""
import re
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from projects.aerialworld.models.vqvae_blocks import AttnBlock2d
from .occworld_config import resolve_class_map
from .occworld_conversion import Conversion

_RES_PARAMS = {'norm1': 'norm1', 'conv1': 'conv1', 'norm2': 'norm2', 'conv2': 'conv2',
               'nin_shortcut': 'shortcut'}


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


def convert_vae(c: Conversion, class_map: Union[None, str, Sequence[Optional[int]]]) -> None:
    """Map all ``vae.*`` keys of the release onto ``tokenizer.*`` (see module docstring).

    Args:
        c (Conversion): The conversion; its ``out`` and ``report`` are filled.
        class_map: Class correspondence, see
            :func:`~.occworld_config.resolve_class_map`.

    Raises:
        ValueError: On an invalid ``class_map``.
    """
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


__all__ = ['convert_vae']
