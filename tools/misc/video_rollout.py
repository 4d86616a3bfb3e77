"""Write open-loop rollouts of a trained video world model: predicted frames and a GIF of the
ground truth beside the prediction.

Usage:
    python tools/misc/video_rollout.py CONFIG CHECKPOINT [--out-dir DIR] [--num-clips N]
        [--split val|test] [--fps 4] [--overwrite] [--cfg-options k=v ...]

For each of the first N clips of the split's dataloader, writes into ``<out-dir>/<clip>/``:
``pred_XX.png`` (each predicted frame), ``side_by_side_XX.png`` (ground truth | prediction)
and ``rollout.gif`` (the whole clip: observed frames, then ground truth beside prediction).
Existing outputs are not overwritten without ``--overwrite``.
"""
import argparse
import os
import os.path as osp
import re
import sys

import numpy as np
import torch
from mmengine.config import Config, DictAction

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import projects  # noqa: E402


def parse_args(argv=None):
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description='Video world model rollouts to PNG / GIF')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out-dir', default='work_dirs/video_rollout')
    p.add_argument('--num-clips', type=int, default=4)
    p.add_argument('--split', choices=['val', 'test'], default='val')
    p.add_argument('--fps', type=float, default=4.0)
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def _u8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def main(argv=None):
    """Run the model on the first clips and write the files."""
    args = parse_args(argv)
    from PIL import Image
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, load_checkpoint

    from projects.common.utils.io import atomic_write
    projects.register_all_modules()
    init_default_scope('projects')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    from projects.registry import MODELS
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    loader_cfg = cfg[f'{args.split}_dataloader']
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader = Runner.build_dataloader(loader_cfg)
    written = 0
    for batch in loader:
        with torch.no_grad():
            samples = model.test_step(batch)
        for s in samples:
            if written >= args.num_clips:
                break
            name = re.sub(r'[^A-Za-z0-9_.@-]+', '_', s.metainfo.get('clip_id', str(written)))
            out = osp.join(args.out_dir, name)
            if osp.exists(out) and os.listdir(out) and not args.overwrite:
                sys.exit(f'video_rollout.py: {out} exists; pass --overwrite to replace it')
            os.makedirs(out, exist_ok=True)
            c = int(s.num_context)
            gt = [_u8(f) for f in s.gt_frames]
            pred = [_u8(f) for f in s.pred_frames]
            gif = []
            for i, g in enumerate(gt):
                right = g if i < c else pred[i - c]
                pair = np.concatenate([g, np.full((g.shape[0], 2, 3), 255, np.uint8), right], 1)
                gif.append(Image.fromarray(pair))
                if i >= c:
                    k = i - c + 1
                    atomic_write(osp.join(out, f'pred_{k:02d}.png'),
                                 lambda p, a=pred[i - c]: Image.fromarray(a).save(p))
                    atomic_write(osp.join(out, f'side_by_side_{k:02d}.png'),
                                 lambda p, im=gif[-1]: im.save(p))
            atomic_write(osp.join(out, 'rollout.gif'),
                         lambda p: gif[0].save(p, save_all=True, append_images=gif[1:],
                                               duration=int(1000 / args.fps), loop=0))
            print(f'{out}: {len(pred)} predicted frames, rollout.gif', flush=True)
            written += 1
        if written >= args.num_clips:
            break


if __name__ == '__main__':
    main()
