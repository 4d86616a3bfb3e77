"""UAVScenes -> AerialWorld sessions: layout reading, class mapping, voxelisation, 13-D poses,
dataset, and an end-to-end train / test run of ``configs/finetune_uavscenes.py``.

The fixture ``tests/data/uavscenes`` holds real airborne LiDAR (the Autzen survey shipped with
laspy) cut into scans along simulated flight lines, in the UAVScenes release layout (see its
README and ``tools/data_converter/make_uavscenes_fixture.py``).
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from projects.aerialworld.converters.scene import GridSpec
from projects.aerialworld.converters.uavscenes import (
    IGNORE_LABEL, POSE_TO_BODY_PRESETS, UAVSCENES_GRID, UAVScenesConfig, UAVScenesConverter,
    UAVScenesError, convert_uavscenes, ego_grid_indices, find_sequences, map_labels,
    read_sampleinfos, read_scan, trajectory_from_poses, voxelize_labels)
from projects.aerialworld.datasets import AerialWorldDataset
from projects.aerialworld.datasets.classes import (PLATEAU_CLASSES, UAVSCENES_CLASSES,
                                                   UAVSCENES_TO_AERIALWORLD)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(ROOT, 'tests', 'data', 'uavscenes')
SMALL_GRID = dict(point_cloud_range=(-20.0, -20.0, -10.0, 20.0, 20.0, 50.0),
                  voxel_size=(0.8, 0.8, 2.0))  # 50 x 50 x 30


def _copy_fixture(tmp_path):
    dst = tmp_path / 'uavscenes'
    shutil.copytree(FIXTURE, dst)
    return str(dst)


# ----------------------------------------------------------------------------- layout
def test_find_sequences_reads_release_layout():
    seqs = find_sequences(FIXTURE)
    assert [s.name for s in seqs] == ['Autzen01', 'Autzen02', 'Autzen03']
    for s in seqs:
        assert s.interval == 5 and len(s.scans) == 14
        assert s.label_dir.endswith(osp.join(f'interval5_{s.name}', 'interval5_LIDAR_label_id'))
        assert all(sc.label_path and osp.basename(sc.label_path) ==
                   osp.basename(sc.points_path) for sc in s.scans)
        t = [sc.time for sc in s.scans]
        assert np.allclose(np.diff(t), 0.5)  # interval5 key frames of a 10 Hz stream: 2 Hz
        assert float(s.scans[0].image_stamp) - float(s.scans[0].lidar_stamp) == pytest.approx(
            0.017, abs=1e-6)


def test_sampleinfos_and_scan_reading():
    seq = find_sequences(FIXTURE)[0]
    times, poses, stamps = read_sampleinfos(seq.poses_path)
    assert poses.shape == (66, 4, 4) and len(times) == 66  # 5x more poses than scans
    assert np.allclose(np.diff(times), 0.1)
    assert np.allclose(poses[:, :3, :3] @ poses[:, :3, :3].transpose(0, 2, 1), np.eye(3),
                       atol=1e-6)
    xyz, inten, ids = read_scan(seq.scans[0].points_path, seq.scans[0].label_path)
    assert xyz.shape == (2000, 3) and inten.shape == (2000,) and ids.shape == (2000,)
    assert np.all(xyz[:, 2] > 0)  # nadir camera frame: every point below the drone
    assert set(np.unique(ids)) <= set(UAVSCENES_CLASSES)


def test_layout_errors_name_the_file(tmp_path):
    root = _copy_fixture(tmp_path)
    seq = find_sequences(root)[0]
    lab = seq.scans[0].label_path
    np.savetxt(lab, np.zeros(5, int), fmt='%d')
    with pytest.raises(UAVScenesError, match=osp.basename(lab)):
        read_scan(seq.scans[0].points_path, lab)
    with open(seq.poses_path, 'w') as f:
        json.dump([{'OriginalImageName': '1.jpg'}], f)
    with pytest.raises(UAVScenesError, match='sampleinfos_interpolated.json'):
        read_sampleinfos(seq.poses_path)
    bad = osp.join(osp.dirname(seq.scans[0].points_path), 'scan_0001.txt')
    open(bad, 'w').close()
    with pytest.raises(UAVScenesError, match='scan_0001.txt'):
        find_sequences(root)
    with pytest.raises(FileNotFoundError, match='no UAVScenes sequence'):
        find_sequences(str(tmp_path / 'uavscenes' / 'interval5_LIDAR_label'))


def test_scan_without_pose_is_an_error(tmp_path):
    root = _copy_fixture(tmp_path)
    seq = find_sequences(root)[1]
    with open(seq.poses_path) as f:
        infos = json.load(f)
    with open(seq.poses_path, 'w') as f:
        json.dump(infos[:20], f)  # drop the poses of the later scans
    conv = UAVScenesConverter(root, scenes=['Autzen02'])
    with pytest.raises(UAVScenesError, match='no pose within'):
        conv.load_sequence(conv.sequences[0])


# ----------------------------------------------------------------------------- classes
def test_class_mapping_table():
    ids = np.array(sorted(UAVSCENES_CLASSES) + [26, 255, -1, 1000])
    out = map_labels(ids)
    for cid, name in UAVSCENES_CLASSES.items():
        assert PLATEAU_CLASSES[out[cid]] == UAVSCENES_TO_AERIALWORLD[name]
    assert np.all(out[-4:] == IGNORE_LABEL)
    named = {UAVSCENES_CLASSES[i]: PLATEAU_CLASSES[o] for i, o in zip(range(26), out)}
    assert named['roof'] == 'building' and named['paved_motor_road'] == 'road'
    assert named['bridge'] == 'bridge' and named['wild_field'] == 'terrain'
    assert named['sedan'] == 'other' and named['traffic_barrier'] == 'city_furniture'
    assert 'free' not in named.values()


# ----------------------------------------------------------------------------- voxels
def test_known_point_lands_in_its_voxel():
    spec = UAVSCENES_GRID
    assert spec.grid_size == (200, 200, 120)
    ego = np.array([100.0, 50.0, 30.0])
    # 10.1 m ahead, 2.3 m to the left, 5.2 m above the datum; ego heading 90 deg (north)
    yaw = np.pi / 2
    world = np.array([[ego[0] - 2.3, ego[1] + 10.1, 5.2 + 1.0]])
    ijk, keep = ego_grid_indices(world, ego, yaw, spec, z_datum=1.0)
    assert keep.tolist() == [True]
    assert ijk.tolist() == [[int((10.1 + 40) / 0.4), int((2.3 + 40) / 0.4),
                             int((5.2 + 10) / 0.5)]]  # [125, 105, 30]
    occ = voxelize_labels(ijk, np.array([1], np.uint8), spec.grid_size)
    assert occ.dtype == np.uint8 and occ.shape == (200, 200, 120)
    assert occ[125, 105, 30] == 1 and (occ != 6).sum() == 1
    # outside the grid (z above 50 m) -> dropped
    _, keep = ego_grid_indices(np.array([[ego[0], ego[1], 61.5]]), ego, yaw, spec, 1.0)
    assert not keep.any()


def test_majority_vote_per_voxel():
    ijk = np.array([[0, 0, 0]] * 3 + [[1, 2, 3]] * 2 + [[4, 4, 4]] * 2)
    lab = np.array([4, 1, 4, 3, 3, 5, 2], np.uint8)
    occ = voxelize_labels(ijk, lab, (5, 5, 5))
    assert occ[0, 0, 0] == 4 and occ[1, 2, 3] == 3
    assert occ[4, 4, 4] == 2  # tie -> the smaller label
    assert (occ != 6).sum() == 3


def test_aggregation_across_scans_in_world_frame(tmp_path):
    """A point seen only by scan 0 appears in the grid of frame 3 where the ego has moved."""
    conv = UAVScenesConverter(FIXTURE, UAVScenesConfig(aggregate_window=None),
                              scenes=['Autzen01'])
    data = conv.load_sequence(conv.sequences[0])
    p0 = data.points[0][0]
    lab0 = data.labels[0][0]
    # keep that single point in scan 0 and remove the others everywhere
    data.points = [p0[None]] + [np.zeros((0, 3))] * (len(data.points) - 1)
    data.labels = [np.array([lab0], np.uint8)] + [np.zeros(0, np.uint8)] * (
        len(data.labels) - 1)
    for i in (0, 3):
        occ = conv.frame_occupancy(data, i)
        pos, yaw = data.traj.positions[i], data.traj.yaw[i]
        d = p0[:2] - pos[:2]
        local = [np.cos(yaw) * d[0] + np.sin(yaw) * d[1],
                 -np.sin(yaw) * d[0] + np.cos(yaw) * d[1], p0[2]]
        ijk = np.floor((np.array(local) - [-40, -40, -10]) / [0.4, 0.4, 0.5]).astype(int)
        assert occ[tuple(ijk)] == lab0 and (occ != 6).sum() == 1
    assert np.linalg.norm(data.traj.positions[3] - data.traj.positions[0]) > 10.0
    # with a window of 1 key frame, frame 3 no longer sees scan 0
    conv.cfg.aggregate_window = 1
    assert (conv.frame_occupancy(data, 3) != 6).sum() == 0


def test_sensor_extrinsic_gives_the_same_world_points(tmp_path):
    """Scans stored in a LiDAR frame + the LiDAR-to-camera extrinsic == scans in the pose frame."""
    root = _copy_fixture(tmp_path)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler('zyx', [90, 0, 90], degrees=True).as_matrix()
    T[:3, 3] = [0.05, -0.02, 0.1]
    for sc in find_sequences(root)[0].scans:  # p_lidar = T^-1 p_cam
        xyz, _, _ = read_scan(sc.points_path)
        np.savetxt(sc.points_path, (xyz - T[:3, 3]) @ T[:3, :3], fmt='%.6f')
    ref = UAVScenesConverter(FIXTURE, scenes=['Autzen01'])
    alt = UAVScenesConverter(root, UAVScenesConfig(sensor_to_pose=T.tolist()),
                             scenes=['Autzen01'])
    a = ref.load_sequence(ref.sequences[0])
    b = alt.load_sequence(alt.sequences[0])
    assert np.allclose(a.points[4], b.points[4], atol=2e-3)


# ----------------------------------------------------------------------------- poses
def test_pose_13d_from_trajectory():
    """Constant velocity + constant yaw rate: velocities and body rates are recovered."""
    t = np.arange(0, 3.0, 0.1)
    v = np.array([6.0, -2.0, 0.5])
    yaw_rate = 0.2
    T = np.tile(np.eye(4), (len(t), 1, 1))
    T[:, :3, 3] = t[:, None] * v
    T[:, :3, :3] = Rotation.from_euler('z', yaw_rate * t + 3.0).as_matrix()
    key = np.arange(0, len(t), 5)
    traj = trajectory_from_poses(t, T, key)
    p13 = traj.poses_13d()
    assert p13.shape == (len(key), 13)
    assert np.allclose(p13[:, 7:10], v, atol=1e-9)
    assert np.allclose(p13[:, 10:13], [0.0, 0.0, yaw_rate], atol=1e-9)
    assert np.allclose(np.linalg.norm(p13[:, 3:7], axis=1), 1.0)
    assert np.all(np.sum(p13[1:, 3:7] * p13[:-1, 3:7], axis=1) > 0)  # sign-continuous
    q = Rotation.from_quat(p13[:, [4, 5, 6, 3]]).as_matrix()
    assert np.allclose(q, T[key, :3, :3], atol=1e-9)
    assert np.allclose(traj.timestamps, t[key] - t[0])
    assert np.allclose(np.diff(traj.yaw), yaw_rate * 0.5)


def test_converted_poses_match_the_release_poses():
    conv = UAVScenesConverter(FIXTURE, scenes=['Autzen03'])
    data = conv.load_sequence(conv.sequences[0])
    times, T_wc, _ = read_sampleinfos(conv.sequences[0].poses_path)
    k = 25  # pose of key frame 5
    R_wb = T_wc[k, :3, :3] @ POSE_TO_BODY_PRESETS['nadir_camera'].T
    q = data.traj.quaternions[5]
    assert np.allclose(Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix(), R_wb, atol=1e-6)
    assert np.allclose(data.traj.positions[5], T_wc[k, :3, 3] - data.origin)
    # body z points up (nadir camera looking down), x along the flight direction
    assert R_wb[2, 2] > 0.99
    v = data.traj.linear_velocity[5]
    assert 6.0 < np.linalg.norm(v[:2]) < 8.0  # the fixture flies at 7 m/s
    assert np.dot(R_wb[:2, 0], v[:2]) / np.linalg.norm(v[:2]) > 0.99
    assert data.traj.angular_velocity[5, 2] > 0  # turning left at +6 deg/s (plus wobble)


# ----------------------------------------------------------------------------- writing
def test_convert_writes_sessions_index_and_refuses_overwrite(tmp_path):
    out = tmp_path / 'out'
    cfg = UAVScenesConfig(**SMALL_GRID)
    s = convert_uavscenes(FIXTURE, str(out), cfg)
    assert s['sessions'] == 3 and s['val_sessions'] == 1 and s['frames'] == 42
    occ = np.load(out / 'Autzen01' / 'occupancy' / '000003_occupancy.npz')['occupancy']
    assert occ.dtype == np.uint8 and occ.shape == (50, 50, 30)
    assert {0, 4} <= set(np.unique(occ).tolist()) and (occ == 6).mean() > 0.9
    pose = json.load(open(out / 'Autzen01' / 'poses' / '000003.json'))
    assert len(pose['pose_13d']) == 13 and pose['timestamp'] == pytest.approx(1.5)
    lidar = np.load(out / 'Autzen01' / 'lidar' / '000003_LIDAR.npy')
    assert lidar.dtype == np.float32 and lidar.shape == (2000, 4)
    # ego body frame: everything below the drone, the ground about 35 m down
    assert lidar[:, 2].max() < 0 and -40.0 < np.median(lidar[:, 2]) < -25.0
    assert not list(out.rglob('.tmp_*'))
    with pytest.raises(FileExistsError, match='--overwrite'):
        convert_uavscenes(FIXTURE, str(out), cfg)
    (out / 'notes.txt').write_text('kept')
    convert_uavscenes(FIXTURE, str(out), cfg, overwrite=True)
    assert (out / 'notes.txt').exists()

    ds = AerialWorldDataset(str(out / 'aerialworld_infos_train.pkl'), data_root=str(out),
                            expected_grid_size=[50, 50, 30], expected_classes=PLATEAU_CLASSES,
                            pipeline=[dict(type='LoadOccupancySequence',
                                           expected_shape=[50, 50, 30]),
                                      dict(type='LoadPoseSequence')])
    assert len(ds) == 2 * (14 - 10 + 1)
    sessions = {ds.get_data_info(i)['session'] for i in range(len(ds))}
    assert sessions == {'Autzen01', 'Autzen02'}  # split by sequence
    item = ds[0]
    occ_keys = [k for k, v in item.items() if getattr(v, 'shape', None) == (10, 50, 50, 30)]
    assert occ_keys, {k: getattr(v, 'shape', None) for k, v in item.items()}
    meta = ds.metainfo
    assert meta['z_reference'] == 'ground' and meta['frame_rate_hz'] == pytest.approx(2.0)
    assert meta['sessions']['Autzen03']['split'] == 'val'
    assert meta['class_mapping']['1'] == dict(uavscenes='roof', aerialworld='building')


def test_grid_spec_of_the_config_matches_design():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'finetune_uavscenes.py'))
    spec = GridSpec(tuple(cfg.point_cloud_range), tuple(cfg.voxel_size))
    assert list(spec.grid_size) == cfg.grid_size == [200, 200, 120]
    assert cfg.model.tokenizer.grid_size == [200, 200, 120]
    assert cfg.train_dataloader.dataset.expected_grid_size == [200, 200, 120]
    assert cfg.train_dataloader.dataset.data_root.rstrip('/').endswith('uavscenes_sample')


# ----------------------------------------------------------------------------- end to end
def _small_options(data_root):
    grid = '[50,50,30]'
    opts = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.interval=2',  # switch_ratio: stage 2 at 1
            'default_hooks.logger.interval=1', 'model.tokenizer_frames=2',
            f'model.tokenizer.grid_size={grid}', 'model.tokenizer.z_reduction=1',
            'model.tokenizer.base_channels=8', 'model.tokenizer.channel_mults=(1,2)',
            'model.tokenizer.num_res_blocks=1', 'model.tokenizer.code_dim=16',
            'model.tokenizer.num_codes=64', 'model.tokenizer.with_cp=False',
            'model.transformer.d_model=32', 'model.transformer.num_blocks=1',
            'model.transformer.num_heads=2', 'model.transformer.spatial_scales=(1,)',
            'model.transformer.copy_warp_range=[-20,-20,20,20]',
            'visualizer.point_cloud_range=[-20,-20,-10,20,20,50]',
            'visualizer.voxel_size=[0.8,0.8,2.0]', 'custom_hooks.6.max_samples=1',
            'custom_hooks.6.draw_3d=False']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
                 f'{loader}.dataset.data_root={data_root}/',
                 f'{loader}.dataset.expected_grid_size={grid}',
                 f'{loader}.dataset.pipeline.0.expected_shape={grid}']
    opts += ['train_dataloader.dataset.max_windows=2', 'val_dataloader.dataset.max_windows=1',
             'test_dataloader.dataset.max_windows=1']
    return opts


@pytest.mark.slow
def test_train_and_test_finetune_uavscenes(tmp_path):
    """tools/train.py (2 iterations, both stages) then tools/test.py on its checkpoint, on
    sessions converted from the fixture at a 50 x 50 x 30 grid (same config otherwise)."""
    data = tmp_path / 'sessions'
    convert_uavscenes(FIXTURE, str(data), UAVScenesConfig(val_scenes=('Autzen03',),
                                                          **SMALL_GRID))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'),
               PYTHONUNBUFFERED='1')
    cfg = osp.join(ROOT, 'configs', 'finetune_uavscenes.py')
    opts = _small_options(str(data))

    def run(args):
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f'{args[:2]} failed ({proc.returncode}):\n{out[-6000:]}'
        return out

    work = tmp_path / 'train'
    out = run(['tools/train.py', cfg, '--work-dir', str(work), '--cfg-options', *opts])
    assert osp.isfile(work / 'iter_2.pth'), out[-3000:]
    assert 'IoU@6' in out and 'baseline' in out, out[-3000:]
    out = run(['tools/test.py', cfg, str(work / 'iter_2.pth'), '--work-dir',
               str(tmp_path / 'test'), '--cfg-options',
               *[o for o in opts if o.startswith(('test_dataloader', 'model.', 'visualizer'))]])
    assert 'IoU@6' in out and 'mIoU@mean' in out, out[-3000:]
