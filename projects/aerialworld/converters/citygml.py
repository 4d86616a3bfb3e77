"""Robust reading of PLATEAU CityGML 2.0 files into semantic polygons.

The reader uses lxml with ``recover=True``: real PLATEAU files have defects that a strict XML
parser refuses (the Ota-Haneda building file uses the namespace prefix ``energy:`` without
declaring it). Elements are matched by their *local* name, so both properly namespaced tags and
recovered ``prefix:name`` tags are understood.

What is read (positions are ``lat lon h`` triples in EPSG:6697, heights orthometric metres):

* ``bldg:Building`` / ``bldg:BuildingPart``: the LOD2 geometry (``lod2Solid``,
  ``lod2MultiSurface`` and the Wall/Roof/Ground/OuterCeiling/... surfaces in ``boundedBy``,
  plus LOD2 building installations); when a building has no usable LOD2 polygon its
  ``lod1Solid`` is used instead (counted as ``buildings_lod1_fallback``).
* ``brid:Bridge`` / ``brid:BridgePart``: LOD2 then LOD1 geometry, same rule.
* ``dem:TINRelief``: the triangles of ``gml:TriangulatedSurface`` (``terrain``).
* ``tran:Road`` (and other transportation objects): ``lod1MultiSurface`` (``road``).
* ``frn:CityFurniture``: LOD2 then LOD1 geometry (``city_furniture``).
* generic objects, vegetation, water bodies, tunnels and other constructions: ``other``.
  Other top-level members (land use, urban planning zones, ...) are not geometry of the
  scene; they are skipped and counted as ``ignored_<ElementName>``.

Every ring is validated: non-finite values drop the ring, coordinates outside the file's
``gml:Envelope`` (with a tolerance) drop the ring, implausible heights drop the ring,
consecutive duplicate vertices and the duplicated closing vertex are removed (repairs), and a
ring with fewer than three distinct points is dropped. Counts of every repair and drop are kept
in :attr:`ParsedCityGML.report` and logged as one summary line per file; nothing is dropped or
repaired silently.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from lxml import etree

logger = logging.getLogger(__name__)

GML_NS = 'http://www.opengis.net/gml'
XLINK_HREF = '{http://www.w3.org/1999/xlink}href'

#: Degrees of latitude / longitude by which a vertex may lie outside the file envelope.
ENVELOPE_TOL_DEG = 2e-4
#: Metres by which a height may lie outside the file envelope.
ENVELOPE_TOL_H = 5.0
#: Plausible orthometric heights in Japan (m): below the lowest land / above Mt Fuji + towers.
HEIGHT_LIMITS = (-100.0, 4000.0)
#: CRSs a PLATEAU file may declare in ``srsName``: JGD2011 geographic 2-D + JGD2011 height
#: (EPSG:6697, what PLATEAU ships) and JGD2011 geographic 2-D (EPSG:6668); both give
#: ``lat lon`` in degrees, axis order latitude first.
ACCEPTED_CRS = ('EPSG:6697', 'EPSG:6668')
#: Transportation objects a rover may drive on (railways, tracks and squares are not roads).
DRIVABLE_KINDS = ('Road',)


class CityGMLError(ValueError):
    """Raised when a CityGML file is missing, unreadable or not XML; the message names it."""


@dataclass
class Polygon3D:
    """One planar (or nearly planar) polygon.

    Attributes:
        exterior (np.ndarray): (N, 3) float64 ``lat, lon, h`` (degrees, degrees, metres),
            open ring (the closing vertex is not repeated), N >= 3.
        interiors (list[np.ndarray]): holes, each (M, 3) float64 in the same layout.
    """

    exterior: np.ndarray
    interiors: List[np.ndarray] = field(default_factory=list)


@dataclass
class CityObject:
    """A city object reduced to its semantic class and polygons.

    Attributes:
        gml_id (str): ``gml:id`` of the object (or a generated id when absent).
        category (str): one of ``'building'``, ``'bridge'``, ``'road'``, ``'terrain'``,
            ``'city_furniture'``, ``'other'``.
        lod (int): level of detail the polygons come from.
        polygons (list[Polygon3D]): the valid polygons.
        source (str): path of the file it was read from.
        is_solid (bool): True when the polygons bound a volume (building / bridge solids or
            a building's LOD2 boundary surfaces); such objects are filled when voxelised.
        kind (str): CityGML element name (``'Road'``, ``'Railway'``, ``'Track'``,
            ``'Square'``, ``'Building'``, ``'BuildingPart'``, ...); only ``'Road'`` objects
            are drivable for rovers (:data:`DRIVABLE_KINDS`).
    """

    gml_id: str
    category: str
    lod: int
    polygons: List[Polygon3D]
    source: str
    is_solid: bool = False
    kind: str = ''


@dataclass
class ParsedCityGML:
    """The result of reading one CityGML file.

    Attributes:
        path (str): the file.
        envelope (np.ndarray | None): (2, 3) float64 ``[[lat, lon, h]_lower, [lat, lon, h]_upper]``
            from the root ``gml:Envelope``, None when the file has none.
        objects (list[CityObject]): the city objects with at least one valid polygon.
        report (Counter): counts of what was read, repaired and dropped.
        crs (str): the file's CRS as ``'EPSG:<code>'`` (from ``srsName``; one of
            :data:`ACCEPTED_CRS`).
    """

    path: str
    envelope: Optional[np.ndarray]
    objects: List[CityObject]
    report: Counter
    crs: str = 'EPSG:6697'


def local_name(tag) -> str:
    """Local name of an lxml tag, robust to recovered undeclared prefixes.

    Args:
        tag: ``element.tag`` (``'{ns}name'``, ``'prefix:name'`` or ``'name'``); comments and
            processing instructions have a non-string tag.

    Returns:
        str: the local name (``''`` for non-element nodes).
    """
    if not isinstance(tag, str):
        return ''
    if tag.startswith('{'):
        tag = tag.rsplit('}', 1)[1]
    return tag.rsplit(':', 1)[-1]


def load_xml(path: str) -> Tuple[etree._ElementTree, int]:
    """Parse an XML file with a recovering parser.

    Args:
        path (str): file to read.

    Returns:
        tuple: the parsed ``lxml.etree._ElementTree`` and the number of XML errors the parser
        recovered from (logged as a warning when non-zero).

    Raises:
        CityGMLError: when the file is missing, empty, not XML, or has fatal XML errors such
            as truncation (recoverable errors such as an undeclared namespace prefix are
            logged and counted instead); the message names the file.
    """
    if not os.path.isfile(path):
        raise CityGMLError(f'CityGML file not found: {path}')
    if os.path.getsize(path) == 0:
        raise CityGMLError(f'CityGML file is empty: {path}')
    parser = etree.XMLParser(recover=True, huge_tree=True, remove_blank_text=True,
                             resolve_entities=False, no_network=True)
    try:
        tree = etree.parse(path, parser)
    except (etree.XMLSyntaxError, OSError) as exc:
        raise CityGMLError(f'cannot parse CityGML file {path}: {exc}') from exc
    root = tree.getroot() if tree is not None else None
    if root is None:
        errors = '; '.join(str(e) for e in list(parser.error_log)[:3])
        raise CityGMLError(f'{path} is not an XML file ({errors or "no root element"})')
    if local_name(root.tag) != 'CityModel':
        raise CityGMLError(
            f'{path} is not a CityGML file: root element is <{root.tag}>, expected CityModel')
    fatal = [e for e in parser.error_log if e.level_name == 'FATAL']
    if fatal:
        e = fatal[0]
        raise CityGMLError(f'{path} is corrupt or truncated ({len(fatal)} fatal XML error(s); '
                           f'first: line {e.line}: {e.message})')
    n_err = len(parser.error_log)
    if n_err:
        kinds = Counter(e.type_name for e in parser.error_log)
        first = parser.error_log[0]
        logger.warning('%s: the XML parser recovered from %d error(s) %s; first: line %d: %s',
                       path, n_err, dict(kinds), first.line, first.message)
    return tree, n_err


def parse_srs_name(srs_name: str) -> Optional[str]:
    """``'EPSG:<code>'`` of an ``srsName`` in any of the usual spellings, or None.

    Understood: ``http://www.opengis.net/def/crs/EPSG/0/6697`` (what PLATEAU writes),
    ``urn:ogc:def:crs:EPSG::6697``, ``urn:ogc:def:crs:EPSG:6.18:6697`` and ``EPSG:6697``.

    Args:
        srs_name (str): the attribute value.

    Returns:
        str | None: ``'EPSG:6697'`` etc., None when the value names no EPSG code.
    """
    text = srs_name.strip()
    low = text.lower()
    if 'epsg' not in low:
        return None
    code = low.rstrip('/').replace('::', ':').split('/')[-1].split(':')[-1]
    return f'EPSG:{code}' if code.isdigit() else None


def _parse_floats(text: Optional[str]) -> np.ndarray:
    """Whitespace-separated numbers -> 1-D float64 array (NaN for tokens that are not numbers)."""
    if not text:
        return np.zeros(0)
    tokens = text.split()
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        out = np.empty(len(tokens))
        for i, tok in enumerate(tokens):
            try:
                out[i] = float(tok)
            except ValueError:
                out[i] = np.nan
        return out


def _read_envelope(root) -> Optional[np.ndarray]:
    """The root ``gml:boundedBy/gml:Envelope`` as (2, 3) ``lat lon h``, or None."""
    for child in root:
        if local_name(child.tag) != 'boundedBy':
            continue
        for env in child:
            if local_name(env.tag) != 'Envelope':
                continue
            lo = hi = None
            for corner in env:
                name = local_name(corner.tag)
                if name == 'lowerCorner':
                    lo = _parse_floats(corner.text)
                elif name == 'upperCorner':
                    hi = _parse_floats(corner.text)
            if lo is not None and hi is not None and lo.size == 3 and hi.size == 3 \
                    and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
                return np.stack([np.minimum(lo, hi), np.maximum(lo, hi)])
    return None


class _RingValidator:
    """Validates and repairs rings against an envelope, counting every action."""

    def __init__(self, envelope: Optional[np.ndarray], report: Counter,
                 tol_deg: float = ENVELOPE_TOL_DEG, tol_h: float = ENVELOPE_TOL_H):
        self.report = report
        if envelope is not None:
            tol = np.array([tol_deg, tol_deg, tol_h])
            self.lo = envelope[0] - tol
            self.hi = envelope[1] + tol
        else:
            self.lo = np.array([-90.0, -180.0, HEIGHT_LIMITS[0]])
            self.hi = np.array([90.0, 180.0, HEIGHT_LIMITS[1]])
        self.lo[2] = max(self.lo[2], HEIGHT_LIMITS[0])
        self.hi[2] = min(self.hi[2], HEIGHT_LIMITS[1])

    def ring_from_element(self, ring_el, dim: int) -> Optional[np.ndarray]:
        """Read a ``gml:LinearRing`` (posList or a sequence of pos) and validate it."""
        values = []
        for child in ring_el:
            name = local_name(child.tag)
            if name == 'posList':
                d = child.get('srsDimension')
                if d is not None and d.strip().isdigit():
                    dim = int(d)
                values.append(_parse_floats(child.text))
            elif name == 'pos':
                values.append(_parse_floats(child.text))
        flat = np.concatenate(values) if values else np.zeros(0)
        return self.validate(flat, dim)

    def validate(self, flat: np.ndarray, dim: int) -> Optional[np.ndarray]:
        """Validate a flat coordinate list; returns the open ring (N, 3) or None if dropped."""
        rep = self.report
        rep['rings_read'] += 1
        if dim != 3:
            rep['rings_dropped_not_3d'] += 1
            return None
        if flat.size == 0 or flat.size % 3:
            rep['rings_dropped_bad_coordinate_count'] += 1
            return None
        pts = flat.reshape(-1, 3)
        if not np.all(np.isfinite(pts)):
            rep['rings_dropped_non_finite'] += 1
            return None
        if np.any(pts[:, 2] < HEIGHT_LIMITS[0]) or np.any(pts[:, 2] > HEIGHT_LIMITS[1]):
            rep['rings_dropped_implausible_height'] += 1
            return None
        if np.any(pts < self.lo) or np.any(pts > self.hi):
            rep['rings_dropped_outside_envelope'] += 1
            return None
        # consecutive duplicates (1e-9 deg ~ 0.1 mm, 1 mm in height)
        if len(pts) > 1:
            diff = np.abs(np.diff(pts, axis=0))
            dup = (diff[:, 0] < 1e-9) & (diff[:, 1] < 1e-9) & (diff[:, 2] < 1e-3)
            if len(pts) > 2 and np.all(np.abs(pts[0] - pts[-1]) < [1e-9, 1e-9, 1e-3]):
                rep['rings_closing_vertex_removed'] += 1
                pts = pts[:-1]
                dup = dup[:len(pts) - 1]
            n_dup = int(dup.sum())
            if n_dup:
                rep['duplicate_vertices_removed'] += n_dup
                pts = pts[np.concatenate([[True], ~dup])]
        if len(pts) < 3:
            rep['rings_dropped_too_few_points'] += 1
            return None
        return pts


# object kinds: local name -> (category, is_solid)
_OBJECT_KINDS: Dict[str, Tuple[str, bool]] = {
    'Building': ('building', True),
    'BuildingPart': ('building', True),
    'Bridge': ('bridge', False),
    'BridgePart': ('bridge', False),
    'CityFurniture': ('city_furniture', False),
    'Road': ('road', False),
    'Railway': ('road', False),
    'Track': ('road', False),
    'Square': ('road', False),
    'TINRelief': ('terrain', False),
    'GenericCityObject': ('other', False),
    'SolitaryVegetationObject': ('other', False),
    'PlantCover': ('other', False),
    'WaterBody': ('other', False),
    'Tunnel': ('other', False),
    'OtherConstruction': ('other', False),
}
_PART_KINDS = ('BuildingPart', 'BridgePart')


_CONTAINERS = {'cityObjectMember', 'featureMember', 'member', 'consistsOfBuildingPart',
               'outerBridgeConstruction', 'consistsOfBridgePart', 'reliefComponent',
               'ReliefFeature', 'CityModel'}


def _lod_of(name: str) -> Optional[int]:
    """LOD number of a geometry property name like ``lod2MultiSurface`` (None otherwise)."""
    if name.startswith('lod') and len(name) > 3 and name[3].isdigit():
        return int(name[3])
    return None


class CityGMLReader:
    """Reads PLATEAU CityGML files into :class:`ParsedCityGML`.

    Args:
        envelope_tolerance_deg (float): tolerance of the envelope check in degrees.
        envelope_tolerance_h (float): tolerance of the envelope check in metres.
    """

    def __init__(self, envelope_tolerance_deg: float = ENVELOPE_TOL_DEG,
                 envelope_tolerance_h: float = ENVELOPE_TOL_H):
        self.tol_deg = envelope_tolerance_deg
        self.tol_h = envelope_tolerance_h

    def read(self, path: str) -> ParsedCityGML:
        """Read one file.

        Args:
            path (str): a ``.gml`` file.

        Returns:
            ParsedCityGML: objects with validated polygons and the repair/drop report.

        Raises:
            CityGMLError: when the file is missing or not a CityGML XML document.
        """
        tree, n_err = load_xml(path)
        root = tree.getroot()
        report: Counter = Counter()
        if n_err:
            report['xml_errors_recovered'] = n_err
        envelope = _read_envelope(root)
        if envelope is None:
            report['missing_envelope'] += 1
            logger.warning('%s has no gml:Envelope; validating coordinates against Japan-wide '
                           'limits only', path)
        validator = _RingValidator(envelope, report, self.tol_deg, self.tol_h)
        default_dim = 3
        ids = {}
        srs_names = Counter()
        for el in root.iter():
            gid = el.get(f'{{{GML_NS}}}id') or el.get('id')
            if gid is not None:
                ids[gid] = el
            srs = el.get('srsName')
            if srs is not None:
                srs_names[srs] += 1
        crs = self._check_crs(path, srs_names, report)
        objects: List[CityObject] = []
        for member in root:
            if local_name(member.tag) in ('cityObjectMember', 'featureMember', 'member'):
                for child in member:
                    name = local_name(child.tag)
                    if name and name not in _OBJECT_KINDS and name not in _CONTAINERS:
                        report[f'ignored_{name}'] += 1
        # a parent (Building / Bridge) whose geometry lives in its parts is kept when one of
        # its parts is: parts come right after their parent from _iter_objects
        states: List[List] = []  # per top-level object: [category, own geometry, via parts]
        for el, parent in self._iter_objects(root):
            kind = local_name(el.tag)
            category, solid = _OBJECT_KINDS[kind]
            report[f'{category}_parts_read' if parent is not None
                   else f'{category}_objects_read'] += 1
            obj = self._read_object(el, category, solid, path, ids, validator, default_dim,
                                    report)
            if obj is not None:
                obj.kind = kind
                objects.append(obj)
            if parent is None:
                states.append([category, obj is not None, False])
            elif obj is not None:  # parts follow their parent in _iter_objects
                report[f'{category}_parts_kept'] += 1
                states[-1][2] = True
        for category, own, via_parts in states:
            if own or via_parts:
                report[f'{category}_objects_kept'] += 1
                if via_parts and not own:
                    report[f'{category}_objects_with_geometry_in_parts'] += 1
            else:
                report[f'{category}_objects_dropped_no_valid_geometry'] += 1
        self._log_report(path, report, objects)
        return ParsedCityGML(path=path, envelope=envelope, objects=objects, report=report,
                             crs=crs)

    @staticmethod
    def _check_crs(path: str, srs_names: Counter, report: Counter) -> str:
        """The file's CRS from its ``srsName`` attributes (see :data:`ACCEPTED_CRS`).

        Raises:
            CityGMLError: an ``srsName`` names a CRS other than :data:`ACCEPTED_CRS` (the
                message names the file and the CRS found).
        """
        if not srs_names:
            report['missing_srs_name'] += 1
            logger.warning('%s declares no srsName; assuming %s (PLATEAU)', path,
                           ACCEPTED_CRS[0])
            return ACCEPTED_CRS[0]
        found = {name: parse_srs_name(name) for name in srs_names}
        bad = sorted(name for name, code in found.items() if code not in ACCEPTED_CRS)
        if bad:
            raise CityGMLError(
                f'{path}: unsupported CRS {bad[0]!r} in srsName (found {sorted(srs_names)}); '
                f'PLATEAU files are in {" or ".join(ACCEPTED_CRS)} (JGD2011 geographic, '
                'lat lon [h])')
        codes = sorted(set(found.values()))  # 6697 and 6668 share the horizontal datum
        return 'EPSG:6697' if 'EPSG:6697' in codes else codes[0]

    @staticmethod
    def _iter_objects(root):
        """Yield ``(object, parent)``: top-level city objects (parent None), each followed by
        its building / bridge parts (parent: the top-level object); each exactly once."""
        stack = [root]
        while stack:
            el = stack.pop()
            for child in el:
                name = local_name(child.tag)
                if name in _OBJECT_KINDS:
                    yield child, None
                    # parts are separate objects; their geometry is not the parent's
                    for sub in child.iter():
                        if sub is not child and local_name(sub.tag) in _PART_KINDS:
                            yield sub, child
                elif name in _CONTAINERS or name.endswith('Member'):
                    stack.append(child)

    @staticmethod
    def _owner(el, obj):
        """Nearest ancestor of ``el`` that is a city object (to skip nested parts)."""
        p = el.getparent()
        while p is not None and p is not obj:
            if local_name(p.tag) in ('BuildingPart', 'BridgePart'):
                return p
            p = p.getparent()
        return obj

    def _read_object(self, obj, category, solid, path, ids, validator, dim, report):
        gid = obj.get(f'{{{GML_NS}}}id') or f'{category}_{id(obj):x}'
        if category == 'terrain':
            polys = []
            for tri in obj.iter():
                if local_name(tri.tag) not in ('Triangle', 'Polygon'):
                    continue
                poly = self._polygon(tri, validator, dim, report)
                if poly is not None:
                    polys.append(poly)
            if not polys:
                return None
            return CityObject(gid, category, 1, polys, path, False)
        # collect polygons by LOD (geometry property nearest to the polygon decides the LOD)
        by_lod: Dict[int, Dict[int, object]] = {}
        for el in obj.iter():
            name = local_name(el.tag)
            if name == 'Polygon' or (name == 'surfaceMember' and el.get(XLINK_HREF)):
                if self._owner(el, obj) is not obj:
                    continue
                lod = None
                p = el.getparent()
                while p is not None:
                    lod = _lod_of(local_name(p.tag))
                    if lod is not None or p is obj:
                        break
                    p = p.getparent()
                if lod is None:
                    continue
                if name == 'surfaceMember':
                    target = ids.get(el.get(XLINK_HREF).lstrip('#'))
                    if target is None:
                        report['xlinks_unresolved'] += 1
                        continue
                    if local_name(target.tag) != 'Polygon':
                        continue
                    el = target
                by_lod.setdefault(lod, {})[id(el)] = el
        if category == 'road':
            order = [1, 2, 3, 0]
        else:
            order = [2, 1, 3, 0] if category != 'building' else [2, 1]
        for lod in order:
            elements = by_lod.get(lod)
            if not elements:
                continue
            polys = [p for p in (self._polygon(e, validator, dim, report)
                                 for e in elements.values()) if p is not None]
            if polys:
                if category in ('building', 'bridge', 'city_furniture') and lod != order[0]:
                    report[f'{category}_lod{lod}_fallback'] += 1
                is_solid = solid and lod >= 1
                return CityObject(gid, category, lod, polys, path, is_solid)
        return None

    @staticmethod
    def _polygon(poly_el, validator, dim, report) -> Optional[Polygon3D]:
        """Read a gml:Polygon / gml:Triangle; drops it if the exterior ring is invalid."""
        exterior = None
        interiors = []
        for part in poly_el:
            name = local_name(part.tag)
            if name not in ('exterior', 'interior'):
                continue
            ring_el = next((r for r in part if local_name(r.tag) == 'LinearRing'), None)
            if ring_el is None:
                report['rings_dropped_unsupported_type'] += 1
                continue
            ring = validator.ring_from_element(ring_el, dim)
            if name == 'exterior':
                exterior = ring
            elif ring is not None:
                interiors.append(ring)
            else:
                report['holes_dropped'] += 1
        if exterior is None:
            report['polygons_dropped'] += 1
            return None
        report['polygons_kept'] += 1
        return Polygon3D(exterior, interiors)

    @staticmethod
    def _log_report(path: str, report: Counter, objects: Sequence[CityObject]) -> None:
        """One summary line: objects kept per category (a parent whose geometry lives in its
        parts counts as kept; parts are counted separately), polygons, repairs and drops."""
        kept = {k[:-len('_objects_kept')]: v for k, v in sorted(report.items())
                if k.endswith('_objects_kept') and v}
        kept.update({k[:-len('_kept')]: v for k, v in sorted(report.items())
                     if k.endswith('_parts_kept') and v})
        repairs = {k: v for k, v in report.items()
                   if 'dropped' in k or 'removed' in k or 'fallback' in k or 'recovered' in k
                   or 'unresolved' in k or 'missing' in k or k.startswith('ignored_')}
        logger.info('%s: kept %s, %d polygons; repairs/drops: %s', os.path.basename(path),
                    dict(kept), report['polygons_kept'], repairs or 'none')


def read_citygml(path: str) -> ParsedCityGML:
    """Read one PLATEAU CityGML file (see :class:`CityGMLReader`).

    Args:
        path (str): a ``.gml`` file.

    Returns:
        ParsedCityGML: objects, envelope and repair/drop report.

    Raises:
        CityGMLError: missing file, empty file, or not CityGML XML (the message names it).
    """
    return CityGMLReader().read(path)
