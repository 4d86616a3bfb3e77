"""The sensor VLA model: VL backbone + optional sensor encoder + fusion + action head."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseDataPreprocessor, BaseModel

from projects.registry import MODELS

from ..cache import VLFeatureCache, vl_cache_key
from ..structures import VLADataSample

__all__ = ['SensorVLA', 'VLADataPreprocessor']


@MODELS.register_module()
class VLADataPreprocessor(BaseDataPreprocessor):
    """Collate per-sample inputs into batch tensors on the model's device.

    Input (from ``PackVLAInputs``): a list of dicts with ``images`` ``(V, H, W, 3)`` uint8,
    ``sensor`` ``(T, C)`` float tensor or None, ``prev_action`` ``(A,)``.
    Output ``inputs``: ``images`` ``(B, V, H, W, 3)`` uint8 (kept on the CPU: the VL image
    processor and the cache key read them there), ``sensor`` ``(B, T, C)`` float32 with zeros
    in rows without a stream (never encoded, see ``SensorEncoder``) or None when no row has
    one, ``has_sensor`` ``(B,)`` bool, ``prev_action`` ``(B, A)`` float32.

    Raises:
        ValueError: When the present streams of a batch differ in shape.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs, samples = data['inputs'], data['data_samples']
        if isinstance(inputs, dict):
            if isinstance(inputs.get('images'), torch.Tensor):  # already batched (inference)
                return dict(inputs=inputs, data_samples=samples)
            # pseudo_collate: a dict of per-sample lists
            n = len(inputs['images'])
            inputs = [{k: v[i] for k, v in inputs.items()} for i in range(n)]
        images = torch.stack([torch.as_tensor(x['images']) for x in inputs])
        has = torch.tensor([x.get('sensor') is not None for x in inputs], dtype=torch.bool)
        sensor = None
        if has.any():
            shapes = {tuple(x['sensor'].shape) for x in inputs if x.get('sensor') is not None}
            if len(shapes) != 1:
                raise ValueError(f'VLADataPreprocessor: sensor streams of one batch must share '
                                 f'a shape, got {sorted(shapes)}')
            shape = shapes.pop()
            sensor = torch.stack([torch.as_tensor(x['sensor']).float()
                                  if x.get('sensor') is not None else torch.zeros(shape)
                                  for x in inputs]).to(self.device)
        prev = torch.stack([torch.as_tensor(x['prev_action']).float() for x in inputs])
        if samples is not None:
            samples = [s.to(self.device) for s in samples]
        return dict(inputs=dict(images=images, sensor=sensor, has_sensor=has.to(self.device),
                                prev_action=prev.to(self.device)),
                    data_samples=samples)


@MODELS.register_module()
class SensorVLA(BaseModel):
    """Vision-language-action policy with an optional force / OCT sensor branch.

    Wiring: ``QwenVLBackbone`` (instruction + views -> tokens ``(B, L, D)``) ->
    ``SensorFusion`` with ``SensorEncoder`` tokens (skipped for ``fusion='none'``) ->
    optional previous-action token -> action head (``L1RegressionActionHead`` or
    ``FlowMatchingActionHead``) on normalised actions -> ``ActionNormalizer.denormalize``.

    The action head receives only the fused context (and, for flow matching, noise): the
    sample's ground-truth chunk is read only by the losses, never by the decoder.

    Args:
        vl_backbone (dict): ``QwenVLBackbone`` config.
        action_head (dict): Head config; ``expert.context_dim`` is filled in with the VL
            hidden size.
        fusion (dict): ``SensorFusion`` config (``dim`` filled in). Defaults to concat.
        sensor_encoder (dict, optional): ``SensorEncoder`` config; required unless
            ``fusion.strategy='none'``; its ``output_dim`` must equal the VL hidden size.
        action_normalizer (dict): ``ActionNormalizer`` config (``stats`` = JSON path).
        use_prev_action (bool): Append a token of the previous step's (normalised) action;
            the copy-last baseline uses the same value. Defaults to False.
        prev_action_to_queries (bool): With ``use_prev_action``, also add an embedding of
            the previous action to every action query (a direct path besides the context
            token). Defaults to False.
        vl_cache (dict, optional): ``dict(cache_dir=..., max_bytes=...)`` of a
            :class:`VLFeatureCache`; used only while the backbone is frozen.
        vl_token_dropout (float): Training only: each VL token of a sample is left out of
            the action expert's context (masked) with this probability, independently, at
            least one token kept per sample; sensor and previous-action tokens are never
            dropped. A regulariser against memorising the (frozen, per-sample unique) VL
            features on small datasets. Defaults to 0 (off).
        data_preprocessor (dict): Defaults to ``VLADataPreprocessor``.
        init_cfg (dict, optional): MMEngine init config.

    Raises:
        ValueError: On a missing sensor encoder for a sensor fusion, or a mismatched
            ``sensor_encoder.output_dim``.
    """

    def __init__(self, vl_backbone: dict, action_head: dict, fusion: Optional[dict] = None,
                 sensor_encoder: Optional[dict] = None,
                 action_normalizer: Optional[dict] = None, use_prev_action: bool = False,
                 vl_cache: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, vl_token_dropout: float = 0.0,
                 prev_action_to_queries: bool = False):
        dp = data_preprocessor or dict(type='VLADataPreprocessor')
        super().__init__(data_preprocessor=MODELS.build(dp) if isinstance(dp, dict) else dp,
                         init_cfg=init_cfg)
        self.vl = MODELS.build(vl_backbone)
        d = self.vl.hidden_size
        fusion = dict(fusion or dict(strategy='concat'))
        fusion.setdefault('type', 'SensorFusion')
        fusion.setdefault('dim', d)
        self.fusion = MODELS.build(fusion)
        self.sensor_encoder = None
        if self.fusion.uses_sensor:
            if sensor_encoder is None:
                raise ValueError(f'SensorVLA: fusion strategy {self.fusion.strategy!r} needs '
                                 f'model.sensor_encoder (or set fusion.strategy="none")')
            self.sensor_encoder = MODELS.build(sensor_encoder)
            self.sensor_encoder.check_output_dim(d)
        head = dict(action_head)
        expert = dict(head['expert'])
        expert.setdefault('type', 'ActionExpert')
        expert['context_dim'] = d
        head['expert'] = expert
        self.action_head = MODELS.build(head)
        norm = dict(action_normalizer or {})
        norm.setdefault('type', 'ActionNormalizer')
        norm.setdefault('action_dim', self.action_head.action_dim)
        self.action_normalizer = MODELS.build(norm)
        if not 0.0 <= float(vl_token_dropout) < 1.0:
            raise ValueError(f'SensorVLA: vl_token_dropout must be in [0, 1), got '
                             f'{vl_token_dropout}')
        self.vl_token_dropout = float(vl_token_dropout)
        self.use_prev_action = use_prev_action
        if use_prev_action:
            self.prev_action_embed = nn.Linear(self.action_head.action_dim, d)
        if prev_action_to_queries and not use_prev_action:
            raise ValueError('SensorVLA: prev_action_to_queries=True needs use_prev_action=True')
        self.prev_action_to_queries = prev_action_to_queries
        if prev_action_to_queries:
            self.prev_query_embed = nn.Linear(self.action_head.action_dim,
                                              self.action_head.expert.dim)
        self.vl_cache = None
        if vl_cache is not None:
            if self.vl.trains:
                print_log(f'SensorVLA: the VL backbone trains (finetune_vl='
                          f'{self.vl.finetune_vl!r}); the VL cache is bypassed', 'current')
            else:
                self.vl_cache = VLFeatureCache(**vl_cache)

    # ---------------------------------------------------------------- features
    def vl_features(self, images: torch.Tensor, instructions: Sequence[str]):
        """VL tokens ``(B, L, D)`` and mask ``(B, L)``, from the cache when it is active.

        Cached rows of different lengths are right-padded (mask False)."""
        if self.vl_cache is None or self.vl.trains:
            return self.vl(images, instructions)
        arr = images.detach().cpu().numpy()
        keys = [vl_cache_key(self.vl.fingerprint, instructions[i], arr[i])
                for i in range(len(instructions))]
        rows: List = [self.vl_cache.get(k) for k in keys]
        miss = [i for i, r in enumerate(rows) if r is None]
        if miss:
            with torch.no_grad():
                tok, msk = self.vl(images[miss], [instructions[i] for i in miss])
            for j, i in enumerate(miss):
                n = int(msk[j].sum())
                t, m = tok[j, :n].cpu().numpy(), msk[j, :n].cpu().numpy()
                self.vl_cache.put(keys[i], t, m)
                rows[i] = (t.astype(np.float16), m)
        length = max(len(r[1]) for r in rows)
        device = next(self.action_head.parameters()).device
        tokens = torch.zeros(len(rows), length, self.vl.hidden_size, device=device)
        mask = torch.zeros(len(rows), length, dtype=torch.bool, device=device)
        for i, (t, m) in enumerate(rows):
            # float16 storage: the cached features equal the computed ones to ~1e-3 relative.
            tokens[i, :len(m)] = torch.from_numpy(np.asarray(t, dtype=np.float32)).to(device)
            mask[i, :len(m)] = torch.from_numpy(np.asarray(m)).to(device)
        return tokens, mask

    def extract_context(self, inputs: dict, data_samples: Sequence[VLADataSample]):
        """Fused context ``(B, L', D)`` and mask ``(B, L')``."""
        instructions = [str(s.metainfo.get('instruction', '')) for s in data_samples]
        tokens, mask = self.vl_features(inputs['images'], instructions)
        return self.fuse(tokens, mask, inputs)

    def fuse(self, tokens: torch.Tensor, mask: torch.Tensor, inputs: dict):
        """Sensor fusion (+ previous-action token) on VL tokens ``(B, L, D)`` / ``(B, L)``."""
        tokens = tokens.to(next(self.action_head.parameters()).device)
        mask = mask.to(tokens.device).bool()
        if self.training and self.vl_token_dropout > 0:
            keep = torch.rand(mask.shape, device=mask.device) >= self.vl_token_dropout
            dropped = mask & keep
            # keep the first valid token of a row that would lose all of them
            empty = ~dropped.any(1)
            first = mask.float().argmax(1)
            dropped[empty, first[empty]] = True
            mask = dropped
        if self.fusion.uses_sensor:
            b = tokens.shape[0]
            sensor = inputs.get('sensor')
            has = inputs.get('has_sensor')
            if sensor is None:
                sensor = tokens.new_zeros(b, 1, self.sensor_encoder.input_channels)
                has = torch.zeros(b, dtype=torch.bool, device=tokens.device)
            pooled, s_tok, s_mask = self.sensor_encoder(sensor, has)
            tokens, mask = self.fusion(tokens, mask, pooled, s_tok, s_mask)
        if self.use_prev_action:
            prev = self.action_normalizer.normalize(inputs['prev_action'].to(tokens.device))
            tokens = torch.cat([tokens, self.prev_action_embed(prev).unsqueeze(1)], dim=1)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        return tokens, mask

    def query_cond(self, inputs: dict) -> Optional[torch.Tensor]:
        """``(B, expert.dim)`` previous-action query embedding, or None when off."""
        if not self.prev_action_to_queries:
            return None
        device = next(self.action_head.parameters()).device
        prev = self.action_normalizer.normalize(inputs['prev_action'].to(device))
        return self.prev_query_embed(prev)

    # ----------------------------------------------------------------- forward
    def forward(self, inputs: dict, data_samples: Optional[List[VLADataSample]] = None,
                mode: str = 'tensor'):
        """``mode='loss'``: dict of losses (+ logged ``sensor_samples``); ``'predict'``:
        data samples with ``pred_actions`` ``(H, A)`` in raw units; ``'tensor'``: normalised
        predictions ``(B, H, A)``."""
        if data_samples is None:
            raise ValueError('SensorVLA.forward needs data_samples (instructions live there)')
        ctx, mask = self.extract_context(inputs, data_samples)
        cond = self.query_cond(inputs)
        if mode == 'loss':
            return self.loss(ctx, mask, data_samples, cond)
        z = self.action_head.predict(ctx, mask, query_cond=cond)
        if mode == 'tensor':
            return z
        if mode == 'predict':
            actions = self.action_normalizer.denormalize(z)
            for s, a in zip(data_samples, actions):
                s.pred_actions = a.detach()
            if getattr(self.action_head, 'eval_decodings', None):
                # extra decodings as separate table rows; 'sampler' (= pred_actions) first
                variants = {'sampler': actions}
                for name, kw in self.action_head.eval_decodings.items():
                    variants[name] = self.action_normalizer.denormalize(
                        self.action_head.predict(ctx, mask, query_cond=cond, **kw))
                for i, s in enumerate(data_samples):
                    s.set_metainfo(dict(pred_variants={k: v[i].detach().cpu()
                                                       for k, v in variants.items()}))
            return data_samples
        raise ValueError(f"SensorVLA: mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def loss(self, ctx, mask, data_samples,
             query_cond: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Head losses on normalised targets with per-sample ``sensor_loss_weight``
        (``query_cond``: see :meth:`query_cond`)."""
        device = ctx.device
        gt = torch.stack([s.gt_actions for s in data_samples]).to(device).float()
        valid = torch.stack([s.action_mask for s in data_samples]).to(device).bool()
        has = [bool(s.metainfo.get('has_sensor', False)) for s in data_samples]
        weight = torch.tensor([float(s.metainfo.get('sensor_loss_weight', 1.0)) if h else 1.0
                               for s, h in zip(data_samples, has)], device=device)
        losses = self.action_head.loss(ctx, mask, self.action_normalizer.normalize(gt), valid,
                                       weight, query_cond=query_cond)
        n_sensor = sum(has)
        losses['sensor_samples'] = torch.tensor(float(n_sensor), device=device)
        losses['sensor_ratio'] = torch.tensor(n_sensor / len(data_samples), device=device)
        return losses
