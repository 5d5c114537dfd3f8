"""How ``gfm tile`` writes one chip folder: chips, label chips, statistics, chips.json, index.

``ChipWriter`` reads each chip window of a source, keeps or skips it (``min_valid``,
``min_labelled``), writes it in physical units (float32, NaN = nodata) with its label, and at the
end writes the statistics, the folder's description (``chips.json``) and the chips' footprints
(``index.gpkg``). ``train/chips.py`` plans the chips and swaps the finished folder into place.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from gfmcli.errors import InputError, OutputError, first_line
from gfmcli.io.reader import internal_mask_band
from gfmcli.io.vector import GPKG_OPTIONS
from gfmcli.io.writer import GDAL_ERRORS
from gfmcli.train.labels import IGNORE_INDEX
from gfmcli.train.split import GridChip
from gfmcli.train.stats import BandStatistics, write_stats

CHIPS_FORMAT = 1


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


@contextlib.contextmanager
def writing(path: Path, what: str) -> Iterator[None]:
    """Turn a failed write into one OutputError naming the file (a full disk above all)."""
    try:
        yield
    except GDAL_ERRORS as exc:
        reason = getattr(exc, "strerror", None) or first_line(exc)
        if getattr(exc, "errno", None) == errno.ENOSPC or "no space" in str(exc).lower():
            reason = "no space left on the device; free some space or choose another -o"
        raise OutputError(f"{path}: cannot write {what} ({reason})") from exc


class ChipWriter:
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
        self.mask_bands = [  # internal mask or alpha band per source, as predict reads them
            internal_mask_band(src, list(chip_bands.indexes) or list(range(1, src.count + 1)))
            for src in sources
        ]

    def add(self, chip: GridChip, split: str) -> None:
        size, src = self.options.size, self.sources[chip.source]
        height = min(size, src.height - chip.row)
        width = min(size, src.width - chip.col)
        window = Window(chip.col, chip.row, width, height)
        inside = height * width
        image = np.full((len(self.bands.names), size, size), np.nan, np.float32)
        mask_band = self.mask_bands[chip.source]
        try:
            block = src.read(window=window)
            mask = None if mask_band is None else src.read_masks(mask_band, window=window)
        except GDAL_ERRORS as exc:
            raise InputError(
                f"{self.paths[chip.source]}: cannot read the block at row {chip.row}, column "
                f"{chip.col} ({first_line(exc)}); the file is corrupt: copy "
                "or download it again"
            ) from exc
        image[:, :height, :width] = self.bands.to_physical(block)
        if mask is not None:
            image[:, :height, :width][:, mask == 0] = np.nan
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
            writing(self.staging / image_rel, "the chip"),
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
                writing(self.staging / rel, "the label chip"),
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
            writing(self.staging / rel, "the label chip"),
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
        with writing(self.staging / "chips.json", "the chip list"):
            (self.staging / "chips.json").write_text(json.dumps(meta, indent=1) + "\n")
        write_index(self.staging / "index.gpkg", self.records, self.bands.sensor)

    def _classes(self) -> list[dict]:
        if self.labellers is None or self.options.regression:
            return []
        if self.options.classes:
            return [dict(c) for c in self.options.classes]
        return [
            {"id": i, "name": f"class_{i}", "color": [128, 128, 128]}
            for i in sorted(self.class_ids)
        ]


def write_index(path: Path, records: list[dict], sensor: str) -> None:
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
