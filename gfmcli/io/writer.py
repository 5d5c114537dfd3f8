"""Staged, atomic Cloud Optimized GeoTIFF outputs: class maps, probabilities, embeddings.

A COG cannot be written block by block in one pass (its overviews come first in the file), so
:class:`StagedRasterWriter` writes incoming row blocks to a hidden tiled GeoTIFF beside the final
path (ZSTD level 1, cheap), and :meth:`~StagedRasterWriter.finalize` turns it into the COG with
GDAL's COG driver (overviews, compression, 512 x 512 tiles, BigTIFF when safer), validates it
with rio-cogeo (minus its "not tiled" false positive for images exactly one tile wide, checked
against the TIFF's own TileWidth tags) and renames it into place. Any exception, Ctrl-C
included, removes the temporaries, so a final path that exists is always complete and valid.

Measured in the 2-core sandbox for a 3072 x 3072 x 3 float32 raster (docs/formats.md):
staging ZSTD-1 then the COG driver took 3.9 s + 4.1 s with a peak of 238 MB on disk; building
overviews in the staged file and copying with ``COPY_SRC_OVERVIEWS`` (rio-cogeo's way) took
3.9 s + 5.8 s and 227 MB; an uncompressed staged file needed 7.3 s to finalise and 263-267 MB.
Hence ZSTD-1 staging and the COG driver.

Output conventions (docs/formats.md): class maps are uint8 with nodata 255, an embedded colour
table and category names (in ``<map>.tif.aux.xml``, GDAL's PAM sidecar for GeoTIFF, staged
and renamed right after the map, plus ``CLASS_<id>`` band metadata inside the file);
probabilities are a second uint8 file, one band per class, in percent (0..100, nodata 255,
band scale 0.01); embeddings are float32 (or float16-precision) multi-band on the patch grid.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from gfmcli.atomic import partial_path, remove_with_prefix
from gfmcli.errors import OutputError, UsageError, ValidationFailed, first_line
from gfmcli.io.cog_check import real_cog_errors
from gfmcli.io.reader import window_bounds
from gfmcli.io.sidecars import aux_path, aux_xml
from gfmcli.io.styles import style_path

CLASS_NODATA = 255
PROBABILITY_NODATA = 255
BLOCK = 512
#: What GDAL raises through rasterio: RasterioError (an OSError), or CPLE_* for driver errors
#: such as a creation option it refuses ("Bad value 100 for TileWidth"). CPLE_BaseError has no
#: public name in rasterio (rasterio.errors does not export it), so this is gfm's one import
#: from a private rasterio module; everything else catches GDAL_ERRORS.
GDAL_ERRORS = (RasterioError, CPLE_BaseError, OSError)
_LOW_SPACE = 1 << 20


@dataclass(frozen=True)
class RasterGrid:
    """Where an output lives: size, CRS and transform (an input's, or its patch grid)."""

    width: int
    height: int
    crs: Any
    transform: Affine

    @classmethod
    def of(cls, src: Any) -> RasterGrid:
        """The grid of a ``RasterSource`` or rasterio dataset."""
        return cls(src.width, src.height, src.crs, src.transform)

    def coarsened(self, factor: int) -> RasterGrid:
        """The grid of ``factor x factor`` pixel cells (the ViT patch grid), covering the edges."""
        return RasterGrid(
            math.ceil(self.width / factor),
            math.ceil(self.height / factor),
            self.crs,
            self.transform @ Affine.scale(factor),
        )


def check_writable(path: str | Path) -> None:
    """Fail early (before any compute) when ``path``'s folder cannot take new files.

    Missing folders are created. Raises OutputError naming the folder.
    """
    folder = Path(path).expanduser().resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".gfm-write-test-", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as exc:
        raise OutputError(
            f"{folder}: cannot write there ({exc.strerror or exc}); choose another -o or fix "
            "the folder's permissions"
        ) from exc


def check_creation_options(options: Mapping[str, str]) -> None:
    """UsageError (exit 2) for ``--co`` options the COG driver refuses, found before any work.

    GDAL only warns about an unknown option or value (``COMPRESS=NOPE``) and then writes an
    uncompressed file, so the options are tried on a 16 x 16 raster in memory with GDAL's
    warnings collected. ``BLOCKSIZE`` is checked first: GDAL aborts the process on some
    values instead of reporting them.
    """
    options = {str(k).upper(): str(v) for k, v in options.items()}
    if not options:
        return
    if "BLOCKSIZE" in options:
        text = options["BLOCKSIZE"]
        # GDAL's COG driver takes 128 and up (it warns below that, and the check below
        # would refuse it in GDAL's words); 4096 is gfm's own upper limit.
        if not text.isdigit() or not 128 <= int(text) <= 4096 or int(text) % 16:
            raise UsageError(
                f"--co BLOCKSIZE={text}: the tile size must be a multiple of 16 from 128 to 4096"
            )
    complaints: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            complaints.append(record.getMessage())

    logger = logging.getLogger("rasterio._env")
    handler, level, propagate = _Collect(logging.WARNING), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    probe = f"/vsimem/gfm-co-check-{os.getpid()}.tif"
    try:
        with MemoryFile() as memory, warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with memory.open(driver="GTiff", width=16, height=16, count=1, dtype="uint8") as ds:
                ds.write(np.zeros((1, 16, 16), np.uint8))
                rasterio.shutil.copy(ds, probe, driver="COG", **options)
    except GDAL_ERRORS as exc:
        complaints.append(first_line(exc, "refused"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        with contextlib.suppress(*GDAL_ERRORS):
            rasterio.shutil.delete(probe)
    if complaints:
        given = " ".join(f"--co {k}={v}" for k, v in options.items())
        reason = re.sub(r"^CPLE_\w+ in ", "", complaints[0]).rstrip(".")
        raise UsageError(
            f"{given}: GDAL's COG driver refuses it ({reason}); see "
            "https://gdal.org/drivers/raster/cog.html for the options and values it takes"
        )


def cog_validator() -> Callable[..., tuple[bool, list[str], list[str]]]:
    """rio-cogeo's ``cog_validate``, imported when first needed: rio-cogeo builds pydantic
    models and loads tile matrix sets at import (0.2 s), which a run needs only once its first
    map is written; ``run_jobs`` imports it on a thread while the first input is checked."""
    from rio_cogeo.cogeo import cog_validate

    return cast(Callable[..., tuple[bool, list[str], list[str]]], cog_validate)


class StagedRasterWriter:
    """Write row blocks to a staged GeoTIFF; ``finalize()`` makes the COG and renames it.

    Use as a context manager: leaving the block without ``finalize()`` (or with an exception)
    deletes every temporary. Not thread-safe: one writer is fed by one thread.
    """

    def __init__(
        self,
        path: str | Path,
        grid: RasterGrid,
        *,
        count: int,
        dtype: str,
        nodata: float | None,
        overview_resampling: str,
        compress: str = "DEFLATE",
        predictor: bool = False,
        half_precision: bool = False,
        band_descriptions: Sequence[str] | None = None,
        band_tags: Sequence[Mapping[str, str]] | None = None,
        colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
        category_names: Sequence[str] | None = None,
        style: str | None = None,
        scales: Sequence[float] | None = None,
        tags: Mapping[str, Any] | None = None,
        creation_options: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self.count = count
        self.dtype = dtype
        self._staged = partial_path(self.path, ".staged")
        self._half_precision = half_precision
        self._cog = partial_path(self.path)
        # Sidecars (final path, text), staged beside the map and renamed right after it.
        self._sidecars: list[tuple[Path, str]] = []
        if category_names:
            self._sidecars.append((aux_path(self.path), aux_xml(category_names)))
        if style is not None:
            self._sidecars.append((style_path(self.path), style))
        self._user_options = {k.upper(): str(v) for k, v in (creation_options or {}).items()}
        self._cog_options = {
            "COMPRESS": compress,
            "PREDICTOR": "YES" if predictor else "NO",
            "BLOCKSIZE": str(BLOCK),
            "RESAMPLING": overview_resampling.upper(),
            "OVERVIEWS": "IGNORE_EXISTING",
            "BIGTIFF": "IF_SAFER",
            # The COG is made after the last window, when the model threads are idle: every core
            # compresses (identical bytes; 2048^2 class map on 2 cores: 0.34-0.45 s -> 0.23-0.3 s).
            "NUM_THREADS": "ALL_CPUS",
            **self._user_options,
        }
        profile = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "count": count,
            "dtype": dtype,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "ZSTD",
            "zstd_level": 1,
            "bigtiff": "IF_SAFER",
            "interleave": "band",
        }
        if grid.crs is not None or not grid.transform.is_identity:
            # An input without georeferencing gets an output on the same bare pixel grid.
            profile.update(crs=grid.crs, transform=grid.transform)
        try:
            with warnings.catch_warnings():
                # A bare pixel grid is deliberate here (the input had none), not a user mistake.
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dataset = rasterio.open(self._staged, "w", **profile)
            for i, text in enumerate(band_descriptions or ()):
                self._dataset.set_band_description(i + 1, text)
            for i, items in enumerate(band_tags or ()):
                self._dataset.update_tags(i + 1, **items)
            if colormap:
                self._dataset.write_colormap(1, dict(colormap))
            if scales:
                self._dataset.scales = tuple(scales)
            if tags:
                self._dataset.update_tags(**tag_strings(tags))
        except GDAL_ERRORS as exc:
            self.abort()
            raise self._failure("cannot create the output", exc) from exc

    def write(self, window: Any, array: np.ndarray) -> None:
        """Write ``array`` (``(count, h, w)``, or ``(h, w)`` for one band) at ``window``.

        ``window`` is a rasterio ``Window``, a ``PlannedWindow`` (engine/tiling.py) or
        ``(row_off, col_off, h, w)`` and must lie inside the grid.
        """
        row_off, col_off, height, width = window_bounds(window)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.shape != (self.count, height, width):
            raise ValueError(f"block shape {array.shape} != {(self.count, height, width)}")
        if (
            row_off < 0
            or col_off < 0
            or row_off + height > self.grid.height
            or (col_off + width > self.grid.width)
        ):
            raise ValueError(f"window {(row_off, col_off, height, width)} is outside the grid")
        if self._half_precision:
            # Values rounded to half floats, stored as float32: the 13 zero mantissa bits make
            # ZSTD + the float predictor store about half the bytes. GDAL's NBITS=16 does not:
            # it compresses the padding of a block without clearing it, so a small raster's
            # file grew 8-17x, by what the process's heap held (measured, GDAL 3.10).
            array = array.astype(np.float16).astype(self.dtype)
        try:
            self._dataset.write(
                array.astype(self.dtype, copy=False), window=Window(col_off, row_off, width, height)
            )
        except GDAL_ERRORS as exc:
            raise self._failure("writing the staged raster", exc) from exc

    def finalize(self) -> Path:
        """Build the COG, validate it and rename it to ``path``; returns ``path``."""
        try:
            try:
                self._dataset.close()
                rasterio.shutil.copy(self._staged, self._cog, driver="COG", **self._cog_options)
            except GDAL_ERRORS as exc:
                raise self._failure("writing the COG", exc) from exc
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a bare pixel grid
                _, errors, _ = cog_validator()(str(self._cog), quiet=True)
            errors = real_cog_errors(self._cog, errors)
            if errors:
                raise ValidationFailed(f"{self.path}: not a valid COG: {'; '.join(errors)}")
            for final, text in self._sidecars:
                try:
                    partial_path(final).write_text(text, encoding="utf-8")
                except OSError as exc:
                    raise self._failure(f"writing {final.name}", exc) from exc
            self._rename_into_place()
        except BaseException:
            self.abort()
            raise
        self._remove(self._staged)
        return self.path

    def _rename_into_place(self) -> None:
        """Rename the COG, then its sidecars right after, so a sidecar never exists alone.

        If a sidecar's rename fails the new map and the sidecars renamed so far go too. A
        process killed between the renames leaves a map without some sidecar, which a resumed
        run redoes (``missing_sidecars``).
        """
        try:
            os.replace(self._cog, self.path)
        except OSError as exc:
            raise self._failure("renaming the finished COG into place", exc) from exc
        done: list[Path] = []
        for final, _ in self._sidecars:
            try:
                os.replace(partial_path(final), final)
            except BaseException as exc:
                for path in (self.path, *done):
                    path.unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise self._failure(f"renaming {final.name} into place", exc) from exc
                raise
            done.append(final)

    @property
    def sidecars(self) -> list[Path]:
        """The final paths of the files written beside the map (``.aux.xml``, ``.qml``)."""
        return [final for final, _ in self._sidecars]

    def _failure(self, action: str, exc: BaseException) -> OutputError:
        """One line for a GDAL/OS failure: a full disk, or the creation option GDAL refused."""
        text = first_line(exc)
        folder = self.path.resolve().parent
        try:
            low_space = shutil.disk_usage(folder).free < _LOW_SPACE
        except OSError:
            low_space = False
        if low_space or getattr(exc, "errno", None) == errno.ENOSPC or "no space" in text.lower():
            return OutputError(
                f"{self.path}: {action} failed: no space left on {folder}; free some space or "
                "choose another -o"
            )
        suspects = [
            f"{key}={value}"
            for key, value in self._user_options.items()
            if key.lower() in text.lower() or re.search(rf"\b{re.escape(value)}\b", text)
        ]
        hint = f"; check the creation option {suspects[0]}" if suspects else ""
        return OutputError(f"{self.path}: {action} failed ({text}){hint}")

    def abort(self) -> None:
        """Close and delete every temporary; the final path is left untouched."""
        dataset = getattr(self, "_dataset", None)
        if dataset is not None and not dataset.closed:
            with contextlib.suppress(Exception):
                dataset.close()
        for base in (self._staged, self._cog, *(partial_path(f) for f, _ in self._sidecars)):
            self._remove(base)

    @staticmethod
    def _remove(base: Path) -> None:
        remove_with_prefix(base)

    def __enter__(self) -> StagedRasterWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def tag_strings(tags: Mapping[str, Any]) -> dict[str, str]:
    """GeoTIFF metadata values are strings; everything else is stored as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in tags.items()}
