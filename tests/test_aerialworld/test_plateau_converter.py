"""Tests of the PLATEAU CityGML -> occupancy converter on the real bundled tiles."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import open3d as o3d
import pytest
import trimesh
from mmengine.fileio import load
from scipy.spatial.transform import Rotation

from projects.aerialworld.converters import (GRID_PRESETS, INDEX_FILES, CityGMLError,
                                             ConverterConfig, GlobalSemanticGrid, LocalFrame,
                                             PlateauOccupancyConverter, convert_plateau,
                                             find_gml_files, read_citygml,
                                             triangulate_polygon3d)
from projects.aerialworld.converters.plateau_to_occ import prepare_output_dir
from projects.aerialworld.converters.scene import LIDAR_PRESETS, LidarSpec
from projects.aerialworld.datasets.classes import PLATEAU_CLASSES, PLATEAU_FREE_LABEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLATEAU = os.path.join(ROOT, 'data', 'plateau')
HANEDA = os.path.join(PLATEAU, 'ota_haneda')
SHINJUKU = os.path.join(PLATEAU, 'nishi_shinjuku')
HANEDA_BLDG = os.path.join(HANEDA, '53392642_bldg_6697_op2.gml')
BUILDING = PLATEAU_CLASSES.index('building')

LITE_LIDAR = dict(
    lidar_drone=dict(elevations_deg=(-85.0, -5.0), num_beams=8, azimuth_steps=256,
                     max_range=150.0, mount=(0.0, 0.0, -0.1)),
    lidar_rover=dict(elevations_deg=(-25.0, 15.0), num_beams=8, azimuth_steps=256,
                     max_range=100.0, mount=(0.0, 0.0, 1.8)))


def small_cfg(**kw):
    base = dict(grid='test_local', num_drone_sessions=4, num_rover_sessions=2,
                frames_per_session=6, drone_altitudes=(8.0, 15.0), seed=3, **LITE_LIDAR)
    base.update(kw)
    return ConverterConfig(**base)


@pytest.fixture(scope='module')
def converter():
    return PlateauOccupancyConverter([HANEDA, SHINJUKU], small_cfg())


@pytest.fixture(scope='module')
def converted(converter, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('plateau_local'))
    summary = converter.convert(out)
    return out, summary


# ----------------------------------------------------------------------------- parsing
def test_parse_haneda_recovers_undeclared_namespace():
    parsed = read_citygml(HANEDA_BLDG)
    buildings = [o for o in parsed.objects if o.category == 'building']
    assert len(buildings) == 8
    assert all(o.lod == 2 and o.is_solid for o in buildings)
    # the undeclared `energy:` prefix is recovered and reported, not fatal
    assert parsed.report['xml_errors_recovered'] == 1
    # every ring repeats its first vertex at the end: repaired and counted
    assert parsed.report['rings_closing_vertex_removed'] == parsed.report['rings_read']
    lo, hi = parsed.envelope
    for o in buildings:
        for poly in o.polygons:
            assert poly.exterior.shape[1] == 3 and len(poly.exterior) >= 3
            assert np.all(poly.exterior >= lo - [1e-3, 1e-3, 5]) and \
                np.all(poly.exterior <= hi + [1e-3, 1e-3, 5])


def test_parse_shinjuku_all_kinds():
    cats = {}
    for f in find_gml_files([SHINJUKU])[0][1]:
        p = read_citygml(f)
        for o in p.objects:
            cats[o.category] = cats.get(o.category, 0) + 1
        if 'brid' in f:  # bridges without any geometry are dropped and counted
            assert p.report['bridge_objects_dropped_no_valid_geometry'] == 38
        if 'dem' in f:  # degenerate TIN triangles are dropped and counted
            assert p.report['rings_dropped_too_few_points'] > 0
    assert cats == {'terrain': 1, 'road': 9, 'building': 1, 'bridge': 21, 'city_furniture': 2}


GML_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"
  xmlns:gml="http://www.opengis.net/gml" xmlns:bldg="http://www.opengis.net/citygml/building/2.0">
 <gml:boundedBy><gml:Envelope srsDimension="3">
  <gml:lowerCorner>35.5 139.7 0</gml:lowerCorner><gml:upperCorner>35.6 139.8 50</gml:upperCorner>
 </gml:Envelope></gml:boundedBy>
 <core:cityObjectMember><bldg:Building gml:id="b1"><bldg:lod1Solid><gml:Solid><gml:exterior>
  <gml:CompositeSurface>{members}</gml:CompositeSurface></gml:exterior></gml:Solid>
 </bldg:lod1Solid></bldg:Building></core:cityObjectMember>
</core:CityModel>"""
MEMBER = ('<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>{}'
          '</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>')


def test_validation_repairs_and_drops_are_counted(tmp_path):
    good = '35.55 139.75 3 35.55 139.7501 3 35.5501 139.7501 3 35.5501 139.7501 3 35.55 139.75 3'
    nan = '35.55 139.75 3 35.55 NaN 3 35.5501 139.7501 3 35.55 139.75 3'
    outside = '36.55 139.75 3 36.55 139.7501 3 36.5501 139.7501 3 36.55 139.75 3'
    line = '35.55 139.75 3 35.55 139.7501 3 35.55 139.75 3'
    high = '35.55 139.75 9000 35.55 139.7501 3 35.5501 139.7501 3 35.55 139.75 3'
    f = tmp_path / 'x_bldg.gml'
    f.write_text(GML_TEMPLATE.format(members=''.join(MEMBER.format(p) for p in
                                                     (good, nan, outside, line, high))))
    p = read_citygml(str(f))
    assert len(p.objects) == 1 and p.objects[0].lod == 1
    assert len(p.objects[0].polygons) == 1
    ring = p.objects[0].polygons[0].exterior
    assert ring.shape == (3, 3)  # closing vertex and duplicate removed
    r = p.report
    assert r['duplicate_vertices_removed'] == 1
    assert r['rings_dropped_non_finite'] == 1
    assert r['rings_dropped_outside_envelope'] == 1
    assert r['rings_dropped_too_few_points'] == 1
    assert r['rings_dropped_implausible_height'] == 1
    assert r['polygons_dropped'] == 4


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    missing = str(tmp_path / 'nope_bldg.gml')
    with pytest.raises(CityGMLError, match='nope_bldg.gml'):
        read_citygml(missing)
    corrupt = tmp_path / 'corrupt_bldg.gml'
    corrupt.write_bytes(b'\x00\x01 this is not xml at all \xff')
    with pytest.raises(CityGMLError, match='corrupt_bldg.gml'):
        read_citygml(str(corrupt))
    other = tmp_path / 'other.gml'
    other.write_text('<?xml version="1.0"?><html><body/></html>')
    with pytest.raises(CityGMLError, match='other.gml'):
        read_citygml(str(other))
    empty = tmp_path / 'empty.gml'
    empty.write_text('')
    with pytest.raises(CityGMLError, match='empty.gml'):
        read_citygml(str(empty))
    with pytest.raises(FileNotFoundError, match='no_such_tile'):
        find_gml_files([str(tmp_path / 'no_such_tile')])
    # a corrupt file inside a tile stops the conversion with its name
    tile = tmp_path / 'tile'
    tile.mkdir()
    (tile / 'broken_tran.gml').write_text('<core:CityModel><unclosed')
    with pytest.raises(CityGMLError, match='broken_tran.gml'):
        PlateauOccupancyConverter([str(tile)], small_cfg())


# ----------------------------------------------------------------------------- geometry
def test_geodesy_local_frame_roundtrip():
    ll = np.array([[35.54, 139.776, 10.0], [35.541, 139.776, 12.0]])
    frame = LocalFrame(np.array([0.0, 0.0]), 2.0)
    loc = frame.to_local(ll)
    # 0.001 deg of latitude is ~110.9 m north; the east shift is only the meridian
    # convergence of the plane rectangular zone (a few cm); heights are above the datum
    assert abs((loc[1, 1] - loc[0, 1]) - 110.9) < 0.5 and abs(loc[1, 0] - loc[0, 0]) < 0.2
    assert np.allclose(loc[:, 2], [8.0, 10.0])
    assert np.allclose(frame.to_latlon(loc), ll, atol=1e-9)


def test_triangulation_with_hole():
    ext = np.array([[0, 0, 0], [10, 0, 5], [10, 10, 5], [0, 10, 0]], float)  # tilted square
    hole = np.array([[2, 2, 1], [2, 4, 1], [4, 4, 2], [4, 2, 2]], float)
    v, f = triangulate_polygon3d(ext, [hole])
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]),
                                axis=1).sum()
    slope = np.sqrt(1 + 0.5 ** 2)
    assert abs(area - (100 - 4) * slope) < 1e-6
    assert triangulate_polygon3d(np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2.]])) is None


def test_sites_are_separated_and_ground_synthesised(converter):
    sites = converter.sites
    assert set(sites) == {'ota_haneda_bldg', 'ota_haneda_tran', 'nishi_shinjuku_bldg_brid_frn',
                          'nishi_shinjuku_dem'}  # identical tran file of both tiles read once
    haneda = sites['ota_haneda_bldg'].mesh
    assert haneda.ground_synthesized and not haneda.has_tin
    assert set(haneda.meshes) == {'building', 'terrain'}
    assert sites['nishi_shinjuku_dem'].mesh.has_tin
    shinjuku = sites['nishi_shinjuku_bldg_brid_frn'].mesh
    assert {'building', 'bridge', 'city_furniture', 'terrain'} <= set(shinjuku.meshes)
    assert 'road' in sites['ota_haneda_tran'].mesh.meshes
    # datum: the lowest building base is at z = 0
    assert abs(haneda.meshes['building'].vertices[:, 2].min()) < 1e-6


# ----------------------------------------------------------------------------- occupancy
def _roof_heights(tri_mesh, xy):
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(tri_mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(tri_mesh.faces, np.uint32)))
    rays = np.zeros((len(xy), 6), np.float32)
    rays[:, :2] = xy
    rays[:, 2] = 500.0
    rays[:, 5] = -1.0
    t = scene.cast_rays(o3d.core.Tensor(rays))['t_hit'].numpy()
    assert np.all(np.isfinite(t))
    return 500.0 - t


def _exact_distance(triangles, points, tol=0.02):
    """Float64 distance (N,) from points (N, 3) to the nearest of triangles (T, 3, 3),
    capped at ``tol`` (only triangles whose box, grown by ``tol``, holds the point count)."""
    lo, hi = triangles.min(1) - tol, triangles.max(1) + tol
    near = np.all((points[:, None] >= lo[None]) & (points[:, None] <= hi[None]), axis=2)
    pi, ti = np.nonzero(near)
    out = np.full(len(points), tol)
    if len(pi):
        cp = trimesh.triangles.closest_point(triangles[ti], points[pi])
        d = np.linalg.norm(cp - points[pi], axis=1)
        np.fmin.at(out, pi, d)
    return out


def _inner_point(mesh, b, inset=1.5):
    fp = mesh.building_footprint(b).buffer(-inset)
    assert not fp.is_empty
    p = fp.representative_point()
    return float(p.x), float(p.y)


def test_known_building_is_solid_and_open_air_is_free(converter):
    mesh = converter.sites['ota_haneda_bldg'].mesh
    tallest = int(np.argmax(mesh.building_heights[:, 1]))
    top = mesh.building_heights[tallest, 1]
    x, y = _inner_point(mesh, tallest)
    area = np.array([x - 60, y - 60, x + 60, y + 60])
    grid = GlobalSemanticGrid(mesh, GRID_PRESETS['test_local'], area)
    assert grid.labels_at(np.array([[x, y, top / 2]]))[0] == BUILDING
    # the ego grid centred inside the building: its column is solid from the ground to the roof
    occ = grid.ego_occupancy(x, y, 0.7)
    spec = GRID_PRESETS['test_local']
    X, Y, Z = spec.grid_size
    assert occ.shape == (X, Y, Z) and occ.dtype == np.uint8
    zc = spec.point_cloud_range[2] + (np.arange(Z) + 0.5) * spec.voxel_size[2]
    col = occ[X // 2, Y // 2]
    # roof height around (x, y) (LOD2 roofs are stepped): vertical rays within 1 m
    ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = np.concatenate([[[x, y]], np.stack([x + np.cos(ang), y + np.sin(ang)], 1)])
    roof = _roof_heights(mesh.meshes['building'], ring)
    inside = (zc > 0.5) & (zc < roof.min() - 1.0)
    assert inside.sum() >= 5 and np.all(col[inside] == BUILDING)
    assert np.all(col[zc > roof.max() + 1.0] == PLATEAU_FREE_LABEL)
    # 10 m above the tallest roof (tokyo grid reaches 150 m): free
    tokyo = GlobalSemanticGrid(mesh, GRID_PRESETS['tokyo'], area)
    assert tokyo.labels_at(np.array([[x, y, top / 2]]))[0] == BUILDING
    assert tokyo.labels_at(np.array([[x, y, top + 10.0]]))[0] == PLATEAU_FREE_LABEL
    occ_t = tokyo.ego_occupancy(x, y, -1.2)
    k = int((top + 10.0 - GRID_PRESETS['tokyo'].point_cloud_range[2]) // 1.25)
    assert occ_t.shape == (200, 200, 121)
    assert occ_t[100, 100, k] == PLATEAU_FREE_LABEL and occ_t[100, 100, 5] == BUILDING


def test_roads_and_bridges_are_labelled(converter, converted):
    road = PLATEAU_CLASSES.index('road')
    g = converter.sites['ota_haneda_tran'].grid
    assert (g.labels == road).sum() > 100
    assert (g.labels == PLATEAU_CLASSES.index('terrain')).sum() > 1000
    mesh = converter.sites['nishi_shinjuku_bldg_brid_frn'].mesh
    g2 = GlobalSemanticGrid(mesh, GRID_PRESETS['test_local'], mesh.flight_area(0.0))
    for name in ('building', 'bridge', 'city_furniture'):
        assert (g2.labels == PLATEAU_CLASSES.index(name)).sum() > 0, name


def test_lidar_hits_lie_on_the_mesh(converter):
    site = converter.sites['ota_haneda_bldg']
    mesh = site.mesh
    b = int(np.argmax(mesh.building_heights[:, 1]))
    x, y = _inner_point(mesh, b)
    scene = o3d.t.geometry.RaycastingScene()
    for m in mesh.meshes.values():
        scene.add_triangles(o3d.core.Tensor(np.asarray(m.vertices, np.float32)),
                            o3d.core.Tensor(np.asarray(m.faces, np.uint32)))
    all_tris = np.concatenate([m.vertices[m.faces] for m in mesh.meshes.values()])
    area = np.linalg.norm(np.cross(all_tris[:, 1] - all_tris[:, 0],
                                   all_tris[:, 2] - all_tris[:, 0]), axis=1)
    assert np.all(area > 0)  # degenerate faces were removed when building the meshes
    rot = Rotation.from_euler('ZYX', [0.6, 0.05, -0.03]).as_matrix()
    for pos, spec in (([x + 30.0, y - 20.0, 25.0], LIDAR_PRESETS['drone']),
                      ([x + 40.0, y, 0.0], LIDAR_PRESETS['rover'])):
        pts, labels = site.lidar.scan(np.array(pos), rot, spec)
        assert pts.dtype == np.float32 and pts.shape[1] == 4 and len(pts) > 1000
        assert np.all((pts[:, 3] >= 0) & (pts[:, 3] <= 1))
        assert set(np.unique(labels)) <= {BUILDING, PLATEAU_CLASSES.index('terrain')}
        world = np.asarray(pos) + pts[:, :3].astype(np.float64) @ rot.T
        rng = np.linalg.norm(pts[:, :3] - np.asarray(spec.mount), axis=1)
        assert rng.max() <= spec.max_range + 1e-3
        d = scene.compute_distance(o3d.core.Tensor(world.astype(np.float32))).numpy()
        # Open3D's float32 closest-point query is a few cm off on long sliver roof
        # triangles: re-check those points exactly (float64, every triangle)
        redo = np.flatnonzero(d >= 0.01)
        if redo.size:
            d[redo] = _exact_distance(all_tris, world[redo])
        assert d.max() < 0.01, d.max()
    assert (labels == BUILDING).any()


# ----------------------------------------------------------------------------- writer
def test_index_split_and_files(converted):
    out, summary = converted
    train = load(os.path.join(out, INDEX_FILES['train']))
    val = load(os.path.join(out, INDEX_FILES['val']))
    meta = train['metainfo']
    assert meta['classes'] == PLATEAU_CLASSES and meta['free_label'] == PLATEAU_FREE_LABEL
    assert meta['grid_size'] == [50, 50, 30] and meta['z_reference'] == 'ground'
    assert meta['point_cloud_range'] == [-20.0, -20.0, -5.0, 20.0, 20.0, 25.0]
    assert meta['voxel_size'] == [0.8, 0.8, 1.0] and meta['frame_rate_hz'] == 2.0
    assert meta['version'] == '1.0' and meta['config_hash'] == val['metainfo']['config_hash']
    s_train = {e['session'] for e in train['data_list']}
    s_val = {e['session'] for e in val['data_list']}
    assert s_train and s_val and not (s_train & s_val)
    assert any(s.startswith('rover_') for s in s_train | s_val)
    assert {s.split('_')[0] for s in s_val} <= {'drone', 'rover'}
    assert len(s_train | s_val) == summary['sessions'] == 6
    for dl in (train['data_list'], val['data_list']):
        keys = [(e['session'], e['frame_idx']) for e in dl]
        assert keys == sorted(keys)
        for e in dl[:8]:
            occ = np.load(os.path.join(out, e['occ_path']))['occupancy']
            assert occ.dtype == np.uint8 and occ.shape == (50, 50, 30)
            assert occ.max() <= PLATEAU_FREE_LABEL
            lidar = np.load(os.path.join(out, e['lidar_path']))
            assert lidar.dtype == np.float32 and lidar.ndim == 2 and lidar.shape[1] == 4
            assert e['timestamp'] == pytest.approx(e['frame_idx'] / 2.0)
    # refuse a non-empty output folder unless overwrite
    with pytest.raises(FileExistsError, match='overwrite'):
        prepare_output_dir(out, overwrite=False)


def test_pose_json_roundtrip(converted):
    out, _ = converted
    for session in sorted(os.listdir(out)):
        pose_dir = os.path.join(out, session, 'poses')
        if not os.path.isdir(pose_dir):
            continue
        recs = [json.load(open(os.path.join(pose_dir, f)))
                for f in sorted(os.listdir(pose_dir))]
        assert set(recs[0]) == {'pose_13d', 'timestamp', 'position', 'orientation', 'velocity'}
        poses = np.array([r['pose_13d'] for r in recs])
        t = np.array([r['timestamp'] for r in recs])
        assert poses.shape == (len(recs), 13)
        for r, p in zip(recs, poses):
            assert np.allclose(p[:3], [r['position'][k] for k in 'xyz'])
            assert np.allclose(p[3:7], [r['orientation'][k] for k in 'wxyz'])
            assert np.allclose(p[7:10], [r['velocity']['linear'][k] for k in 'xyz'])
            assert np.allclose(p[10:], [r['velocity']['angular'][k] for k in 'xyz'])
        assert np.allclose(np.linalg.norm(poses[:, 3:7], axis=1), 1.0, atol=1e-9)
        # velocity agrees with position differences (central, 1 s apart)
        fd = (poses[2:, :3] - poses[:-2, :3]) / (t[2:] - t[:-2])[:, None]
        speed = np.linalg.norm(poses[1:-1, 7:10], axis=1)
        err = np.linalg.norm(fd - poses[1:-1, 7:10], axis=1)
        assert np.all(err < 0.5 + 0.1 * speed), (session, err.max())
        if session.startswith('drone'):
            assert np.all((speed > 3.0) & (speed < 13.0)), session
        else:
            assert np.all(speed < 7.0) and np.allclose(poses[:, 2], 0.0)
        # body yaw rate agrees with the heading change of the quaternions
        yaw = np.unwrap(Rotation.from_quat(poses[:, [4, 5, 6, 3]]).as_euler('ZYX')[:, 0])
        dyaw = (yaw[2:] - yaw[:-2]) / (t[2:] - t[:-2])
        assert np.all(np.abs(dyaw - poses[1:-1, 12]) < 0.15 + 0.2 * np.abs(dyaw)), session


def test_rovers_stay_on_roads(converter):
    plans = [p for p in converter.plan_sessions() if p.kind == 'rover']
    road = converter.sites[plans[0].site].mesh.road_area
    import shapely
    for p in plans:
        traj = converter.simulate(p)
        assert np.all(shapely.contains_xy(road.buffer(0.05), traj.positions[:, 0],
                                          traj.positions[:, 1]))
        assert np.abs(np.diff(traj.yaw)).max() < 1.0  # smooth heading at 2 Hz


def test_determinism(tmp_path):
    cfg = small_cfg(num_drone_sessions=3, num_rover_sessions=1, frames_per_session=4)
    a, b, c = str(tmp_path / 'a'), str(tmp_path / 'b'), str(tmp_path / 'c')
    convert_plateau([HANEDA], a, cfg)
    convert_plateau([HANEDA], b, cfg)
    ia = load(os.path.join(a, INDEX_FILES['train']))
    ib = load(os.path.join(b, INDEX_FILES['train']))
    assert ia['data_list'] == ib['data_list']
    for e in ia['data_list']:
        assert np.array_equal(np.load(os.path.join(a, e['occ_path']))['occupancy'],
                              np.load(os.path.join(b, e['occ_path']))['occupancy'])
        assert np.array_equal(np.load(os.path.join(a, e['lidar_path'])),
                              np.load(os.path.join(b, e['lidar_path'])))
        assert open(os.path.join(a, e['pose_path'])).read() == \
            open(os.path.join(b, e['pose_path'])).read()
    convert_plateau([HANEDA], c, small_cfg(num_drone_sessions=3, num_rover_sessions=1,
                                           frames_per_session=4, seed=4))
    e = ia['data_list'][0]
    assert open(os.path.join(a, e['pose_path'])).read() != \
        open(os.path.join(c, e['pose_path'])).read()
    # overwrite replaces previous outputs
    convert_plateau([HANEDA], a, cfg, overwrite=True)
    assert load(os.path.join(a, INDEX_FILES['train']))['data_list'] == ia['data_list']


def test_config_validation():
    with pytest.raises(ValueError, match='grid preset'):
        ConverterConfig(grid='nope').validate()
    with pytest.raises(ValueError, match='frame_rate_hz'):
        ConverterConfig(frame_rate_hz=3.0).validate()
    with pytest.raises(ValueError, match='frames_per_session'):
        ConverterConfig(frames_per_session=1).validate()
    cfg = ConverterConfig(grid=dict(point_cloud_range=[-10, -10, -2, 10, 10, 8],
                                    voxel_size=[0.5, 0.5, 0.5]))
    assert cfg.grid_spec().grid_size == (40, 40, 20)
    assert isinstance(cfg.lidar_spec('rover'), LidarSpec)


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'data_converter', 'plateau_to_occ.py'),
           HANEDA, '--out-dir', str(out), '--grid', 'test_local', '--drone-sessions', '2',
           '--rover-sessions', '1', '--frames', '3', '--no-lidar', '--log-level', 'WARNING']
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert 'wrote 3 sessions' in res.stdout
    assert os.path.isfile(out / INDEX_FILES['train'])
    # a second run into the same folder refuses (in-process to keep the test fast)
    spec = importlib.util.spec_from_file_location('plateau_cli', cmd[1])
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    with pytest.raises(SystemExit, match='not empty'):
        cli.main(cmd[2:])
