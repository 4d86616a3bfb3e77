"""Argoverse 2 conversion on the real bundled scenario (data/av2), through the av2 package."""
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope

pytest.importorskip('av2')
pd = pytest.importorskip('pandas')

import projects  # noqa: E402
from projects.drive_distill.converters.av2 import convert_av2, convert_av2_scenario  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SID = '0a1e6f0a-1817-4a98-b02e-db8c9327d151'
SRC = osp.join(ROOT, 'data', 'av2')


@pytest.fixture(scope='module')
def converted():
    return convert_av2_scenario(osp.join(SRC, SID))


def test_shapes_rate_and_values_match_parquet(converted):
    sid, arr = converted
    assert sid == SID
    assert arr['ego_xy'].shape == (110, 2) and arr['ego_yaw'].shape == (110,)
    assert np.allclose(np.diff(arr['timestamps_ns']), 1e8)  # 10 Hz
    df = pd.read_parquet(osp.join(SRC, SID, f'scenario_{SID}.parquet'))
    focal = df[df['track_id'] == df['focal_track_id'].iloc[0]].sort_values('timestep')
    assert len(focal) == 110 and focal['observed'].sum() == 50  # 50 observed, 60 future
    assert np.allclose(arr['ego_xy'], focal[['position_x', 'position_y']].to_numpy())
    assert np.allclose(arr['ego_yaw'], focal['heading'].to_numpy())
    # every other track is an agent, valid exactly at its parquet time steps
    assert len(arr['agent_xy']) == df['track_id'].nunique() - 1
    assert arr['agent_valid'].sum() == len(df) - 110
    av = df[df['track_id'] == 'AV'].sort_values('timestep')
    dist = np.abs(arr['agent_xy'][:, av['timestep'].to_numpy()]
                  - av[['position_x', 'position_y']].to_numpy()[None]).max(axis=(1, 2))
    assert dist.min() < 1e-3  # the AV track is among the agents (float32 storage)
    # real vector map: lanes, boundaries, crossings, drivable area near the ego
    assert set(np.unique(arr['map_type'])) >= {0, 1, 3}
    assert len(arr['area_offsets']) > 1
    assert np.linalg.norm(arr['map_points'] - arr['ego_xy'][49], axis=1).min() < 5.0


def test_window_pipeline_and_student(tmp_path):
    assert convert_av2(SRC, str(tmp_path), split='val') == 1
    projects.register_all_modules()
    init_default_scope('projects')
    from projects.registry import DATASETS, MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs/drive_distill/av2_vector_unicycle.py'))
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.data_root = str(tmp_path)
    ds = DATASETS.build(ds_cfg)
    item = ds[0]
    hist, gt = item['data_samples']['hist_xy'], item['data_samples']['gt_traj']
    assert hist.shape == (50, 2) and gt.shape == (60, 3)
    assert torch.allclose(hist[-1], torch.zeros(2), atol=1e-5)
    _, arr = convert_av2_scenario(osp.join(SRC, SID))
    world = np.linalg.norm(arr['ego_xy'][50:] - arr['ego_xy'][49], axis=1)
    assert np.allclose(gt[:, :2].norm(dim=-1).numpy(), world, atol=1e-3)  # rigid transform
    assert item['inputs']['agent_feats'].shape[1:] == (50, 10)
    model = MODELS.build(cfg.model)
    losses = model(**default_collate([item]), mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())


def test_missing_map_file_is_named(tmp_path):
    dst = tmp_path / SID
    dst.mkdir()
    shutil.copy(osp.join(SRC, SID, f'scenario_{SID}.parquet'), dst)
    with pytest.raises(FileNotFoundError, match=f'log_map_archive_{SID}.json'):
        convert_av2_scenario(str(dst))
