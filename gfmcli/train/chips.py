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

import contextlib
import errno
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from gfmcli.errors import InputError, OutputError
from gfmcli.io.reader import check_dataset
from gfmcli.io.vector import GPKG_OPTIONS
from gfmcli.io.writer import GDAL_ERRORS
from gfmcli.train.bands import ChipBands, resolve_bands
from gfmcli.train.labels import IGNORE_INDEX, LabelSource
from gfmcli.train.split import GridChip, assign_splits
from gfmcli.train.stats import BandStatistics, write_stats

log = logging.getLogger(__name__)

CHIPS_FORMAT = 1
# Written into every chip folder at creation: --overwrite deletes only folders that hold it.
CHIPS_MARKER = ".gfm-chips"
_MARKER_TEXT = "This folder was made by gfm tile; gfm tile --overwrite may replace it.\n"
CHIP_FOLDER_ENTRIES = frozenset(
    {CHIPS_MARKER, "images", "labels", "chips.json", "stats.json", "index.gpkg"}
)


@dataclass(frozen=True)
class TileOptions:
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


@dataclass
class TileResult:
    """What ``tile`` wrote and skipped."""

    out_dir: Path
    written: dict[str, int] = field(default_factory=dict)
    skipped_invalid: int = 0
    skipped_unlabelled: int = 0
    buffer: int = 0
    per_source: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.written.values())


def chip_starts(length: int, size: int, stride: int) -> list[int]:
    """Chip offsets along one axis: every stride, and a last chip only if it adds new pixels."""
    return [s for s in range(0, length, stride) if s == 0 or s - stride + size < length]


def tile(
    rasters: list[Path],
    out_dir: Path,
    options: TileOptions,
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
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}")
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


def _open_sources(rasters: Sequence[Path]) -> list[rasterio.io.DatasetReader]:
    """Open every raster and check it as ``predict`` does (real-valued bands, a usable grid,
    an intact last block); InputError naming the file, with every opened one closed."""
    sources: list[rasterio.io.DatasetReader] = []
    try:
        for path in rasters:
            if not Path(path).is_file():
                raise InputError(f"{path}: no such raster file; check the path")
            try:
                sources.append(rasterio.open(path))
            except RasterioError as exc:
                raise InputError(f"{path}: GDAL cannot read it as a raster ({exc})") from exc
            check_dataset(str(path), sources[-1])
    except BaseException:
        for src in sources:
            src.close()
        raise
    return sources


@contextlib.contextmanager
def _writing(path: Path, what: str) -> Iterator[None]:
    """Turn a failed write into one OutputError naming the file (a full disk above all)."""
    try:
        yield
    except GDAL_ERRORS as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        if getattr(exc, "errno", None) == errno.ENOSPC or "no space" in str(exc).lower():
            reason = "no space left on the device; free some space or choose another -o"
        raise OutputError(f"{path}: cannot write {what} ({reason})") from exc


def _tile_into(rasters, staging, options, labels, progress):
    sources = _open_sources(rasters)
    try:
        for path, src in zip(rasters, sources, strict=True):
            if src.crs is None:
                raise InputError(
                    f"{path}: the raster has no CRS, so its chips could not be placed; assign "
                    f"one, e.g. gdal_edit -a_srs EPSG:32632 {path}"
                )
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
        writer = _ChipWriter(staging, sources, rasters, chip_bands, options, labels)
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
    return first


class _ChipWriter:
    """Reads, filters and writes chips; accumulates statistics, index rows and class ids."""

    def __init__(self, staging, sources, paths, chip_bands, options, labels) -> None:
        self.staging, self.sources, self.paths = staging, sources, paths
        self.bands, self.options = chip_bands, options
        self.result = TileResult(staging)
        self.stats = BandStatistics(chip_bands.names)
        self.fallback_stats = BandStatistics(chip_bands.names)
        self.records: list[dict] = []
        self.class_ids: set[int] = set()
        self.known = {int(c["id"]) for c in options.classes}
        self.labellers = (
            [label.open_for(src) for label, src in zip(labels, sources, strict=True)]
            if labels
            else None
        )
        self.label_paths = [label.path for label in labels] if labels else []

    def add(self, chip: GridChip, split: str) -> None:
        size, src = self.options.size, self.sources[chip.source]
        height = min(size, src.height - chip.row)
        width = min(size, src.width - chip.col)
        window = Window(chip.col, chip.row, width, height)
        inside = height * width
        image = np.full((len(self.bands.names), size, size), np.nan, np.float32)
        try:
            block = src.read(window=window)
        except GDAL_ERRORS as exc:
            raise InputError(
                f"{self.paths[chip.source]}: cannot read the block at row {chip.row}, column "
                f"{chip.col} ({str(exc).strip().splitlines()[0]}); the file is corrupt: copy "
                "or download it again"
            ) from exc
        image[:, :height, :width] = self.bands.to_physical(block)
        valid = np.all(np.isfinite(image), axis=0)
        valid_fraction = valid.sum() / inside
        if valid_fraction < self.options.min_valid:
            self.result.skipped_invalid += 1
            return
        label = None
        if self.labellers is not None:
            label = np.full((size, size), np.nan)
            label[:height, :width] = self.labellers[chip.source].read(window)
            label[~valid] = np.nan
            labelled_fraction = np.isfinite(label).sum() / inside
            if labelled_fraction < self.options.min_labelled:
                self.result.skipped_unlabelled += 1
                return
        if split == "buffer":
            self.result.buffer += 1
            return
        self._write(chip, split, image, valid, label, valid_fraction, inside / size**2)

    def _write(self, chip, split, image, valid, label, valid_fraction, coverage) -> None:
        src, size = self.sources[chip.source], self.options.size
        stem = f"{Path(self.paths[chip.source]).stem}_r{chip.row:06d}_c{chip.col:06d}"
        if len({Path(p).stem for p in self.paths}) < len(self.paths):
            stem = f"s{chip.source:03d}_{stem}"
        window = Window(chip.col, chip.row, size, size)
        transform = src.window_transform(window)
        profile = {
            "driver": "GTiff",
            "width": size,
            "height": size,
            "crs": src.crs,
            "transform": transform,
            "compress": "deflate",
        }
        image_rel = f"images/{stem}.tif"
        with (
            _writing(self.staging / image_rel, "the chip"),
            rasterio.open(
                self.staging / image_rel,
                "w",
                count=image.shape[0],
                dtype="float32",
                nodata=float("nan"),
                predictor=3,
                **profile,
            ) as dst,
        ):
            dst.write(image)
            dst.descriptions = self.bands.names
        record = {
            "image": image_rel,
            "split": split,
            "source": str(self.paths[chip.source]),
            "row": chip.row,
            "col": chip.col,
            "valid_fraction": round(float(valid_fraction), 6),
            "coverage": round(float(coverage), 6),
            "bounds": list(rasterio.windows.bounds(window, src.transform)),
            "crs": src.crs.to_string() if src.crs else None,
        }
        if label is not None:
            record.update(self._write_label(chip.source, stem, label, profile))
        self.records.append(record)
        self.result.written[split] = self.result.written.get(split, 0) + 1
        name = str(self.paths[chip.source])
        self.result.per_source[name] = self.result.per_source.get(name, 0) + 1
        (self.stats if split == "train" else self.fallback_stats).update(image, valid)

    def _write_label(self, source: int, stem: str, label: np.ndarray, profile: dict) -> dict:
        label_path = self.label_paths[source]
        rel = f"labels/{stem}.tif"
        labelled = np.isfinite(label)
        extra = {"label": rel, "labelled_fraction": round(float(labelled.mean()), 6)}
        if self.options.regression:
            with (
                _writing(self.staging / rel, "the label chip"),
                rasterio.open(
                    self.staging / rel,
                    "w",
                    count=1,
                    dtype="float32",
                    nodata=float("nan"),
                    **profile,
                ) as dst,
            ):
                dst.write(label.astype(np.float32), 1)
            extra["target_mean"] = float(label[labelled].mean())
            return extra
        values = label[labelled]
        bad = (values != np.round(values)) | (values < 0) | (values >= IGNORE_INDEX)
        if bad.any():
            raise InputError(
                f"{label_path}: label values must be integer class ids 0-254 "
                f"(found {values[bad][0]:g}); use --regression for numeric targets"
            )
        ids = np.unique(values).astype(int)
        unknown = sorted(set(ids.tolist()) - self.known) if self.known else []
        if unknown:
            raise InputError(
                f"{label_path}: class id(s) {', '.join(map(str, unknown))} are not in the "
                f"class list ({', '.join(str(c) for c in sorted(self.known))}); fix the labels "
                "or add the classes to --classes"
            )
        self.class_ids.update(ids.tolist())
        out = np.where(labelled, label, IGNORE_INDEX).astype(np.uint8)
        with (
            _writing(self.staging / rel, "the label chip"),
            rasterio.open(
                self.staging / rel, "w", count=1, dtype="uint8", nodata=IGNORE_INDEX, **profile
            ) as dst,
        ):
            dst.write(out, 1)
        counts = np.bincount(out[labelled].ravel(), minlength=1)
        extra["class"] = int(np.argmax(counts))
        return extra

    def finish(self) -> None:
        if self.labellers:
            for labeller in self.labellers:
                labeller.close()
        if not self.records:
            o = self.options
            raise InputError(
                f"no chips written: {self.result.skipped_invalid} chip(s) had less than "
                f"{o.min_valid:.0%} valid pixels and {self.result.skipped_unlabelled} less than "
                f"{o.min_labelled:.0%} labelled; lower --min-valid/--min-labelled or check nodata"
            )
        stats = self.stats if self.stats.count.sum() else self.fallback_stats
        write_stats(self.staging / "stats.json", stats)
        meta = {
            "format": CHIPS_FORMAT,
            "sensor": self.bands.sensor,
            "bands": self.bands.to_dicts(),
            "gsd": self.bands.gsd,
            "size": self.options.size,
            "stride": self.options.stride,
            "task": None
            if self.labellers is None
            else ("regression" if self.options.regression else "classes"),
            "classes": self._classes(),
            "class_ids_present": sorted(self.class_ids),
            "ignore_index": IGNORE_INDEX,
            "split": {
                "fractions": list(self.options.fractions),
                "block": self.options.block,
                "buffer": self.options.buffer,
                "seed": self.options.seed,
            },
            "counts": dict(self.result.written),
            "skipped": {
                "invalid": self.result.skipped_invalid,
                "unlabelled": self.result.skipped_unlabelled,
                "buffer": self.result.buffer,
            },
            "thresholds": {
                "min_valid": self.options.min_valid,
                "min_labelled": self.options.min_labelled,
            },
            "sources": [str(p) for p in self.paths],
            "chips": self.records,
        }
        with _writing(self.staging / "chips.json", "the chip list"):
            (self.staging / "chips.json").write_text(json.dumps(meta, indent=1) + "\n")
        _write_index(self.staging / "index.gpkg", self.records, self.bands.sensor)

    def _classes(self) -> list[dict]:
        if self.labellers is None or self.options.regression:
            return []
        if self.options.classes:
            return [dict(c) for c in self.options.classes]
        return [
            {"id": i, "name": f"class_{i}", "color": [128, 128, 128]}
            for i in sorted(self.class_ids)
        ]


def _write_index(path: Path, records: list[dict], sensor: str) -> None:
    """Chip footprints as a GeoPackage (in the sources' CRS, or EPSG:4326 if they differ)."""
    import geopandas as gpd
    from shapely.geometry import box

    crs_set = {r["crs"] for r in records}
    frames = []
    for crs in sorted(crs_set, key=str):
        rows = [r for r in records if r["crs"] == crs]
        frame = gpd.GeoDataFrame(
            {
                "source": [r["source"] for r in rows],
                "sensor": sensor,
                "split": [r["split"] for r in rows],
                "image": [r["image"] for r in rows],
                "label": [r.get("label", "") for r in rows],
                "valid_fraction": [r["valid_fraction"] for r in rows],
                "labelled_fraction": [r.get("labelled_fraction", float("nan")) for r in rows],
            },
            geometry=[box(*r["bounds"]) for r in rows],
            crs=crs,
        )
        frames.append(frame if len(crs_set) == 1 else frame.to_crs("EPSG:4326"))
    import pandas as pd

    index = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
    try:
        index.to_file(path, layer="chips", driver="GPKG", dataset_options=GPKG_OPTIONS)
    except GDAL_ERRORS as exc:
        raise OutputError(f"{path}: cannot write chip index ({exc})") from exc
