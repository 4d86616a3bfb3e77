"""Reconstruction quality of an AerialWorld VQ-VAE tokenizer on real frames.

The world model's forecasts can be no better than the tokenizer's reconstruction, so this is
the first number to check when the model does not beat the copy-last-frame baseline.

Usage:
    python tools/analysis_tools/eval_tokenizer_recon.py CONFIG CHECKPOINT [--split val|train]
        [--stride 6] [--cfg-options k=v ...]

Prints occupied-vs-free IoU and per-class IoU (in %) of encode -> quantise -> decode over the
first frame of every ``stride``-th window, plus the codebook usage.
"""
import argparse
import os.path as osp
import sys

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import projects  # noqa: E402,F401
from projects.registry import DATASETS, MODELS  # noqa: E402


def main():
    """Load the checkpoint, reconstruct frames, print IoU per class."""
    p = argparse.ArgumentParser(description='AerialWorld tokenizer reconstruction IoU')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--split', choices=['train', 'val', 'test'], default='val')
    p.add_argument('--stride', type=int, default=6, help='use every N-th window')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    if not osp.isfile(args.checkpoint):
        sys.exit(f'eval_tokenizer_recon.py: checkpoint {args.checkpoint!r} does not exist')
    model = MODELS.build(cfg.model)
    state = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    model.load_state_dict(state.get('state_dict', state), strict=False)
    model.eval()
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    num_classes, free = model.num_classes, model.free_label
    inter = np.zeros(num_classes + 1)
    union = np.zeros(num_classes + 1)
    codes = set()
    for k in range(0, len(dataset), max(args.stride, 1)):
        occ = dataset[k]['inputs']['occupancy'][:1].long()
        with torch.no_grad():
            idx = model.tokenizer.tokenize(occ)
            rec = model.tokenizer.decode_indices(idx).argmax(1)
        codes.update(idx.unique().tolist())
        gt_occ, pr_occ = occ != free, rec != free
        inter[-1] += (gt_occ & pr_occ).sum().item()
        union[-1] += (gt_occ | pr_occ).sum().item()
        for c in range(num_classes):
            inter[c] += ((occ == c) & (rec == c)).sum().item()
            union[c] += ((occ == c) | (rec == c)).sum().item()
    names = dataset.metainfo.get('classes', [str(c) for c in range(num_classes)])
    print(f'{args.split} windows used: {len(range(0, len(dataset), max(args.stride, 1)))}; '
          f'codebook usage {len(codes)}/{model.tokenizer.num_codes}')
    print(f'IoU (occupied vs free): {100 * inter[-1] / max(union[-1], 1):.2f}')
    for c in range(num_classes):
        if c != free and union[c] > 0:
            print(f'  IoU {names[c]:15s}: {100 * inter[c] / union[c]:.2f}')


if __name__ == '__main__':
    main()
