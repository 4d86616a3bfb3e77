"""PLATEAU converter robustness (issue 8, item 6) on real tiles and hand-edited copies.

Real tiles: ``data/plateau/*`` (Ota, Shinjuku, Suginami). Hand-edited copies are written to
``tmp_path``: coordinates shifted to another city, ``srsName`` replaced, ``tran:Road`` renamed,
a road narrowed, a building's geometry moved into a ``bldg:BuildingPart``.
"""
import logging
import os
import re

import numpy as np
import pytest
from mmengine.fileio import load
from pyproj import Geod

from projects.aerialworld.converters import (CityGMLError, ConverterConfig, GlobalSemanticGrid,
                                             PlateauOccupancyConverter, convert_plateau,
                                             read_citygml, select_plane_rectangular_zone)
from projects.aerialworld.converters.citygml import parse_srs_name
from projects.aerialworld.converters.geodesy import grid_distortion
from projects.aerialworld.converters.mesh import SceneMesh, ground_datum, group_into_sites
from projects.aerialworld.converters.scene import GridSpec
from projects.aerialworld.datasets.classes import PLATEAU_CLASSES
from projects.aerialworld.datasets.session_io import INDEX_FILES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLATEAU = os.path.join(ROOT, 'data', 'plateau')
OTA = os.path.join(PLATEAU, 'ota_53392633')
OTA_BLDG = os.path.join(OTA, '53392633_bldg_6697_2_op.gml')
SHINJUKU = os.path.join(PLATEAU, 'shinjuku_53394517')
SHINJUKU_BLDG = os.path.join(SHINJUKU, '53394517_bldg_6697_op.gml')
SUGINAMI = os.path.join(PLATEAU, 'suginami_53394503')
SUGINAMI_TRAN = os.path.join(SUGINAMI, '53394503_tran_6697_op.gml')
TERRAIN = PLATEAU_CLASSES.index('terrain')
BUILDING = PLATEAU_CLASSES.index('building')
ROAD = PLATEAU_CLASSES.index('road')
_COORDS = re.compile(r'(<gml:(?:posList|pos|lowerCorner|upperCorner)[^>]*>)([^<]*)(<)')


def cfg(**kw):
    base = dict(grid='test_local', num_drone_sessions=1, num_rover_sessions=1,
                frames_per_session=3, drone_altitudes=(10.0,), lidar=False, seed=0)
    base.update(kw)
    return ConverterConfig(**base)


def edit_coords(text, fn):
    """Apply ``fn((N, 3) lat lon h) -> (N, 3)`` to every coordinate list of a GML text."""
    def sub(m):
        vals = np.array(m.group(2).split(), dtype=np.float64)
        if vals.size == 0 or vals.size % 3:
            return m.group(0)
        out = fn(vals.reshape(-1, 3)).reshape(-1)
        return m.group(1) + ' '.join(repr(float(v)) for v in out) + m.group(3)
    return _COORDS.sub(sub, text)


def write_copy(tmp_path, tile, src, text):
    folder = tmp_path / tile
    folder.mkdir(exist_ok=True)
    path = folder / os.path.basename(src)
    path.write_text(text, encoding='utf-8')
    return str(folder), str(path)


def shifted(dlat, dlon, dh=0.0):
    return lambda p: p + np.array([dlat, dlon, dh])


# ----------------------------------------------------------------------------- CRS
@pytest.mark.parametrize('path', [OTA_BLDG, SHINJUKU_BLDG, SUGINAMI_TRAN])
def test_crs_of_real_tiles_is_read_from_srs_name(path):
    assert read_citygml(path).crs == 'EPSG:6697'


def test_parse_srs_name_spellings():
    assert parse_srs_name('http://www.opengis.net/def/crs/EPSG/0/6697') == 'EPSG:6697'
    assert parse_srs_name('urn:ogc:def:crs:EPSG::6668') == 'EPSG:6668'
    assert parse_srs_name('EPSG:6677') == 'EPSG:6677'
    assert parse_srs_name('urn:ogc:def:crs,crs:EPSG:6.12:4326') == 'EPSG:4326'
    assert parse_srs_name('local-grid') is None


def test_other_crs_is_an_error_naming_file_and_crs(tmp_path):
    text = open(SUGINAMI_TRAN, encoding='utf-8').read()
    bad = text.replace('http://www.opengis.net/def/crs/EPSG/0/6697',
                       'http://www.opengis.net/def/crs/EPSG/0/6677')
    _, path = write_copy(tmp_path, 'projected', SUGINAMI_TRAN, bad)
    with pytest.raises(CityGMLError, match=r'53394503_tran_6697_op\.gml.*EPSG/0/6677'):
        read_citygml(path)
    # the 2-D JGD2011 geographic CRS is accepted
    ok = text.replace('http://www.opengis.net/def/crs/EPSG/0/6697', 'urn:ogc:def:crs:EPSG::6668')
    _, path = write_copy(tmp_path, 'geographic2d', SUGINAMI_TRAN, ok)
    parsed = read_citygml(path)
    assert parsed.crs == 'EPSG:6668' and len(parsed.objects) == 1


# ----------------------------------------------------------------------------- metric frame
@pytest.mark.parametrize('lat,lon,zone', [
    (35.68, 139.69, 6677),  # Tokyo: IX
    (34.69, 135.50, 6674),  # Osaka: VI
    (43.06, 141.35, 6680),  # Sapporo: XII
    (38.27, 140.87, 6678),  # Sendai: X
    (33.59, 130.40, 6670),  # Fukuoka: II
    (32.75, 129.87, 6669),  # Nagasaki: I
    (26.21, 127.68, 6683),  # Naha: XV
    (27.09, 142.19, 6682),  # Chichijima (Ogasawara): XIV
])
def test_zone_selection(lat, lon, zone):
    crs = select_plane_rectangular_zone(lat, lon)
    assert crs == f'EPSG:{zone}'
    conv, scale = grid_distortion(crs, lat, lon)
    assert abs(conv) < 1.0 and abs(scale - 1) < 1.5e-4
    with pytest.raises(ValueError, match='not in Japan'):
        select_plane_rectangular_zone(48.85, 2.35)


def test_real_tokyo_tiles_get_zone_ix():
    for tile in ('ota_haneda', 'nishi_shinjuku', 'ota_53392633', 'shinjuku_53394517',
                 'suginami_53394503'):
        files = sorted(f for f in os.listdir(os.path.join(PLATEAU, tile)) if f.endswith('.gml'))
        parsed = read_citygml(os.path.join(PLATEAU, tile, files[-1]))
        for site in group_into_sites(tile, [parsed]):
            assert site.target_crs == 'EPSG:6677', (tile, site.name)


def _frame_errors(site_objs, mesh):
    """Rotation (deg) and scale of the local frame against geodesic truth on the road ring."""
    geod = Geod(ellps='GRS80')
    ll = site_objs.objects[0].polygons[0].exterior
    loc = mesh.frame.to_local(ll)
    i, j = int(np.argmin(loc[:, 0])), int(np.argmax(loc[:, 0]))
    az, _, dist = geod.inv(ll[i, 1], ll[i, 0], ll[j, 1], ll[j, 0])
    d = loc[j, :2] - loc[i, :2]
    bearing = np.degrees(np.arctan2(d[0], d[1]))  # clockwise from the grid's north (y)
    rot = (bearing - az + 180.0) % 360.0 - 180.0
    return rot, np.hypot(*d) / dist


def test_far_site_comes_out_unrotated_and_unscaled(tmp_path):
    """The Suginami road moved to Fukuoka (9.3 degrees west of zone IX's meridian)."""
    text = edit_coords(open(SUGINAMI_TRAN, encoding='utf-8').read(), shifted(-2.08, -9.27))
    folder, path = write_copy(tmp_path, 'fukuoka', SUGINAMI_TRAN, text)
    parsed = read_citygml(path)
    errors = {}
    for frame in ('zone', 'local', 'EPSG:6677'):
        site = group_into_sites('fukuoka', [parsed], frame=frame)[0]
        errors[frame] = _frame_errors(site, SceneMesh.build(site))
        if frame == 'zone':
            assert site.target_crs == 'EPSG:6670'  # zone II
    rot, scale = errors['local']  # local tangent frame: true north, true metres
    assert abs(rot) < 1e-3 and abs(scale - 1) < 1e-6
    rot, scale = errors['zone']  # the zone of the site: survey-grade
    assert abs(rot) < 0.5 and abs(scale - 1) < 1e-4
    rot, scale = errors['EPSG:6677']  # the old fixed zone IX: rotated and scaled
    assert abs(rot) > 5.0 and scale > 1.009
    # the converter stores the chosen CRS per site
    out = str(tmp_path / 'out')
    convert_plateau([folder], out, cfg(frame='local', num_rover_sessions=0))
    sites = load(os.path.join(out, INDEX_FILES['train']))['metainfo']['sites']
    assert list(sites.values())[0]['target_crs'].startswith('+proj=tmerc +lat_0=33.5')


# ----------------------------------------------------------------------------- rover roads
def test_real_road_tile_has_rover_sessions(tmp_path):
    conv = PlateauOccupancyConverter([SUGINAMI], cfg())
    assert conv.rover_sites() == ['suginami_53394503_tran']
    out = str(tmp_path / 'out')
    s = conv.convert(out)
    assert s['sessions'] == 2 and os.path.isdir(os.path.join(out, 'rover_000'))


@pytest.mark.parametrize('kind', ['Railway', 'Track', 'Square'])
def test_railways_tracks_squares_are_not_rover_roads(tmp_path, caplog, kind):
    text = open(SUGINAMI_TRAN, encoding='utf-8').read()
    text = text.replace('<tran:Road ', f'<tran:{kind} ').replace('</tran:Road>',
                                                                 f'</tran:{kind}>')
    folder, path = write_copy(tmp_path, kind.lower(), SUGINAMI_TRAN, text)
    obj = read_citygml(path).objects[0]
    assert obj.category == 'road' and obj.kind == kind
    with caplog.at_level(logging.WARNING):
        conv = PlateauOccupancyConverter([folder], cfg())
        mesh = conv.sites[f'{kind.lower()}_tran'].mesh
        assert mesh.road_area is None and 'road' in mesh.meshes  # labelled, not driven on
        assert mesh.report[f'road_objects_not_drivable_{kind}'] == 1
        plans = conv.plan_sessions()
    assert [p.kind for p in plans] == ['drone_survey']
    assert 'no site has roads a rover can drive on' in caplog.text


def _narrow(p):
    """Squeeze the road ring to a 1.2 m wide strip (across its longer side)."""
    c = p.mean(0)
    out = p.copy()
    out[:, 1] = c[1] + (p[:, 1] - c[1]) * 0.05
    return out


def test_narrow_roads_skip_rovers_with_a_warning(tmp_path, caplog):
    text = edit_coords(open(SUGINAMI_TRAN, encoding='utf-8').read(), _narrow)
    folder, _ = write_copy(tmp_path, 'narrow', SUGINAMI_TRAN, text)
    out = str(tmp_path / 'out')
    with caplog.at_level(logging.WARNING):
        summary = convert_plateau([folder], out, cfg())
    assert summary['sessions'] == 1
    assert sorted(os.listdir(out)) == sorted(['drone_survey_000'] + list(INDEX_FILES.values()))
    assert 'too narrow for a rover' in caplog.text and '53394503_tran_6697_op.gml' in caplog.text
    # only rover sessions requested: the run fails and leaves no output folder
    out2 = str(tmp_path / 'out2')
    with pytest.raises(ValueError, match='nothing to convert.*53394503_tran'):
        convert_plateau([folder], out2, cfg(num_drone_sessions=0))
    assert not os.path.exists(out2)


def test_failed_run_leaves_no_output_folder(tmp_path, monkeypatch):
    conv = PlateauOccupancyConverter([SUGINAMI], cfg())

    def broken(*args, **kwargs):
        raise RuntimeError('disk full')

    monkeypatch.setattr(conv, 'render_frame', broken)
    out = str(tmp_path / 'new')
    with pytest.raises(RuntimeError, match='disk full'):
        conv.convert(out)
    assert not os.path.exists(out)
    # a folder that existed before is left in place (and its foreign entries kept)
    keep = tmp_path / 'existing'
    keep.mkdir()
    (keep / 'notes.txt').write_text('mine')
    with pytest.raises(RuntimeError, match='disk full'):
        conv.convert(str(keep), overwrite=True)
    assert (keep / 'notes.txt').read_text() == 'mine'


# ----------------------------------------------------------------------------- datum, plinths
def test_zero_height_roads_do_not_pull_the_datum_down(tmp_path):
    road = read_citygml(SUGINAMI_TRAN)  # real: every road height is 0 (no elevation survey)
    assert np.all(road.objects[0].polygons[0].exterior[:, 2] == 0)
    only_road = group_into_sites('suginami', [road])[0]
    assert ground_datum(only_road) == 0.0  # nothing else: the lowest vertex
    # hand-edited: the road moved next to the real Shinjuku building (base 34.5 m)
    bldg = read_citygml(SHINJUKU_BLDG)
    centre = lambda objs: np.concatenate(  # noqa: E731
        [p.exterior[:, :2] for o in objs for p in o.polygons]).mean(0)
    d = centre(bldg.objects) - centre(road.objects)
    text = edit_coords(open(SUGINAMI_TRAN, encoding='utf-8').read(), shifted(d[0], d[1]))
    _, path = write_copy(tmp_path, 'moved', SUGINAMI_TRAN, text)
    sites = group_into_sites('mixed', [bldg, read_citygml(path)], gap_m=300.0)
    assert len(sites) == 1
    base = min(p.exterior[:, 2].min() for o in bldg.objects for p in o.polygons)
    mesh = SceneMesh.build(sites[0])
    assert mesh.report['road_objects_without_height'] == 1
    assert mesh.frame.datum_h == pytest.approx(base) and base > 30.0
    assert abs(mesh.meshes['building'].vertices[:, 2].min()) < 1e-6
    assert np.all(np.abs(mesh.meshes['road'].vertices[:, 2] - 0.02) < 1e-9)  # draped


def test_plinths_without_tin_are_terrain():
    mesh = SceneMesh.build(group_into_sites('ota_53392633', [read_citygml(OTA_BLDG)])[0])
    assert not mesh.has_tin and mesh.plinths is not None
    assert mesh.report['terrain_plinths_added'] == 8 and 'building_plinths_added' not in \
        mesh.report
    # a raised building: its base is above the datum, the plinth fills the gap as terrain
    m = mesh.meshes['building']
    bases = [m.vertices[m.faces[mesh.building_ids == b].reshape(-1), 2].min()
             for b in range(len(mesh.building_heights))]
    b = int(np.argmax(bases))
    base = bases[b]
    assert base > 0.7  # the real bases lie 0 to 0.76 m above the datum
    fp = mesh.building_footprint(b).buffer(-1.5)
    x, y = fp.representative_point().coords[0]
    fine = GridSpec((-10.0, -10.0, -1.0, 10.0, 10.0, 4.0), (0.3, 0.3, 0.2))
    grid = GlobalSemanticGrid(mesh, fine, np.array([x - 12, y - 12, x + 12, y + 12]))
    zs = np.arange(0.05, base - 0.2, 0.05)  # below the voxel holding the base
    labels = grid.labels_at(np.stack([np.full_like(zs, x), np.full_like(zs, y), zs], 1))
    assert len(zs) >= 10 and np.all(labels == TERRAIN), labels
    assert grid.labels_at(np.array([[x, y, base + 1.0]]))[0] == BUILDING
    assert grid.counts['terrain_plinth_filled'] > 0


# ----------------------------------------------------------------------------- parts
BUILDING_WITH_PART = """<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0"
  xmlns:gml="http://www.opengis.net/gml" xmlns:bldg="http://www.opengis.net/citygml/building/2.0">
 <gml:boundedBy><gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6697"
  srsDimension="3"><gml:lowerCorner>{lo}</gml:lowerCorner><gml:upperCorner>{hi}</gml:upperCorner>
 </gml:Envelope></gml:boundedBy>
 <core:cityObjectMember><bldg:Building gml:id="parent">
  <bldg:consistsOfBuildingPart><bldg:BuildingPart gml:id="part1">
   {geometry}
  </bldg:BuildingPart></bldg:consistsOfBuildingPart>
 </bldg:Building></core:cityObjectMember>
 <core:cityObjectMember><bldg:Building gml:id="empty"/></core:cityObjectMember>
</core:CityModel>"""


def test_parent_building_with_geometry_in_parts_counts_as_kept(tmp_path, caplog):
    # real tile: nine buildings, all kept
    with caplog.at_level(logging.INFO, logger='projects.aerialworld.converters.citygml'):
        real = read_citygml(OTA_BLDG)
    assert real.report['building_objects_kept'] == 9
    assert "kept {'building': 9}" in caplog.text
    # hand-edited: the first real building's lod1Solid moved into a BuildingPart
    text = open(OTA_BLDG, encoding='utf-8').read()
    solid = re.search(r'<bldg:lod1Solid>.*?</bldg:lod1Solid>', text, re.S).group(0)
    env = re.search(r'<gml:lowerCorner>([^<]*)</gml:lowerCorner>\s*<gml:upperCorner>([^<]*)<',
                    text)
    path = tmp_path / 'part_bldg.gml'
    path.write_text(BUILDING_WITH_PART.format(lo=env.group(1), hi=env.group(2),
                                              geometry=solid), encoding='utf-8')
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='projects.aerialworld.converters.citygml'):
        parsed = read_citygml(str(path))
    r = parsed.report
    assert len(parsed.objects) == 1 and parsed.objects[0].kind == 'BuildingPart'
    assert r['building_objects_read'] == 2 and r['building_parts_read'] == 1
    assert r['building_objects_kept'] == 1 and r['building_parts_kept'] == 1
    assert r['building_objects_with_geometry_in_parts'] == 1
    assert r['building_objects_dropped_no_valid_geometry'] == 1  # only the empty one
    assert "kept {'building': 1, 'building_parts': 1}" in caplog.text
