"""Side-by-side training of several fusion strategies on the same batches."""
import copy
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModel

from projects.registry import MODELS

from ..structures import VLADataSample

__all__ = ['FusionComparison']


@MODELS.register_module()
class FusionComparison(BaseModel):
    """Several :class:`SensorVLA` policies that differ only in ``fusion.strategy``, trained
    together on identical batches, so one run yields one table comparing them.

    The frozen VL backbone (and its feature cache) is built once and shared: the variants get
    the same VL tokens, then each runs its own sensor encoder, fusion and action head, with
    separate parameters and an equal share of the summed loss. The VL backbone must be
    frozen (``finetune_vl='none'``) so that no variant's loss changes another variant's
    input. Losses are logged per variant (``<strategy>.loss_l1``); :meth:`forward` with
    ``mode='predict'`` puts the first variant's chunk into ``pred_actions`` and every
    variant's into the metainfo key ``pred_variants`` (read by ``ActionMetric``).

    Args:
        policy (dict): A ``SensorVLA`` config (its ``fusion.strategy`` is replaced).
        strategies (Sequence[str]): Fusion strategies to compare. Defaults to
            ('concat', 'cross_attention', 'gated', 'none').
        data_preprocessor (dict, optional): Defaults to ``VLADataPreprocessor``.

    Raises:
        ValueError: When the policy's VL backbone trains, or strategies repeat.
    """

    def __init__(self, policy: dict, strategies: Sequence[str] = ('concat', 'cross_attention',
                                                                  'gated', 'none'),
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        dp = data_preprocessor or dict(type='VLADataPreprocessor')
        super().__init__(data_preprocessor=MODELS.build(dp) if isinstance(dp, dict) else dp,
                         init_cfg=init_cfg)
        if len(set(strategies)) != len(strategies):
            raise ValueError(f'FusionComparison: repeated strategies {list(strategies)}')
        if policy['vl_backbone'].get('finetune_vl', 'lora') != 'none':
            raise ValueError("FusionComparison shares one frozen VL backbone: set "
                             "model.policy.vl_backbone.finetune_vl='none'")
        self.strategies = list(strategies)
        self.variants = nn.ModuleDict()
        for i, st in enumerate(self.strategies):
            cfg = copy.deepcopy(dict(policy))
            cfg['type'] = 'SensorVLA'
            cfg['fusion'] = dict(cfg.get('fusion') or {}, strategy=st)
            if i > 0:
                cfg.pop('vl_cache', None)
            self.variants[st] = MODELS.build(cfg)
            if i > 0:  # share the frozen backbone (not a second copy)
                del self.variants[st].vl
                object.__setattr__(self.variants[st], 'vl', self.variants[self.strategies[0]].vl)

    @property
    def main(self):
        """The first variant (owns the VL backbone and the cache)."""
        return self.variants[self.strategies[0]]

    @property
    def vl(self):
        return self.main.vl

    @property
    def vl_cache(self):
        return self.main.vl_cache

    def forward(self, inputs: dict, data_samples: Optional[List[VLADataSample]] = None,
                mode: str = 'tensor'):
        """See :class:`SensorVLA`; ``'tensor'`` returns ``{strategy: (B, H, A)}``."""
        instructions = [str(s.metainfo.get('instruction', '')) for s in data_samples]
        tokens, mask = self.main.vl_features(inputs['images'], instructions)
        if mode == 'loss':
            out: Dict[str, torch.Tensor] = {}
            for st in self.strategies:
                v = self.variants[st]
                ctx, cmask = v.fuse(tokens, mask, inputs)
                for k, val in v.loss(ctx, cmask, data_samples).items():
                    if k.startswith('loss'):
                        out[f'{st}.{k}'] = val / len(self.strategies)
                    else:
                        out[k] = val
            return out
        preds = {}
        for st in self.strategies:
            v = self.variants[st]
            ctx, cmask = v.fuse(tokens, mask, inputs)
            preds[st] = v.action_head.predict(ctx, cmask)
        if mode == 'tensor':
            return preds
        raw = {st: self.variants[st].action_normalizer.denormalize(z) for st, z in preds.items()}
        for i, s in enumerate(data_samples):
            s.pred_actions = raw[self.strategies[0]][i].detach()
            s.set_metainfo(dict(pred_variants={st: raw[st][i].detach().cpu()
                                               for st in self.strategies}))
        return data_samples
