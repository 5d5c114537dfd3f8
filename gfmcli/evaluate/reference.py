"""Reading the reference side of ``gfm evaluate``: (reference value, map value) pairs counted
window by window from a raster (warped onto the map grid when needed), from points (sampled)
or from polygons (burnt), so memory is bounded by the window, not by the files.
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from gfmcli.errors import InputError
from gfmcli.evaluate.classes import RefKey
from gfmcli.io.paths import is_gdal_path
from gfmcli.io.vector_reads import reading_vectors

#: ``reference_nodata`` value meaning "use the reference raster's own nodata".
FILE_NODATA = "file"


#: Edge in pixels of the square windows that rasters are read and polygons burnt in.
WINDOW = 1024


#: Largest joint (reference x map) value range counted with ``np.bincount``.
BINCOUNT_LIMIT = 1 << 20


#: Attribute names tried, in this order of preference, when no ``field`` is given.
FIELD_CANDIDATES = ("class_id", "classid", "class", "label", "class_name", "classname")


def is_vector(path: str) -> bool:
    """Vector files go to OGR, everything else to GDAL's raster drivers."""
    return Path(path).suffix.lower() in (
        ".gpkg",
        ".geojson",
        ".json",
        ".shp",
        ".fgb",
        ".parquet",
        ".gml",
        ".kml",
        ".csv",
    )


def open_map(path: str) -> rasterio.DatasetReader:
    src = _open_raster(path, "map")
    try:
        if src.count != 1:
            raise InputError(f"{path}: a class map has one band, this raster has {src.count}")
        if np.dtype(src.dtypes[0]).kind not in "iu":
            raise InputError(
                f"{path}: a class map holds integer class ids, this raster is {src.dtypes[0]}"
            )
    except BaseException:
        src.close()
        raise
    return src


def _open_raster(path: str, what: str) -> rasterio.DatasetReader:
    if not Path(path).exists() and not is_gdal_path(path):
        raise InputError(f"{path}: {what} file not found; check the path")
    try:
        with warnings.catch_warnings():
            # Rasters without georeferencing are compared by shape, on purpose (see above).
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{path}: cannot open the {what} raster ({exc})") from exc


def raster_class_names(src: rasterio.DatasetReader) -> dict[int, str]:
    """Class names of band 1: GDAL category names (``.aux.xml``), else ``CLASS_<id>`` tags.

    gfm maps carry both; label rasters written by ``gfm simulate`` carry the tags. Empty
    category names (gaps in the id range) are not classes.
    """
    names = _category_names(src.name)
    if names:
        return names
    for tags in (src.tags(1), src.tags()):
        found = {
            int(key[6:]): value
            for key, value in tags.items()
            if key.startswith("CLASS_") and key[6:].isdigit() and value
        }
        if found:
            return found
    return {}


def _category_names(path: str) -> dict[int, str]:
    aux = Path(path + ".aux.xml")
    if not aux.is_file():
        return {}
    try:
        root = ET.parse(aux).getroot()
    except ET.ParseError:
        return {}
    for band in root.iter("PAMRasterBand"):
        if band.get("band", "1") != "1":
            continue
        categories = band.find("CategoryNames")
        if categories is not None:
            return {i: c.text for i, c in enumerate(categories.iter("Category")) if c.text}
    return {}


def _windows(height: int, width: int, size: int) -> Iterator[Window]:
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def _add_pairs(pairs: Counter, ref: np.ndarray, values: np.ndarray) -> None:
    """Count (reference, map) value pairs of two equal-length 1-D integer arrays.

    Class ids span small ranges, so a bincount over the joint range does it (about 5x faster
    than sorting); ``np.unique`` on packed 64-bit keys takes the rare wide ranges.
    """
    if ref.size == 0:
        return
    ref_lo, ref_hi = int(ref.min()), int(ref.max())
    map_lo, map_hi = int(values.min()), int(values.max())
    span = map_hi - map_lo + 1
    if (ref_hi - ref_lo + 1) * span <= BINCOUNT_LIMIT:
        joint = (ref.astype(np.int64) - ref_lo) * span + (values.astype(np.int64) - map_lo)
        counts = np.bincount(joint)
        for key in np.flatnonzero(counts).tolist():
            pairs[(key // span + ref_lo, key % span + map_lo)] += int(counts[key])
        return
    stacked = (ref.astype(np.int64) << 32) | (values.astype(np.int64) & 0xFFFFFFFF)
    keys, counts = np.unique(stacked, return_counts=True)
    for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
        map_value = key & 0xFFFFFFFF
        if map_value >= 1 << 31:
            map_value -= 1 << 32
        pairs[(key >> 32, map_value)] += count


def count_raster(
    src: rasterio.DatasetReader,
    map_path: str,
    reference: str,
    reference_nodata: float | str | None,
    window: int,
) -> tuple[Counter, dict[str, int], dict[int, str]]:
    ref = _open_raster(reference, "reference")
    with ref:
        if ref.count != 1:
            raise InputError(
                f"{reference}: a reference raster has one band of class ids, it has {ref.count}"
            )
        if np.dtype(ref.dtypes[0]).kind not in "iu":
            raise InputError(
                f"{reference}: reference classes must be integers, this raster is {ref.dtypes[0]}"
            )
        nodata = (
            ref.nodata if reference_nodata == FILE_NODATA else cast(float | None, reference_nodata)
        )
        ref_names = raster_class_names(ref)
        pairs: Counter = Counter()
        for win, labels, valid in _reference_windows(src, map_path, ref, reference, nodata, window):
            values = src.read(1, window=win)
            _add_pairs(pairs, labels[valid], values[valid])
    return pairs, {}, ref_names


def _reference_windows(
    src: rasterio.DatasetReader,
    map_path: str,
    ref: rasterio.DatasetReader,
    reference: str,
    nodata: float | None,
    window: int,
) -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
    """(map window, reference labels on it, labelled mask), window by window."""
    same_shape = (ref.height, ref.width) == (src.height, src.width)
    if src.crs is None or ref.crs is None:
        if (src.crs is None) != (ref.crs is None):
            has, lacks = (map_path, reference) if ref.crs is None else (reference, map_path)
            raise InputError(
                f"{lacks}: has no CRS but {has} has one, so they cannot be overlaid; assign the "
                f"CRS (gdal_edit -a_srs ...) or remove it from both"
            )
        if not same_shape:
            raise InputError(
                f"{reference}: neither raster has a CRS, so they must have the same shape; the "
                f"reference is {ref.height}x{ref.width}, the map {src.height}x{src.width} (rows x "
                "columns)"
            )
        aligned = True
    else:
        aligned = (
            same_shape and ref.crs == src.crs and ref.transform.almost_equals(src.transform, 1e-9)
        )
    if aligned:
        for win in _windows(src.height, src.width, window):
            labels = ref.read(1, window=win)
            valid = np.ones(labels.shape, bool) if nodata is None else labels != nodata
            yield win, labels, valid
        return
    _check_overlap(src, ref, reference)
    with WarpedVRT(
        ref,
        crs=src.crs,
        transform=src.transform,
        width=src.width,
        height=src.height,
        resampling=Resampling.nearest,
        src_nodata=nodata,
        add_alpha=True,
    ) as vrt:
        for win in _windows(src.height, src.width, window):
            labels = vrt.read(1, window=win)
            covered = vrt.read(vrt.count, window=win) > 0
            valid = covered if nodata is None else covered & (labels != nodata)
            yield win, labels, valid


def _check_overlap(src: rasterio.DatasetReader, ref: rasterio.DatasetReader, reference: str):
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(ref.crs, src.crs, *ref.bounds)
    b = src.bounds
    if left >= b.right or right <= b.left or bottom >= b.top or top <= b.bottom:
        raise InputError(
            f"{reference}: the reference does not overlap the map {src.name} (reference bounds "
            f"in the map CRS {tuple(round(v, 3) for v in (left, bottom, right, top))}, map bounds "
            f"{tuple(round(v, 3) for v in b)}); check the files and their CRS"
        )


def count_vector(
    src: rasterio.DatasetReader,
    reference: str,
    layer: str | None,
    field_name: str | None,
    window: int,
) -> tuple[Counter, dict[str, int], str, str, dict[int, str]]:
    frame, column = _read_vector(reference, layer, field_name)
    if src.crs is None:
        raise InputError(
            f"{src.name}: the map has no CRS, so the vector reference {reference} cannot be "
            "placed on it; score it against a georeferenced map"
        )
    if frame.crs is None:
        raise InputError(
            f"{reference}: the reference has no CRS; assign one (ogr2ogr -a_srs EPSG:...)"
        )
    kinds = set(frame.geometry.geom_type)
    points = kinds <= {"Point", "MultiPoint"}
    polygons = kinds <= {"Polygon", "MultiPolygon"}
    if not (points or polygons):
        raise InputError(
            f"{reference}: the reference layer holds {', '.join(sorted(kinds))} geometries; "
            "use points or polygons (one kind per layer, choose it with --layer)"
        )
    frame = frame.to_crs(src.crs)
    keys, no_class = _class_keys(frame[column], reference, column)
    skipped = {"no_class": no_class} if no_class else {}
    if points:
        pairs, outside, on_nodata = _sample_points(src, frame, keys, window)
        skipped.update({"outside_map": outside, "map_nodata": on_nodata})
        return pairs, skipped, "points", "points", {}
    return _burn_polygons(src, frame, keys, window), skipped, "polygons", "pixels", {}


def _read_vector(reference: str, layer: str | None, field_name: str | None) -> tuple[Any, str]:
    import geopandas as gpd
    import pyogrio

    if not Path(reference).exists():
        raise InputError(f"{reference}: reference file not found; check the path")
    try:
        with reading_vectors():
            layers = [str(name) for name in pyogrio.list_layers(reference)[:, 0]]
    except Exception as exc:
        raise InputError(f"{reference}: cannot read the reference ({exc})") from exc
    if layer is None:
        if len(layers) != 1:
            raise InputError(
                f"{reference}: holds {len(layers)} layers ({', '.join(layers)}); choose one with "
                "--layer"
            )
        layer = layers[0]
    elif layer not in layers:
        raise InputError(
            f"{reference}: no layer {layer!r}; its layers are {', '.join(layers) or 'none'}"
        )
    try:
        with reading_vectors():
            frame = gpd.read_file(reference, layer=layer, engine="pyogrio")
    except Exception as exc:
        raise InputError(f"{reference}: cannot read layer {layer!r} ({exc})") from exc
    fields = [c for c in frame.columns if c != frame.geometry.name]
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    if len(frame) == 0:
        raise InputError(f"{reference}: layer {layer!r} has no features with a geometry")
    return frame, _pick_field(reference, layer, fields, field_name)


def _pick_field(reference: str, layer: str, fields: list[str], field_name: str | None) -> str:
    listed = ", ".join(fields) or "none"
    if field_name is not None:
        if field_name not in fields:
            raise InputError(
                f"{reference}: layer {layer!r} has no field {field_name!r}; its fields are {listed}"
            )
        return field_name
    lower = {f.lower(): f for f in fields}
    found = [lower[c] for c in FIELD_CANDIDATES if c in lower]
    if len(found) == 1:
        return found[0]
    if not found and len(fields) == 1:
        return fields[0]
    which = f"several class fields ({', '.join(found)})" if found else "no obvious class field"
    raise InputError(
        f"{reference}: layer {layer!r} has {which}; choose one with --field (fields: {listed})"
    )


def _class_keys(values: Any, reference: str, column: str) -> tuple[list[RefKey | None], int]:
    """Each feature's reference class as an int id or a str name; None where missing."""
    keys: list[RefKey | None] = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            keys.append(None)
        elif isinstance(value, (bool, np.bool_)):
            raise InputError(f"{reference}: field {column!r} is boolean; give a class field")
        elif isinstance(value, (int, np.integer)):
            keys.append(int(value))
        elif isinstance(value, (float, np.floating)):
            if value != round(value):
                raise InputError(
                    f"{reference}: field {column!r} holds {value}, not a class id or name"
                )
            keys.append(int(value))
        else:
            keys.append(str(value))
    return keys, sum(k is None for k in keys)


def _sample_points(
    src: rasterio.DatasetReader, frame: Any, keys: list[RefKey | None], window: int
) -> tuple[Counter, int, int]:
    """Map values under each point (MultiPoints count each part), read window by window."""
    exploded = frame.assign(_key=keys).explode(index_parts=False)
    exploded = exploded[[k is not None for k in exploded["_key"]]]
    xs, ys = exploded.geometry.x.to_numpy(), exploded.geometry.y.to_numpy()
    cols, rows = ~src.transform @ (xs, ys)
    rows, cols = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
    point_keys = exploded["_key"].tolist()
    values = np.zeros(len(point_keys), np.int64)
    blocks = (rows // window) * ((src.width + window - 1) // window) + cols // window
    for block in np.unique(blocks[inside]):
        hit = np.flatnonzero(inside & (blocks == block))
        row0, col0 = rows[hit].min(), cols[hit].min()
        win = Window(
            col0, row0, cols[hit].max() - col0 + 1, rows[hit].max() - row0 + 1
        )  # the smallest window holding this block's points
        data = src.read(1, window=win)
        values[hit] = data[rows[hit] - row0, cols[hit] - col0]
    nodata = src.nodata
    pairs: Counter = Counter()
    on_nodata = 0
    for i in np.flatnonzero(inside):
        if nodata is not None and values[i] == nodata:
            on_nodata += 1
        else:
            pairs[(point_keys[i], int(values[i]))] += 1
    return pairs, int((~inside).sum()), on_nodata


def _burn_polygons(
    src: rasterio.DatasetReader, frame: Any, keys: list[RefKey | None], window: int
) -> Counter:
    """Burn polygon classes (as codes) onto the map grid window by window and count pairs."""
    from rasterio.features import rasterize
    from shapely.geometry import box

    frame = frame.assign(_key=keys)
    frame = frame[[k is not None for k in keys]]
    distinct = sorted({k for k in frame["_key"]}, key=lambda k: (isinstance(k, str), k))
    code_of = {k: i for i, k in enumerate(distinct)}
    codes = np.array([code_of[k] for k in frame["_key"]], np.int32)
    index = frame.sindex
    coded: Counter = Counter()
    for win in _windows(src.height, src.width, window):
        bounds = rasterio.windows.bounds(win, src.transform)
        hits = np.sort(index.query(box(*bounds), predicate="intersects"))
        if len(hits) == 0:
            continue
        burned = rasterize(
            zip(frame.geometry.iloc[hits], codes[hits].tolist(), strict=True),
            out_shape=(int(win.height), int(win.width)),
            transform=src.window_transform(win),
            fill=-1,
            dtype="int32",
        )
        labelled = burned >= 0
        if not labelled.any():
            continue
        values = src.read(1, window=win)
        _add_pairs(coded, burned[labelled], values[labelled])
    return Counter({(distinct[code], value): n for (code, value), n in coded.items()})
