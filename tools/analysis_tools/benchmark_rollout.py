"""Benchmark AerialWorld's autoregressive rollout: key / value cache vs whole window per step.

Builds the model of CONFIG (optionally loads CHECKPOINT), tokenizes ``--windows`` real
training windows of its train split and times ``OccWorldTransformer.generate`` on their
history, old (``use_cache=False``: every step runs the whole window through the blocks) and
new (``use_cache=True``: each new frame only, over cached keys / values) in one run,
alternating the two ``--repeats`` times. Prints seconds per rollout of each, the ratio, and
whether the two give the same codes (they should; float rounding may flip a near-tie).

Usage:
    python tools/analysis_tools/benchmark_rollout.py configs/test_local.py
        [--checkpoint CKPT] [--batch-size 2] [--repeats 3] [--threads N]
"""
import argparse
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import projects  # noqa: E402,F401
from projects.registry import DATASETS, MODELS  # noqa: E402


def main(argv=None) -> dict:
    """Run the benchmark; returns ``{'old': s, 'new': s, 'same_codes': bool}``."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--checkpoint')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
        model.load_state_dict(state.get('state_dict', state))
    model.eval()
    data = DATASETS.build(cfg.train_dataloader.dataset)
    batch = model.data_preprocessor(
        pseudo_collate([data[i] for i in range(args.batch_size)]), False)
    occ, poses = model._unpack(batch['inputs'])
    hist, fut = model.num_history, model.num_future
    motion = model.pose_codec.frame_motion(poses)[:, :hist]
    with torch.no_grad():
        tokens = model._tokenize_sequence(occ[:, :hist])
    net, codebook = model.transformer, model.tokenizer.codebook
    times = {'old': [], 'new': []}
    codes = {}
    for _ in range(args.repeats):
        for name, cache in (('old', False), ('new', True)):
            start = time.perf_counter()
            codes[name] = net.generate(tokens, motion, codebook, fut, use_cache=cache)[0]
            times[name].append(time.perf_counter() - start)
    old, new = min(times['old']), min(times['new'])
    same = torch.equal(codes['old'], codes['new'])
    print(f'{args.config}: rollout of {fut} steps from {hist} frames, batch '
          f'{args.batch_size}, {torch.get_num_threads()} threads, best of {args.repeats}')
    print(f'| rollout | s per rollout |\n|---|---|\n| old (whole window per step) | {old:.3f} |'
          f'\n| new (key / value cache) | {new:.3f} |\n| old / new | {old / new:.2f}x |')
    print(f'same codes: {same}')
    return dict(old=old, new=new, same_codes=same)


if __name__ == '__main__':
    main()
