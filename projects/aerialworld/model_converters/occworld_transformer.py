"""Conversion rules of the release transformer and pose MLPs onto the world model.

Part of :mod:`.occworld`. The release transformer is a conv U-Net (50 -> 25 -> 12 token
maps) with post-norm causal temporal cross-attention layers per level and a parallel
pose-query stream; ours is one 50 x 50 token stream of pre-norm blocks (temporal attention,
spatial attention, MLP). Only the level-0 temporal layers, which act on the code vectors
themselves, have counterparts (a warm start, not an equivalent function); the pose encoder /
decoder MLPs are adapted. Every other key is dropped with its architectural reason.
"""
import re

import torch

from .occworld_config import OCCWORLD_NUM_HEADS
from .occworld_conversion import Conversion

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


def convert_transformer(c: Conversion) -> None:
    """Map the release ``transformer.*``, ``pose_encoder.*`` and ``pose_decoder.*`` keys.

    The temporal embedding is reshaped, the level-0 temporal layers are transplanted into
    our blocks (when the head counts match), the conv U-Net, the pose-query stream and the
    logits head are dropped with their reasons, the token embedding is synthesized as the
    identity, and the pose MLPs are adapted (:func:`convert_pose`).

    Args:
        c (Conversion): The conversion; its ``out`` and ``report`` are filled.
    """
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
    convert_pose(c)


def convert_pose(c: Conversion) -> None:
    """Adapt the release pose encoder / decoder (and fold ``transformer.pose_out``).

    The encoder's command one-hot columns are marginalised into its bias, the release
    ``pose_decoder.0`` is composed with ``transformer.pose_out`` (two Linear layers), and
    the 3-mode output rows are averaged into our ``(dx, dy)`` rows; see the reported rules.

    Args:
        c (Conversion): The conversion; its ``out`` and ``report`` are filled.
    """
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


__all__ = ['convert_transformer', 'convert_pose']
