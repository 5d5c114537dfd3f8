"""Open input rasters and read model-ready windows from them.

:func:`open_raster` checks everything that can be checked without reading pixels (the file
exists, GDAL reads it, it has bands, a CRS with a geotransform or neither, its last block is
intact) and derives the ground sample distance in metres. :func:`read_window` turns one window
into what the model eats: float32 ``(C, h, w)`` normalised as the checkpoint's contract says,
plus a validity mask.

Conventions (also in docs/formats.md):

* **GSD** is the ground distance of one pixel step at the raster's centre, measured on the CRS's
  ellipsoid (pyproj ``Geod``), so it is in metres for any projected CRS (whatever its linear
  unit, Web Mercator included) and for geographic CRS (degrees). ``gsd_m`` is the mean of the x
  and y steps; when they differ by more than 25 % (EPSG:4326 away from the equator) a warning is
  recorded in ``RasterSource.warnings``.
* **Validity**: a pixel is invalid when it lies outside the raster (boundless reads pad windows
  that run past the edge), when any used band is NaN or infinite, when *all* used bands hold
  their nodata value, or when the file's internal mask or alpha band masks it. A nodata value in
  only some bands is read as a real value (GDAL's rule: a single 0 in one band of a dark pixel is
  data, not a hole).
* **Values**: ``physical = DN * scale + offset``, then ``(physical - mean) / std`` per band;
  invalid pixels are set to 0 (the band mean) after normalisation so they are neutral.

Thread safety: a rasterio dataset must not be used from several threads at once. One
:class:`RasterSource` belongs to one thread (the runner reads in a single reader thread); open
another one for another thread.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from gfmcli.errors import InputError, first_line
from gfmcli.io.paths import is_gdal_path

if TYPE_CHECKING:
    from gfmcli.io.bands import BandMapping

GSD_ANISOTROPY_WARN = 1.25
PROBE_SIZE = 512  # decimated probe from overviews: at most this many px a side
PROBE_OVERVIEW = 2048  # ... read from an overview at most this many px a side
PROBE_PIXELS = 1 << 20  # sparse probe without overviews: about this many px decoded per band
PROBE_WINDOWS = 64  # ... in at most this many windows
PROBE_MIN_WINDOWS = 8  # ... and at least this many (unless the raster has fewer blocks)
PROBE_WINDOW = 256  # ... taking at most this many px a side of each
SCAN_VALUES = 1 << 23  # values per read when scanning a raster the probe found empty (~16 MB u16)


class RasterSource:
    """An open input raster with the facts the band contract and the runner need.

    Use it as a context manager (``with open_raster(path) as src:``); ``dataset`` is the
    underlying rasterio dataset for anything not exposed here.
    """

    def __init__(self, path: str, dataset: rasterio.io.DatasetReader) -> None:
        self.path = path
        self.dataset = dataset
        self.height: int = dataset.height
        self.width: int = dataset.width
        self.count: int = dataset.count
        self.dtypes: tuple[str, ...] = tuple(dataset.dtypes)
        self.crs = dataset.crs
        self.transform = dataset.transform
        self.nodata: float | None = dataset.nodata
        self.nodatavals: tuple[float | None, ...] = tuple(dataset.nodatavals)
        self.descriptions: tuple[str | None, ...] = tuple(dataset.descriptions)
        self.scales: tuple[float, ...] = tuple(dataset.scales)
        self.offsets: tuple[float, ...] = tuple(dataset.offsets)
        self.block_shape: tuple[int, int] = tuple(dataset.block_shapes[0])
        self.profile: dict[str, Any] = dict(dataset.profile)
        self.tags: dict[str, str] = dict(dataset.tags())
        self.band_tags: tuple[dict[str, str], ...] = tuple(
            dict(dataset.tags(i + 1)) for i in range(dataset.count)
        )
        self.warnings: list[str] = []
        # Without a CRS and geotransform the grid is pixels; the band contract takes the pixel
        # size from --gsd or the sensor, and outputs get the same bare pixel grid.
        self.georeferenced = dataset.crs is not None and not dataset.transform.is_identity
        if not self.georeferenced:
            self.gsd_x_m = self.gsd_y_m = self.gsd_m = math.nan
            return
        self.gsd_x_m, self.gsd_y_m = _pixel_size_m(dataset.crs, dataset.transform, self.shape)
        self.gsd_m = (self.gsd_x_m + self.gsd_y_m) / 2
        ratio = max(self.gsd_x_m, self.gsd_y_m) / min(self.gsd_x_m, self.gsd_y_m)
        if ratio > GSD_ANISOTROPY_WARN:
            self.warnings.append(
                f"{path}: pixels are {self.gsd_x_m:.3g} m x {self.gsd_y_m:.3g} m on the ground; "
                f"the model is told their mean, {self.gsd_m:.3g} m (reproject to a metric CRS "
                "with square pixels for best results)"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def close(self) -> None:
        self.dataset.close()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_raster(path: str | Path) -> RasterSource:
    """Open ``path`` and check it can be mapped; InputError (naming the file and the fix) if not."""
    path = str(path)
    if not is_gdal_path(path) and not Path(path).exists():
        raise InputError(f"{path}: no such file; check the path")
    if not is_gdal_path(path) and not Path(path).is_file():
        # GDAL blocks for ever opening a FIFO; a folder or device is no raster either.
        raise InputError(
            f"{path}: not a regular file (a pipe, device or folder); pass a raster file"
        )
    try:
        with warnings.catch_warnings():
            # A missing geotransform is reported below as an InputError with a fix.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
    except RasterioError as exc:
        raise InputError(
            f"{path}: GDAL cannot read it as a raster ({first_line(exc)}); "
            "check that it is a complete GeoTIFF/VRT"
        ) from exc
    try:
        check_dataset(path, dataset)
        return RasterSource(path, dataset)
    except BaseException:
        dataset.close()
        raise


def check_dataset(path: str, dataset: rasterio.io.DatasetReader) -> None:
    """InputError (naming ``path`` and the fix) unless ``dataset`` can be read as real-valued
    bands on a usable grid: bands present, CRS and geotransform both or neither, a pixel size
    that is finite and not zero, real (not complex) data, an intact last block. ``gfm tile``
    runs it on its rasters too."""
    if dataset.count == 0:
        inner = dataset.subdatasets
        hint = f"name one of its subdatasets, e.g. {inner[0]}" if inner else "use another file"
        raise InputError(f"{path}: the raster has no bands; {hint}")
    bare = dataset.crs is None and dataset.transform.is_identity
    if dataset.crs is None and not bare:
        raise InputError(
            f"{path}: the raster has a geotransform but no CRS; assign one, e.g. "
            f"gdal_edit -a_srs EPSG:32632 {path}"
        )
    if dataset.transform.is_identity and not bare:
        raise InputError(
            f"{path}: the raster has a CRS but no geotransform; set one with gdal_edit -a_ullr "
            "or georeference it first"
        )
    t = dataset.transform
    if not bare and (not all(math.isfinite(v) for v in t[:6]) or t.a * t.e - t.b * t.d == 0):
        raise InputError(
            f"{path}: the geotransform has a zero or undefined pixel size ({tuple(t[:6])}); "
            "fix it with gdal_edit -a_ullr or georeference the file again"
        )
    bad = [d for d in dataset.dtypes if np.dtype(d).kind not in "uif"]
    if bad:
        what = "complex numbers (its imaginary part would be lost)" if "complex" in bad[0] else ""
        raise InputError(
            f"{path}: data type {bad[0]}{' holds ' + what if what else ''} is not supported; "
            "convert to real numbers (e.g. the amplitude with gdal_calc)"
        )
    # The last block is what a cut-off download or copy loses first; read it now so a truncated
    # file fails before any work instead of halfway through a long run.
    block_h, block_w = dataset.block_shapes[0]
    row = (dataset.height - 1) // block_h * block_h
    col = (dataset.width - 1) // block_w * block_w
    last = Window(col, row, min(block_w, dataset.width - col), min(block_h, dataset.height - row))
    try:
        dataset.read(window=last)
    except RasterioError as exc:
        raise InputError(
            f"{path}: the file is truncated or corrupt ({first_line(exc)}); "
            "download or copy it again"
        ) from exc


def _pixel_size_m(crs: Any, transform: Any, shape: tuple[int, int]) -> tuple[float, float]:
    """Ground length in metres of one column step and one row step at the raster's centre."""
    height, width = shape
    col, row = width / 2, height / 2
    points = [transform @ (col, row), transform @ (col + 1, row), transform @ (col, row + 1)]
    proj = ProjCRS.from_wkt(crs.to_wkt())
    geodetic = proj.geodetic_crs
    if geodetic is not None:
        to_lonlat = Transformer.from_crs(proj, geodetic, always_xy=True)
        lons, lats = to_lonlat.transform([p[0] for p in points], [p[1] for p in points])
        if all(math.isfinite(v) for v in (*lons, *lats)):
            geod = geodetic.get_geod()
            assert geod is not None  # every geodetic CRS has an ellipsoid
            _, _, dx = geod.inv(lons[0], lats[0], lons[1], lats[1])
            _, _, dy = geod.inv(lons[0], lats[0], lons[2], lats[2])
            if dx > 0 and dy > 0:
                return float(dx), float(dy)
    unit = proj.axis_info[0].unit_conversion_factor if proj.axis_info else 1.0
    return math.hypot(transform.a, transform.d) * unit, math.hypot(transform.b, transform.e) * unit


def window_bounds(window: Any) -> tuple[int, int, int, int]:
    """``(row_off, col_off, height, width)`` of a rasterio Window, a ``PlannedWindow`` or a
    4-tuple."""
    if isinstance(window, tuple):
        row_off, col_off, height, width = window
    else:
        row_off, col_off = window.row_off, window.col_off
        height, width = window.height, window.width
    return int(row_off), int(col_off), int(height), int(width)


def internal_mask_band(dataset: rasterio.io.DatasetReader, indexes: list[int]) -> int | None:
    """A used band whose GDAL mask is an internal mask or alpha band (shared by all bands):
    read its mask to know the valid pixels. ``gfm tile`` follows the same rule."""
    for index in indexes:
        flags = dataset.mask_flag_enums[index - 1]
        if MaskFlags.per_dataset in flags or MaskFlags.alpha in flags:
            return index
    return None


def ground_pixel_size_m(dataset: rasterio.io.DatasetReader) -> float | None:
    """The pixel size the model is told for a georeferenced dataset (the mean of the ground
    lengths of a column and a row step at its centre, as :class:`RasterSource` computes it);
    None without a CRS."""
    if dataset.crs is None or dataset.transform.is_identity:
        return None
    dx, dy = _pixel_size_m(dataset.crs, dataset.transform, (dataset.height, dataset.width))
    return (dx + dy) / 2


def _validity(raw: np.ndarray, mapping: BandMapping, mask: np.ndarray | None) -> np.ndarray:
    """The validity rule of the module docstring for raw ``(C, h, w)`` values."""
    if raw.dtype.kind == "f":
        valid = np.isfinite(raw).all(axis=0)
    else:
        valid = np.ones(raw.shape[1:], dtype=bool)
    nodata = [band.nodata for band in mapping.bands]
    if all(v is not None and not math.isnan(v) for v in nodata):
        all_nodata = np.ones(raw.shape[1:], dtype=bool)
        for layer, value in zip(raw, nodata, strict=True):
            all_nodata &= layer == value
        valid &= ~all_nodata
    if mask is not None:
        valid &= mask > 0
    return valid


def _read_raw(
    src: RasterSource, indexes: list[int], window: Window, out_shape: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    mask_band = internal_mask_band(src.dataset, indexes)
    shape = None if out_shape is None else (len(indexes), *out_shape)
    try:
        raw = src.dataset.read(indexes, window=window, out_shape=shape)
        mask = None
        if mask_band is not None:
            mask = src.dataset.read_masks(mask_band, window=window, out_shape=out_shape)
    except RasterioError as exc:
        raise InputError(
            f"{src.path}: reading rows {window.row_off}..{window.row_off + window.height} failed "
            f"({first_line(exc)}); the file is probably corrupt, copy it again"
        ) from exc
    return raw, mask


def read_window(
    src: RasterSource, window: Any, mapping: BandMapping
) -> tuple[np.ndarray, np.ndarray]:
    """Model input for one window: ``(data float32 (C, h, w), valid bool (h, w))``.

    ``window`` is a rasterio ``Window``, a ``gfmcli.engine.tiling.PlannedWindow`` or a tuple
    ``(row_off, col_off, height, width)``; it may run past the raster's edges (the outside is
    padded and invalid). Bands come in ``mapping`` order, scaled and normalised per band.
    """
    row_off, col_off, height, width = window_bounds(window)
    data = np.zeros((len(mapping.bands), height, width), dtype=np.float32)
    valid = np.zeros((height, width), dtype=bool)
    r0, r1 = max(row_off, 0), min(row_off + height, src.height)
    c0, c1 = max(col_off, 0), min(col_off + width, src.width)
    if r0 >= r1 or c0 >= c1:
        return data, valid
    indexes = [band.index for band in mapping.bands]
    raw, mask = _read_raw(src, indexes, Window(c0, r0, c1 - c0, r1 - r0), None)
    inner_valid = _validity(raw, mapping, mask)
    gain = np.array([b.scale / b.std for b in mapping.bands], dtype=np.float64)
    bias = np.array([(b.offset - b.mean) / b.std for b in mapping.bands], dtype=np.float64)
    inner = data[:, r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off]
    for i, layer in enumerate(raw):
        np.multiply(layer, gain[i], out=inner[i], casting="unsafe")
        inner[i] += np.float32(bias[i])
    inner[:, ~inner_valid] = 0.0
    valid[r0 - row_off : r1 - row_off, c0 - col_off : c1 - col_off] = inner_valid
    return data, valid


@dataclass(frozen=True)
class Probe:
    """Valid pixels sampled from a raster: what the nodata and the units checks look at.

    ``values`` holds the raw values of the used bands (mapping order) at the valid pixels found,
    ``(C, n)``; ``scanned`` is True when the sample found none and the whole raster was then
    scanned at full resolution, so an empty ``values`` means every pixel is nodata.
    """

    values: np.ndarray
    scanned: bool

    @property
    def empty(self) -> bool:
        return self.values.shape[1] == 0

    @property
    def all_nodata(self) -> bool:
        """True only when a full-resolution scan found no valid pixel."""
        return self.empty and self.scanned


def _overview_step(src: RasterSource, index: int) -> int | None:
    """Decimation of a read that GDAL answers from an overview of at most PROBE_OVERVIEW px a
    side (it uses the coarsest overview not coarser than asked), or None when none is that small."""
    longest = max(src.height, src.width)
    small = [f for f in src.dataset.overviews(index) if longest / f <= PROBE_OVERVIEW]
    if not small:
        return None
    return max(min(small), math.ceil(longest / PROBE_SIZE))


def sample_windows(src: RasterSource) -> list[Window]:
    """A bounded set of windows spread evenly over the raster, each made of whole blocks.

    Reading costs whole blocks, so the sample decodes about PROBE_PIXELS pixels per band in
    PROBE_MIN_WINDOWS to PROBE_WINDOWS units, whatever the raster's size. A unit is one block,
    or for small blocks and strips as many as make about PROBE_WINDOW rows and columns (fewer
    rows for very wide strips); each window is the centre of its unit, at most PROBE_WINDOW px a
    side.
    """
    block_h, block_w = src.dataset.block_shapes[0]
    unit_h = min(src.height, block_h * max(1, PROBE_WINDOW // block_h))
    unit_w = min(src.width, block_w * max(1, PROBE_WINDOW // block_w))
    budget = PROBE_PIXELS // PROBE_MIN_WINDOWS
    if unit_h * unit_w > budget and unit_h > block_h:
        unit_h = min(unit_h, block_h * max(1, budget // (block_h * unit_w)))
    rows, cols = math.ceil(src.height / unit_h), math.ceil(src.width / unit_w)
    fit = PROBE_PIXELS // (unit_h * unit_w)
    wanted = min(PROBE_WINDOWS, max(PROBE_MIN_WINDOWS, fit), rows * cols)
    n_rows = min(rows, wanted, max(1, round(math.sqrt(wanted * rows / cols))))
    n_cols = min(cols, max(1, wanted // n_rows))
    windows = []
    for i in range(n_rows):
        for j in range(n_cols):
            row = int((i + 0.5) * rows / n_rows) * unit_h
            col = int((j + 0.5) * cols / n_cols) * unit_w
            height, width = min(unit_h, src.height - row), min(unit_w, src.width - col)
            win_h, win_w = min(height, PROBE_WINDOW), min(width, PROBE_WINDOW)
            windows.append(
                Window(col + (width - win_w) // 2, row + (height - win_h) // 2, win_w, win_h)
            )
    return windows


def scan_windows(src: RasterSource, bands: int) -> Iterator[Window]:
    """Windows tiling the whole raster, block-aligned, each at most ~SCAN_VALUES values."""
    block_h, block_w = src.dataset.block_shapes[0]
    cols = min(src.width, max(block_w, 4096 // block_w * block_w))
    rows = max(1, SCAN_VALUES // (cols * bands))
    rows = min(src.height, rows // block_h * block_h if rows >= block_h else rows)
    for row in range(0, src.height, rows):
        for col in range(0, src.width, cols):
            yield Window(col, row, min(cols, src.width - col), min(rows, src.height - row))


def _valid_values(
    src: RasterSource, mapping: BandMapping, window: Window, out_shape: tuple[int, int] | None
) -> np.ndarray:
    indexes = [band.index for band in mapping.bands]
    raw, mask = _read_raw(src, indexes, window, out_shape)
    return raw[:, _validity(raw, mapping, mask)]


def probe_raster(src: RasterSource, mapping: BandMapping, *, scan: bool = True) -> Probe:
    """One bounded look at the raster, shared by the nodata check and the units check.

    With overviews small enough, a decimated read (at most PROBE_SIZE px a side) answered from
    them; else the sparse block sample of :func:`sample_windows`. Either costs about the same
    for a 1k or a 100k raster. Only when that finds no valid pixel, and ``scan`` is True, is
    the full resolution read window by window (:func:`scan_windows`, bounded memory) up to the
    first window with a valid pixel, so a few valid rows between the samples are never
    declared empty (``--dry-run`` passes ``scan=False`` and stays quick).
    """
    full = Window(0, 0, src.width, src.height)
    step = _overview_step(src, mapping.bands[0].index)
    if step is not None:
        shape = (max(1, src.height // step), max(1, src.width // step))
        parts = [_valid_values(src, mapping, full, shape)]
    else:
        parts = [_valid_values(src, mapping, window, None) for window in sample_windows(src)]
    values = np.concatenate(parts, axis=1)
    if values.shape[1] or not scan:
        return Probe(values, scanned=False)
    for window in scan_windows(src, len(mapping.bands)):
        values = _valid_values(src, mapping, window, None)
        if values.shape[1]:
            break
    return Probe(values, scanned=True)
