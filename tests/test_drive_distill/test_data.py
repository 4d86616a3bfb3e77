"""Datasets, transforms and bad-input errors of the drive-distill data path."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import projects
from projects.drive_distill.converters.scenarionet import convert_scenario, repair_track_outliers
from projects.drive_distill.converters.seed_format import load_labels, merge_shards, write_shard

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCENE = osp.join(ROOT, 'data', 'scenarionet', 'sd_nuscenes_v1.0-mini_scene-0916.pkl')


def _labels(n):
    eye = np.repeat(np.eye(3)[None, None], 64, 1).repeat(n, 0)
    return dict(trajectory_xyz=np.zeros((n, 64, 3), np.float32), trajectory_rot=eye,
                coc_embeddings=np.zeros((n, 384), np.float32),
                ego_history_xyz=np.zeros((n, 16, 3), np.float32),
                ego_history_rot=np.repeat(np.eye(3)[None, None], 16, 1).repeat(n, 0))


def test_scenarionet_window_pipeline_real_scene():
    projects.register_all_modules()
    init_default_scope('projects')
    from projects.registry import DATASETS
    ds = DATASETS.build(dict(
        type='DriveDistillDataset', data_root=osp.join(ROOT, 'data/drive_distill/scenarionet'),
        ann_file='infos_val.pkl', test_mode=True, pipeline=[
            dict(type='LoadScenarioWindow'), dict(type='VectorizeScene'),
            dict(type='RasterizeScene'),
            dict(type='PackDriveInputs', input_keys=('agent_feats', 'agent_mask', 'map_feats',
                                                     'map_mask', 'raster'))]))
    item = ds[0]
    assert item['inputs']['raster'].shape == (6, 96, 96)
    assert item['inputs']['raster'][0].float().mean() > 0  # real lane polygons drawn
    assert item['inputs']['map_mask'].any()
    assert item['data_samples']['gt_traj'].shape == (64, 3)
    assert torch.allclose(item['data_samples']['hist_xy'][-1], torch.zeros(2), atol=1e-5)


def test_missing_label_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope_labels.npz'):
        load_labels(str(tmp_path / 'nope_labels.npz'))


def test_mismatched_n_named(tmp_path):
    frames = np.zeros((2, 4, 4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match='2 frame samples but 3 label samples'):
        write_shard(str(tmp_path / 'a'), frames, _labels(3))
    np.savez_compressed(tmp_path / 'b_frames.npz', frames=frames)
    np.savez_compressed(tmp_path / 'b_labels.npz', **_labels(3))
    with pytest.raises(ValueError, match='b_frames.npz has 2 samples'):
        merge_shards([(str(tmp_path / 'b_frames.npz'), str(tmp_path / 'b_labels.npz'))],
                     str(tmp_path / 'index.pkl'))


def test_nan_poses_named(tmp_path):
    labels = _labels(2)
    labels['ego_history_xyz'][1, 3, 0] = np.nan
    np.savez_compressed(tmp_path / 'c_labels.npz', **labels)
    with pytest.raises(ValueError, match=r'c_labels.npz: ego_history_xyz contains NaN'):
        load_labels(str(tmp_path / 'c_labels.npz'))
    with open(SCENE, 'rb') as f:
        scen = pickle.load(f)
    scen['tracks'][scen['metadata']['sdc_id']]['state']['position'][5, 0] = np.nan
    bad = tmp_path / 'bad_scene.pkl'
    with open(bad, 'wb') as f:
        pickle.dump(scen, f)
    with pytest.raises(ValueError, match='bad_scene.pkl: ego track has NaN'):
        convert_scenario(str(bad))


def test_repair_out_of_sequence_pose():
    xy = np.stack([np.arange(10) * 1.5, np.zeros(10)], -1)
    xy[6] = xy[8]  # jumps ahead and back, as in the real scene ends
    fixed, idx = repair_track_outliers(xy)
    assert idx == [6] and np.allclose(fixed[6], [9.0, 0.0])
