"""The rasters gfm writes, on the staged COG writer of io/writer.py: class maps (uint8, colour
table, class names), probabilities (uint8 percent, one band per class) and embeddings
(float32 on the patch grid), with the provenance tags every output carries.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from gfmcli._version import __version__
from gfmcli.contract import ClassInfo, ModelContract
from gfmcli.errors import OutputError
from gfmcli.io.sidecars import aux_path, aux_xml, sidecar_paths
from gfmcli.io.styles import class_map_style, probability_style, style_path
from gfmcli.io.writer import (
    CLASS_NODATA,
    GDAL_ERRORS,
    PROBABILITY_NODATA,
    RasterGrid,
    StagedRasterWriter,
    tag_strings,
)


def provenance_tags(
    contract: ModelContract, command_line: Sequence[str], extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The standard provenance tags: how, when and with what model an output was made."""
    tags = {
        "GFM_VERSION": __version__,
        "GFM_DATE": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "GFM_COMMAND": shlex.join(command_line),
        "GFM_MODEL": contract.model_name,
        "GFM_CONTRACT": contract.to_json(),
    }
    return {**tags, **tag_strings(extra or {})}


def _check_class_ids(path: str | Path, classes: Sequence[ClassInfo]) -> None:
    if not classes:
        raise OutputError(f"{path}: the model has no classes, so it cannot write a class map")
    bad = [c.id for c in classes if not 0 <= c.id < CLASS_NODATA]
    if bad:
        raise OutputError(f"{path}: class ids {bad} do not fit a uint8 map (0..254)")


def category_names(classes: Sequence[ClassInfo]) -> list[str]:
    """A class map's category names by class id ("" for ids no class has): its ``.aux.xml``."""
    names = [""] * (max(c.id for c in classes) + 1)
    for c in classes:
        names[c.id] = c.name
    return names


def sidecar_texts(raster: str | Path, kind: str, classes: Sequence[ClassInfo]) -> dict[Path, str]:
    """What gfm writes in each sidecar of a ``class`` map or a ``probabilities`` file made with
    ``classes`` (the writers above): a file there with exactly this text is what a run would
    write again, so replacing it loses nothing."""
    if kind == "class" and classes:
        return {
            aux_path(raster): aux_xml(category_names(classes)),
            style_path(raster): class_map_style(classes, CLASS_NODATA),
        }
    if kind == "probabilities" and classes:
        return {style_path(raster): probability_style(classes)}
    return {}


def class_map_writer(
    path: str | Path,
    grid: RasterGrid,
    classes: Sequence[ClassInfo],
    *,
    tags: Mapping[str, Any] | None = None,
    creation_options: Mapping[str, str] | None = None,
) -> StagedRasterWriter:
    """uint8 class ids, nodata 255, colour table and names from ``classes``, mode overviews."""
    _check_class_ids(path, classes)
    colormap = {c.id: (*c.color, 255) for c in classes}
    colormap[CLASS_NODATA] = (0, 0, 0, 0)
    classes_json = [{"id": c.id, "name": c.name, "color": list(c.color)} for c in classes]
    return StagedRasterWriter(
        path,
        grid,
        count=1,
        dtype="uint8",
        nodata=CLASS_NODATA,
        overview_resampling="mode",
        band_descriptions=["class"],
        band_tags=[{f"CLASS_{c.id}": c.name for c in classes}],
        colormap=colormap,
        category_names=category_names(classes),
        style=class_map_style(classes, CLASS_NODATA),
        tags={**(tags or {}), "GFM_CLASSES": classes_json},
        creation_options=creation_options,
    )


def probabilities_path(map_path: str | Path) -> Path:
    """Where ``--probabilities`` writes beside a class map: ``map.tif`` -> ``map.probs.tif``."""
    map_path = Path(map_path)
    return map_path.with_name(f"{map_path.stem}.probs{map_path.suffix}")


def quantise_probabilities(probabilities: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Probabilities in 0..1 (``(K, h, w)``) to uint8 percent, 255 where ``valid`` is False."""
    out = np.rint(np.clip(probabilities, 0.0, 1.0) * 100.0).astype(np.uint8)
    out[:, ~valid] = PROBABILITY_NODATA
    return out


def probability_writer(
    path: str | Path,
    grid: RasterGrid,
    classes: Sequence[ClassInfo],
    *,
    tags: Mapping[str, Any] | None = None,
    creation_options: Mapping[str, str] | None = None,
) -> StagedRasterWriter:
    """One uint8 band per class in percent (scale 0.01), nodata 255, average overviews."""
    _check_class_ids(path, classes)
    return StagedRasterWriter(
        path,
        grid,
        count=len(classes),
        dtype="uint8",
        nodata=PROBABILITY_NODATA,
        overview_resampling="average",
        predictor=True,
        band_descriptions=[f"probability of {c.name} (%)" for c in classes],
        style=probability_style(classes),
        scales=[0.01] * len(classes),
        tags=tags,
        creation_options=creation_options,
    )


def embedding_writer(
    path: str | Path,
    grid: RasterGrid,
    *,
    patch_size: int,
    dim: int,
    precision: str = "float32",
    tags: Mapping[str, Any] | None = None,
    creation_options: Mapping[str, str] | None = None,
) -> StagedRasterWriter:
    """Embeddings on the patch grid of ``grid`` (one pixel per ``patch_size`` patch).

    ``precision="float16"`` rounds the values to half floats, stored as float32 (readers get
    float32 values, exactly half floats), for about 0.6 of the bytes. Nodata is NaN; overviews
    average.
    """
    if precision not in ("float16", "float32"):
        raise OutputError(f"{path}: embedding precision must be float16 or float32")
    return StagedRasterWriter(
        path,
        grid.coarsened(patch_size),
        count=dim,
        dtype="float32",
        nodata=float("nan"),
        overview_resampling="average",
        compress="ZSTD",
        predictor=True,
        half_precision=precision == "float16",
        band_descriptions=[f"embedding {i}" for i in range(dim)],
        tags={**(tags or {}), "GFM_PATCH_SIZE": str(patch_size)},
        creation_options=creation_options,
    )


def missing_sidecars(raster: str | Path, kind: str) -> list[Path]:
    """Sidecars of an existing gfm raster that are not there (a run killed between renames).

    Only files gfm made (``GFM_VERSION`` tag) count: a raster gfm did not write is never
    redone, so it is never overwritten.
    """
    missing = [p for p in sidecar_paths(raster, kind) if not p.is_file()]
    if not missing or not Path(raster).is_file():
        return []
    try:
        with rasterio.open(raster) as src:
            made_by_gfm = "GFM_VERSION" in src.tags()
    except GDAL_ERRORS:
        return []
    return missing if made_by_gfm else []
