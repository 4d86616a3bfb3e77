"""Fill the VL feature cache of a sensor VLA config (the seed's ``--mode cache``).

Runs the config's frozen VL backbone over every sample of the train / val / test datasets
and stores the features under content-hash keys (``projects/sensor_vla/cache.py``: atomic
writes under a lock, size limit with LRU eviction, corrupted entries recomputed and counted).
Shard with torchrun: each rank takes every ``WORLD_SIZE``-th sample.

Example:
    python tools/misc/build_vl_cache.py configs/sensor_vla/bridge_tiny.py
    torchrun --nproc_per_node=4 tools/misc/build_vl_cache.py CONFIG
"""
import argparse
import os
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from projects.registry import DATASETS, MODELS  # noqa: E402


def build_policy(cfg):
    """The model whose backbone + cache are used (the first variant of a comparison)."""
    model = MODELS.build(cfg.model)
    return model.main if hasattr(model, 'main') else model


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--splits', nargs='+', default=['train', 'val', 'test'])
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    a = p.parse_args()
    cfg = Config.fromfile(a.config)
    if a.cfg_options:
        cfg.merge_from_dict(a.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    rank, world = int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1))
    torch.manual_seed(cfg.get('randomness', {}).get('seed', 0) or 0)
    model = build_policy(cfg).eval()
    if model.vl.trains:
        raise SystemExit(f'the VL backbone trains (finetune_vl={model.vl.finetune_vl!r}): its '
                         f'features change every step, so the cache is bypassed; nothing to do')
    if model.vl_cache is None:
        raise SystemExit('the config has no model.vl_cache (cache_dir, max_bytes)')
    seen = set()
    for split in a.splits:
        key = f'{split}_dataloader'
        if key not in cfg or cfg[key] is None:
            continue
        ds_cfg = cfg[key]['dataset']
        if id(ds_cfg) in seen:
            continue
        seen.add(id(ds_cfg))
        ds = DATASETS.build(ds_cfg)
        idx = list(range(rank, len(ds), world))
        t0 = time.time()
        for s in range(0, len(idx), a.batch_size):
            items = [ds[i] for i in idx[s:s + a.batch_size]]
            images = torch.stack([it['inputs']['images'] for it in items])
            instr = [it['data_samples'].metainfo['instruction'] for it in items]
            with torch.no_grad():
                model.vl_features(images, instr)
            done = min(s + a.batch_size, len(idx))
            eta = (time.time() - t0) / done * (len(idx) - done)
            print(f'[build_vl_cache] rank {rank} {split}: {done}/{len(idx)} samples, '
                  f'ETA {eta:.0f} s', flush=True)
    print(f'[build_vl_cache] rank {rank}: {model.vl_cache.report()}')


if __name__ == '__main__':
    main()
