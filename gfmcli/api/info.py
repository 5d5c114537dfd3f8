"""What a checkpoint promises and what gfm would make of a raster: ``gfm info`` and ``gfm models``.

Everything here is read from the files themselves (the checkpoint's contract, the raster's
header and band metadata), never from a list kept in the code, so the shipped weights can be
retrained or replaced and these reports follow. The library returns plain dataclasses with a
``to_dict()`` (JSON-ready); the CLI formats them.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gfmcli.api.vector_info import (
    VECTOR_SUFFIXES,
    VectorOutputSummary,
    describe_vector_output,
    parse_classes,
    parse_settings,
    vector_tags,
)
from gfmcli.contract import ModelContract, contract_hash
from gfmcli.errors import InputError, ModelError

# torch.save writes a zip archive (or, in the legacy format, a pickle stream).
_TORCH_MAGICS = (b"PK\x03\x04", b"\x80")


@dataclass(frozen=True)
class CheckpointSummary:
    """A checkpoint's contract plus its size: what ``gfm info MODEL`` and ``gfm models`` show."""

    name: str
    path: str
    contract: ModelContract
    file_bytes: int
    parameters: int
    sha256: str

    @property
    def encoder(self) -> dict[str, Any]:
        """The encoder's width, depth and heads from the model config (what "tiny" means)."""
        overrides = self.contract.model_config.get("encoder", {}).get("overrides", {})
        return {k: overrides.get(k) for k in ("embed_dim", "depth", "num_heads", "patch_size")}

    def to_dict(self) -> dict[str, Any]:
        c = self.contract
        return {
            "kind": "checkpoint",
            "name": self.name,
            "path": self.path,
            "task": c.task,
            "architecture": c.model_name,
            "encoder": self.encoder,
            "sensor": c.sensor,
            "gsd_m": c.gsd,
            "patch_size": c.patch_size,
            "window": c.window,
            "window_by_gsd": [list(step) for step in c.window_by_gsd],
            "bands": [asdict(b) for b in c.bands],
            "classes": [{"id": k.id, "name": k.name, "color": list(k.color)} for k in c.classes],
            "parameters": self.parameters,
            "file_bytes": self.file_bytes,
            "sha256": self.sha256,
            "contract_hash": contract_hash(c),
            "provenance": c.provenance,
        }


def is_checkpoint_file(path: str | Path) -> bool:
    """True for a file that starts like a torch checkpoint (a zip or pickle stream)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head.startswith(_TORCH_MAGICS)


def describe_checkpoint(
    spec: str | Path, weights_dir: str | Path | None = None
) -> CheckpointSummary:
    """Read a checkpoint (a path or a shipped name) without building its model."""
    import torch

    from gfmcli.model.checkpoint import read_checkpoint, resolve_model_path

    path = resolve_model_path(spec, weights_dir)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint; check the path or run `gfm models`")
    data = read_checkpoint(path)
    parameters = sum(
        int(t.numel()) for t in data.state_dict.values() if isinstance(t, torch.Tensor)
    )
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return CheckpointSummary(
        name=path.stem,
        path=str(path),
        contract=data.contract,
        file_bytes=path.stat().st_size,
        parameters=parameters,
        sha256=digest.hexdigest(),
    )


def shipped_models(weights_dir: str | Path | None = None) -> list[CheckpointSummary]:
    """Every checkpoint in the shipped weights folder, by name."""
    from gfmcli.model.checkpoint import default_weights_dir, list_weights

    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    if folder is None:
        return []
    return [describe_checkpoint(folder / f"{name}.pt") for name in list_weights(folder)]


@dataclass(frozen=True)
class RasterHeader:
    """What the header of a raster says, for every raster ``gfm info`` describes."""

    path: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    crs: str


@dataclass(frozen=True)
class RasterFile(RasterHeader):
    """A raster's header alone: what ``gfm info`` shows of a file whose bands or values it
    cannot read for the model, so the user sees what the file holds beside the fix."""

    gsd_m: float | None
    descriptions: tuple[str | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_raster_file(path: str) -> RasterFile:
    """The header of ``path`` (size, bands, dtypes, CRS, GSD in metres or None without a grid,
    band descriptions); InputError as ``predict`` would give if it cannot be opened."""
    from gfmcli.io.reader import open_raster

    with open_raster(path) as src:
        return RasterFile(
            path=path,
            width=src.width,
            height=src.height,
            count=src.count,
            dtypes=src.dtypes,
            crs=src.crs.to_string() if src.crs else "",
            gsd_m=float(src.gsd_m) if src.georeferenced else None,
            descriptions=src.descriptions,
        )


@dataclass(frozen=True)
class RasterSummary(RasterHeader):
    """What a run with ``model`` would do with one raster (nothing is written)."""

    gsd_m: float
    gsd_xy_m: tuple[float, float]
    sensor: str
    cross_sensor: bool
    bands: tuple[dict[str, Any], ...]
    model: str
    kind: str
    window: int
    overlap: int
    windows: int
    grid: str
    peak_memory_bytes: int
    model_seconds: float | None
    device: str
    warnings: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # a run's -v lines (BandMapping.details)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = "raster"
        data["command"] = self.kind
        return data


def describe_raster(
    path: str,
    contract: ModelContract,
    options: Any,
    *,
    model_name: str,
    timing: Any | None = None,
) -> RasterSummary:
    """Band identity, scaling, GSD, window plan and cost estimates of ``path`` for ``contract``.

    ``options`` is a ``MapOptions`` (window, overlap, batch size, ``--sensor``/``--bands``);
    unset window, overlap and batch size are chosen for ``contract`` as a run would.
    ``timing`` (a :class:`ModelTimer`) measures the model on one batch of this band count and
    window to estimate the model time of the whole raster; None skips it. The plan, the bands
    and their scaling (after the value checks) come from the engine's own planning
    (``open_plan``), so the window count is the run's. Raises the same
    InputError/BandContractError a run would, before any output exists.
    """
    from gfmcli.engine.checks import check_run_options
    from gfmcli.engine.options import PREDICT_TASKS, for_model
    from gfmcli.engine.runner import open_plan

    kind = "predict" if contract.task in PREDICT_TASKS else "embed"
    options = for_model(options, contract, kind)
    check_run_options(options, contract, kind)  # refuse what a run would refuse
    with open_plan(path, Path("info.tif"), "tif", contract, options, kind) as (plan, src, mapping):
        bands = tuple(
            {
                "index": b.index,
                "name": b.name,
                "description": src.descriptions[b.index - 1],
                "wavelength_nm": b.wavelength_nm,
                "modality": b.modality,
                "scale": b.scale,
                "offset": b.offset,
                "nodata": b.nodata,
                "mean": b.mean,
                "std": b.std,
            }
            for b in mapping.bands
        )
        crs = src.crs.to_string() if src.crs else ""
        gsd_xy = (float(src.gsd_x_m), float(src.gsd_y_m))
        dtypes = src.dtypes
        count = src.count
    seconds = None
    device = ""
    if timing is not None:  # the window and batch the plan chose for this raster's GSD
        batch = min(plan.batch_size, plan.windows)
        per_batch = timing.seconds_per_batch(mapping, plan.window, kind, batch)
        batches = math.ceil(plan.windows / batch)
        seconds = per_batch * batches / max(timing.device_count, 1)
        device = timing.device_label
    return RasterSummary(
        path=path,
        width=plan.width,
        height=plan.height,
        count=count,
        dtypes=dtypes,
        crs=crs,
        gsd_m=float(mapping.gsd_m),
        gsd_xy_m=gsd_xy,
        sensor=mapping.sensor,
        cross_sensor=mapping.cross_sensor,
        bands=bands,
        model=model_name,
        kind=kind,
        window=plan.window,
        overlap=plan.overlap,
        windows=plan.windows,
        grid=plan.grid,
        peak_memory_bytes=plan.peak_memory_bytes,
        model_seconds=seconds,
        device=device,
        warnings=plan.warnings,
        notes=mapping.details,
    )


#: The most pixels :func:`describe_output` reads to estimate a class map's class shares.
SHARE_SAMPLE_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class OutputSummary(RasterHeader):
    """What a GeoTIFF that gfm wrote says of itself: ``gfm info MAP`` (nothing is run).

    ``class_shares`` (class name -> share of the valid pixels) come from a decimated read of
    at most ``SHARE_SAMPLE_PIXELS`` pixels (GDAL serves it from the map's overviews), so they
    are estimates whose cost does not grow with the map; empty for files other than class
    maps. ``settings`` is the ``GFM_SETTINGS`` tag resume compares (empty for older files).
    """

    gfm_version: str
    date: str
    made_by: str
    model: str
    settings: dict[str, Any]
    classes: tuple[dict[str, Any], ...]
    class_shares: dict[str, float]
    nodata_share: float | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "output"}


def is_gfm_output(path: str | Path) -> bool:
    """True for a file that carries gfm's provenance tag (``GFM_VERSION``): one of its maps,
    probability files or embeddings, GeoTIFF, GeoPackage or GeoParquet."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from gfmcli.io.writer import GDAL_ERRORS

    if Path(path).suffix.lower() in VECTOR_SUFFIXES:
        return "GFM_VERSION" in vector_tags(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as dataset:
                return "GFM_VERSION" in dataset.tags()
    except GDAL_ERRORS:
        return False


def describe_output(path: str) -> OutputSummary | VectorOutputSummary:
    """The provenance, settings and classes of a gfm output, and a class map's class shares
    (GeoPackages and GeoParquet files: :func:`~gfmcli.api.vector_info.describe_vector_output`)."""
    import warnings

    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning

    from gfmcli.io.writer import GDAL_ERRORS

    if Path(path).suffix.lower() in VECTOR_SUFFIXES:
        return describe_vector_output(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as dataset:
            tags = dataset.tags()
            classes = parse_classes(tags.get("GFM_CLASSES"))
            settings = parse_settings(tags.get("GFM_SETTINGS"))
            shares: dict[str, float] = {}
            nodata_share = None
            if classes and dataset.count == 1 and dataset.dtypes[0] == "uint8":
                scale = max(1.0, math.sqrt(dataset.width * dataset.height / SHARE_SAMPLE_PIXELS))
                shape = (
                    max(1, round(dataset.height / scale)),
                    max(1, round(dataset.width / scale)),
                )
                try:
                    sample = dataset.read(1, out_shape=shape, resampling=Resampling.nearest)
                except GDAL_ERRORS as exc:
                    raise InputError(
                        f"{path}: the map's data does not read ({exc}); the file is truncated "
                        "or corrupt: map its input again with --overwrite"
                    ) from None
                valid = sample != dataset.nodata if dataset.nodata is not None else sample >= 0
                counts = np.bincount(sample[valid].ravel(), minlength=256)
                total = max(int(valid.sum()), 1)
                shares = {c["name"]: float(counts[c["id"]] / total) for c in classes}
                nodata_share = float(1 - valid.mean())
            return OutputSummary(
                path=path,
                width=dataset.width,
                height=dataset.height,
                count=dataset.count,
                dtypes=tuple(dataset.dtypes),
                crs=dataset.crs.to_string() if dataset.crs else "",
                gfm_version=tags.get("GFM_VERSION", ""),
                date=tags.get("GFM_DATE", ""),
                made_by=tags.get("GFM_COMMAND", ""),
                model=tags.get("GFM_MODEL", ""),
                settings=settings,
                classes=classes,
                class_shares=shares,
                nodata_share=nodata_share,
            )


class ModelTimer:
    """Times the model on one batch of blank windows per (band count, window) and remembers it.

    The estimate is model time only (the first call warms up and is not counted): reading,
    blending and writing overlap with it in a run (docs/benchmarks.md measures how closely).
    """

    def __init__(self, model: Any, device: str, precision: str) -> None:
        from gfmcli.runtime.devices import resolve_devices

        self._model = model
        self._devices = resolve_devices(device)
        self._precision = precision
        self._cache: dict[tuple[Any, ...], float] = {}
        self.device_count = len(self._devices)
        self.device_label = ",".join(str(d) for d in self._devices)

    def seconds_per_batch(self, mapping: Any, window: int, kind: str, batch: int) -> float:
        from gfmcli.engine.inference import DevicePool
        from gfmcli.model.bands import Bands

        key = (tuple(mapping.wavelengths), tuple(mapping.modalities), window, kind, batch)
        if key not in self._cache:
            bands = Bands.of(mapping.wavelengths, mapping.modalities, mapping.gsd_m)
            mode = "embeddings" if kind == "embed" else "probabilities"
            if kind != "embed" and self._model.task == "regression":
                mode = "values"
            data = np.zeros((batch, len(mapping.bands), window, window), np.float32)
            with DevicePool(self._model, self._devices[:1], self._precision) as pool:
                times = []
                for _ in range(2):
                    started = time.perf_counter()
                    list(pool.map_ordered([data], lambda d: d, bands, mode))
                    times.append(time.perf_counter() - started)
            self._cache[key] = times[-1]
        return self._cache[key]


def classify_paths(paths: Sequence[str], weights_dir: str | Path | None = None) -> list[str]:
    """``"checkpoint"``, ``"stac"``, ``"output"`` or ``"raster"`` for each path: a file that
    starts like a torch file, a ``.pt`` name or a shipped model's name is a checkpoint; a
    ``.json`` file or STAC API item URL a STAC item; a local raster with gfm's provenance tag
    one of gfm's outputs (:func:`describe_output`); anything else goes to GDAL."""
    from gfmcli.io.stac import is_stac_path
    from gfmcli.model.checkpoint import SUFFIX, default_weights_dir, list_weights

    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    shipped = set(list_weights(folder)) if folder is not None else set()
    kinds = []
    for item in paths:
        path = Path(item)
        if is_stac_path(item) and not is_checkpoint_file(path):
            kinds.append("stac")
        elif path.is_file() and is_checkpoint_file(path):
            kinds.append("checkpoint")
        elif path.is_file():
            kinds.append("output" if is_gfm_output(path) else "raster")
        elif path.suffix == SUFFIX or item in shipped:
            kinds.append("checkpoint")
        else:
            kinds.append("raster")
    return kinds


def describe_stac(
    location: str,
    contract: ModelContract,
    options: Any,
    *,
    model_name: str,
    timing: Any | None = None,
) -> list[RasterSummary]:
    """:func:`describe_raster` for every item of a STAC Item or ItemCollection, each read
    through its in-memory VRT with the sensor the item names (unless ``--sensor``/``--bands``)."""
    import dataclasses

    from gfmcli.io.stac import open_inputs

    items, problems = open_inputs([location])
    try:
        if problems:
            raise InputError(problems[0][1])
        summaries = []
        for item in items:
            own = options
            if item.sensor and not options.sensor and not options.bands:
                own = dataclasses.replace(options, sensor=item.sensor)
            summary = describe_raster(
                item.path, contract, own, model_name=model_name, timing=timing
            )
            label = location if len(items) == 1 else f"{location}#{item.item_id}"
            summaries.append(dataclasses.replace(summary, path=label))
        return summaries
    finally:
        for item in items:
            item.close()
