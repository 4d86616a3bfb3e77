"""Training-step throughput and peak memory of a sensor VLA config, with and without the VL
feature cache.

Each mode runs in its own subprocess (so peak memory is per mode): build the model and the
train dataset, fill the cache first (cached mode), then time ``--iters`` forward + backward +
AdamW steps after ``--warmup`` untimed ones. Peak memory: ``torch.cuda.max_memory_allocated``
on CUDA, else the process's peak resident set size (``ru_maxrss``).

Example:
    python tools/analysis_tools/benchmark_sensor_vla.py configs/sensor_vla/bridge_tiny.py
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root


def run_mode(config: str, mode: str, iters: int, warmup: int, batch_size: int) -> dict:
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from projects.registry import DATASETS, MODELS
    cfg = Config.fromfile(config)
    init_default_scope('projects')
    torch.manual_seed(0)
    mcfg = cfg.model
    policy_cfg = mcfg.policy if mcfg.type == 'FusionComparison' else mcfg
    if mode == 'uncached':
        policy_cfg.pop('vl_cache', None)
    else:
        policy_cfg.vl_cache = dict(cache_dir=tempfile.mkdtemp(prefix='vl_cache_bench_'),
                                   max_bytes=None)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = MODELS.build(mcfg).to(device).train()
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    n = warmup + iters
    batches = [[ds[(i * batch_size + j) % len(ds)] for j in range(batch_size)] for i in range(n)]
    if mode == 'cached':  # fill the cache first (what build_vl_cache.py does)
        for b in batches:
            data = model.data_preprocessor(dict(inputs=[x['inputs'] for x in b],
                                                data_samples=[x['data_samples'] for x in b]))
            with torch.no_grad():
                (model.main if hasattr(model, 'main') else model).vl_features(
                    data['inputs']['images'],
                    [s.metainfo['instruction'] for s in data['data_samples']])
    t0 = None
    for i, b in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
            if device == 'cuda':
                torch.cuda.reset_peak_memory_stats()
        data = model.data_preprocessor(dict(inputs=[x['inputs'] for x in b],
                                            data_samples=[x['data_samples'] for x in b]), True)
        losses = model(**data, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(mode=mode, samples_per_s=iters * batch_size / dt, s_per_iter=dt / iters,
                peak_mem_mib=peak, device=device)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--mode', choices=['cached', 'uncached'], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.mode:
        print('RESULT ' + json.dumps(run_mode(a.config, a.mode, a.iters, a.warmup,
                                              a.batch_size)))
        return
    rows = []
    for mode in ('uncached', 'cached'):
        out = subprocess.run([sys.executable, __file__, a.config, '--mode', mode, '--iters',
                              str(a.iters), '--warmup', str(a.warmup), '--batch-size',
                              str(a.batch_size)], capture_output=True, text=True,
                             env=dict(os.environ))
        line = [ln for ln in out.stdout.splitlines() if ln.startswith('RESULT ')]
        if out.returncode or not line:
            raise SystemExit(f'{mode} run failed:\n{out.stderr[-3000:]}')
        rows.append(json.loads(line[0][7:]))
    print(f'{a.config}: batch {a.batch_size}, {a.iters} timed iterations, '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")}, '
          f'load average {os.getloadavg()[0]:.1f}')
    print(f'{"mode":<10}{"samples/s":>11}{"s/iter":>9}{"peak MiB":>10}  device')
    for r in rows:
        print(f'{r["mode"]:<10}{r["samples_per_s"]:>11.2f}{r["s_per_iter"]:>9.3f}'
              f'{r["peak_mem_mib"]:>10.0f}  {r["device"]}')


if __name__ == '__main__':
    main()
