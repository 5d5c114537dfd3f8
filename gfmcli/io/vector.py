"""Streaming polygonisation of a class map into a GeoPackage, seam-free, in bounded memory.

:class:`PolygonWriter` receives the class map as consecutive row blocks (as the blender
finishes them) and never holds the whole map. Each block is polygonised on its own
(``rasterio.features.shapes``, 4-connectivity, nodata excluded) in *pixel* coordinates, where
every vertex is an integer, so seam matching is exact:

* polygons touching the block's top edge are joined with the still-open polygons of the
  previous block when a pixel directly above has the same class (a shared edge, the same rule
  as 4-connectivity; pixels that only meet at a corner stay apart, as when the whole map is
  polygonised at once);
* a group of joined parts that no longer reaches the open bottom seam is complete: its parts
  are dissolved (``shapely.union_all``, collinear seam vertices removed), moved to the map's CRS
  and appended to a temporary GeoPackage; only groups touching the open seam stay in memory
  (a single region spanning the whole map does stay in memory until it ends).

Attributes: ``class_id``, ``class_name`` and ``area_m2``, the geodesic area on the CRS's
ellipsoid (pyproj ``Geod``), correct in square metres for geographic and projected CRS alike;
a CRS without an ellipsoid falls back to planar area times the squared unit factor. Geometry is
in the input CRS. The file is written as ``.<stem>.partial-<pid>-<host>.gpkg`` and renamed when
complete; on any exception the temporaries are removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import shapely
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.features import rasterize, shapes
from shapely.geometry import Polygon

from gfmcli.atomic import partial_path, remove_with_prefix
from gfmcli.contract import ClassInfo
from gfmcli.errors import OutputError
from gfmcli.io.writer import CLASS_NODATA

LAYER = "classes"
# GeoPackage 1.2, not the 1.4 that pyogrio's GDAL writes by default: GDAL before 3.7 (Debian 12,
# many QGIS LTR installs) warns "may only be partially supported" on every 1.4 file it opens,
# and gfm's layers (features, one geometry column, no related tables) need nothing newer.
GPKG_OPTIONS = {"VERSION": "1.2"}
FLUSH_FEATURES = 5000


class _Groups:
    """Union-find over polygon ids, each id owning a list of pixel-space parts."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.parts: dict[int, list[Polygon]] = {}
        self.class_of: dict[int, int] = {}
        self._next = 0

    def add(self, polygon: Polygon, class_id: int) -> int:
        gid = self._next
        self._next += 1
        self.parent[gid] = gid
        self.parts[gid] = [polygon]
        self.class_of[gid] = class_id
        return gid

    def find(self, gid: int) -> int:
        root = gid
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[gid] != root:
            self.parent[gid], gid = root, self.parent[gid]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.parts[ra].extend(self.parts.pop(rb))

    def adopt(self, class_id: int, parts: list[Polygon]) -> int:
        gid = self.add(parts[0], class_id)
        self.parts[gid] = parts
        return gid

    def pop(self, root: int) -> tuple[int, list[Polygon]]:
        return self.class_of[root], self.parts.pop(root)


class PolygonWriter:
    """Write a class map, fed as row blocks top to bottom, as dissolved polygons to GPKG.

    ``classes`` names the ids (unknown ids are called ``"class <id>"``); pixels equal to
    ``nodata`` are not polygonised; ``metadata`` (gfm's provenance tags) becomes the
    GeoPackage's dataset metadata (``ogrinfo`` prints it; resume reads it). Use as a context
    manager; without ``finalize()`` nothing is left on disk.
    """

    def __init__(
        self,
        path: str | Path,
        crs: Any,
        classes: Sequence[ClassInfo],
        *,
        nodata: int = CLASS_NODATA,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self._metadata = dict(metadata or {})
        self._partial = partial_path(self.path)
        self._crs_wkt = crs.to_wkt()
        self._names = {c.id: c.name for c in classes}
        self._nodata = nodata
        self._groups = _Groups()
        self._next_row = 0
        self._transform: Affine | None = None
        self._seam_classes: np.ndarray | None = None
        self._seam_labels: np.ndarray | None = None
        self._buffer: list[tuple[int, Polygon]] = []
        self._written = 0
        self._area = _area_function(ProjCRS.from_wkt(self._crs_wkt))

    def add_rows(self, row_off: int, block: np.ndarray, transform: Affine) -> None:
        """Polygonise rows ``row_off .. row_off + len(block)`` of the map.

        ``transform`` is the whole map's transform (the same on every call); blocks must come
        in order without gaps and with the same width.
        """
        if row_off != self._next_row:
            raise ValueError(f"rows must arrive in order: expected {self._next_row}, got {row_off}")
        if self._transform is None:
            self._transform = transform
        elif transform != self._transform:
            raise ValueError("every block must come with the map's transform")
        block = np.ascontiguousarray(block, dtype=np.uint8)
        top, bottom = row_off, row_off + block.shape[0]
        groups = self._groups
        polygons, values = _polygonise(block, row_off, self._nodata)
        bounds = shapely.bounds(polygons)
        gids = [groups.add(p, int(v)) for p, v in zip(polygons, values, strict=True)]
        at_top = [(polygons[i], gids[i]) for i in np.flatnonzero(bounds[:, 1] == top)]
        at_bottom = [(polygons[i], gids[i]) for i in np.flatnonzero(bounds[:, 3] == bottom)]
        if self._seam_labels is not None and at_top:
            first_row = _label_row(at_top, top, block.shape[1])
            same = (first_row >= 0) & (self._seam_labels >= 0) & (block[0] == self._seam_classes)
            for old, fresh in set(zip(self._seam_labels[same], first_row[same], strict=True)):
                groups.union(int(old), int(fresh))
        open_roots = {groups.find(gid) for _, gid in at_bottom}
        for root in list(groups.parts):
            if root not in open_roots:
                self._complete(root)
        # Start the next block with a fresh union-find holding only the open groups, so memory
        # is bounded by what touches the seam, not by everything polygonised so far.
        self._groups = _Groups()
        renamed = {root: self._groups.adopt(*groups.pop(root)) for root in open_roots}
        labels = _label_row(at_bottom, bottom - 1, block.shape[1])
        lookup = {gid: renamed[groups.find(gid)] for _, gid in at_bottom}
        self._seam_labels = np.array([lookup.get(int(g), -1) for g in labels], np.int64)
        self._seam_classes = block[-1].copy()
        self._next_row = bottom
        if len(self._buffer) >= FLUSH_FEATURES:
            self._flush()

    def _complete(self, root: int) -> None:
        class_id, parts = self._groups.pop(root)
        merged = parts[0] if len(parts) == 1 else shapely.union_all(parts).simplify(0)
        self._buffer.append((class_id, merged))

    def _flush(self) -> None:
        if not self._buffer and self._written:
            return
        transform = self._transform or Affine.identity()
        matrix = np.array([[transform.a, transform.b], [transform.d, transform.e]])
        shift = np.array([transform.c, transform.f])
        pixel_space = np.array([p for _, p in self._buffer], dtype=object)
        geometries = shapely.transform(pixel_space, lambda xy: xy @ matrix.T + shift)
        ids = np.array([c for c, _ in self._buffer], dtype=np.int32)
        names = np.array([self._names.get(int(c), f"class {c}") for c in ids], dtype=object)
        areas = self._area(geometries)
        try:
            pyogrio.raw.write(
                self._partial,
                shapely.to_wkb(geometries),
                [ids, names, areas],
                ["class_id", "class_name", "area_m2"],
                layer=LAYER,
                driver="GPKG",
                geometry_type="Polygon",
                crs=self._crs_wkt,
                append=self._written > 0,
                **({} if self._written else self._creation()),
            )
        except Exception as exc:
            raise OutputError(f"{self.path}: writing polygons failed ({exc})") from exc
        self._written += len(self._buffer)
        self._buffer = []

    def _creation(self) -> dict[str, Any]:
        """What the first write, which creates the file, passes besides the rows."""
        return {"dataset_options": GPKG_OPTIONS, "dataset_metadata": self._metadata or None}

    def finalize(self) -> Path:
        """Close the open seam, write the rest and rename the GeoPackage into place."""
        try:
            for root in list(self._groups.parts):
                self._complete(root)
            self._flush()
            if not self._written:
                self._flush()
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Delete the temporary GeoPackage (and SQLite journals); the final path is untouched."""
        remove_with_prefix(self._partial)

    def __enter__(self) -> PolygonWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _label_row(polygons: list[tuple[Polygon, int]], row: int, width: int) -> np.ndarray:
    """For each pixel of map row ``row``, the id paired with the polygon covering it, else -1.

    Pixel-space polygons have integer vertices, so burning pixel centres is exact.
    """
    if not polygons:
        return np.full(width, -1, np.int64)
    labels = rasterize(
        polygons, out_shape=(1, width), transform=Affine.translation(0, row), fill=-1, dtype="int32"
    )
    return labels[0].astype(np.int64)


def _polygonise(block: np.ndarray, row_off: int, nodata: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-space polygons (x = column, y = row) of a block and their class ids."""
    coords: list[np.ndarray] = []
    ring_ends, polygon_ends, values = [0], [0], []
    total = 0
    found = shapes(
        block, mask=block != nodata, connectivity=4, transform=Affine.translation(0, row_off)
    )
    for geometry, value in found:
        for ring in geometry["coordinates"]:
            points = np.asarray(ring, dtype=np.float64)
            coords.append(points)
            total += len(points)
            ring_ends.append(total)
        polygon_ends.append(len(ring_ends) - 1)
        values.append(int(value))
    if not values:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    polygons = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        np.concatenate(coords),
        (np.asarray(ring_ends), np.asarray(polygon_ends)),
    )
    return polygons, np.asarray(values, dtype=np.int64)


def _area_function(crs: ProjCRS) -> Callable[[np.ndarray], np.ndarray]:
    """Areas in m² of an array of polygons in ``crs`` coordinates.

    Geodesic (each ring on the ellipsoid, holes subtracted), or planar times the squared unit
    factor for a CRS without an ellipsoid.
    """
    geodetic = crs.geodetic_crs
    if geodetic is None:
        factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return lambda polygons: shapely.area(polygons) * factor**2
    geod = geodetic.get_geod()
    assert geod is not None  # every geodetic CRS has an ellipsoid
    to_lonlat = Transformer.from_crs(crs, geodetic, always_xy=True)

    def areas(polygons: np.ndarray) -> np.ndarray:
        if len(polygons) == 0:
            return np.zeros(0)
        lonlat = shapely.transform(
            polygons, lambda xy: np.column_stack(to_lonlat.transform(xy[:, 0], xy[:, 1]))
        )
        rings, owner = shapely.get_rings(lonlat, return_index=True)
        coords = shapely.get_coordinates(rings)
        ends = np.cumsum(shapely.get_num_coordinates(rings))
        ring_area = np.empty(len(rings))
        start = 0
        for i, end in enumerate(ends):
            ring_area[i] = abs(geod.polygon_area_perimeter(*coords[start:end].T)[0])
            start = end
        exterior = np.r_[True, owner[1:] != owner[:-1]]
        signed = np.where(exterior, ring_area, -ring_area)
        return np.bincount(owner, weights=signed, minlength=len(polygons))

    return areas
