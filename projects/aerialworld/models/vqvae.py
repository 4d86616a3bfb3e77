"""VQ-VAE occupancy tokenizer of AerialWorld (``OccVQVAE``).

Pipeline (DESIGN.md §4; idea and shapes after OccWorld, W. Zheng et al., "OccWorld: Learning
a 3D Occupancy World Model for Autonomous Driving", arXiv:2311.16038, 2023; quantisation after
A. van den Oord et al., "Neural Discrete Representation Learning", NeurIPS 2017)::

    occ (B, X, Y, Z) uint8 labels
      -> class embedding (B, X, Y, Z, E)
      -> optional z-reduction stem: groups of r z-cells -> Ez channels (B, X, Y, Z/r, Ez)
      -> height folded into channels (B, Ez * Z', X, Y), padded to a multiple of the stride
      -> 2-D ResNet encoder (GroupNorm or channel LayerNorm, down-sampling by
         2 ** (len(channel_mults) - 1), self-attention at the lowest scale) -> z_e (B, D, h, w)
      -> codebook (K x D), nearest code, straight-through estimator, codebook loss
      -> 2-D ResNet decoder -> (B, Ez * Z', X, Y) -> unfold height -> inverse z stem
      -> per-voxel features (B, X, Y, Z, E) . class-embedding table^T -> logits (B, C, X, Y, Z)
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint

from projects.registry import MODELS
from .vector_quantizer import VectorQuantizer
from .vqvae_blocks import (NORMS, AttnBlock2d, ChannelLayerNorm2d, Downsample2d,  # noqa: F401
                           ResBlock2d, Upsample2d, _Sequential, build_norm2d, maybe_checkpoint)


@MODELS.register_module()
class OccVQVAE(BaseModule):
    """VQ-VAE tokenizer for semantic occupancy grids (see module docstring).

    Args:
        num_classes (int): Semantic classes ``C`` including free.
        grid_size (Sequence[int]): Grid ``(X, Y, Z)`` the tokenizer is built for; inputs
            must match it.
        class_embed_dim (int): Class-embedding dimension ``E``. Defaults to 8.
        z_reduction (int): Height reduction factor ``r`` of the z stem (1 = none). ``Z`` is
            padded with the free label to a multiple of ``r``; every group of ``r`` z-cells
            (``r * E`` values) is mapped to ``z_embed_dim`` channels by a learned linear map
            (a strided ``(1, 1, r)`` 3-D convolution) followed by SiLU. Defaults to 1.
        z_embed_dim (int, optional): Channels per reduced z-cell ``Ez``. Defaults to
            ``class_embed_dim`` (for ``r = 1`` it is always ``class_embed_dim``).
        base_channels (int): Channels of the first encoder stage. Defaults to 64.
        channel_mults (Sequence[int]): Channel multipliers per stage; the grid is down-sampled
            ``len(channel_mults) - 1`` times by 2. Defaults to (1, 2, 4) (4x).
        num_res_blocks (int): Residual blocks per stage. Defaults to 2.
        num_codes (int): Codebook size ``K``. Defaults to 512.
        code_dim (int): Code dimension ``D``. Defaults to 128.
        beta (float): Commitment weight. Defaults to 0.25.
        loss_vq (dict, optional): Codebook loss config (overrides ``beta``).
        attn_at_lowest (bool): Self-attention at the lowest scale (and in the middle blocks).
            Defaults to True.
        attn_heads (int): Heads of that attention. Defaults to 1.
        dropout (float): Dropout in residual blocks. Defaults to 0.0.
        norm (str): Normalisation inside the residual and attention blocks: ``'group'``
            (GroupNorm, as VQGAN and OccWorld) or ``'layer'`` (per-location channel LayerNorm,
            :class:`ChannelLayerNorm2d`). Defaults to 'group'.
        out_norm (str, optional): Normalisation before the encoder's output convolution (the
            quantiser input) and before the decoder's output convolution (the voxel logits).
            GroupNorm there removes each sample's spatial mean from the only path to the
            output, so a grid that is uniformly roof or open ground loses its content and is
            decoded as free space (measured on the Tokyo sessions: a drone orbiting over a
            large flat roof reconstructed at 10 % IoU); inside the pre-activation blocks the
            residual stream keeps the mean, so only these two layers matter. ``'layer'`` is
            the AerialWorld default; OccWorld weights need ``'group'``. Defaults to ``norm``.
        free_label (int): Free class (used to pad the grid); negative counts from the last
            class. Defaults to -1.
        with_cp (bool): Activation checkpointing (``torch.utils.checkpoint``) of the
            full-resolution stem, of every encoder and decoder block and of the output head
            (decoder features -> voxel logits): their activations are recomputed in the
            backward pass instead of being kept, which bounds the memory of full aerial grids
            (one more forward pass of those parts). Same values and gradients. Defaults to
            False.
        checkpoint_frames (int): Frames (samples) per checkpointed chunk of
            :meth:`forward_terms`, the training path of the tokenizer stage: encoder,
            quantiser, decoder and the per-frame loss terms of ``checkpoint_frames`` frames run
            under one ``torch.utils.checkpoint`` (the blocks inside it are not checkpointed
            again), so only the labels and the loss terms of every frame are kept and the
            activations of one chunk exist at a time, whatever the number of frames. Same
            values and gradients; the codebook is updated once per step from the statistics
            of all frames. 0 turns it off (:meth:`forward_terms` then runs the whole batch
            like :meth:`forward_train`). Defaults to 0.
        channels_last (bool): Keep the 2-D feature maps (and the convolution weights) in the
            channels-last memory format, which the oneDNN (CPU) and cuDNN (GPU) convolution
            kernels prefer; outputs are numerically the same. Measure it with
            ``tools/analysis_tools/benchmark_train_step.py --cfg-options
            model.tokenizer.channels_last=True``. Defaults to False.
        init_codebook_from_data (bool): See :class:`VectorQuantizer`. Defaults to True.
        restart_dead_codes (bool): See :class:`VectorQuantizer`. Defaults to True.
        code_usage_decay (float): ``usage_decay`` of :class:`VectorQuantizer`. Defaults to 0.95.
        dead_code_threshold (float): ``dead_threshold`` of :class:`VectorQuantizer`.
            Defaults to 0.01.
        normalize_codes (bool): Cosine (l2-normalised) codebook, see
            :class:`VectorQuantizer`. Defaults to False.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On an invalid ``grid_size``, ``z_reduction``, ``channel_mults`` or
            ``free_label``.
    """

    def __init__(self,
                 num_classes: int,
                 grid_size: Sequence[int],
                 class_embed_dim: int = 8,
                 z_reduction: int = 1,
                 z_embed_dim: Optional[int] = None,
                 base_channels: int = 64,
                 channel_mults: Sequence[int] = (1, 2, 4),
                 num_res_blocks: int = 2,
                 num_codes: int = 512,
                 code_dim: int = 128,
                 beta: float = 0.25,
                 loss_vq: Optional[dict] = None,
                 attn_at_lowest: bool = True,
                 attn_heads: int = 1,
                 dropout: float = 0.0,
                 norm: str = 'group',
                 out_norm: Optional[str] = None,
                 free_label: int = -1,
                 with_cp: bool = False,
                 checkpoint_frames: int = 0,
                 channels_last: bool = False,
                 init_codebook_from_data: bool = True,
                 restart_dead_codes: bool = True,
                 code_usage_decay: float = 0.95,
                 dead_code_threshold: float = 0.01,
                 normalize_codes: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        grid_size = tuple(int(s) for s in grid_size)
        if len(grid_size) != 3 or min(grid_size) < 1:
            raise ValueError(f'OccVQVAE: grid_size must be (X, Y, Z) positive ints, got '
                             f'{grid_size}')
        if int(z_reduction) < 1:
            raise ValueError(f'OccVQVAE: z_reduction must be >= 1, got {z_reduction}')
        if len(channel_mults) < 1:
            raise ValueError('OccVQVAE: channel_mults must not be empty')
        out_norm = norm if out_norm is None else out_norm
        for key, value in (('norm', norm), ('out_norm', out_norm)):
            if value not in NORMS:
                raise ValueError(f'OccVQVAE: {key} must be one of {NORMS}, got {value!r}')
        if num_classes < 2:
            raise ValueError(f'OccVQVAE: num_classes must be >= 2, got {num_classes}')
        free = free_label + num_classes if free_label < 0 else free_label
        if not 0 <= free < num_classes:
            raise ValueError(f'OccVQVAE: free_label={free_label} out of range for '
                             f'num_classes={num_classes}')
        self.num_classes = int(num_classes)
        self.free_label = free
        self.grid_size = grid_size
        self.class_embed_dim = int(class_embed_dim)
        self.z_reduction = int(z_reduction)
        self.z_embed_dim = (self.class_embed_dim if self.z_reduction == 1 else
                            int(z_embed_dim or self.class_embed_dim))
        self.with_cp = with_cp
        if int(checkpoint_frames) < 0:
            raise ValueError(f'OccVQVAE: checkpoint_frames must be >= 0, got '
                             f'{checkpoint_frames}')
        self.checkpoint_frames = int(checkpoint_frames)
        # True while a chunk of forward_terms runs (its blocks are not checkpointed again)
        self._in_frame_checkpoint = False
        self.channels_last = bool(channels_last)
        self.num_down = len(channel_mults) - 1
        self.stride = 2**self.num_down
        x, y, z = grid_size
        self.padded_z = -(-z // self.z_reduction) * self.z_reduction
        self.reduced_z = self.padded_z // self.z_reduction
        self.padded_xy = (-(-x // self.stride) * self.stride, -(-y // self.stride) * self.stride)
        self.token_grid = (self.padded_xy[0] // self.stride, self.padded_xy[1] // self.stride)
        self.num_codes = int(num_codes)
        self.code_dim = int(code_dim)

        self.class_embeds = nn.Embedding(self.num_classes, self.class_embed_dim)
        if self.z_reduction > 1:
            self.z_stem = nn.Linear(self.z_reduction * self.class_embed_dim, self.z_embed_dim)
            self.z_unstem = nn.Linear(self.z_embed_dim, self.z_reduction * self.class_embed_dim)
        fold = self.z_embed_dim * self.reduced_z
        chans = [base_channels * m for m in channel_mults]

        # Encoder.
        self.enc_in = nn.Conv2d(fold, chans[0], 3, padding=1)
        enc = []
        ch = chans[0]
        for i, out_ch in enumerate(chans):
            for _ in range(num_res_blocks):
                enc.append(ResBlock2d(ch, out_ch, dropout, norm))
                ch = out_ch
                if attn_at_lowest and i == len(chans) - 1:
                    enc.append(AttnBlock2d(ch, attn_heads, norm))
            if i < len(chans) - 1:
                enc.append(Downsample2d(ch))
        enc.append(ResBlock2d(ch, ch, dropout, norm))
        if attn_at_lowest:
            enc.append(AttnBlock2d(ch, attn_heads, norm))
        enc.append(ResBlock2d(ch, ch, dropout, norm))
        self.encoder = _Sequential(enc)
        self.enc_norm = build_norm2d(out_norm, ch)
        self.enc_out = nn.Conv2d(ch, self.code_dim, 3, padding=1)
        self.quant_conv = nn.Conv2d(self.code_dim, self.code_dim, 1)
        self.quantizer = VectorQuantizer(
            num_codes=self.num_codes,
            code_dim=self.code_dim,
            loss_vq=loss_vq,
            beta=beta,
            init_from_data=init_codebook_from_data,
            restart_dead_codes=restart_dead_codes,
            usage_decay=code_usage_decay,
            dead_threshold=dead_code_threshold,
            normalize=normalize_codes)
        self.post_quant_conv = nn.Conv2d(self.code_dim, self.code_dim, 1)

        # Decoder (mirror).
        ch = chans[-1]
        self.dec_in = nn.Conv2d(self.code_dim, ch, 3, padding=1)
        dec = [ResBlock2d(ch, ch, dropout, norm)]
        if attn_at_lowest:
            dec.append(AttnBlock2d(ch, attn_heads, norm))
        dec.append(ResBlock2d(ch, ch, dropout, norm))
        for i in reversed(range(len(chans))):
            out_ch = chans[i]
            for _ in range(num_res_blocks):
                dec.append(ResBlock2d(ch, out_ch, dropout, norm))
                ch = out_ch
                if attn_at_lowest and i == len(chans) - 1:
                    dec.append(AttnBlock2d(ch, attn_heads, norm))
            if i > 0:
                dec.append(Upsample2d(ch))
        self.decoder = _Sequential(dec)
        self.dec_norm = build_norm2d(out_norm, ch)
        self.dec_out = nn.Conv2d(ch, fold, 3, padding=1)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)  # 4-D conv weights

    @property
    def codebook(self) -> torch.Tensor:
        """The code vectors ``(K, D)`` (unit length with ``normalize_codes``)."""
        return self.quantizer.codes

    def _check_occ(self, occ: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``occ`` is an integer ``(B, X, Y, Z)`` on the grid."""
        if occ.dim() != 4 or tuple(occ.shape[1:]) != self.grid_size:
            raise ValueError(f'OccVQVAE: occupancy shape {tuple(occ.shape)} does not match '
                             f'(B, *grid_size) with grid_size={self.grid_size}; set the '
                             f'tokenizer grid_size to the dataset grid')
        if occ.is_floating_point():
            raise ValueError(f'OccVQVAE: occupancy must hold integer labels, got {occ.dtype}')

    def encode(self, occ: torch.Tensor) -> torch.Tensor:
        """Encode occupancy into continuous latents.

        Args:
            occ (torch.Tensor): ``(B, X, Y, Z)`` integer labels (``uint8`` or ``long``) in
                ``[0, C)``.

        Returns:
            torch.Tensor: ``z_e`` ``(B, D, h, w)`` float, ``(h, w) = token_grid``.

        Raises:
            ValueError: If the shape does not match ``grid_size`` or the dtype is float.
        """
        self._check_occ(occ)
        b = occ.shape[0]
        x, y, z = self.grid_size
        px, py = self.padded_xy
        if (px, py, self.padded_z) != (x, y, z):
            padded = occ.new_full((b, px, py, self.padded_z), self.free_label)
            padded[:, :x, :y, :z] = occ
            occ = padded
        h = maybe_checkpoint(self._stem, occ, self._block_cp, force=self.training)
        h = self.encoder(h, with_cp=self._block_cp)  # (B, C, h, w)
        h = self.enc_out(F.silu(self.enc_norm(h)))
        return self.quant_conv(h)

    @property
    def _block_cp(self) -> bool:
        """Whether the stem, blocks and head are checkpointed one by one (``with_cp``)."""
        return self.with_cp and not self._in_frame_checkpoint

    def _stem(self, occ: torch.Tensor) -> torch.Tensor:
        """Padded labels ``(B, Xp, Yp, Zp)`` -> first encoder features ``(B, C0, Xp, Yp)``."""
        b, px, py = occ.shape[:3]
        if self.z_reduction > 1:
            feat = F.silu(self._stem_lookup(occ))  # (B, Xp, Yp, Z', Ez)
        else:
            feat = self.class_embeds(occ.long())  # (B, Xp, Yp, Zp, E)
        feat = feat.permute(0, 3, 4, 1, 2).reshape(b, -1, px, py)  # (B, Z' * Ez, Xp, Yp)
        if self.channels_last:
            feat = feat.contiguous(memory_format=torch.channels_last)
        return self.enc_in(feat)

    def quantize(self, z_e: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise latents; see :meth:`VectorQuantizer.forward`.

        Args:
            z_e (torch.Tensor): ``(B, D, h, w)`` float.

        Returns:
            tuple: ``z_q`` ``(B, D, h, w)``, ``indices`` ``(B, h, w)`` long, ``vq_loss``
            scalar.
        """
        return self.quantizer(z_e)

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of token indices.

        Args:
            indices (torch.Tensor): ``(B, h, w)`` long in ``[0, K)``.

        Returns:
            torch.Tensor: ``(B, D, h, w)`` float code vectors (input of :meth:`decode`).
        """
        return self.quantizer.lookup(indices.long())

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Decode (quantised or soft) code vectors into per-voxel semantic logits.

        Args:
            z_q (torch.Tensor): ``(B, D, h, w)`` float.

        Returns:
            torch.Tensor: Logits ``(B, C, X, Y, Z)`` float (a permuted view; the class
            dimension is the innermost in memory).

        Raises:
            ValueError: If ``z_q`` does not have shape ``(B, D, *token_grid)``.
        """
        if z_q.dim() != 4 or z_q.shape[1] != self.code_dim or \
                tuple(z_q.shape[2:]) != self.token_grid:
            raise ValueError(f'OccVQVAE.decode: expected (B, {self.code_dim}, '
                             f'{self.token_grid[0]}, {self.token_grid[1]}), got '
                             f'{tuple(z_q.shape)}')
        z = self.grid_size[2]
        if self.channels_last:
            z_q = z_q.contiguous(memory_format=torch.channels_last)
        h = self.dec_in(self.post_quant_conv(z_q))
        h = self.decoder(h, with_cp=self._block_cp)
        logits = maybe_checkpoint(self._head, h, self._block_cp, force=self.training)
        return logits[:, :, :, :z].permute(0, 4, 1, 2, 3)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        """Last decoder features ``(B, C0, Xp, Yp)`` -> voxel logits ``(B, X, Y, Zp, C)``."""
        b = h.shape[0]
        x, y = self.grid_size[:2]
        h = self.dec_out(F.silu(self.dec_norm(h)))  # (B, Z' * Ez, Xp, Yp)
        h = h[:, :, :x, :y]
        h = h.reshape(b, self.reduced_z, self.z_embed_dim, x, y).permute(0, 3, 4, 1, 2)
        if self.z_reduction > 1:
            return self._unstem_logits(F.silu(h))  # (B, X, Y, Zp, C)
        return h @ self.class_embeds.weight.t()  # (B, X, Y, Z, C)

    def _stem_lookup(self, occ: torch.Tensor) -> torch.Tensor:
        """z stem of the class embeddings without materialising them.

        ``z_stem`` is linear in the concatenated embeddings of a group of ``r`` z-cells:
        ``z_stem([e(c_0), ..., e(c_{r-1})]) = sum_j W_j e(c_j) + b``. The per-class terms
        ``W_j e(c)`` form an ``(r, C, Ez)`` table; when ``C ** r <= 65536`` the table of every
        label combination of a group is gathered once by its combined index
        ``sum_j c_j C^j`` (one 8-byte index per group instead of ``r * E`` floats per group,
        the ``(B, X, Y, Z, E)`` embedding of a full 200 x 200 x 124 window is 635 MB at
        batch 4), otherwise the ``r`` terms are gathered and summed. Same values as
        ``z_stem(class_embeds(occ).reshape(..., r * E))`` up to float summation order.

        Args:
            occ (torch.Tensor): ``(B, Xp, Yp, Zp)`` integer labels (padded grid).

        Returns:
            torch.Tensor: ``(B, Xp, Yp, Z', Ez)`` float, before the SiLU.
        """
        b, px, py, _ = occ.shape
        r, c, e, ez = self.z_reduction, self.num_classes, self.class_embed_dim, self.z_embed_dim
        weight = self.z_stem.weight.reshape(ez, r, e)
        per = torch.einsum('ce,fje->jcf', self.class_embeds.weight, weight)  # (r, C, Ez)
        groups = occ.reshape(b, px, py, self.reduced_z, r)
        if c**r <= 65536:
            powers = c**torch.arange(r, device=occ.device)
            combos = torch.arange(c**r, device=occ.device)
            digits = (combos[:, None] // powers) % c  # (C^r, r)
            table = per[torch.arange(r, device=occ.device), digits].sum(1)  # (C^r, Ez)
            index = (groups.long() * powers).sum(-1)  # (B, Xp, Yp, Z')
            return F.embedding(index, table + self.z_stem.bias)
        out = self.z_stem.bias.expand(b, px, py, self.reduced_z, ez)
        for j in range(r):
            out = out + F.embedding(groups[..., j].long(), per[j])
        return out

    def _unstem_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Voxel logits of the decoder's reduced z-cells, ``z_unstem`` folded in.

        ``logits[z' r + j, c] = e(c) . (U_j h + u_j)`` with ``U_j``, ``u_j`` the rows of
        ``z_unstem`` for sub-cell ``j``, so one ``(r C, Ez)`` linear map replaces ``z_unstem``
        (``r * E`` outputs per cell) followed by the class-embedding product (the
        ``(B, X, Y, Z, E)`` intermediate is not materialised). Same values up to float
        summation order.

        Args:
            h (torch.Tensor): ``(B, X, Y, Z', Ez)`` decoder features (after the SiLU).

        Returns:
            torch.Tensor: ``(B, X, Y, Zp, C)`` logits.
        """
        b, x, y = h.shape[:3]
        r, c, e, ez = self.z_reduction, self.num_classes, self.class_embed_dim, self.z_embed_dim
        emb = self.class_embeds.weight
        weight = torch.einsum('ce,jef->jcf', emb, self.z_unstem.weight.reshape(r, e, ez))
        bias = torch.einsum('ce,je->jc', emb, self.z_unstem.bias.reshape(r, e))
        logits = F.linear(h, weight.reshape(r * c, ez), bias.reshape(r * c))
        return logits.reshape(b, x, y, self.padded_z, c)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Decode token indices ``(B, h, w)`` into logits ``(B, C, X, Y, Z)``."""
        return self.decode(self.embed_indices(indices))

    def forward_train(self, occ: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Encode, quantise and decode.

        Args:
            occ (torch.Tensor): ``(B, X, Y, Z)`` integer labels.

        Returns:
            dict: ``logits`` ``(B, C, X, Y, Z)``, ``indices`` ``(B, h, w)`` long,
            ``vq_loss`` scalar.
        """
        z_e = self.encode(occ)
        z_q, indices, vq_loss = self.quantize(z_e)
        return dict(logits=self.decode(z_q), indices=indices, vq_loss=vq_loss)

    def forward_terms(self, occ: torch.Tensor,
                      terms_fn: Callable[[torch.Tensor, torch.Tensor], Dict[str, torch.Tensor]]
                      ) -> Dict[str, object]:
        """Encode, quantise, decode and reduce to per-frame loss terms, chunk by chunk.

        The training path of the tokenizer stage. With ``checkpoint_frames = n > 0`` and
        gradients flowing, every chunk of ``n`` frames runs encoder -> quantiser -> decoder
        -> ``terms_fn`` under one non-reentrant ``torch.utils.checkpoint``: the forward pass
        keeps only the chunk's labels and its terms, the backward pass recomputes one chunk
        at a time, so peak activations are those of one chunk (about 0.7 GB per full
        200 x 200 x 121 frame) instead of growing with the number of frames. The quantiser's
        side effects are kept out of the recomputed code: the chunks quantise with
        :meth:`VectorQuantizer.frozen_codes` (the codebook as it is at the start of the step,
        also when recomputed after the update) and the codebook update (data init, usage
        EMA, dead-code restart) runs once, after all chunks, with the statistics of every
        frame; on the very first training step with ``init_from_data`` the codebook is
        initialised from a no-gradient encoding of all frames first, as :meth:`forward_train`
        initialises it from the batch. Values and gradients are those of
        :meth:`forward_train` followed by the same losses on the whole batch (up to float
        summation order).

        Args:
            occ (torch.Tensor): ``(N, X, Y, Z)`` integer labels (frames).
            terms_fn (Callable): ``(logits (n, C, X, Y, Z), labels (n, X, Y, Z)) -> dict`` of
                per-frame tensors ``(n, ...)`` (loss terms that a reduction over all ``N``
                frames turns into the losses, e.g. ``sample_terms`` of
                :mod:`projects.common.losses`). Tensors computed under ``torch.no_grad``
                (e.g. accuracy counts) are returned as they are.

        Returns:
            dict: ``terms`` (dict of ``(N, ...)`` tensors, the chunks' ``terms_fn`` outputs
            concatenated), ``indices`` ``(N, h, w)`` long, ``vq_loss`` scalar (codebook +
            commitment loss of all frames).

        Raises:
            ValueError: If ``occ`` does not match ``grid_size`` or is float.
        """
        self._check_occ(occ)
        n = occ.shape[0]
        step = self.checkpoint_frames or n
        quantizer = self.quantizer
        if self.training and quantizer.init_from_data and not bool(quantizer.initialized):
            with torch.no_grad():
                z_flat = torch.cat([quantizer.flatten_latents(self.encode(occ[i:i + step]))
                                    for i in range(0, n, step)])
            quantizer.update_codebook(z_flat, torch.empty(0, dtype=torch.long))
        codes = quantizer.frozen_codes()
        use_cp = self.checkpoint_frames > 0 and torch.is_grad_enabled()
        chunks = []
        for i in range(0, n, step):
            args = (occ[i:i + step], codes, terms_fn)
            chunks.append(checkpoint(self._frame_terms, *args, use_reentrant=False)
                          if use_cp else self._frame_terms(*args))
        terms = {key: torch.cat([c[0][key] for c in chunks]) for key in chunks[0][0]}
        sizes = [c[2].shape[0] for c in chunks]
        # loss_vq averages over all elements; every frame has as many
        vq_loss = sum(c[1] * s for c, s in zip(chunks, sizes)) / n
        indices = torch.cat([c[2] for c in chunks])
        if self.training:
            quantizer.update_codebook(torch.cat([c[3] for c in chunks]), indices.flatten(),
                                      torch.cat([c[4] for c in chunks]))
        return dict(terms=terms, indices=indices, vq_loss=vq_loss)

    def _frame_terms(self, occ: torch.Tensor, codes: torch.Tensor, terms_fn: Callable) -> tuple:
        """One chunk of :meth:`forward_terms` (the checkpointed function; no side effects).

        Returns:
            tuple: ``terms`` dict, ``vq_loss`` scalar, ``indices`` ``(n, h, w)``, ``z_flat``
            ``(n h w, D)`` and ``min_dist`` ``(n h w,)`` (see
            :meth:`VectorQuantizer.quantize`).
        """
        previous = self._in_frame_checkpoint
        self._in_frame_checkpoint = self.checkpoint_frames > 0
        try:
            z_q, indices, vq_loss, z_flat, min_dist = self.quantizer.quantize(
                self.encode(occ), codes)
            terms = terms_fn(self.decode(z_q), occ)
        finally:
            self._in_frame_checkpoint = previous
        return terms, vq_loss, indices, z_flat, min_dist

    def forward(self, occ: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Alias of :meth:`forward_train`."""
        return self.forward_train(occ)

    @torch.no_grad()
    def tokenize(self, occ: torch.Tensor) -> torch.Tensor:
        """Token indices of occupancy without gradient.

        Args:
            occ (torch.Tensor): ``(B, X, Y, Z)`` integer labels.

        Returns:
            torch.Tensor: ``(B, h, w)`` long indices.
        """
        z_e = self.encode(occ)
        weight = self.codebook
        z_flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.code_dim)
        dist = (z_flat.pow(2).sum(1, keepdim=True) - 2.0 * z_flat @ weight.t() +
                weight.pow(2).sum(1)[None])
        return dist.argmin(dim=1).reshape(z_e.shape[0], *z_e.shape[2:])
