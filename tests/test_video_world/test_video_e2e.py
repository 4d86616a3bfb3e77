"""End-to-end: tools/train.py, tools/test.py and tools/dist_train.sh on the bundled real
camera data (KITTI raw snippet, nuScenes CAM_FRONT keyframes) for a few iterations."""
import glob
import os.path as osp

import pytest

from tool_runner import run_tool, tool_env

SMALL = ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
         'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


@pytest.mark.slow
def test_kitti_raw_train_test_with_images_and_histograms(tmp_path):
    work = str(tmp_path / 'kitti')
    out = run_tool(['python', 'tools/train.py', 'configs/video_world/kitti_raw.py',
                    '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=2',
                    'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                    'custom_hooks.3.interval=2'] + SMALL, env=tool_env('1'))
    assert 'copy-last' in out and 'shuffled actions' in out, out[-3000:]
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
    pngs = glob.glob(osp.join(work, '*', 'vis_data', 'vis_image', '*rollout*.png'))
    assert any('train' in p for p in pngs) and any('val' in p for p in pngs), pngs
    events = glob.glob(osp.join(work, '*', 'vis_data', 'events.out.tfevents.*'))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(events[0], size_guidance={'images': 0, 'histograms': 0})
    acc.Reload()
    tags = acc.Tags()
    assert 'train_rollout' in tags['images'] and 'val_rollout' in tags['images']
    assert any(t.startswith('gradients/') for t in tags['histograms'])
    assert any(t.startswith('weights/') for t in tags['histograms'])
    assert 'video/psnr_mean' in tags['scalars'] and 'loss_pred' in tags['scalars']
    test_out = run_tool(['python', 'tools/test.py', 'configs/video_world/kitti_raw.py',
                         osp.join(work, 'iter_2.pth'), '--work-dir', work, '--cfg-options']
                        + SMALL, env=tool_env('1'))
    assert 'copy-last' in test_out and 'video/psnr_mean' in test_out


@pytest.mark.slow
def test_nuscenes_front_train_and_test(tmp_path):
    work = str(tmp_path / 'nusc')
    out = run_tool(['python', 'tools/train.py', 'configs/video_world/nuscenes_front.py',
                    '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=2',
                    'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2'] + SMALL,
                   env=tool_env('1'))
    assert 'Open-loop prediction on 2 clips' in out, out[-3000:]
    test_out = run_tool(['python', 'tools/test.py', 'configs/video_world/nuscenes_front.py',
                         osp.join(work, 'iter_2.pth'), '--work-dir', work, '--cfg-options']
                        + SMALL, env=tool_env('1'))
    assert 'copy-last' in test_out


@pytest.mark.slow
def test_seed_sized_config_runs_two_iterations_with_amp(tmp_path):
    """The real-user config (seed sizes: batch 16, AMP, accumulation 4) builds and trains 2
    iterations on the CPU with a small batch, short clips and 32 x 32 frames (the model keeps
    the seed's sizes)."""
    work = str(tmp_path / 'seed')
    out = run_tool(['python', 'tools/train.py', 'configs/video_world/seed_base.py', '--amp',
                    '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=2',
                    'train_cfg.val_interval=1000', 'train_dataloader.batch_size=1',
                    'train_dataloader.dataset.sequence_length=3',
                    'train_dataloader.pin_memory=False',
                    # bf16 autocast is slow on CPUs without bf16 units: 32 x 32 frames and
                    # no final validation keep the two iterations cheap.
                    'train_dataloader.dataset.pipeline.2.size=[32,32]',
                    'train_cfg.val_begin=1000',
                    # 85 M parameters: a last checkpoint with the AdamW state is ~1 GB of
                    # writing, not what this test checks.
                    'default_hooks.checkpoint.save_last=False'] + SMALL,
                   env=tool_env('1'))
    assert 'CPUBf16OptimWrapper' in out and 'Iter(train) [2/2]' in out, out[-3000:]
    assert 'accumulative_counts=4' in out  # the seed's accumulation is kept


@pytest.mark.slow
def test_dist_train_two_processes(tmp_path, free_port):
    work = str(tmp_path / 'dist')
    out = run_tool(['bash', 'tools/dist_train.sh', 'configs/video_world/kitti_raw.py', '2',
                    '--work-dir', work, '--cfg-options', 'train_cfg.max_iters=2',
                    'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2'] + SMALL,
                   env=tool_env('1', port=free_port))
    assert osp.isfile(osp.join(work, 'iter_2.pth')), out[-3000:]
    assert 'Distributed training: True' in out
