"""``gfm tile``: cut rasters (and labels) into georeferenced training chips, streamed.

Each source raster is read one chip window at a time (never whole), on a grid aligned to the
raster's own pixel grid starting at its top-left pixel. The last row/column of chips extends past
the raster and is padded with nodata, so edges and areas smaller than one chip become chips too
(anchors.md pain point 4: samplers that never reach the edge or drop small areas).

Chips are stored in *physical* units (``DN * scale + offset``, float32, NaN = nodata) so that every
chip folder means the same thing whatever the source's storage; the scale/offset are recorded so
that a model trained on them is fed the same way at prediction time. Per-band statistics over
valid training pixels go to ``stats.json``; band identity (sensor, names, wavelengths, GSD,
scale/offset), classes, splits and counts to ``chips.json``; footprints to ``index.gpkg``.

A chip is kept when at least ``min_valid`` of its pixels inside the raster are valid (padding does
not count against it) and, with labels, at least ``min_labelled`` of them are labelled. Skipped
chips are counted per reason and reported, never dropped silently.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from gfmcli.atomic import partial_path, stale_partials
from gfmcli.errors import InputError, OutputError
from gfmcli.io.reader import check_dataset
from gfmcli.train.bands import ChipBands, resolve_bands
from gfmcli.train.chip_writer import ChipWriter, TileResult
from gfmcli.train.labels import LabelSource
from gfmcli.train.split import GridChip, assign_splits

log = logging.getLogger(__name__)

# Written into every chip folder at creation: --overwrite deletes only folders that hold it.
CHIPS_MARKER = ".gfm-chips"
_MARKER_TEXT = "This folder was made by gfm tile; gfm tile --overwrite may replace it.\n"
CHIP_FOLDER_ENTRIES = frozenset(
    {CHIPS_MARKER, "images", "labels", "chips.json", "stats.json", "index.gpkg"}
)


@dataclass(frozen=True)
class ChipOptions:
    """Everything ``tile`` needs besides the input paths (see ``gfm tile --help``)."""

    size: int = 128
    stride: int = 128
    sensor: str | None = None
    bands: tuple[str, ...] | None = None
    min_valid: float = 0.5
    min_labelled: float = 0.1
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    block: int = 4
    buffer: int = 0
    seed: int = 0
    classes: tuple[dict, ...] = ()
    regression: bool = False
    overwrite: bool = False


def chip_starts(length: int, size: int, stride: int) -> list[int]:
    """Chip offsets along one axis: every stride, and a last chip only if it adds new pixels."""
    return [s for s in range(0, length, stride) if s == 0 or s - stride + size < length]


def tile(
    rasters: list[Path],
    out_dir: Path,
    options: ChipOptions,
    labels: LabelSource | Sequence[LabelSource] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TileResult:
    """Write chips of ``rasters`` (one band set) and optional ``labels`` to ``out_dir``.

    ``labels`` is one label source for every raster, or one per raster in the same order.
    """
    if isinstance(labels, LabelSource):
        labels = [labels]
    if labels is not None and len(labels) == 1:
        labels = list(labels) * len(rasters)
    if labels is not None and len(labels) != len(rasters):
        raise InputError(
            f"{len(labels)} label files for {len(rasters)} rasters; give one label file for "
            "all rasters or one per raster, in the same order"
        )
    if options.size <= 0 or options.stride <= 0:
        raise InputError("--size and --stride must be positive")
    if not rasters:
        raise InputError("no input rasters given")
    out_dir = Path(out_dir)
    inputs = [Path(p) for p in rasters] + [label.path for label in labels or ()]
    replace = check_chip_target(out_dir, inputs, overwrite=options.overwrite)
    target = out_dir.resolve()
    _remove_stale_staging(target)
    staging = partial_path(target)
    try:
        (staging / "images").mkdir(parents=True)
        if labels is not None:
            (staging / "labels").mkdir()
        (staging / CHIPS_MARKER).write_text(_MARKER_TEXT)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(
            f"{out_dir}: cannot create the chip folder ({exc.strerror or exc}); choose another -o"
        ) from exc
    try:
        result = _tile_into(rasters, staging, options, labels, progress)
        result.out_dir = out_dir
        _swap_into_place(staging, target, replace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("wrote %d chips to %s", result.total, out_dir)
    return result


def _remove_stale_staging(target: Path) -> None:
    """Delete the staging folders of ``target`` that killed runs left (their process is gone)
    and that gfm made (they hold the chip-folder marker); nothing else is touched."""
    for stale in stale_partials(target, folders=True):
        if (stale / CHIPS_MARKER).is_file():
            log.info("removing %s, left by a tile run that no longer runs", stale)
            shutil.rmtree(stale, ignore_errors=True)


def check_chip_target(out_dir: Path, inputs: Sequence[Path], *, overwrite: bool) -> bool:
    """Refuse an ``-o`` that gfm may not write; True when an old chip folder is to be replaced.

    ``--overwrite`` only ever replaces a folder gfm made (it holds the ``.gfm-chips`` marker
    and nothing but chip-folder entries), and never one that holds an input: deleting a
    folder the user filled, or the rasters being tiled, is data loss no flag should allow.
    """
    target = out_dir.resolve()
    for item in inputs:
        resolved = item.resolve()
        if resolved == target or target in resolved.parents:
            raise OutputError(
                f"{out_dir}: holds the input {item}, so it cannot become the chip folder; "
                "choose an -o outside the input folders"
            )
    if not target.exists():
        return False
    if not target.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder; choose another -o")
    entries = {entry.name for entry in target.iterdir()}
    if not entries:
        return False
    if not overwrite:
        if CHIPS_MARKER in entries:  # tile does not resume: its split depends on every raster
            raise OutputError(
                f"{out_dir}: is a chip folder gfm tile made; pass --overwrite to cut it again, "
                "or choose another -o"
            )
        raise OutputError(f"{out_dir}: exists and is not empty; use --overwrite to replace it")
    foreign = sorted(entries - CHIP_FOLDER_ENTRIES)
    if CHIPS_MARKER not in entries or foreign:
        what = f"it also holds {', '.join(foreign[:3])}" if foreign else "it has no gfm marker"
        raise OutputError(
            f"{out_dir}: is not a chip folder made by gfm tile ({what}), so --overwrite will not "
            "delete it; choose another -o, or remove the folder yourself"
        )
    return True


def _swap_into_place(staging: Path, target: Path, replace: bool) -> None:
    """Rename the finished staging folder to ``target``; an old chip folder is moved aside
    first and deleted only once the new one is in place."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if replace:
        target.rename(old)
    elif target.exists():
        target.rmdir()  # empty, checked by check_chip_target
    try:
        staging.rename(target)
    except OSError as exc:
        if replace:
            old.rename(target)
        raise OutputError(f"{target}: cannot rename the chip folder into place ({exc})") from exc
    if replace:
        shutil.rmtree(old, ignore_errors=True)


def chip_counts(rasters: Sequence[Path], size: int, stride: int) -> list[tuple[int, int]]:
    """``(candidate chips, pixels)`` of every raster, from its header, with the checks and
    error messages of the run itself (for progress and ``--json`` records before it starts)."""
    sources = _open_sources(rasters)
    try:
        return [
            (
                len(chip_starts(src.height, size, stride))
                * len(chip_starts(src.width, size, stride)),
                src.height * src.width,
            )
            for src in sources
        ]
    finally:
        for src in sources:
            src.close()


def _open_sources(rasters: Sequence[Path]) -> list[rasterio.io.DatasetReader]:
    """Open every raster and check it as ``predict`` does (real-valued bands, a usable grid,
    an intact last block); InputError naming the file, with every opened one closed."""
    sources: list[rasterio.io.DatasetReader] = []
    try:
        for path in rasters:
            if not Path(path).is_file():
                raise InputError(f"{path}: no such raster file; check the path")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # judged below
                    sources.append(rasterio.open(path))
            except RasterioError as exc:
                raise InputError(f"{path}: GDAL cannot read it as a raster ({exc})") from exc
            check_dataset(str(path), sources[-1])
    except BaseException:
        for src in sources:
            src.close()
        raise
    return sources


def _no_crs_error(path: Path, src: rasterio.io.DatasetReader) -> InputError:
    """Chips are georeferenced files with footprints, so a raster with neither CRS nor
    geotransform (``check_dataset`` refuses one without only the CRS) cannot be cut. ``predict``
    maps it with ``--gsd``; for ``tile`` the fix offered is a VRT beside it that gives it a
    grid (30 m pixels in the example), which leaves the input as it is."""
    vrt = Path(path).with_suffix(".vrt").name
    return InputError(
        f"{path}: the raster has no CRS or geotransform, so its chips could not be placed; give "
        f"it a grid in a VRT and tile that, e.g. gdal_translate -of VRT -a_srs EPSG:32632 "
        f"-a_ullr 0 {src.height * 30} {src.width * 30} 0 {path} {vrt} (30 m pixels)"
    )


def _tile_into(rasters, staging, options, labels, progress):
    sources = _open_sources(rasters)
    try:
        for path, src in zip(rasters, sources, strict=True):
            if src.crs is None:
                raise _no_crs_error(path, src)
        chip_bands = _common_bands(sources, rasters, options)
        grid = [
            GridChip(i, r, c)
            for i, src in enumerate(sources)
            for r in chip_starts(src.height, options.size, options.stride)
            for c in chip_starts(src.width, options.size, options.stride)
        ]
        splits = assign_splits(
            grid,
            size=options.size,
            stride=options.stride,
            block=options.block,
            fractions=options.fractions,
            seed=options.seed,
            buffer=options.buffer,
        )
        writer = ChipWriter(staging, sources, rasters, chip_bands, options, labels)
        for chip, split in zip(grid, splits, strict=True):
            writer.add(chip, split)
            if progress:
                progress(1)
        writer.finish()
        wants_val = labels is not None and options.fractions[1] > 0
        if wants_val and not writer.result.written.get("val"):
            writer.result.warnings.append(
                f"no validation chips: {len(grid)} chip position(s) in blocks of "
                f"{options.block} chips went to other splits, so `gfm finetune` on this folder "
                "has nothing to choose its best epoch on; use a smaller --block-size (or "
                "--size/--stride), more or larger rasters, or another --split"
            )
        return writer.result
    finally:
        for src in sources:
            src.close()


# Pixel sizes of one chip folder's rasters may differ this much (a UTM zone's scale factor, a
# geographic grid a little further north); more is another resolution.
GSD_TOLERANCE = 0.1


def _common_bands(sources, paths, options) -> ChipBands:
    resolved = [
        resolve_bands(src, path, options.sensor, options.bands)
        for src, path in zip(sources, paths, strict=True)
    ]
    first = resolved[0]
    for path, other in zip(paths[1:], resolved[1:], strict=True):
        if other.names != first.names or other.sensor != first.sensor:
            raise InputError(
                f"{path}: bands {', '.join(other.names)} ({other.sensor}) differ from "
                f"{paths[0]}'s {', '.join(first.names)} ({first.sensor}); tile each band set "
                "into its own chip folder"
            )
        if abs(other.gsd - first.gsd) > GSD_TOLERANCE * first.gsd:
            raise InputError(
                f"{path}: pixels are {other.gsd:.3g} m, {paths[0]}'s {first.gsd:.3g} m; a chip "
                "folder records one pixel size for the model, so tile each resolution into its "
                "own chip folder (or resample to one grid first, gdalwarp -tr)"
            )
    return first
