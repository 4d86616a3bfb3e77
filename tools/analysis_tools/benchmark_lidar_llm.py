"""Training throughput of a LiDAR-Vision LLM config: tokens/s, peak memory, padding.

Usage::

    python tools/analysis_tools/benchmark_lidar_llm.py CONFIG [--iters 5] [--warmup 1]
        [--sampler length|sample|random] [--pad-batches 200] [--cfg-options k=v ...]

Runs ``--warmup`` + ``--iters`` optimizer steps of the config's model on its training
dataloader and prints: training tokens/s (every non-pad position of the LLM input, sensor
tokens included, of both the model and the text-only twin), supervised answer tokens/s,
s/iter, peak memory (CUDA max allocated, or the process's peak RSS on CPU), and the
padded-token fraction per batch (pad positions / all positions of the LLM input) over
``--pad-batches`` batches for the config's sampler and for plain random batches (text only,
no model run).
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


def pad_fraction(model, dataset, order, batch_size, n_batches):
    """Pad fraction of the LLM inputs of consecutive batches of ``order``."""
    fr = []
    n_sensor = 0
    if model.vat_lidar is not None:
        n_sensor += model.vat_lidar.n_queries
    if model.vat_vision is not None:
        n_sensor += model.vat_vision.n_queries
    for b in range(min(n_batches, len(order) // batch_size)):
        lens = []
        for i in order[b * batch_size:(b + 1) * batch_size]:
            info = dataset.get_data_info(int(i))
            ids = model.tokenizer(model.build_prompt(info['question']),
                                  add_special_tokens=False).input_ids
            lens.append(len(ids) + n_sensor + len(model.answer_ids(info['answer'])))
        fr.append(1.0 - sum(lens) / (max(lens) * len(lens)))
    return float(np.mean(fr)), float(np.max(fr))


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
    from projects.registry import DATA_SAMPLERS, DATASETS, MODELS
    dl = cfg.train_dataloader
    dataset = DATASETS.build(dl.dataset)
    model = MODELS.build(cfg.model)
    model.init_weights()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model.to(device).train()
    bs = dl.batch_size
    sampler_cfg = dict(dl.sampler)
    sampler_cfg.setdefault('dataset', dataset)
    if 'batch_size' in sampler_cfg or sampler_cfg['type'] in ('LengthGroupedSampler',
                                                               'SampleGroupedSampler'):
        sampler_cfg.setdefault('batch_size', bs)
    sampler = DATA_SAMPLERS.build(sampler_cfg)
    order = list(iter(sampler))
    mean_pad, max_pad = pad_fraction(model, dataset, order, bs, args.pad_batches)
    rnd = np.random.default_rng(0).permutation(len(dataset))
    rmean, rmax = pad_fraction(model, dataset, rnd, bs, args.pad_batches)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = answers = 0
    t0 = None
    for it in range(args.warmup + args.iters):
        if it == args.warmup:
            if device == 'cuda':
                torch.cuda.synchronize()
            t0 = time.time()
            tokens = answers = 0
        batch = pseudo_collate([dataset[int(i)] for i in order[it * bs:(it + 1) * bs]])
        data = model.data_preprocessor(batch, True)
        losses = model(data['inputs'], data['data_samples'], mode='loss')
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        for llm, with_s in ((model.llm, True), (model.llm_text_only, False)):
            if llm is None:
                continue
            sensors = {} if not with_s else {k: v.detach() for k, v in
                                             model.sensor_tokens(data['inputs']).items()}
            _, mask, labels = model._embed_batch(
                llm, [model.build_prompt(s.question, with_s) for s in data['data_samples']],
                sensors, [s.answer for s in data['data_samples']])
            tokens += int(mask.sum())
            answers += int((labels != -100).sum())
    if device == 'cuda':
        torch.cuda.synchronize()
    dt = time.time() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device == 'cuda' else
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(f'config: {args.config}  device: {device}  batch: {bs}  timed iterations: '
          f'{args.iters}')
    print(f'training tokens/s (LLM inputs, both models): {tokens / dt:.1f}  '
          f'supervised answer tokens/s: {answers / dt:.1f}  s/iter: {dt / args.iters:.2f}')
    print(f'peak memory: {peak:.2f} GiB ({"CUDA allocated" if device == "cuda" else "RSS"})')
    print(f'padded-token fraction per batch ({sampler_cfg["type"]}, {args.pad_batches} '
          f'batches): mean {100 * mean_pad:.1f} %, max {100 * max_pad:.1f} %')
    print(f'padded-token fraction per batch (random batches): mean {100 * rmean:.1f} %, '
          f'max {100 * rmax:.1f} %')


if __name__ == '__main__':
    main()
