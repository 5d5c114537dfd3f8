"""Label sources for ``gfm tile``: a class raster or a vector file, read per chip on an image grid.

Labels rarely come on the imagery's grid: another CRS, another resolution, a larger or smaller
extent, polygons instead of pixels. Rather than failing (or silently mislabelling, anchors.md pain
point 11) both kinds are brought onto each image raster's grid, one chip window at a time:

* a label raster through a ``WarpedVRT`` with nearest-neighbour resampling (class ids must not be
  interpolated), streaming only the window asked for;
* a vector file (GeoPackage, GeoJSON, Shapefile) reprojected once per image CRS and rasterised
  per chip from the polygons its spatial index returns for that chip.

Unlabelled pixels are ``IGNORE_INDEX`` (255). Labels that do not overlap an image raster at all are
an InputError: almost always a wrong file or a CRS written wrongly in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from gfmcli.errors import InputError
from gfmcli.io.vector_reads import reading_vectors

IGNORE_INDEX = 255
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".parquet")


@dataclass
class LabelSource:
    """A label file. ``names`` maps class names to ids when a vector column holds names;
    ``regression`` keeps the values as numbers (targets) instead of class ids."""

    path: Path
    column: str = "class"
    names: dict[str, int] = field(default_factory=dict)
    regression: bool = False
    _frame: Any = None
    _projected: dict[str, Any] = field(default_factory=dict)

    @property
    def is_vector(self) -> bool:
        return self.path.suffix.lower() in VECTOR_SUFFIXES

    def open_for(self, image: rasterio.DatasetReader) -> _RasterLabels | _VectorLabels:
        """A per-chip label reader on ``image``'s grid; InputError if the labels miss it."""
        if not self.path.exists():
            raise InputError(f"{self.path}: label file not found; check the path")
        if self.path.is_dir():
            raise InputError(
                f"{self.path}: is a folder; --labels takes a file: pass one --labels FILE per "
                "raster, in the rasters' order, or one label file for all of them"
            )
        if self.is_vector:
            return _VectorLabels(self._frame_in(image.crs), image, self.path)
        return _RasterLabels(self.path, image)

    def _frame_in(self, crs: Any) -> Any:
        key = crs.to_string()
        if key not in self._projected:
            frame = self._load()
            self._projected[key] = frame.to_crs(crs)
        return self._projected[key]

    def _load(self) -> Any:
        if self._frame is not None:
            return self._frame
        import geopandas as gpd

        try:
            with reading_vectors():
                frame = gpd.read_file(self.path, engine="pyogrio")
        except Exception as exc:
            raise InputError(f"{self.path}: cannot read labels ({exc})") from exc
        if self.column not in frame.columns:
            columns = ", ".join(c for c in frame.columns if c != "geometry")
            raise InputError(
                f"{self.path}: no label column {self.column!r}; columns are {columns} "
                "(choose one with --label-column)"
            )
        if frame.crs is None:
            raise InputError(f"{self.path}: labels have no CRS; set one (e.g. ogr2ogr -a_srs)")
        frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
        frame = frame.assign(_class_id=self._class_ids(frame[self.column]))
        self._frame = frame[["_class_id", "geometry"]]
        return self._frame

    def _class_ids(self, values: Any) -> np.ndarray:
        if self.regression:
            if values.dtype.kind not in "iuf":
                raise InputError(f"{self.path}: column {self.column!r} must be numeric")
            return values.to_numpy().astype(np.float64)
        if values.dtype.kind in "iu":
            return values.to_numpy().astype(np.int64)
        if values.dtype.kind == "f":
            array = values.to_numpy()
            if not np.all(np.isfinite(array) & (array == np.round(array))):
                raise InputError(f"{self.path}: column {self.column!r} must hold integer class ids")
            return array.astype(np.int64)
        unknown = sorted({str(v) for v in values} - set(self.names))
        if unknown:
            known = ", ".join(self.names) or "none (give --classes)"
            raise InputError(
                f"{self.path}: class name(s) {', '.join(unknown)} in column {self.column!r} "
                f"are not in the class list ({known})"
            )
        return np.array([self.names[str(v)] for v in values], np.int64)


def _check_overlap(label_bounds: Any, label_crs: Any, image: rasterio.DatasetReader, path: Path):
    left, bottom, right, top = transform_bounds(label_crs, image.crs, *label_bounds)
    b = image.bounds
    if left >= b.right or right <= b.left or bottom >= b.top or top <= b.bottom:
        raise InputError(
            f"{path}: labels do not overlap {image.name} (label bounds in the image CRS "
            f"{(round(left, 3), round(bottom, 3), round(right, 3), round(top, 3))}, image "
            f"bounds {tuple(round(v, 3) for v in b)}); check the files and their CRS"
        )


class _RasterLabels:
    """Class ids from a label raster, warped (nearest) onto the image grid window by window."""

    def __init__(self, path: Path, image: rasterio.DatasetReader) -> None:
        try:
            self._dataset = rasterio.open(path)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"{path}: cannot open label raster ({exc})") from exc
        if self._dataset.crs is None:
            raise InputError(f"{path}: label raster has no CRS")
        _check_overlap(self._dataset.bounds, self._dataset.crs, image, path)
        self.path = path
        self._vrt = WarpedVRT(
            self._dataset,
            crs=image.crs,
            transform=image.transform,
            width=image.width,
            height=image.height,
            resampling=Resampling.nearest,
            src_nodata=self._dataset.nodata,
            nodata=IGNORE_INDEX if self._dataset.nodata is None else self._dataset.nodata,
        )

    def read(self, window: Window) -> np.ndarray:
        """Label values in ``window`` (inside the image) as float64; NaN where unlabelled."""
        data = self._vrt.read(1, window=window, masked=True)
        out = data.astype(np.float64).filled(np.nan)
        if self._dataset.nodata is None:
            out[out == IGNORE_INDEX] = np.nan
        return out

    def close(self) -> None:
        self._vrt.close()
        self._dataset.close()


class _VectorLabels:
    """Class ids rasterised per chip from polygons already in the image CRS."""

    def __init__(self, frame: Any, image: rasterio.DatasetReader, path: Path) -> None:
        if len(frame) == 0:
            raise InputError(f"{path}: the label file has no features")
        _check_overlap(frame.total_bounds, frame.crs, image, path)
        self._frame = frame
        self._image = image
        self.path = path

    def read(self, window: Window) -> np.ndarray:
        from rasterio.features import rasterize
        from shapely.geometry import box

        transform = self._image.window_transform(window)
        bounds = rasterio.windows.bounds(window, self._image.transform)
        hits = self._frame.sindex.query(box(*bounds), predicate="intersects")
        shape = (int(window.height), int(window.width))
        if len(hits) == 0:
            return np.full(shape, np.nan)
        subset = self._frame.iloc[np.sort(hits)]
        burned = rasterize(
            zip(subset.geometry, subset["_class_id"].astype(float), strict=True),
            out_shape=shape,
            transform=transform,
            fill=np.nan,
            dtype="float64",
        )
        return burned

    def close(self) -> None:
        return None
