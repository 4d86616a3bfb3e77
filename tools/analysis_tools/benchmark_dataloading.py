"""Benchmark AerialWorld data loading: samples/s and memory per sample.

Builds the dataset from a config (``configs/finetune_tokyo.py`` by default;
``--ann-file`` / ``--data-root`` override it) or, with ``--standalone`` or
when the config cannot be loaded, ``AerialWorldDataset`` with the default
pipeline (``LoadOccupancySequence`` -> ``LoadPoseSequence`` ->
``PackOccupancyInputs``). ``--synthetic DIR`` first writes synthetic
sessions in the on-disk format (200 x 200 x 121 uint8 grids by default) and
benchmarks those.

Reported:

* throughput: samples/s of a ``DataLoader`` with ``--num-workers`` workers
  (``pseudo_collate``, batch ``--batch-size``), each batch passed through
  ``OccupancyDataPreprocessor`` (to CUDA when available) with the dtype
  asserted to be uint8 end to end;
* memory per sample, measured in the main process (no workers) on
  ``--mem-samples`` windows:
  - ``sample size``: bytes of the packed tensors (what a batch holds);
  - ``peak during loading``: ``tracemalloc`` peak while producing one sample
    (numpy allocations are traced: the preallocated (T, X, Y, Z) uint8 array
    plus the transient decompressed frame and zip buffers);
  - ``RSS delta``: growth of the process resident set size (``VmRSS``)
    while one sample is alive;
* peak RSS of the main process and of the largest dataloader worker
  (``getrusage``), for the whole run.

Example::

    python tools/analysis_tools/benchmark_dataloading.py \\
        configs/finetune_tokyo.py --num-samples 50 --num-workers 2
    python tools/analysis_tools/benchmark_dataloading.py \\
        --synthetic /tmp/aw_bench --num-samples 40
"""
import argparse
import gc
import os.path as osp
import resource
import sys
import time
import tracemalloc

import numpy as np
import torch

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.fileio import dump  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from projects.aerialworld.datasets.session_io import (INDEX_FILES,  # noqa: E402
                                                      index_metainfo, make_session_dirs,
                                                      pose_json, write_frame, write_index)
from projects.aerialworld.datasets import (PLATEAU_CLASSES,  # noqa: E402
                                           AerialWorldDataset)
from projects.aerialworld.models.data_preprocessor import \
    OccupancyDataPreprocessor  # noqa: E402

MB = 1024.0**2
DEFAULT_CONFIG = osp.join(
    osp.dirname(__file__), '..', '..', 'configs', 'finetune_tokyo.py')


def parse_args():
    parser = argparse.ArgumentParser(
        description='Benchmark AerialWorld data loading')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help='config with a train/val dataloader')
    parser.add_argument('--split', choices=['train', 'val', 'test'],
                        default='train', help='which dataloader of the config')
    parser.add_argument('--ann-file', help='override the index file')
    parser.add_argument('--data-root', help='override the data root')
    parser.add_argument('--standalone', action='store_true',
                        help='ignore the config; default pipeline')
    parser.add_argument('--synthetic', metavar='DIR',
                        help='write synthetic sessions to DIR and use them')
    parser.add_argument('--synthetic-grid', type=int, nargs=3,
                        default=[200, 200, 121])
    parser.add_argument('--synthetic-sessions', type=int, default=2)
    parser.add_argument('--synthetic-frames', type=int, default=20)
    parser.add_argument('--num-history', type=int, default=4)
    parser.add_argument('--num-future', type=int, default=6)
    parser.add_argument('--num-samples', type=int, default=50,
                        help='samples loaded for the throughput measurement')
    parser.add_argument('--mem-samples', type=int, default=3,
                        help='samples measured one by one for memory')
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--target-mb', type=float, default=80.0,
                        help='memory target per sample (MB)')
    parser.add_argument('--json-out', help='also write the numbers as JSON')
    return parser.parse_args()


def write_synthetic_sessions(root, num_sessions=2, num_frames=20,
                             grid=(200, 200, 121), seed=0):
    """Write synthetic sessions in the AerialWorld on-disk format.

    Each frame is a city-like uint8 label grid (terrain / road floor, box
    buildings of random heights, a bridge slab, free space above) stored as
    a compressed ``.npz``; poses follow a straight flight at 30 m with a slow
    yaw. Returns the index path (``aerialworld_infos_train.pkl``).

    Args:
        root (str): Output data root.
        num_sessions (int): Number of sessions.
        num_frames (int): Frames per session.
        grid (Sequence[int]): ``(X, Y, Z)``.
        seed (int): Random seed.

    Returns:
        str: Path of the written index file.
    """
    rng = np.random.default_rng(seed)
    X, Y, Z = grid
    free = PLATEAU_CLASSES.index('free')
    data_list = []
    for s in range(num_sessions):
        name = f'drone_synthetic_{s:03d}'
        make_session_dirs(osp.join(root, name), lidar=False)
        # A static city map larger than the grid; frames are crops of it.
        W = X + 4 * num_frames
        heights = np.zeros((W, Y), dtype=np.int32)
        labels = np.full((W, Y), 4, dtype=np.uint8)  # terrain
        labels[:, Y // 2 - 5:Y // 2 + 5] = 3  # road
        for _ in range(W * Y // 900):
            x0, y0 = rng.integers(0, W - 20), rng.integers(0, Y - 20)
            w, d = rng.integers(5, 20, size=2)
            heights[x0:x0 + w, y0:y0 + d] = rng.integers(4, Z // 2)
            labels[x0:x0 + w, y0:y0 + d] = 1
        kz = np.arange(Z)[None, None, :]
        for t in range(num_frames):
            x = 4 * t
            h = heights[x:x + X][:, :, None]
            vol = np.where(kz < h, labels[x:x + X][:, :, None],
                           np.uint8(free)).astype(np.uint8)
            vol[:, :, 0] = labels[x:x + X]  # ground layer
            vol[:, Y // 2 - 5:Y // 2 + 5, 8] = 2  # bridge slab
            yaw = 0.01 * t
            pose = pose_json([1.6 * t, 0.0, 30.0, np.cos(yaw / 2), 0.0, 0.0,
                              np.sin(yaw / 2), 3.2, 0.0, 0.0, 0.0, 0.0, 0.02], 0.5 * t)
            data_list.append(write_frame(root, name, t, vol, None, pose))
    ann = osp.join(root, INDEX_FILES['train'])
    write_index(ann, index_metainfo(
        'synthetic', PLATEAU_CLASSES, free, [-40, -40, -2, 40, 40, 150], [0.4, 0.4, 1.25],
        grid, 'ground', 2.0, 'train', config_hash='synthetic', converter='benchmark_dataloading',
        converter_config=dict(num_sessions=num_sessions, num_frames=num_frames, seed=seed)),
        data_list)
    return ann


def default_pipeline():
    """The loading pipeline of the AerialWorld configs."""
    return [
        dict(type='LoadOccupancySequence'),
        dict(type='LoadPoseSequence'),
        dict(type='PackOccupancyInputs'),
    ]


def build_dataset(args):
    """Build the dataset from the config or standalone; returns it + a note."""
    cfg_ds = None
    note = 'standalone AerialWorldDataset with the default pipeline'
    if not args.standalone and not args.synthetic and osp.isfile(args.config):
        try:
            from mmengine.config import Config
            cfg = Config.fromfile(args.config)
            cfg_ds = dict(cfg[f'{args.split}_dataloader']['dataset'])
            note = f'{args.split} dataset of {args.config}'
        except Exception as err:  # config not usable: fall back
            print(f'[benchmark] could not use {args.config} ({err}); '
                  f'falling back to the standalone dataset')
    if cfg_ds is None:
        cfg_ds = dict(
            pipeline=default_pipeline(),
            num_history=args.num_history,
            num_future=args.num_future)
    cfg_ds.pop('type', None)
    if args.synthetic:
        cfg_ds['data_root'] = args.synthetic
        cfg_ds['ann_file'] = write_synthetic_sessions(
            args.synthetic, args.synthetic_sessions, args.synthetic_frames,
            tuple(args.synthetic_grid))
        note += f' on synthetic sessions in {args.synthetic}'
    if args.data_root:
        cfg_ds['data_root'] = args.data_root
    if args.ann_file:
        cfg_ds['ann_file'] = args.ann_file
    if 'ann_file' not in cfg_ds:
        raise SystemExit('benchmark_dataloading: no index file; pass a '
                         'config, --ann-file or --synthetic DIR')
    return AerialWorldDataset(**cfg_ds), note


def _rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def _sample_nbytes(sample):
    total = 0
    for v in sample['inputs'].values():
        if isinstance(v, torch.Tensor):
            total += v.element_size() * v.nelement()
        elif isinstance(v, (list, tuple)):
            total += sum(t.element_size() * t.nelement() for t in v)
    return total


def measure_memory(dataset, num):
    """Per-sample memory in the main process (see module docstring)."""
    sizes, peaks, rss = [], [], []
    for i in range(min(num, len(dataset))):
        gc.collect()
        rss0 = _rss_mb()
        tracemalloc.start()
        sample = dataset[i]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        occ = sample['inputs']['occupancy']
        assert occ.dtype == torch.uint8, occ.dtype
        rss.append(_rss_mb() - rss0)
        sizes.append(_sample_nbytes(sample) / MB)
        peaks.append(peak / MB)
        shape = tuple(occ.shape)
        del sample, occ
    return dict(sample_size_mb=float(np.mean(sizes)),
                tracemalloc_peak_mb=float(np.max(peaks)),
                rss_delta_mb=float(np.max(rss)), shape=shape)


def measure_throughput(dataset, num_samples, num_workers, batch_size):
    """Samples/s through DataLoader + OccupancyDataPreprocessor."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    pre = OccupancyDataPreprocessor().to(device)
    indices = [i % len(dataset) for i in range(num_samples)]
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=indices,
        num_workers=num_workers, collate_fn=pseudo_collate,
        pin_memory=device == 'cuda', persistent_workers=False)
    n = 0
    start = time.perf_counter()
    first = None
    for batch in loader:
        if first is None:
            first = time.perf_counter() - start
        for occ in batch['inputs']['occupancy']:
            assert occ.dtype == torch.uint8, occ.dtype
        out = pre(batch)
        assert out['inputs']['occupancy'].dtype == torch.uint8
        n += out['inputs']['occupancy'].shape[0]
    if device == 'cuda':
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return dict(samples=n, seconds=elapsed, samples_per_s=n / elapsed,
                first_batch_s=first, device=device)


def main():
    args = parse_args()
    dataset, note = build_dataset(args)
    print(f'[benchmark] {note}: {len(dataset)} windows of '
          f'{dataset.window_length} frames')
    mem = measure_memory(dataset, args.mem_samples)
    thr = measure_throughput(dataset, args.num_samples, args.num_workers,
                             args.batch_size)
    main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    child_peak = resource.getrusage(
        resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    per_sample = max(mem['sample_size_mb'], mem['tracemalloc_peak_mb'])
    print('\n=== AerialWorld data-loading benchmark ===')
    print(f'sample: occupancy uint8 {mem["shape"]} (T, X, Y, Z) + poses')
    print(f'throughput: {thr["samples_per_s"]:.2f} samples/s '
          f'({thr["samples"]} samples in {thr["seconds"]:.1f} s, '
          f'{args.num_workers} workers, batch {args.batch_size}, first batch '
          f'{thr["first_batch_s"]:.2f} s, preprocessor on {thr["device"]})')
    print(f'memory per sample: packed tensors {mem["sample_size_mb"]:.1f} MB;'
          f' peak while loading (tracemalloc) {mem["tracemalloc_peak_mb"]:.1f}'
          f' MB; RSS growth {mem["rss_delta_mb"]:.1f} MB')
    print(f'peak RSS: main process {main_peak:.0f} MB, largest worker '
          f'{child_peak:.0f} MB')
    print('method: memory measured in the main process, one sample at a '
          'time; tracemalloc traces numpy buffers (the preallocated uint8 '
          'window + transient decompressed frame); RSS growth = VmRSS after '
          '- before while the sample is alive; the dtype is asserted uint8 '
          'after packing, after collation and after the data preprocessor.')
    verdict = 'OK' if per_sample < args.target_mb else 'OVER TARGET'
    print(f'target < {args.target_mb:.0f} MB per sample: {per_sample:.1f} MB '
          f'-> {verdict}')
    if args.json_out:
        dump(dict(memory=mem, throughput=thr, main_peak_rss_mb=main_peak,
                  worker_peak_rss_mb=child_peak, note=note),
             args.json_out)
    return 0 if per_sample < args.target_mb else 1


if __name__ == '__main__':
    sys.exit(main())
