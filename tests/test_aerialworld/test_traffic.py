"""Traffic simulator (converters/traffic*.py): roads, boxes, kinematics, safety, determinism.

Synthetic maps (two crossing roads between four building blocks) test the rules exactly;
the real PLATEAU tiles test road polygons (``ota_haneda`` road file, Ota-ku) and corridors
derived from open ground (``ota_haneda`` buildings, which have no roads nearby).
"""
import glob
import logging
import os

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon, box

from projects.aerialworld.converters.traffic import (AGENT_TYPES, EgoPath, TrafficConfig,
                                                     simulate_traffic)
from projects.aerialworld.converters.traffic_boxes import (AgentBoxes, box_corners_xy,
                                                           boxes_overlap_xy, points_in_boxes,
                                                           voxelise_boxes)
from projects.aerialworld.converters.traffic_roads import TrafficMap
from projects.aerialworld.datasets.classes import (PLATEAU_CLASSES, PLATEAU_FREE_LABEL,
                                                   PLATEAU_TRAFFIC_CLASSES,
                                                   PLATEAU_TRAFFIC_FREE_LABEL, plateau_classes)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLATEAU = os.path.join(ROOT, 'data', 'plateau')
VEHICLE = PLATEAU_TRAFFIC_CLASSES.index('vehicle')
PEDESTRIAN = PLATEAU_TRAFFIC_CLASSES.index('pedestrian')
DRONE = PLATEAU_TRAFFIC_CLASSES.index('drone')
FRAMES = np.arange(12) / 2.0  # 12 frames at 2 Hz


def _polys(boxes: AgentBoxes):
    return shapely.polygons(boxes.corners_xy())


def _cross_map():
    """Two 14 m roads crossing at the origin between four 30 m building blocks."""
    roads = shapely.union(box(-60, -7, 60, 7), box(-7, -60, 7, 60))
    blocks = [box(x0, y0, x0 + 30, y0 + 30) for x0 in (-45, 15) for y0 in (-45, 15)]
    tmap = TrafficMap.from_polygons((-60, -60, 60, 60), blocks, [20.0, 35.0, 12.0, 50.0],
                                    roads, resolution=0.5)
    return tmap, roads, blocks


@pytest.fixture(scope='module')
def cross():
    tmap, roads, blocks = _cross_map()
    cfg = TrafficConfig(num_vehicles=6, num_pedestrians=8, num_drones=2, seed=3, warmup=4.0)
    return tmap, roads, blocks, cfg, simulate_traffic(tmap, cfg, FRAMES, name='cross')


def _tracks(result):
    """track id -> (times, centres (T, 3), yaw, speed, type) over the steps it is alive."""
    out = {}
    for t, b in zip(result.times, result.steps):
        for k, tid in enumerate(b.track_ids):
            rec = out.setdefault(int(tid), dict(t=[], c=[], yaw=[], v=[], type=b.types[k]))
            rec['t'].append(t)
            rec['c'].append(b.centers[k])
            rec['yaw'].append(b.yaw[k])
            rec['v'].append(np.linalg.norm(b.velocity[k]))
    return {k: {n: np.asarray(v) if n != 'type' else v for n, v in r.items()}
            for k, r in out.items()}


# ----------------------------------------------------------------------------- classes
def test_class_lists_keep_free_last_and_static_labels():
    assert PLATEAU_TRAFFIC_CLASSES[-1] == 'free' == PLATEAU_CLASSES[-1]
    assert PLATEAU_TRAFFIC_FREE_LABEL == 9 and PLATEAU_FREE_LABEL == 6
    assert PLATEAU_TRAFFIC_CLASSES[6:9] == ('vehicle', 'pedestrian', 'drone')
    assert PLATEAU_TRAFFIC_CLASSES[:6] == PLATEAU_CLASSES[:6]
    assert plateau_classes(True)[:2] == (PLATEAU_TRAFFIC_CLASSES, 9)
    assert plateau_classes(False)[:2] == (PLATEAU_CLASSES, 6)
    assert {AGENT_TYPES[k].label for k in AGENT_TYPES} == {VEHICLE, PEDESTRIAN, DRONE}


# ----------------------------------------------------------------------------- box geometry
def test_sat_overlap_matches_shapely():
    rng = np.random.default_rng(0)
    n = 80
    c = rng.uniform(-5, 5, (n, 2))
    corners = box_corners_xy(c, rng.uniform(0.5, 5, n), rng.uniform(0.5, 3, n),
                             rng.uniform(-np.pi, np.pi, n))
    got = boxes_overlap_xy(corners, corners)
    polys = shapely.polygons(corners)
    ref = shapely.area(shapely.intersection(polys[:, None], polys[None])) > 1e-9
    # exactly touching pairs are the only possible disagreement; random boxes have none
    assert np.array_equal(got, ref)


def test_points_in_boxes_and_voxelisation_by_hand():
    b = AgentBoxes(centers=np.array([[10.0, 0.0, 1.0]]), sizes=np.array([[4.0, 2.0, 2.0]]),
                   yaw=np.array([np.pi / 2]), velocity=np.zeros((1, 3)),
                   labels=np.array([VEHICLE]), track_ids=np.array([1]), types=['car'])
    pts = np.array([[10.0, 1.9, 1.0], [10.9, 0.0, 0.1], [11.1, 0.0, 1.0], [10.0, 0.0, 2.1]])
    assert points_in_boxes(pts, b).tolist() == [0, 0, -1, -1]
    # ego at (10, 0) heading north: the box lies along the ego x axis, 4 m x 2 m x 2 m
    occ = np.full((10, 10, 4), PLATEAU_TRAFFIC_FREE_LABEL, np.uint8)
    occ[:, :, 0] = PLATEAU_TRAFFIC_CLASSES.index('road')
    occ[5, 5, 1] = PLATEAU_TRAFFIC_CLASSES.index('building')  # static voxels are kept
    n = voxelise_boxes(occ, b, (-5, -5, -1, 5, 5, 3), (1, 1, 1), (10.0, 0.0), np.pi / 2,
                       PLATEAU_TRAFFIC_FREE_LABEL)
    mask = occ == VEHICLE
    ii, jj, kk = np.nonzero(mask)
    # x in [-2, 2] -> i 3..6, y in [-1, 1] -> j 4..5, z in [0, 2] -> k 1..2 (k 0: [-1, 0))
    assert set(ii) == {3, 4, 5, 6} and set(jj) == {4, 5} and set(kk) == {1, 2}
    assert n[0] == mask.sum() == 4 * 2 * 2 - 1
    assert occ[5, 5, 1] == PLATEAU_TRAFFIC_CLASSES.index('building')
    assert (occ[:, :, 0] == PLATEAU_TRAFFIC_CLASSES.index('road')).all()  # static kept


# ----------------------------------------------------------------------------- simulation
def test_vehicles_stay_on_roads_and_nothing_overlaps(cross):
    tmap, roads, blocks, cfg, res = cross
    buildings = shapely.unary_union(blocks)
    n_vehicle_boxes = 0
    for b in res.steps:
        polys = _polys(b)
        ground = b.labels != DRONE
        veh = b.labels == VEHICLE
        n_vehicle_boxes += int(veh.sum())
        assert shapely.contains(roads.buffer(1e-6), polys[veh]).all()
        assert (shapely.area(shapely.intersection(polys[ground], buildings)) < 1e-9).all()
        inter = shapely.area(shapely.intersection(polys[ground][:, None], polys[ground][None]))
        np.fill_diagonal(inter, 0.0)
        assert inter.max(initial=0.0) < 1e-9
    assert n_vehicle_boxes > 0.8 * cfg.num_vehicles * len(res.steps)
    assert res.corridors == 'roads'


def test_pedestrians_on_sidewalks_or_open_ground(cross):
    tmap, roads, blocks, cfg, res = cross
    assert sum((b.labels == PEDESTRIAN).sum() for b in res.steps) == \
        cfg.num_pedestrians * len(res.steps)
    i_all, j_all = [], []
    for b in res.steps:
        ped = b.labels == PEDESTRIAN
        i, j = tmap.to_cell(b.centers[ped, :2])
        i_all.append(i)
        j_all.append(j)
    assert res.walkable[np.concatenate(i_all), np.concatenate(j_all)].all()
    # the walkable area never meets a lane any vehicle uses
    lanes = np.concatenate([p.pts for p in res.network.paths if p.feasible['car']])
    li, lj = tmap.to_cell(lanes)
    assert not res.walkable[li, lj].any()


def test_bounded_speed_and_acceleration(cross):
    tmap, roads, blocks, cfg, res = cross
    dt = cfg.dt
    moved = 0
    for tid, tr in _tracks(res).items():
        at = AGENT_TYPES[tr['type']]
        if len(tr['t']) < 3:
            continue
        step = np.linalg.norm(np.diff(tr['c'][:, :2], axis=0), axis=1)
        v = tr['v']
        assert v.max() <= at.v_max + 1e-6, tr['type']
        assert (step <= 0.5 * (v[1:] + v[:-1]) * dt * 1.05 + 1e-3).all(), tr['type']
        acc = np.diff(v) / dt
        assert acc.max() <= at.a_max + 0.35, (tr['type'], acc.max())
        assert acc.min() >= -at.b_max - 0.35, (tr['type'], acc.min())
        moved += step.sum() > 5.0
    assert moved >= 0.6 * len(_tracks(res))
    assert res.stats['stop_line_overrun'] == 0


def test_vehicles_stop_then_turn_at_the_junction():
    tmap, roads, blocks = _cross_map()
    res = simulate_traffic(tmap, TrafficConfig(num_vehicles=4, num_pedestrians=0, num_drones=0,
                                               seed=1, warmup=0.0),
                           np.arange(41) / 2.0, name='junction')
    turned = stopped_near_junction = 0
    for tr in _tracks(res).values():
        yaw = np.unwrap(tr['yaw'])
        if np.abs(yaw - yaw[0]).max() > np.deg2rad(60):
            turned += 1
        near = np.linalg.norm(tr['c'][:, :2], axis=1) < 20.0
        stopped_near_junction += bool(((tr['v'] < 0.05) & near).any())
    assert turned >= 1 and stopped_near_junction >= 1
    assert res.stats['vehicles_left'] >= 1  # vehicles drive off the dead ends at the border


def test_deterministic_by_seed(cross):
    tmap, roads, blocks, cfg, res = cross
    again = simulate_traffic(tmap, cfg, FRAMES, name='cross')
    other_cfg = TrafficConfig.from_dict({**cfg.to_dict(), 'seed': 4})
    other = simulate_traffic(tmap, other_cfg, FRAMES, name='cross')
    for i in range(len(FRAMES)):
        a, b = res.frame(i), again.frame(i)
        assert np.array_equal(a.centers, b.centers) and np.array_equal(a.track_ids,
                                                                       b.track_ids)
    assert not np.array_equal(res.frame(5).centers, other.frame(5).centers)


def test_drones_fly_clear_of_buildings_and_each_other(cross):
    tmap, roads, blocks, cfg, res = cross
    tops = [20.0, 35.0, 12.0, 50.0]
    for b in res.steps:
        d = b.labels == DRONE
        assert d.sum() == cfg.num_drones
        for c, poly in zip(b.centers[d], _polys(b)[d]):
            under = [h for blk, h in zip(blocks, tops) if blk.buffer(5.0).intersects(poly)]
            assert c[2] - 0.5 * AGENT_TYPES['drone'].size[2] > max(under, default=0.0)
        cd = b.centers[d]
        assert np.linalg.norm(cd[0] - cd[1]) >= cfg.drone_separation - 1e-6


def test_rover_path_is_kept_clear():
    tmap, roads, blocks = _cross_map()
    t = np.arange(12) / 2.0
    # the rover drives east along the road's left lane, then stops in the junction
    x = np.minimum(-45.0 + 4.0 * t, -2.0)
    ego = EgoPath('rover', t, np.stack([x, np.full_like(t, 3.0), np.zeros_like(t)], 1),
                  np.zeros_like(t))
    cfg = TrafficConfig(num_vehicles=8, num_pedestrians=10, num_drones=0, seed=5)
    res = simulate_traffic(tmap, cfg, t, ego=ego, name='rover')
    rover_corners_all = []
    for time, b in zip(res.times, res.steps):
        p, yaw = ego.at(np.array([max(time, 0.0)]))
        rover = box_corners_xy(p[:, :2], [ego.size[0]], [ego.size[1]], yaw)
        rover_corners_all.append(rover)
        ground = b.labels != DRONE
        assert not boxes_overlap_xy(rover, b.corners_xy()[ground], 0.2).any()
    assert sum((b.labels == VEHICLE).sum() for b in res.steps) > 0


def test_derived_corridors_without_road_polygons(caplog):
    blocks = [Polygon([(-40, -40), (-5, -40), (-5, -5), (-40, -5)]),
              Polygon([(8, -40), (40, -40), (40, -8), (8, -8)]),
              Polygon([(-40, 6), (-6, 6), (-6, 40), (-40, 40)]),
              Polygon([(10, 10), (40, 10), (40, 40), (10, 40)])]
    tmap = TrafficMap.from_polygons((-70, -70, 70, 70), blocks, None, None, resolution=0.5)
    with caplog.at_level(logging.INFO, logger='projects.aerialworld.converters.traffic'):
        res = simulate_traffic(tmap, TrafficConfig(num_vehicles=5, num_pedestrians=5,
                                                   num_drones=0, seed=2),
                               np.arange(8) / 2.0, name='open')
    assert res.corridors == 'derived'
    assert 'derived drivable corridors from the open ground' in caplog.text
    buildings = shapely.unary_union(blocks)
    for b in res.steps:
        polys = _polys(b)
        gap = shapely.distance(polys[b.labels == VEHICLE], buildings)
        assert (gap >= 1.0).all()  # corridors keep the sidewalk off the buildings
    assert sum((b.labels == VEHICLE).sum() for b in res.steps) > 0


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match='traffic: unknown option'):
        TrafficConfig.from_dict(dict(num_cars=3))
    with pytest.raises(ValueError, match='traffic.num_pedestrians'):
        TrafficConfig.from_dict(dict(num_pedestrians=-1))
    with pytest.raises(ValueError, match='multiples of traffic.dt'):
        tmap, _, _ = _cross_map()
        simulate_traffic(tmap, TrafficConfig(), [0.0, 0.33])


# ----------------------------------------------------------------------------- real tiles
def _site(tile, pattern):
    from projects.aerialworld.converters import SceneMesh, group_into_sites, read_citygml
    files = sorted(glob.glob(os.path.join(PLATEAU, tile, pattern)))
    return SceneMesh.build(group_into_sites(tile, [read_citygml(f) for f in files])[0])


def test_real_road_polygons_ota_haneda():
    scene = _site('ota_haneda', '*_tran_*.gml')
    area = (-140.0, -25.0, -40.0, 25.0)
    tmap = TrafficMap.from_scene(scene, area, resolution=0.5)
    res = simulate_traffic(tmap, TrafficConfig(num_vehicles=4, num_pedestrians=4,
                                               num_drones=1, seed=0),
                           np.arange(8) / 2.0, name='ota_haneda_tran')
    assert res.corridors == 'roads'
    road = scene.road_area.buffer(1e-6)
    n = 0
    for b in res.steps:
        veh = b.labels == VEHICLE
        n += veh.sum()
        assert shapely.contains(road, _polys(b)[veh]).all()
    assert n > 0


def test_derived_corridors_on_real_buildings_ota_haneda(caplog):
    scene = _site('ota_haneda', '*_bldg_*.gml')
    area = (-100.0, -100.0, 60.0, 60.0)
    tmap = TrafficMap.from_scene(scene, area, resolution=0.5)
    with caplog.at_level(logging.INFO, logger='projects.aerialworld.converters.traffic'):
        res = simulate_traffic(tmap, TrafficConfig(num_vehicles=4, num_pedestrians=6,
                                                   num_drones=1, seed=0),
                               np.arange(6) / 2.0, name='ota_haneda_bldg')
    assert res.corridors == 'derived' and 'derived drivable corridors' in caplog.text
    fps = [scene.building_footprint(i) for i in range(len(scene.building_heights))]
    buildings = shapely.unary_union([f for f in fps if f is not None])
    buildings = buildings.intersection(box(*area).buffer(10))
    for b in res.steps:
        ground = b.labels != DRONE
        assert (shapely.area(shapely.intersection(_polys(b)[ground], buildings)) < 1e-6).all()
        z_drone = b.centers[b.labels == DRONE, 2]
        assert (z_drone > scene.building_heights[:, 1].max()).all() or \
            (z_drone > 20.0).all()
    assert sum((b.labels == VEHICLE).sum() for b in res.steps) > 0
