"""Geodetic conversion of PLATEAU coordinates to a local metric frame.

PLATEAU positions are ``lat, lon, h`` in EPSG:6697 (JGD2011 geographic 2-D + JGD2011 vertical
height). The horizontal part is EPSG:6668 (JGD2011, axis order lat, lon); it is projected with
pyproj to a Japan Plane Rectangular Coordinate System (default zone IX, EPSG:6677, the
standard for Tokyo) and shifted by a scene origin, which yields a local ENU frame:

* ``x``: metres east of the origin, ``y``: metres north of the origin;
* ``z``: orthometric height minus the scene's ground datum (metres above the datum).

The transformer is built with ``always_xy=True``, so pyproj receives ``(lon, lat)`` and returns
``(easting, northing)`` regardless of the authority axis order (EPSG:6668 is lat/lon and
EPSG:6677 is northing/easting by definition).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyproj import Transformer

#: Geographic 2-D CRS of PLATEAU (the horizontal part of EPSG:6697).
SOURCE_CRS = 'EPSG:6668'
#: Japan Plane Rectangular CS IX (Tokyo).
DEFAULT_TARGET_CRS = 'EPSG:6677'

_TRANSFORMERS = {}


def _transformer(target_crs: str) -> Transformer:
    """Cached pyproj transformer EPSG:6668 -> ``target_crs`` with x = east, y = north."""
    if target_crs not in _TRANSFORMERS:
        _TRANSFORMERS[target_crs] = Transformer.from_crs(SOURCE_CRS, target_crs,
                                                         always_xy=True)
    return _TRANSFORMERS[target_crs]


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
