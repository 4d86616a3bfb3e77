"""Benchmark AerialWorld training steps: iterations/s and peak memory, optional profile.

Builds the model, the train dataset and an AdamW optimizer from a config, loads real
windows, and times ``model.train_step`` for each requested stage (tokenizer / world).

Usage:
    python tools/analysis_tools/benchmark_train_step.py configs/finetune_tokyo.py \
        [--stages tokenizer world] [--iters 3] [--warmup 1] [--batch-size 1] [--amp] \
        [--profile] [--device cpu|cuda] [--cfg-options k=v ...]

Default stages follow the config: the stages of its ``TwoStageTrainLoop`` that get iterations
(both for finetune_tokyo; ``vqvae_tokyo``: tokenizer, ``worldmodel_tokyo``: world). A
``model.tokenizer_ckpt`` that does not exist yet is skipped with a message (timing does not depend on the tokenizer weights). Every stage also prints a
``RESULT {json}`` line; ``benchmark_configs.py`` collects them into a table.

Peak memory: process peak RSS (``resource.getrusage``; it includes the dataset and the Python
runtime) on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA. ``--profile`` prints the
operators that took the most time (``torch.profiler``) for one step of each stage.
"""
import argparse
import json
import os.path as osp
import resource
import sys
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import projects  # noqa: E402,F401
from projects.registry import DATASETS, MODELS  # noqa: E402


def parse_args():
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description='Benchmark AerialWorld training steps')
    p.add_argument('config')
    p.add_argument('--stages', nargs='+', default=None,
                   choices=['tokenizer', 'world', 'joint'],
                   help='stages to time (default: the stages the config trains)')
    p.add_argument('--iters', type=int, default=3, help='timed iterations per stage')
    p.add_argument('--warmup', type=int, default=1, help='untimed iterations per stage')
    p.add_argument('--batch-size', type=int, default=None)
    p.add_argument('--amp', action='store_true', help='mixed precision like tools/train.py')
    p.add_argument('--profile', action='store_true', help='print a torch.profiler table')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args()


def peak_memory_mb(device):
    """Peak memory in MiB (CUDA allocator peak, or the process peak RSS on the CPU)."""
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config_stages(cfg):
    """Stages a config trains: those of its ``TwoStageTrainLoop`` that get iterations."""
    from projects.common.engine import stage_schedule
    schedule = stage_schedule(cfg)
    if schedule is None:
        return [cfg.model.get('train_stage', 'world')]
    first, second = schedule['stages']
    stages = [first] if schedule['switch_iter'] > 0 else []
    return stages + ([second] if schedule['switch_iter'] < cfg.train_cfg.max_iters else [])


def main():
    """Run the benchmark and print one line per stage."""
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    stages = args.stages or config_stages(cfg)
    ckpt = cfg.model.get('tokenizer_ckpt')
    if ckpt and not osp.isfile(ckpt):
        print(f'model.tokenizer_ckpt={ckpt!r} does not exist: timing with an untrained '
              'tokenizer (pass --cfg-options model.tokenizer_ckpt=... to load one)')
        cfg.model.tokenizer_ckpt = None
    if args.amp:
        from projects.common.engine.launch import apply_amp
        print(apply_amp(cfg))
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    model = MODELS.build(cfg.model).to(args.device)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    n = len(dataset)
    print(f'{args.config}: grid {tuple(model.tokenizer.grid_size)}, T = '
          f'{model.num_history + model.num_future}, batch {batch_size}, device {args.device}, '
          f'{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, '
          f'torch threads {torch.get_num_threads()}')
    for stage in stages:
        model.set_stage(stage)
        model.train()
        times = []
        for it in range(args.warmup + args.iters):
            batch = pseudo_collate([dataset[(it * batch_size + k) % n] for k in range(batch_size)])
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            start = time.perf_counter()
            log_vars = model.train_step(batch, optim_wrapper)
            if args.device.startswith('cuda'):
                torch.cuda.synchronize()
            if it >= args.warmup:
                times.append(time.perf_counter() - start)
        mean = sum(times) / len(times)
        loss = log_vars['loss']
        loss = float(loss.detach()) if torch.is_tensor(loss) else float(loss)
        print(f'stage {stage:9s}: {mean:.2f} s/iter ({1 / mean:.3f} it/s, min {min(times):.2f} '
              f's, {len(times)} iters), loss {loss:.4f}, peak memory '
              f'{peak_memory_mb(args.device):.0f} MiB')
        print('RESULT ' + json.dumps(dict(
            config=args.config, stage=stage, s_per_iter=round(mean, 3),
            min_s=round(min(times), 3), iters=len(times),
            peak_mib=round(peak_memory_mb(args.device)), device=args.device,
            grid=list(model.tokenizer.grid_size), batch_size=batch_size)))
        if args.profile:
            from torch.profiler import ProfilerActivity, profile
            activities = [ProfilerActivity.CPU]
            if args.device.startswith('cuda'):
                activities.append(ProfilerActivity.CUDA)
            batch = pseudo_collate([dataset[k % n] for k in range(batch_size)])
            with profile(activities=activities) as prof:
                model.train_step(batch, optim_wrapper)
            sort = 'self_cuda_time_total' if args.device.startswith('cuda') else \
                'self_cpu_time_total'
            print(prof.key_averages().table(sort_by=sort, row_limit=15))


if __name__ == '__main__':
    main()
