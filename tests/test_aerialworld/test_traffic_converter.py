"""PLATEAU converter with traffic: annotations match the voxels, the LiDAR hits the agents.

Converts the real ``ota_haneda`` tile (buildings without nearby roads, so corridors are
derived, and a separate road site for the rover) with a small test_local grid.
"""
import json
import os

import numpy as np
import pytest
from mmengine.fileio import load

from projects.aerialworld.converters import ConverterConfig, PlateauOccupancyConverter
from projects.aerialworld.converters.traffic_boxes import (AgentBoxes, box_corners_xy,
                                                           boxes_overlap_xy, points_in_boxes)
from projects.aerialworld.datasets.classes import (PLATEAU_FREE_LABEL,
                                                   PLATEAU_TRAFFIC_CLASSES,
                                                   PLATEAU_TRAFFIC_FREE_LABEL)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OTA = os.path.join(ROOT, 'data', 'plateau', 'ota_haneda')
DYNAMIC = (6, 7, 8)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('traffic') / 'tokyo')
    cfg = ConverterConfig(grid='test_local', num_drone_sessions=1, num_rover_sessions=1,
                          frames_per_session=4, drone_altitudes=(20.0,), val_fraction=0.0,
                          traffic=dict(num_vehicles=5, num_pedestrians=8, num_drones=2,
                                       seed=0))
    conv = PlateauOccupancyConverter([OTA], cfg)
    conv.convert(out)
    index = load(os.path.join(out, 'aerialworld_infos_train.pkl'))
    return conv, out, index


def _boxes(ann):
    ag = ann['agents']
    return AgentBoxes(centers=np.array([a['center'] for a in ag]).reshape(-1, 3),
                      sizes=np.array([a['size'] for a in ag]).reshape(-1, 3),
                      yaw=np.array([a['yaw'] for a in ag]),
                      velocity=np.array([a['velocity'] for a in ag]).reshape(-1, 3),
                      labels=np.array([a['label'] for a in ag], np.int64),
                      track_ids=np.array([a['track_id'] for a in ag], np.int64),
                      types=[a['type'] for a in ag])


def _frames(out, index):
    for e in index['data_list']:
        occ = np.load(os.path.join(out, e['occ_path']))['occupancy']
        with open(os.path.join(out, e['ann_path'])) as f:
            ann = json.load(f)
        with open(os.path.join(out, e['pose_path'])) as f:
            pose = json.load(f)
        lidar = np.load(os.path.join(out, e['lidar_path']))
        yield e, occ, ann, pose, lidar


def test_index_names_the_traffic_classes(converted):
    conv, out, index = converted
    meta = index['metainfo']
    assert tuple(meta['classes']) == PLATEAU_TRAFFIC_CLASSES
    assert meta['free_label'] == PLATEAU_TRAFFIC_FREE_LABEL == 9
    assert meta['converter_config']['traffic']['num_vehicles'] == 5
    kinds = {s['kind']: s['traffic']['corridors'] for s in meta['sessions'].values()}
    assert kinds['rover'] == 'roads' and kinds['drone_survey'] == 'derived'
    assert all('ann_path' in e for e in index['data_list'])


def test_annotation_boxes_match_their_voxels(converted):
    conv, out, index = converted
    spec = conv.spec
    r, vs = np.array(spec.point_cloud_range), np.array(spec.voxel_size)
    n_dyn = 0
    for e, occ, ann, pose, _ in _frames(out, index):
        boxes = _boxes(ann)
        ego = ann['ego']
        c0, s0 = np.cos(ego['yaw']), np.sin(ego['yaw'])
        assert occ.max() <= PLATEAU_TRAFFIC_FREE_LABEL
        # (a) every dynamic voxel overlaps a box of its class
        ii, jj, kk = np.nonzero(np.isin(occ, DYNAMIC))
        n_dyn += len(ii)
        ex = r[0] + (ii + 0.5) * vs[0]
        ey = r[1] + (jj + 0.5) * vs[1]
        wx = ego['x'] + c0 * ex - s0 * ey
        wy = ego['y'] + s0 * ex + c0 * ey
        vox = box_corners_xy(np.stack([wx, wy], 1), np.full(len(ii), vs[0]),
                             np.full(len(ii), vs[1]), np.full(len(ii), ego['yaw']))
        hit_xy = boxes_overlap_xy(vox, boxes.corners_xy(), margin=-1e-4)
        z0 = r[2] + kk * vs[2]
        lo = boxes.centers[:, 2] - 0.5 * boxes.sizes[:, 2]
        hi = boxes.centers[:, 2] + 0.5 * boxes.sizes[:, 2]
        hit_z = (z0[:, None] < hi[None]) & (z0[:, None] + vs[2] > lo[None])
        same = occ[ii, jj, kk][:, None] == boxes.labels[None]
        assert (hit_xy & hit_z & same).any(1).all()
        # (b) the voxel holding a box's centre is never free, and the annotation counts add up
        assert sum(a['num_voxels'] for a in ann['agents']) == len(ii)
        for a in ann['agents']:
            cx, cy, cz = a['center_ego']
            idx = np.floor((np.array([cx, cy, cz]) - r[:3]) / vs).astype(int)
            if np.all(idx >= 0) and np.all(idx < occ.shape):
                assert occ[tuple(idx)] != PLATEAU_TRAFFIC_FREE_LABEL
                assert a['num_voxels'] > 0
    assert n_dyn > 0


def test_static_scene_is_unchanged_under_the_agents(converted):
    conv, out, index = converted
    for e, occ, ann, pose, _ in _frames(out, index):
        site = conv.sites[index['metainfo']['sessions'][e['session']]['site']]
        static = site.grid.ego_occupancy(ann['ego']['x'], ann['ego']['y'], ann['ego']['yaw'])
        back = occ.copy()
        back[np.isin(back, DYNAMIC + (PLATEAU_TRAFFIC_FREE_LABEL,))] = PLATEAU_FREE_LABEL
        assert np.array_equal(back, static)


def test_lidar_hits_the_agents(converted):
    conv, out, index = converted
    from scipy.spatial.transform import Rotation
    total = 0
    for e, occ, ann, pose, lidar in _frames(out, index):
        q = pose['orientation']
        rot = Rotation.from_quat([q['x'], q['y'], q['z'], q['w']]).as_matrix()
        p = pose['position']
        world = lidar[:, :3].astype(np.float64) @ rot.T + np.array([p['x'], p['y'], p['z']])
        boxes = _boxes(ann)
        inside = points_in_boxes(world, boxes, tol=0.02)
        counts = np.bincount(inside[inside >= 0], minlength=len(boxes))
        written = np.array([a['num_lidar_pts'] for a in ann['agents']])
        assert np.abs(counts - written).sum() <= 0.02 * written.sum() + 2
        total += written.sum()
    assert total > 0


def test_rover_never_touches_an_agent(converted):
    conv, out, index = converted
    for e, occ, ann, pose, _ in _frames(out, index):
        if not e['session'].startswith('rover'):
            continue
        boxes = _boxes(ann)
        ground = boxes.labels != PLATEAU_TRAFFIC_CLASSES.index('drone')
        ego = ann['ego']
        rover = box_corners_xy(np.array([[ego['x'], ego['y']]]), [1.2], [0.8], [ego['yaw']])
        assert not boxes_overlap_xy(rover, boxes.corners_xy()[ground], 0.5).any()


def test_traffic_option_is_validated():
    with pytest.raises(ValueError, match='traffic: unknown option'):
        ConverterConfig(traffic=dict(cars=3)).validate()
    # without traffic the options (and so the config hash) are those of a static conversion
    assert 'traffic' not in ConverterConfig().to_dict()
