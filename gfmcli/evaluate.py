"""Score a class map against reference labels: ``gfm evaluate MAP --reference LABELS``.

Users check a map against their own reference data, and gfm measures itself on real scenes
(``bench/real.py``), with one rulebook: the confusion matrix is counted here and scored by
:func:`gfmcli.train.metrics.scores_from_confusion`, the function training validation uses.

How the two sides meet:

* a **reference raster** on the map's grid is read window by window; on another grid or CRS it
  is warped onto the map grid (``WarpedVRT``, nearest: class ids must never be interpolated),
  still one window at a time, so memory is bounded by the window, not by the rasters. Two
  rasters without a CRS (arrays saved as GeoTIFF) are compared pixel by pixel and must have the
  same shape; one with a CRS and one without is an error, never a guess;
* **points** (any OGR vector, read with pyogrio) sample the map pixel under them, after
  reprojection to the map's CRS; points outside the map or on map nodata are skipped and counted;
* **polygons** are rasterised onto the map grid (pixel centres inside), window by window, from
  the polygons the spatial index returns for that window.

What is counted is a table of (reference value, map value) pairs. The class correspondence is
applied to that small table at the end: reference values listed in ``[classes]`` of the mapping
file (many-to-one allowed) are scored as the map class they name, values not listed are
*unmapped* (counted, reported, not scored); without a mapping file, reference id ``k`` is map
id ``k`` (and a reference class *name* is the map class of that name). ``[merge]`` scores several
map classes as one.

Scores: overall accuracy = trace / total; per class IoU, recall (producer's accuracy, by
reference row), precision (user's accuracy, by map column), support (reference count). mIoU is
the mean IoU over the classes **present in the reference** (support > 0): a map class the
reference does not have (e.g. "burned" in a land-cover-only reference) is shown but does not
pull the mean down. Counts are pixels for rasters and polygons, points for points.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from gfmcli.config import find_key_line
from gfmcli.errors import ConfigError, InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: ``reference_nodata`` value meaning "use the reference raster's own nodata".
FILE_NODATA = "file"
#: Edge in pixels of the square windows that rasters are read and polygons burnt in.
WINDOW = 1024
#: Largest joint (reference x map) value range counted with ``np.bincount``.
BINCOUNT_LIMIT = 1 << 20
#: Attribute names tried, in this order of preference, when no ``field`` is given.
FIELD_CANDIDATES = ("class_id", "classid", "class", "label", "class_name", "classname")

RefKey = int | str


# --- the class correspondence ------------------------------------------------------------------


@dataclass(frozen=True)
class ClassMapping:
    """A ``--classes`` TOML file: reference class -> map class, and map classes merged.

    ``classes`` keys are reference ids (int) or reference class names (str); values are map
    class names (str) or ids (int). ``merge`` names a scored class made of several map classes.
    ``source`` and ``text`` locate keys for error messages (``file:line``).
    """

    classes: dict[RefKey, RefKey]
    merge: dict[str, tuple[RefKey, ...]] = field(default_factory=dict)
    source: str = "<classes>"
    text: str = ""

    def where(self, dotted: str) -> str:
        line = find_key_line(self.text, dotted) if self.text else None
        return f"{self.source}:{line}" if line else self.source


def load_class_mapping(path: str | Path) -> ClassMapping:
    """Read and validate a ``--classes`` file (ConfigError, exit code 7, on any mistake)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: class mapping file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the class mapping ({exc})") from exc
    return parse_class_mapping(text, source=str(path))


def parse_class_mapping(text: str, source: str = "<classes>") -> ClassMapping:
    """Validate mapping TOML ``text``; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f":{match.group(1)}" if match else ""
        raise ConfigError(f"{source}{where}: TOML syntax error: {exc}") from None
    partial = ClassMapping({}, {}, source, text)
    unknown = sorted(set(raw) - {"classes", "merge"})
    if unknown:
        raise ConfigError(
            f"{partial.where(unknown[0])}: unknown key {unknown[0]!r} at the top level "
            "(known: classes, merge)"
        )
    if "classes" not in raw:
        raise ConfigError(f"{source}: missing table [classes] (reference class = map class)")
    for table in ("classes", "merge"):
        if table in raw and not isinstance(raw[table], dict):
            raise ConfigError(f"{partial.where(table)}: {table!r} must be a table")
    classes: dict[RefKey, RefKey] = {}
    for key, value in raw["classes"].items():
        if isinstance(value, dict):
            raise ConfigError(
                f"{partial.where(f'classes.{key}')}: classes.{key} must be a map class name or "
                "id, got a table (quote reference names that contain dots)"
            )
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(
                f"{partial.where(f'classes.{key}')}: classes.{key} must be a map class name "
                f"(string) or id (integer), got {value!r}"
            )
        classes[_ref_key(key)] = value
    merge: dict[str, tuple[RefKey, ...]] = {}
    for name, members in raw.get("merge", {}).items():
        ok = isinstance(members, list) and members
        ok = ok and all(isinstance(m, (int, str)) and not isinstance(m, bool) for m in members)
        if not ok:
            raise ConfigError(
                f"{partial.where(f'merge.{name}')}: merge.{name} must be a non-empty array of "
                f'map class names or ids, e.g. "{name}" = ["cloud", "cloud shadow"]'
            )
        merge[name] = tuple(members)
    return ClassMapping(classes, merge, source, text)


def _ref_key(key: str) -> RefKey:
    """TOML keys are strings; those that are integers mean reference ids."""
    stripped = key.strip()
    try:
        return int(stripped)
    except ValueError:
        return key


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScore:
    """Scores of one scored class (a map class, or a merged group of map classes)."""

    id: int
    name: str
    iou: float
    recall: float
    precision: float
    support: int
    predicted: int


@dataclass(frozen=True)
class Evaluation:
    """What ``gfm evaluate`` reports; :meth:`to_dict` is the ``--json`` object.

    ``confusion`` rows are reference classes, columns map classes, in the order of ``classes``.
    ``skipped`` counts reference pixels/points that could not be scored, by reason
    (``map_nodata``, ``outside_map``, ``no_class``); ``unmapped`` counts reference pixels/points
    whose class the mapping does not list, by reference class.
    """

    map: str
    reference: str
    kind: str
    unit: str
    overall_accuracy: float
    miou: float
    classes: tuple[ClassScore, ...]
    confusion: np.ndarray
    scored: int
    skipped: dict[str, int]
    unmapped: dict[str, int]
    warnings: tuple[str, ...] = ()

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def unmapped_total(self) -> int:
        return sum(self.unmapped.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; undefined scores (NaN) become ``None`` (JSON null)."""
        return {
            "map": self.map,
            "reference": self.reference,
            "reference_kind": self.kind,
            "unit": self.unit,
            "overall_accuracy": _json_num(self.overall_accuracy),
            "miou": _json_num(self.miou),
            "classes": [
                {
                    "name": c.name,
                    "id": c.id,
                    "iou": _json_num(c.iou),
                    "recall": _json_num(c.recall),
                    "precision": _json_num(c.precision),
                    "support": c.support,
                    "predicted": c.predicted,
                }
                for c in self.classes
            ],
            "confusion": {
                "labels": [c.name for c in self.classes],
                "ids": [c.id for c in self.classes],
                "matrix": self.confusion.astype(np.int64).tolist(),
            },
            "scored": self.scored,
            "skipped": self.skipped_total,
            "skipped_by_reason": dict(self.skipped),
            "unmapped": self.unmapped_total,
            "unmapped_by_class": dict(self.unmapped),
            "warnings": list(self.warnings),
        }


def _json_num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


# --- entry point -------------------------------------------------------------------------------


def evaluate(
    map_path: str | Path,
    reference: str | Path,
    *,
    mapping: ClassMapping | None = None,
    layer: str | None = None,
    field_name: str | None = None,
    reference_nodata: float | str | None = FILE_NODATA,
    window: int = WINDOW,
) -> Evaluation:
    """Score the class map ``map_path`` against ``reference`` (a raster or a vector file).

    ``reference_nodata``: ``FILE_NODATA`` uses the reference raster's nodata, a number replaces
    it, ``None`` means every reference pixel is labelled (masks where 0 is a class).
    ``layer``/``field_name`` choose the vector layer and class attribute (detected if one fits).
    """
    map_path, reference = str(map_path), str(reference)
    with _open_map(map_path) as src:
        map_names = raster_class_names(src)
        map_nodata = None if src.nodata is None else int(src.nodata)
        if is_vector(reference):
            pairs, extra_skipped, kind, unit, ref_names = _count_vector(
                src, reference, layer, field_name, window
            )
        else:
            if layer is not None or field_name is not None:
                raise InputError(f"{reference}: --layer and --field are for vector references")
            pairs, extra_skipped, ref_names = _count_raster(
                src, map_path, reference, reference_nodata, window
            )
            kind, unit = "raster", "pixels"
    table = _Scoring(map_names, map_nodata, ref_names, mapping, kind)
    return table.score(pairs, extra_skipped, map_path, reference, kind, unit)


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


def _open_map(path: str) -> rasterio.DatasetReader:
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
    if not Path(path).exists() and not path.startswith("/vsi"):
        raise InputError(f"{path}: {what} file not found")
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


# --- counting pairs: rasters -------------------------------------------------------------------


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


def _count_raster(
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
        nodata = ref.nodata if reference_nodata == FILE_NODATA else reference_nodata
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


# --- counting pairs: vectors -------------------------------------------------------------------


def _count_vector(
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
        raise InputError(f"{reference}: reference file not found")
    try:
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


# --- scoring -----------------------------------------------------------------------------------


class _Scoring:
    """Turns counted (reference, map) pairs into an Evaluation under a class mapping."""

    def __init__(
        self,
        map_names: dict[int, str],
        map_nodata: int | None,
        ref_names: dict[int, str],
        mapping: ClassMapping | None,
        kind: str,
    ) -> None:
        self.map_names = map_names
        self.map_nodata = map_nodata
        self.ref_names = ref_names
        self.mapping = mapping
        self.kind = kind
        self.warnings: list[str] = []
        # Scored classes: map id -> scored id (merge groups collapse onto their smallest id).
        self.scored_of_map: dict[int, int] = {i: i for i in map_names}
        self.scored_names: dict[int, str] = dict(map_names)
        self.merged: dict[str, int] = {}
        self.rules: dict[RefKey, int] = {}
        if mapping is not None:
            self._apply_merge(mapping)
            self.rules = self._resolve_rules(mapping)

    # map side ----------------------------------------------------------------------------------

    def _map_id(self, value: RefKey, dotted: str) -> int:
        """A map class named in the mapping file, as a map id (ConfigError if unknown)."""
        assert self.mapping is not None
        if isinstance(value, int):
            return value
        by_name = {name: i for i, name in self.map_names.items()}
        if value in by_name:
            return by_name[value]
        known = ", ".join(f"{i} {n!r}" for i, n in sorted(self.map_names.items()))
        known = known or "none: the map has no class names, so use map ids"
        raise ConfigError(
            f"{self.mapping.where(dotted)}: unknown map class {value!r} in {dotted}; the map's "
            f"classes are {known}"
        )

    def _apply_merge(self, mapping: ClassMapping) -> None:
        for name, members in mapping.merge.items():
            ids = [self._map_id(m, f"merge.{name}") for m in members]
            target = min(ids)
            for i in ids:
                self.scored_of_map[i] = target
                self.scored_names.pop(i, None)
            self.scored_names[target] = name
            self.merged[name] = target

    def _scored_for_map(self, value: int) -> int:
        if value not in self.scored_of_map:
            self.scored_of_map[value] = value
            self.scored_names.setdefault(value, str(value))
        return self.scored_of_map[value]

    # reference side ----------------------------------------------------------------------------

    def _target_of(self, key: RefKey) -> int | None:
        """The scored class a reference value counts as; None if it is unmapped."""
        if self.mapping is None:
            if isinstance(key, str):
                by_name = {name: i for i, name in self.scored_names.items()}
                found = by_name.get(key)
                return None if found is None else found
            return self._scored_for_map(key)
        rules = self.rules
        if key in rules:
            return rules[key]
        name = self.ref_names.get(key) if isinstance(key, int) else None
        return rules.get(name) if name is not None else None

    def _resolve_rules(self, mapping: ClassMapping) -> dict[RefKey, int]:
        """Reference id or name -> scored class, every name checked (ConfigError, file:line)."""
        resolved: dict[RefKey, int] = {}
        for ref, value in mapping.classes.items():
            dotted = f"classes.{ref}"
            if isinstance(value, str) and value in self.merged:
                target = self.merged[value]
            else:
                target = self._scored_for_map(self._map_id(value, dotted))
            if isinstance(ref, str) and self.kind == "raster":
                by_name = {name: i for i, name in self.ref_names.items()}
                if ref not in by_name:
                    known = ", ".join(f"{i} {n!r}" for i, n in sorted(self.ref_names.items()))
                    known = known or "none: it has no class names, so use reference ids"
                    raise ConfigError(
                        f"{mapping.where(dotted)}: unknown reference class {ref!r}; the "
                        f"reference raster's classes are {known}"
                    )
                ref = by_name[ref]
            resolved[ref] = target
        return resolved

    # ------------------------------------------------------------------------------------------

    def score(
        self,
        pairs: Mapping[tuple[RefKey, int], int],
        extra_skipped: dict[str, int],
        map_path: str,
        reference: str,
        kind: str,
        unit: str,
    ) -> Evaluation:
        from gfmcli.train.metrics import scores_from_confusion

        skipped = Counter(extra_skipped)
        unmapped: Counter = Counter()
        counts: Counter = Counter()
        for (ref, value), n in pairs.items():
            if self.map_nodata is not None and value == self.map_nodata:
                skipped["map_nodata"] += n
                continue
            target = self._target_of(ref)
            if target is None:
                unmapped[self._ref_label(ref)] += n
                continue
            counts[(target, self._scored_for_map(value))] += n
        ids = sorted(self.scored_names)
        index = {i: k for k, i in enumerate(ids)}
        matrix = np.zeros((len(ids), len(ids)), np.int64)
        for (row, col), n in counts.items():
            matrix[index[row], index[col]] += n
        names = [self.scored_names[i] for i in ids]
        scores = scores_from_confusion(matrix, names)
        classes = tuple(
            ClassScore(
                id=i,
                name=name,
                iou=scores["per_class"][name]["iou"],
                recall=scores["per_class"][name]["recall"],
                precision=scores["per_class"][name]["precision"],
                support=scores["per_class"][name]["support"],
                predicted=int(matrix[:, k].sum()),
            )
            for k, (i, name) in enumerate(zip(ids, names, strict=True))
        )
        present = [c.iou for c in classes if c.support > 0]
        miou = float(np.mean(present)) if present else math.nan
        if self.mapping is not None and kind != "raster":
            seen = {ref for ref, _ in pairs}
            for ref in self.mapping.classes:
                if ref not in seen:
                    self.warnings.append(
                        f"reference class {ref!r} of {self.mapping.source} does not occur in "
                        f"{reference}"
                    )
        return Evaluation(
            map=map_path,
            reference=reference,
            kind=kind,
            unit=unit,
            overall_accuracy=scores["overall_accuracy"],
            miou=miou,
            classes=classes,
            confusion=matrix,
            scored=int(matrix.sum()),
            skipped={k: int(v) for k, v in sorted(skipped.items()) if v},
            unmapped={k: int(v) for k, v in sorted(unmapped.items())},
            warnings=tuple(self.warnings),
        )

    def _ref_label(self, ref: RefKey) -> str:
        name = self.ref_names.get(ref) if isinstance(ref, int) else None
        return f"{ref} {name}" if name else str(ref)
