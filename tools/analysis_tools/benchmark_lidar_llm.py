"""Training throughput of a LiDAR-Vision LLM config: tokens/s, peak memory, padding.

Usage::

    python tools/analysis_tools/benchmark_lidar_llm.py CONFIG [--iters 5] [--warmup 1]
        [--pad-batches 200] [--cfg-options k=v ...]

Runs ``--warmup`` + ``--iters`` optimizer steps of the config's model on its training
dataloader and prints: training tokens/s (every non-pad position of the LLM input, sensor
tokens included, of both the model and the text-only twin), supervised answer tokens/s,
s/iter, peak memory (CUDA max allocated, or the process's peak RSS on CPU), and the
padded-token fraction per batch (pad positions / all positions of the LLM input) over
``--pad-batches`` batches for the config's sampler, the ``LengthGroupedSampler`` and plain
random batches (``DefaultSampler``), from the tokenised prompts (no model run). The timed
steps use plain AdamW on the trainable parameters (the config's learning rates do not
change the cost).
"""
import argparse
import os.path as osp
import resource
import sys
import time

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def row_lengths(model, dataset, indices, with_sensors=True):
    """LLM input length (prompt + sensor tokens + answer + end of turn) of each row."""
    n_sensor = 0
    if with_sensors and model.vat_lidar is not None:
        n_sensor += model.vat_lidar.n_queries
    if with_sensors and model.vat_vision is not None:
        n_sensor += model.vat_vision.n_queries
    lens = []
    for i in indices:
        info = dataset.get_data_info(int(i))
        ids = model.tokenizer(model.build_prompt(info['question'], with_sensors),
                              add_special_tokens=False).input_ids
        lens.append(len(ids) + n_sensor + len(model.answer_ids(info['answer'])))
    return lens


def pad_fraction(model, dataset, batches):
    """Mean and max over ``batches`` of pad positions / all positions of the (left-padded)
    LLM input of the model with sensor tokens."""
    fr = []
    for b in batches:
        lens = row_lengths(model, dataset, b)
        fr.append(1.0 - sum(lens) / (max(lens) * len(lens)))
    return float(np.mean(fr)), float(np.max(fr))


def sampler_batches(sampler_cfg, dataset, batch_size, n_batches):
    """The first ``n_batches`` batches of a sampler built from ``sampler_cfg``."""
    from projects.registry import DATA_SAMPLERS
    cfg = dict(sampler_cfg, dataset=dataset)
    if cfg['type'] in ('LengthGroupedSampler', 'SampleGroupedSampler'):
        cfg['batch_size'] = batch_size
    order = list(iter(DATA_SAMPLERS.build(cfg)))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)][:n_batches]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('--iters', type=int, default=5)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--pad-batches', type=int, default=200)
    ap.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = ap.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    import projects.lidar_llm  # noqa: F401
    from projects.registry import DATASETS, MODELS
    dl = cfg.train_dataloader
    dataset = DATASETS.build(dl.dataset)
    model = MODELS.build(cfg.model)
    model.init_weights()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model.to(device).train()
    bs = dl.batch_size
    samplers = [dict(dl.sampler)]
    for extra in (dict(type='LengthGroupedSampler', shuffle=True, seed=0),
                  dict(type='DefaultSampler', shuffle=True, seed=0)):
        if extra['type'] != samplers[0]['type']:
            samplers.append(extra)
    pads = [(s['type'], pad_fraction(model, dataset, sampler_batches(
        s, dataset, bs, args.pad_batches))) for s in samplers]
    train_batches = sampler_batches(samplers[0], dataset, bs, args.warmup + args.iters)
    if len(train_batches) < args.warmup + args.iters:
        raise ValueError(f'{args.config}: the training set has only {len(train_batches)} '
                         f'batches of {bs}; lower --iters / --warmup')
    # tokens of the timed steps, from the same prompts the model builds (counted up front)
    timed = train_batches[args.warmup:]
    tokens = sum(sum(row_lengths(model, dataset, b)) for b in timed)
    if model.llm_text_only is not None:
        tokens += sum(sum(row_lengths(model, dataset, b, False)) for b in timed)
    answers = sum(len(model.answer_ids(dataset.get_data_info(int(i))['answer']))
                  for b in timed for i in b) * (2 if model.llm_text_only is not None else 1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    t0 = None
    for it, b in enumerate(train_batches):
        if it == args.warmup:
            if device == 'cuda':
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.time()
        data = model.data_preprocessor(pseudo_collate([dataset[int(i)] for i in b]), True)
        loss = sum(model(data['inputs'], data['data_samples'], mode='loss').values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device == 'cuda':
        torch.cuda.synchronize()
    dt = time.time() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device == 'cuda' else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(f'config: {args.config}  device: {device}  batch: {bs}  timed iterations: '
          f'{args.iters} (after {args.warmup} warm-up)  threads: {torch.get_num_threads()}')
    print(f'training tokens/s (LLM inputs, sensor tokens included, both models): '
          f'{tokens / dt:.1f}  supervised answer tokens/s: {answers / dt:.1f}  '
          f's/iter: {dt / args.iters:.2f}')
    print(f'peak memory: {peak:.2f} GiB ({"CUDA allocated" if device == "cuda" else "RSS"})')
    for name, (mean, mx) in pads:
        tag = ' (config)' if name == samplers[0]['type'] else ''
        print(f'padded-token fraction per batch, {name}{tag}: mean {100 * mean:.1f} %, '
              f'max {100 * mx:.1f} % ({args.pad_batches} batches at most)')


if __name__ == '__main__':
    main()
