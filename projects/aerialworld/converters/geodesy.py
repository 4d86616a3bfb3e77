"""Geodetic conversion of PLATEAU coordinates to a local metric frame.

PLATEAU positions are ``lat, lon, h`` in EPSG:6697 (JGD2011 geographic 2-D + JGD2011 vertical
height). The horizontal part is EPSG:6668 (JGD2011, axis order lat, lon); it is projected with
pyproj to a metric CRS and shifted by a scene origin, which yields a local ENU frame:

* ``x``: metres east of the origin, ``y``: metres north of the origin;
* ``z``: orthometric height minus the scene's ground datum (metres above the datum).

The metric CRS of a site is chosen by :func:`site_crs` from its location, so the frame suits
any PLATEAU city, not only Tokyo:

* ``'zone'`` (default): the JGD2011 Japan Plane Rectangular zone (I–XIX, EPSG:6669–6687) whose
  origin is nearest to the site (:func:`select_plane_rectangular_zone`), the survey standard
  of Japan. Within a zone the scale error stays within about 1/10,000 and grid north is
  within about a degree of true north; Tokyo sites get zone IX (EPSG:6677).
* ``'local'``: a transverse Mercator centred on the site (scale 1, central meridian and
  origin latitude at the site): a local tangent frame whose y axis is true north and whose
  scale is 1 at the site, wherever it lies.
* an explicit CRS (``'EPSG:6677'``, a proj string): used as given.

The transformer is built with ``always_xy=True``, so pyproj receives ``(lon, lat)`` and returns
``(easting, northing)`` regardless of the authority axis order (EPSG:6668 is lat/lon and
EPSG:6677 is northing/easting by definition).
"""
from __future__ import annotations

from dataclasses import dataclass

from functools import lru_cache
from typing import Dict, Tuple

import numpy as np
from pyproj import CRS, Geod, Transformer

#: Geographic 2-D CRS of PLATEAU (the horizontal part of EPSG:6697).
SOURCE_CRS = 'EPSG:6668'
#: Japan Plane Rectangular CS IX (Tokyo).
DEFAULT_TARGET_CRS = 'EPSG:6677'
#: EPSG codes of the JGD2011 Japan Plane Rectangular zones I..XIX.
PLANE_RECTANGULAR_EPSG = tuple(range(6669, 6688))
#: Frame choices of :func:`site_crs` besides an explicit CRS.
FRAME_MODES = ('zone', 'local')
#: Weight of the latitude offset in the zone choice: the distortions of a transverse Mercator
#: grow with the distance from the central meridian, so longitude counts more.
_ZONE_LAT_WEIGHT = 0.5

_TRANSFORMERS = {}


def _transformer(target_crs: str) -> Transformer:
    """Cached pyproj transformer EPSG:6668 -> ``target_crs`` with x = east, y = north."""
    if target_crs not in _TRANSFORMERS:
        _TRANSFORMERS[target_crs] = Transformer.from_crs(SOURCE_CRS, target_crs,
                                                         always_xy=True)
    return _TRANSFORMERS[target_crs]


@lru_cache(maxsize=None)
def plane_rectangular_zones() -> Dict[str, Tuple[float, float]]:
    """Origins of the JGD2011 plane rectangular zones, read from the pyproj database.

    Returns:
        dict: ``{'EPSG:6669': (lat0, lon0), ...}`` in degrees, zones I..XIX in order.
    """
    out = {}
    for code in PLANE_RECTANGULAR_EPSG:
        params = {p.name: p.value for p in CRS.from_epsg(code).coordinate_operation.params}
        out[f'EPSG:{code}'] = (float(params['Latitude of natural origin']),
                               float(params['Longitude of natural origin']))
    return out


def select_plane_rectangular_zone(lat: float, lon: float) -> str:
    """The JGD2011 plane rectangular zone for a location.

    The official assignment is by prefecture (and by island groups in Tokyo, Hokkaido,
    Okinawa and Kagoshima); without administrative boundaries the zone is the one whose
    origin is nearest in ``hypot(dlon * cos(lat), 0.5 * dlat)`` (degrees, longitude weighted
    more because transverse-Mercator distortion grows away from the central meridian). Of 49
    prefectural capitals and large cities checked, 44 get their official zone (Tokyo IX,
    Osaka VI, Sapporo XII, Fukuoka II, Naha XV, ...); the other five (Hakodate, Kobe,
    Maebashi, Yamaguchi, Tokushima) lie near a zone border and get the neighbouring zone,
    where grid north is within 0.5 degrees of true north and the scale error within 1/10,000.
    Pass an explicit CRS to :func:`site_crs` to force the official zone.

    Args:
        lat (float): latitude (deg).
        lon (float): longitude (deg).

    Returns:
        str: ``'EPSG:66xx'``.

    Raises:
        ValueError: non-finite coordinates, or a location far from Japan (no zone origin
            within 10 degrees).
    """
    if not (np.isfinite(lat) and np.isfinite(lon)):
        raise ValueError(f'cannot choose a plane rectangular zone for lat={lat}, lon={lon}')
    best, best_d = None, np.inf
    for crs, (lat0, lon0) in plane_rectangular_zones().items():
        d = np.hypot((lon - lon0) * np.cos(np.deg2rad(lat)), _ZONE_LAT_WEIGHT * (lat - lat0))
        if d < best_d:
            best, best_d = crs, d
    if best_d > 10.0:
        raise ValueError(f'lat={lat:.4f}, lon={lon:.4f} is not in Japan: no JGD2011 plane '
                         'rectangular zone applies; use frame=\'local\'')
    return best


def local_tangent_crs(lat: float, lon: float) -> str:
    """A transverse Mercator centred on ``(lat, lon)`` on the GRS80 ellipsoid (JGD2011).

    Scale 1 and true north along y at the centre: a local tangent (ENU) frame whose
    distortion over a few kilometres is below 1e-6.

    Args:
        lat (float): latitude of the centre (deg).
        lon (float): longitude of the centre (deg).

    Returns:
        str: a proj string (coordinates rounded to 1e-6 deg, about 0.1 m, so that the frame
        is reproducible from the stored metainfo).
    """
    return (f'+proj=tmerc +lat_0={lat:.6f} +lon_0={lon:.6f} +k=1 +x_0=0 +y_0=0 +ellps=GRS80 '
            '+units=m +no_defs +type=crs')


def site_crs(frame: str, lat: float, lon: float) -> str:
    """The metric CRS of a site at ``(lat, lon)`` for a frame choice.

    Args:
        frame (str): ``'zone'``, ``'local'`` (see the module docstring) or an explicit CRS.
        lat (float): site latitude (deg).
        lon (float): site longitude (deg).

    Returns:
        str: a CRS string pyproj understands.

    Raises:
        ValueError: an explicit CRS that pyproj does not know or that is not projected.
    """
    if frame == 'zone':
        return select_plane_rectangular_zone(lat, lon)
    if frame == 'local':
        return local_tangent_crs(lat, lon)
    try:
        crs = CRS.from_user_input(frame)
    except Exception as exc:  # pyproj raises CRSError, a subclass of several bases
        raise ValueError(f'frame must be one of {FRAME_MODES} or a projected CRS; pyproj does '
                         f'not know {frame!r}: {exc}') from exc
    if not crs.is_projected:
        raise ValueError(f'frame {frame!r} is not a projected (metric) CRS')
    return frame


def grid_distortion(target_crs: str, lat: float, lon: float) -> Tuple[float, float]:
    """Meridian convergence and point scale of ``target_crs`` at a location.

    Measured numerically (1 m steps north and east with :class:`pyproj.Geod`), so it holds
    for any CRS.

    Args:
        target_crs (str): the projected CRS.
        lat (float): latitude (deg).
        lon (float): longitude (deg).

    Returns:
        tuple: ``(convergence_deg, scale)``: the angle (deg, counter-clockwise) by which a
        true-north step appears rotated in the grid (0: grid y is true north), and grid
        metres per ground metre (1: unscaled).
    """
    geod = Geod(ellps='GRS80')
    lon_n, lat_n, _ = geod.fwd(lon, lat, 0.0, 100.0)
    e = project_latlon(np.array([[lat, lon, 0.0], [lat_n, lon_n, 0.0]]), target_crs)
    d = e[1, :2] - e[0, :2]
    return float(np.degrees(np.arctan2(-d[0], d[1]))), float(np.hypot(*d) / 100.0)


def project_latlon(latlonh: np.ndarray, target_crs: str = DEFAULT_TARGET_CRS) -> np.ndarray:
    """Project ``lat, lon, h`` to ``easting, northing, h`` of a metric CRS.

    Args:
        latlonh (np.ndarray): (N, 3) float64 latitude (deg), longitude (deg), height (m).
        target_crs (str): metric CRS understood by pyproj (default EPSG:6677).

    Returns:
        np.ndarray: (N, 3) float64 easting (m), northing (m), height (m, unchanged).
    """
    latlonh = np.asarray(latlonh, dtype=np.float64).reshape(-1, 3)
    e, n = _transformer(target_crs).transform(latlonh[:, 1], latlonh[:, 0])
    out = np.empty_like(latlonh)
    out[:, 0] = e
    out[:, 1] = n
    out[:, 2] = latlonh[:, 2]
    if not np.all(np.isfinite(out[:, :2])):
        raise ValueError(f'projection to {target_crs} produced non-finite coordinates; are the '
                         'inputs latitude/longitude in degrees?')
    return out


@dataclass
class LocalFrame:
    """A local metric ENU frame: projected CRS shifted by an origin, heights above a datum.

    Attributes:
        origin_en (np.ndarray): (2,) float64 easting, northing (m) of the frame origin in
            ``target_crs``.
        datum_h (float): orthometric height (m) that becomes ``z = 0``.
        target_crs (str): the projected CRS.
    """

    origin_en: np.ndarray
    datum_h: float
    target_crs: str = DEFAULT_TARGET_CRS

    @classmethod
    def from_projected_points(cls, projected: np.ndarray, datum_h: float,
                              target_crs: str = DEFAULT_TARGET_CRS) -> 'LocalFrame':
        """Frame whose origin is the centre of the xy bounding box of projected points.

        Args:
            projected (np.ndarray): (N, >=2) float64 easting, northing (m).
            datum_h (float): height of the ground datum (m).
            target_crs (str): CRS of ``projected``.

        Returns:
            LocalFrame: the frame (origin rounded to the centimetre).
        """
        pts = np.asarray(projected, dtype=np.float64)
        centre = 0.5 * (pts[:, :2].min(0) + pts[:, :2].max(0))
        return cls(np.round(centre, 2), float(datum_h), target_crs)

    def projected_to_local(self, projected: np.ndarray) -> np.ndarray:
        """(N, 3) easting, northing, height -> (N, 3) local x, y, z (m)."""
        out = np.asarray(projected, dtype=np.float64).copy()
        out[:, :2] -= self.origin_en
        out[:, 2] -= self.datum_h
        return out

    def to_local(self, latlonh: np.ndarray) -> np.ndarray:
        """Convert geographic positions to the local frame.

        Args:
            latlonh (np.ndarray): (N, 3) float64 lat (deg), lon (deg), height (m).

        Returns:
            np.ndarray: (N, 3) float64 x east, y north, z above datum (m).
        """
        return self.projected_to_local(project_latlon(latlonh, self.target_crs))

    def to_latlon(self, local: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_local`.

        Args:
            local (np.ndarray): (N, 3) float64 local x, y, z (m).

        Returns:
            np.ndarray: (N, 3) float64 lat (deg), lon (deg), orthometric height (m).
        """
        local = np.asarray(local, dtype=np.float64).reshape(-1, 3)
        lon, lat = _transformer(self.target_crs).transform(
            local[:, 0] + self.origin_en[0], local[:, 1] + self.origin_en[1],
            direction='INVERSE')
        return np.stack([lat, lon, local[:, 2] + self.datum_h], axis=1)

    def to_dict(self) -> dict:
        """JSON-serialisable description (stored in the index metainfo)."""
        return dict(target_crs=self.target_crs, origin_easting=float(self.origin_en[0]),
                    origin_northing=float(self.origin_en[1]), datum_height=self.datum_h)
