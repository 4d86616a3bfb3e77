"""Head-only check of AerialWorld's moving-agent head on a trained checkpoint.

Usage:
    python tools/analysis_tools/train_agent_motion_head.py CONFIG CHECKPOINT OUT_DIR
        [--iters 400] [--batch-size 4] [--lr 2e-3] [--keep-head] [--reveal-keep]
        [--agent-flow {model,static,tracked,best-stay-go,true}] [--cfg-options k=v ...]
        [--overwrite]

Loads CHECKPOINT (an ``AerialWorld`` of CONFIG trained to the world stage) with its
tokenizer, world model and pose branch frozen, trains only ``model.agent_motion`` (a fresh
one built from CONFIG, e.g. with ``--cfg-options model.agent_motion.flow_residual=False``;
with ``--keep-head`` the checkpoint's own head, trained on) for ``--iters`` iterations on the
train split (AdamW, one-cycle schedule), then evaluates the val split with CONFIG's evaluator.
``--iters 0`` evaluates without training; ``--reveal-keep`` makes the reveal gate always keep
the last frame's column (with an untrained head and ``velocity_prior`` this is the no-learning
"CV-warp + tracked agents" forecast in the model rows). ``--agent-flow`` replaces the head's
agent flow in the evaluation, to bound what an agent forecast can add: ``static`` (agents
stay), ``tracked`` (the tracked constant velocity, no gate; needs ``velocity_prior``),
``best-stay-go`` (the tracked velocity with, per cell and step, the better of going on and
stopping chosen by looking at the true future: what a perfect continue gate would reach) and
``true`` (the true agent flow of the val window: an upper bound of any agent forecast).

This is how the head variants of ``configs/README.md`` ("Which agent forecast") were
compared: minutes per variant instead of a full two-stage run.

Writes ``OUT_DIR/head.pth`` (the head's state dict, when trained) and ``OUT_DIR/metrics.json``
(every metric of the evaluator), each atomically; refuses to write into an OUT_DIR that has
them unless ``--overwrite``. Prints progress with an ETA every 50 iterations.
"""
import argparse
import itertools
import json
import os
import os.path as osp
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import projects  # noqa: E402,F401
from projects.registry import DATASETS, METRICS, MODELS  # noqa: E402


AGENT_FLOWS = ('model', 'static', 'tracked', 'best-stay-go', 'true')


def best_stay_go(tracked: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The tracked flow where going on ends closer to the truth than stopping, else zero.

    Args:
        tracked (torch.Tensor): ``(B, F, 2, X, Y)`` constant-velocity displacement (metres).
        target (torch.Tensor): ``(B, F, 2, X, Y)`` true displacement (metres).

    Returns:
        torch.Tensor: ``(B, F, 2, X, Y)``: ``tracked`` on the cells and steps where
        ``|tracked - target| < |target|``, zero elsewhere (an oracle continue gate).
    """
    go = (tracked - target).norm(dim=2, keepdim=True) < target.norm(dim=2, keepdim=True)
    return tracked * go.to(tracked.dtype)


def parse_args(argv=None):
    """Command-line arguments (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('out_dir')
    p.add_argument('--iters', type=int, default=400)
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--keep-head', action='store_true',
                   help="start from the checkpoint's agent_motion weights")
    p.add_argument('--reveal-keep', action='store_true',
                   help="the reveal gate always keeps the last frame's column")
    p.add_argument('--agent-flow', choices=AGENT_FLOWS, default='model',
                   help='agent flow used in the evaluation (see the module docstring)')
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def _atomic_write(path: str, write) -> None:
    tmp = path + '.tmp'
    write(tmp)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    """Run the head-only check; returns the evaluator's metrics.

    Raises:
        FileExistsError: If OUT_DIR already holds results and ``--overwrite`` is not given.
        ValueError: If the config has no ``model.agent_motion``.
    """
    args = parse_args(argv)
    outputs = [osp.join(args.out_dir, n) for n in ('head.pth', 'metrics.json')]
    if not args.overwrite and any(osp.exists(o) for o in outputs):
        raise FileExistsError(f'{args.out_dir} already holds head.pth / metrics.json; pass '
                              '--overwrite to replace them')
    os.makedirs(args.out_dir, exist_ok=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not cfg.model.get('agent_motion'):
        raise ValueError(f'{args.config}: model.agent_motion is not set (nothing to train)')
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model)
    state = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
    state = state.get('state_dict', state)
    if not args.keep_head:
        state = {k: v for k, v in state.items() if not k.startswith('agent_motion.')}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith('agent_motion.')]
    if missing or unexpected:
        raise ValueError(f'{args.checkpoint} does not fit {args.config}: missing {missing[:5]}'
                         f', unexpected {unexpected[:5]}')
    model.set_stage('world')
    head = model.agent_motion
    if args.iters > 0:
        train = DATASETS.build(cfg.train_dataloader.dataset)
        loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, num_workers=1,
                            collate_fn=pseudo_collate)
        opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.iters,
                                                    pct_start=0.06)
        batches = itertools.cycle(loader)
        model.train()
        start = time.time()
        for it in range(args.iters):
            data = model.data_preprocessor(next(batches), True)
            occ, poses = model._unpack(data['inputs'])
            losses = model._agent_motion_losses(occ, poses, data['inputs'])
            total = sum(v for k, v in losses.items() if k.startswith('loss') and v.requires_grad)
            opt.zero_grad()
            total.backward()
            opt.step()
            sched.step()
            if (it + 1) % 50 == 0 or it + 1 == args.iters:
                per = (time.time() - start) / (it + 1)
                logs = ' '.join(f'{k}: {float(v):.4f}' for k, v in losses.items())
                print(f'[{it + 1}/{args.iters}] {per:.2f} s/iter, ETA of training '
                      f'{per * (args.iters - it - 1):.0f} s  {logs}', flush=True)
        _atomic_write(outputs[0], lambda p: torch.save(head.state_dict(), p))
    model.eval()
    if args.reveal_keep:
        forward = head.forward

        def keep_forward(*inputs):
            out = forward(*inputs)
            if 'gate_logits' in out:
                out['gate_logits'] = torch.full_like(out['gate_logits'], 10.0)
            return out

        head.forward = keep_forward
    truth = {}
    if args.agent_flow != 'model':
        if args.agent_flow in ('tracked', 'best-stay-go') and not head.velocity_prior:
            raise ValueError(f'--agent-flow {args.agent_flow} needs '
                             'model.agent_motion.velocity_prior=True')
        flow_forward = head.forward

        def replaced_flow(*inputs):
            out = flow_forward(*inputs)
            if args.agent_flow == 'static':
                out['flow'] = torch.zeros_like(out['flow'])
            elif args.agent_flow == 'tracked':
                out['flow'] = out['tracked_flow']
            elif args.agent_flow == 'best-stay-go':
                out['flow'] = best_stay_go(out['tracked_flow'], truth['flow'])
            else:
                out['flow'] = truth['flow'].to(out['flow'].dtype)
            return out

        head.forward = replaced_flow
    val = DATASETS.build(cfg.val_dataloader.dataset)
    loader = DataLoader(val, batch_size=cfg.val_dataloader.get('batch_size', 4), shuffle=False,
                        num_workers=1, collate_fn=pseudo_collate)
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = val.metainfo
    start = time.time()
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if args.agent_flow in ('best-stay-go', 'true'):
                inputs = model.data_preprocessor(batch, False)['inputs']
                if 'agent_flow' not in inputs:
                    raise ValueError(f'--agent-flow {args.agent_flow}: the val pipeline of '
                                     f'{args.config} does not load agent_flow')
                flow = inputs['agent_flow']
                truth['flow'] = flow if isinstance(flow, torch.Tensor) else torch.stack(
                    list(flow))
            metric.process(batch, model.val_step(batch))
            if i == 0:
                print(f'validation: {len(loader)} batches, projected '
                      f'{(time.time() - start) * len(loader):.0f} s', flush=True)
    results = metric.compute_metrics(metric.results)
    results = {k: float(v) for k, v in results.items() if isinstance(v, (int, float))}
    def write_json(path):
        with open(path, 'w') as f:
            json.dump(results, f, indent=1)

    _atomic_write(outputs[1], write_json)
    print(f'validation {time.time() - start:.0f} s; metrics in {outputs[1]}')
    return results


if __name__ == '__main__':
    main()
