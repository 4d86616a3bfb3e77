"""tools/data_converter/merge_shards.py: shards → one index → one dataset."""
import os.path as osp
import sys

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import projects
from projects.drive_distill.converters.seed_format import write_shard

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'data_converter'))
DEMO = osp.join(ROOT, 'data', 'drive_distill', 'camera_demo', 'demo')


def test_merge_real_demo_shard_with_copies(tmp_path):
    import merge_shards
    with np.load(DEMO + '_frames.npz') as f:
        frames = f['frames']
    with np.load(DEMO + '_labels.npz') as f:
        labels = {k: f[k] for k in f.files}
    (tmp_path / 'shards').mkdir()
    for i in range(2):  # two more shards: the real sample with shifted ids
        lab = dict(labels, sample_id=np.array([f'copy{i}'] * len(frames)))
        write_shard(str(tmp_path / 'shards' / f's{i}'), frames, lab)
    out = str(tmp_path / 'index.pkl')
    num = merge_shards.main([out, DEMO, str(tmp_path / 'shards')])
    assert num == 3 * len(frames)
    projects.register_all_modules()
    init_default_scope('projects')
    from projects.registry import DATASETS
    ds = DATASETS.build(dict(type='DriveDistillDataset', data_root=str(tmp_path),
                             ann_file='index.pkl', pipeline=[
                                 dict(type='LoadSeedSample'),
                                 dict(type='PackDriveInputs', input_keys=('frames',))]))
    assert len(ds) == num
    item = ds[num - 1]
    assert item['inputs']['frames'].shape == frames.shape[1:]
    assert item['data_samples']['coc_embedding'].shape == (384,)
    assert item['data_samples']['sample_id'] == 'copy1'


def test_merge_errors_name_the_file(tmp_path):
    import merge_shards
    with pytest.raises(FileNotFoundError, match='no \\*_labels.npz shards in'):
        merge_shards.main([str(tmp_path / 'i.pkl'), str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='missing_frames.npz'):
        merge_shards.main([str(tmp_path / 'i.pkl'), str(tmp_path / 'missing')])
