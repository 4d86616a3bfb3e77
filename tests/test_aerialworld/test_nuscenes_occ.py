"""nuScenes occupancy from real LiDAR keyframes (data/nuscenes_seq), the Occ3D layout and
the devkit index (tests/data/nuscenes_tables), and the finetune_nuscenes config."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from mmengine import Config
from mmengine.fileio import load

from projects.aerialworld.converters import nuscenes_occ as no
from projects.aerialworld.datasets import Occ3DDataset
from projects.aerialworld.datasets.occ3d_dataset import build_occ3d_index
from projects.aerialworld.model_converters.occworld import (
    OCC3D_NUSCENES_CLASSES, occworld_model_cfg)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEQ = osp.join(ROOT, 'data', 'nuscenes_seq')
OCC3D_TOKEN = '29796060110c4163b07f06eff4af0753'
OCC3D_LABEL = osp.join(ROOT, 'tests', 'data', 'occ3d', OCC3D_TOKEN, 'labels.npz')
TABLES = osp.join(ROOT, 'tests', 'data', 'nuscenes_tables')


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('nuocc'))
    summary = no.convert_nuscenes_sequence(SEQ, out, no.NuScenesOccConfig(session='seq'))
    return out, summary


def _occ(out, i):
    with np.load(osp.join(out, 'seq', 'occupancy', f'{i:06d}_occupancy.npz')) as f:
        return f['occupancy']


def test_format_matches_real_occ3d_label(converted):
    out, summary = converted
    with np.load(OCC3D_LABEL) as ref:
        sem = ref['semantics']
        assert set(ref.files) == {'semantics', 'mask_lidar', 'mask_camera'}
    assert summary['frames'] == 11
    for i in range(11):
        occ = _occ(out, i)
        assert occ.dtype == sem.dtype == np.uint8 and occ.shape == sem.shape == (200, 200, 16)
        assert occ.max() <= 17 and sem.max() <= 17
    occ = _occ(out, 5)
    # free is 17 and dominant in both; the classes of a street scene are present
    for grid in (occ, sem):
        assert np.bincount(grid.ravel(), minlength=18).argmax() == 17
        assert 0.01 < (grid != 17).mean() < 0.2
    present = set(np.unique(occ).tolist())
    assert {4, 11, 14, 15, 16} <= present  # car, driveable surface, terrain, manmade, veg.
    # driveable surface lies in the lowest layers (ego frame, ground ~ 0 m) in both grids
    for grid in (occ, sem):
        z = np.nonzero(grid == 11)[2]
        assert z.max() <= 3
    ann = load(osp.join(out, 'aerialworld_infos_train.pkl'))
    meta = ann['metainfo']
    assert tuple(meta['classes']) == OCC3D_NUSCENES_CLASSES and meta['free_label'] == 17
    assert meta['grid_size'] == [200, 200, 16] and meta['voxel_size'] == [0.4, 0.4, 0.4]
    assert meta['point_cloud_range'] == [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]
    assert 'train and the val' in meta['split_note']
    val = load(osp.join(out, 'aerialworld_infos_val.pkl'))
    assert val['data_list'] == ann['data_list'] and val['metainfo']['split'] == 'val'
    assert [e['frame_idx'] for e in ann['data_list']] == list(range(11))


def test_poses_lidar_and_refusal(converted, tmp_path):
    out, _ = converted
    recs = [json.load(open(osp.join(out, 'seq', 'poses', f'{i:06d}.json'))) for i in range(11)]
    raw = [np.load(osp.join(SEQ, 'pose', f'lidar_ego_pose{i}.npy'), allow_pickle=True).item()
           for i in range(11)]
    p = np.array([r['pose_13d'] for r in recs])
    np.testing.assert_allclose(p[:, :2], [r['translation'][:2] for r in raw])
    np.testing.assert_allclose(np.abs(p[:, 3:7]), np.abs(np.array([r['rotation'] for r in raw])),
                               atol=1e-9)
    # velocity ~ displacement / 0.5 s between keyframes (about 10 m/s here)
    speed = np.linalg.norm(p[:, 7:9], axis=1)
    step = np.linalg.norm(np.diff(p[:, :2], axis=0), axis=1) / np.diff(
        [r['timestamp'] for r in recs])
    assert np.allclose(speed[1:-1], (step[1:] + step[:-1]) / 2, rtol=0.1)
    assert np.abs(p[:, 12]).max() < 0.2  # yaw rate, rad/s, straight road
    lidar = np.load(osp.join(out, 'seq', 'lidar', '000000_LIDAR.npy'))
    pc = np.load(osp.join(SEQ, 'pc', 'pc0.npy'))
    assert lidar.dtype == np.float32 and lidar.shape == pc.shape
    # ego frame: the ground is at z ~ 0 (LiDAR frame: -1.84 m)
    sem = np.load(osp.join(SEQ, 'pc_seman', 'pc_seman_0.npy'))[:, 3]
    assert abs(np.median(lidar[sem == 11, 2])) < 0.1 and np.median(pc[sem == 11, 2]) < -1.5
    with pytest.raises(FileExistsError, match='overwrite'):
        no.convert_nuscenes_sequence(SEQ, out, no.NuScenesOccConfig(session='seq'))


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / 'seq'
    shutil.copytree(SEQ, bad)
    os.remove(bad / 'calib' / 'lidar_calibrated_sensor3.npy')
    with pytest.raises(FileNotFoundError, match='lidar_calibrated_sensor3.npy'):
        no.load_sequence(str(bad))
    shutil.copy(osp.join(SEQ, 'calib', 'lidar_calibrated_sensor3.npy'),
                bad / 'calib' / 'lidar_calibrated_sensor3.npy')
    np.save(bad / 'pc_seman' / 'pc_seman_2.npy', np.zeros((5, 4)))
    with pytest.raises(no.NuScenesSequenceError, match='pc_seman_2.npy'):
        no.load_sequence(str(bad))


def _frame(i, yaw_deg, xy, boxes=np.zeros((0, 7)), tokens=()):
    """A synthetic frame whose lidar == ego frame and ego pose = (xy, yaw)."""
    from scipy.spatial.transform import Rotation
    q = Rotation.from_euler('z', yaw_deg, degrees=True).as_quat()[[3, 0, 1, 2]]
    pose = dict(token=f't{i}', timestamp=i * 500000, rotation=q.tolist(),
                translation=[xy[0], xy[1], 0.0])
    return no.SequenceFrame(
        index=i, points=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.uint8),
        lidar2ego=np.eye(4), ego2global=no.transform_matrix(pose['translation'],
                                                            pose['rotation']),
        ego_pose=pose, calib=dict(translation=[0, 0, 0], rotation=[1, 0, 0, 0]),
        boxes=np.asarray(boxes, np.float64).reshape(-1, 7), box_tokens=np.array(tokens, str),
        box_labels=np.zeros(len(tokens), np.int64))


def test_ego_motion_compensation_static_point_same_global_voxel():
    cfg = no.NuScenesOccConfig(fill=False, reconstruct_height=False)
    f0 = _frame(0, 0.0, (100.0, 50.0))
    f1 = _frame(1, 30.0, (105.0, 52.0))
    world = np.array([[112.3, 57.9, 1.3]])  # a pole seen from both poses
    for f, lab in ((f0, 15), (f1, 15)):
        local = no.apply_transform(np.linalg.inv(f.ego2global), world)
        f.points = np.concatenate([local, [[1.0]]], axis=1).astype(np.float32)
        f.labels = np.array([lab], np.uint8)
    scene = no.aggregate_sequence([f0, f1], cfg)
    assert scene.stats['static'] == 2
    np.testing.assert_allclose(scene.static_xyz[0], scene.static_xyz[1], atol=1e-5)
    np.testing.assert_allclose(scene.static_xyz[0], world[0], atol=1e-5)
    # in either target frame both observations fall into one voxel
    for f in (f0, f1):
        xyz, lab = no.frame_points(scene, f)
        occ = no.voxelize_majority(xyz, lab, cfg.point_cloud_range, cfg.voxel_size)
        assert (occ != 17).sum() == 1 and occ[occ != 17][0] == 15
    # without compensation (ego-frame points stacked) the two would land apart
    a, b = (no.apply_transform(np.linalg.inv(f.ego2global), world) for f in (f0, f1))
    assert np.linalg.norm(a - b) > 1.0


def test_real_sequence_static_scene_is_consistent():
    """Static real points re-projected into another frame hit the same voxels (ground)."""
    c = no.NuScenesOccConverter(SEQ, no.NuScenesOccConfig(fill=False))
    scene = no.aggregate_sequence(c.frames, c.cfg)
    xyz, lab = no.frame_points(scene, c.frames[5])
    ground = (lab == 11) & (np.abs(xyz[:, 0]) < 30) & (np.abs(xyz[:, 1]) < 5)
    # aggregated over 11 frames (50 m driven), the road stays a flat layer (+-0.2 m)
    assert np.percentile(np.abs(xyz[ground, 2]), 95) < 0.2


def test_dynamic_object_points_move_with_the_box():
    cfg = no.NuScenesOccConfig(fill=False, reconstruct_height=False)
    # box (x, y, z_bottom, w, l, h, yaw) of one car in two frames, the ego standing still
    b0 = [10.0, 0.0, -1.0, 2.0, 4.0, 1.5, 0.0]
    b1 = [10.0, 8.0, -1.0, 2.0, 4.0, 1.5, np.pi / 2]
    f0 = _frame(0, 0.0, (0.0, 0.0), [b0], ['car'])
    f1 = _frame(1, 0.0, (0.0, 0.0), [b1], ['car'])
    # a point on the car's front-left corner region in frame 0 only, a wall point in both
    car_local = np.array([[0.5, 1.5, 1.0]])
    p_car = no.box_to_frame_coords(car_local, np.array([b0]))
    f0.points = np.array([[*p_car[0], 1.0], [20.0, 20.0, 2.0, 1.0]], np.float32)
    f0.labels = np.array([4, 15], np.uint8)
    f1.points = np.array([[20.0, 20.0, 2.0, 1.0]], np.float32)
    f1.labels = np.array([15], np.uint8)
    scene = no.aggregate_sequence([f0, f1], cfg)
    assert scene.stats['object'] == 1 and scene.stats['static'] == 2
    np.testing.assert_allclose(scene.object_xyz[0], car_local[0], atol=1e-5)
    xyz, lab = no.frame_points(scene, f1)
    car = xyz[lab == 4]
    expected = no.box_to_frame_coords(car_local, np.array([b1]))
    np.testing.assert_allclose(car, expected, atol=1e-5)  # moved and turned with the box
    assert no.points_in_boxes(car, np.array([b1])).all()
    assert np.linalg.norm(car - p_car) > 5.0
    # an instance not annotated in the target frame is not drawn
    f2 = _frame(2, 0.0, (0.0, 0.0))
    xyz, lab = no.frame_points(scene, f2)
    assert (lab == 4).sum() == 0 and (lab == 15).sum() == 2


def test_box_convention_against_labelled_points():
    f = no.load_sequence_frame(SEQ, 0)
    inside = no.points_in_boxes(f.points[:, :3], f.boxes)
    hit = inside.any(axis=1)
    which = inside.argmax(axis=1)[hit]
    agree = (f.labels[hit] == f.box_labels[which]).mean()
    assert agree > 0.85  # (w along local x, l along local y, z at the bottom)
    swapped = f.boxes[:, [0, 1, 2, 4, 3, 5, 6]]
    ins2 = no.points_in_boxes(f.points[:, :3], swapped)
    assert ins2.any(axis=1).sum() < hit.sum()


def test_voxelize_majority_and_fill():
    pcr, vs = (0, 0, 0, 2, 2, 1), (1, 1, 1)
    xyz = np.array([[0.5, 0.5, 0.5]] * 3 + [[1.5, 0.5, 0.5]] * 2 + [[5, 5, 5]])
    lab = np.array([3, 3, 7, 2, 9, 1])
    occ = no.voxelize_majority(xyz, lab, pcr, vs, num_classes=17, free_label=17)
    assert occ.shape == (2, 2, 1) and occ[0, 0, 0] == 3 and occ[1, 0, 0] == 2  # tie: lower id
    assert (occ[:, 1] == 17).all()
    ring = np.full((5, 5, 1), 17, np.uint8)
    ring[1:4, 1:4] = 11
    ring[2, 2] = 17
    filled = no.fill_gaps(ring, 17, min_neighbors=5)
    assert filled[2, 2, 0] == 11 and filled[0, 0, 0] == 17


def test_ego_poses_13d_finite_differences():
    t = np.array([0.0, 0.5, 1.0, 1.5])
    yaw = 0.2 * t  # 0.2 rad/s
    pos = np.stack([10 * t, 2 * t ** 2, 0 * t], axis=1)
    q = np.stack([np.cos(yaw / 2), 0 * t, 0 * t, np.sin(yaw / 2)], axis=1)
    p = no.ego_poses_13d(pos, q, t)
    np.testing.assert_allclose(p[:, 7], 10.0)
    np.testing.assert_allclose(p[1:-1, 8], 4 * t[1:-1])
    np.testing.assert_allclose(p[:, 12], 0.2, atol=1e-9)
    with pytest.raises(ValueError):
        no.ego_poses_13d(pos, q, t[::-1])


# ------------------------------------------------------------------------- devkit + Occ3D
def _occ3d_root(tmp_path):
    out = tmp_path / 'nuscenes'
    s = build_occ3d_index(TABLES, 'v1.0-tiny', str(out), train_scenes=['scene-tiny-a'],
                          val_scenes=['scene-tiny-b'])
    return out, s


def test_devkit_table_index(tmp_path):
    out, s = _occ3d_root(tmp_path)
    assert s['frames'] == 11 and s['scenes'] == 2
    train = load(str(out / 'occ3d_infos_train.pkl'))
    val = load(str(out / 'occ3d_infos_val.pkl'))
    assert [r['session'] for r in train['data_list']] == ['scene-tiny-a'] * 6
    assert [r['frame_idx'] for r in val['data_list']] == list(range(5))
    assert val['data_list'][2]['occ_path'] == f'gts/scene-tiny-b/{OCC3D_TOKEN}/labels.npz'
    raw = json.load(open(osp.join(TABLES, 'v1.0-tiny', 'ego_pose.json')))
    np.testing.assert_allclose(train['data_list'][3]['pose_13d'][:2], raw[3]['translation'][:2])
    assert train['metainfo']['free_label'] == 17 and train['metainfo']['layout'] == 'occ3d'
    with pytest.raises(FileExistsError):
        build_occ3d_index(TABLES, 'v1.0-tiny', str(out), train_scenes=['scene-tiny-a'],
                          val_scenes=['scene-tiny-b'])
    with pytest.raises(ValueError, match='both splits'):
        build_occ3d_index(TABLES, 'v1.0-tiny', str(out), train_scenes=['scene-tiny-a'],
                          val_scenes=['scene-tiny-a'], overwrite=True)
    with pytest.raises(ValueError, match='scene-nope'):
        build_occ3d_index(TABLES, 'v1.0-tiny', str(out), train_scenes=['scene-nope'],
                          val_scenes=[], overwrite=True)


def test_occ3d_dataset_with_masks_and_metric(tmp_path):
    import torch
    from projects.common.metrics import OccupancyMetric
    out, _ = _occ3d_root(tmp_path)
    val = load(str(out / 'occ3d_infos_val.pkl'))
    for r in val['data_list']:  # every frame of the val scene gets the real label
        dst = out / r['occ_path']
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(OCC3D_LABEL, dst)
    pipeline = [dict(type='LoadOccupancySequence', npz_key='semantics', num_classes=18),
                dict(type='LoadOccupancyMaskSequence', npz_key='mask_camera'),
                dict(type='LoadIndexPoses'),
                dict(type='PackOccupancyInputs',
                     meta_keys=('session', 'frame_indices', 'num_history', 'num_future',
                                'occ_mask'))]
    ds = Occ3DDataset(ann_file='occ3d_infos_val.pkl', data_root=str(out), pipeline=pipeline,
                      num_history=2, num_future=2, expected_grid_size=[200, 200, 16],
                      expected_classes=OCC3D_NUSCENES_CLASSES)
    assert len(ds) == 2
    item = ds[0]
    occ = item['inputs']['occupancy']
    assert occ.shape == (4, 200, 200, 16) and occ.dtype == torch.uint8
    assert item['inputs']['poses'].shape == (4, 13)
    mask = item['data_samples'].occ_mask
    assert mask.shape == (4, 200, 200, 16) and mask.dtype == bool
    with np.load(OCC3D_LABEL) as ref:
        assert mask[0].sum() == (ref['mask_camera'] != 0).sum()
    # the metric ignores the masked voxels: a prediction wrong only outside the mask is perfect
    gt = occ[2:]
    pred = gt.clone()
    pred[torch.from_numpy(~mask[2:])] = 4
    sample = dict(pred_occ=pred, gt_occ=gt, occ_mask=mask)
    m = OccupancyMetric(num_classes=18, free_label=17, eval_baseline=False)
    m.process({}, [sample])
    assert m.evaluate(1)['IoU@1'] == pytest.approx(100.0)
    m = OccupancyMetric(num_classes=18, free_label=17, eval_baseline=False, mask_key=None)
    m.process({}, [sample])
    assert m.evaluate(1)['IoU@1'] < 50.0
    # missing label file -> error naming it
    os.remove(out / val['data_list'][4]['occ_path'])
    with pytest.raises(FileNotFoundError, match='labels.npz'):
        Occ3DDataset(ann_file='occ3d_infos_val.pkl', data_root=str(out), pipeline=pipeline,
                     num_history=2, num_future=2)


# ------------------------------------------------------------------------- config
def test_finetune_nuscenes_config_matches_occworld_layout():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'finetune_nuscenes.py'))
    ref = occworld_model_cfg()
    assert cfg.load_from is None
    for part in ('tokenizer', 'transformer'):
        for k, v in ref[part].items():
            got = cfg.model[part][k]
            assert (list(got) if isinstance(got, (list, tuple)) else got) == \
                (list(v) if isinstance(v, (list, tuple)) else v), (part, k)
    assert cfg.model.num_classes == 18 and cfg.model.free_label == 17
    assert cfg.model.num_history + cfg.model.num_future <= 11
    ds = cfg.train_dataloader.dataset
    assert ds.expected_grid_size == [200, 200, 16]
    assert tuple(ds.expected_classes) == OCC3D_NUSCENES_CLASSES
