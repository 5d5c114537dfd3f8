"""``predict`` and ``embed`` for one raster: the only place that knows every stage.

Data flow (threads in brackets)::

    [reader]  open -> band contract -> windows in plan order -> WindowBatch   (engine.batching)
    [devices] normalised batches -> probabilities / embeddings, in order     (engine.inference)
    [main]    blend into the bounded StripMosaic, pop finished row blocks     (engine.mosaic)
    [writer]  row blocks -> staged COG / GeoPackage -> validate -> rename     (engine.sinks)

Memory is bounded by the window size, the batch size and the raster *width*, never its height:
the reader runs at most ``PREFETCH`` batches ahead, the devices hold two batches each, the
mosaic holds one window of rows and the writer queue ``WRITE_QUEUE`` finished blocks.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from gfmcli.contract import ModelContract
from gfmcli.engine.assemble import Assembler, MosaicAssembler, VectorAssembler, batch_data
from gfmcli.engine.batching import background, iter_batches
from gfmcli.engine.checks import check_outputs, check_overlap, task_mode
from gfmcli.engine.inference import DevicePool
from gfmcli.engine.memory import estimate_peak_memory
from gfmcli.engine.options import (
    PREFETCH,
    WRITE_QUEUE,
    FilePlan,
    FileResult,
    MapOptions,
    ResolvedOptions,
)
from gfmcli.engine.settings import SETTINGS_TAG, output_settings
from gfmcli.engine.sinks import Sink, abort_quietly, make_sink
from gfmcli.engine.tiling import Stripe, WindowPlan, plan_stripes, plan_windows
from gfmcli.errors import InputError, ModelError
from gfmcli.io.bands import BandMapping, resolve_bands
from gfmcli.io.products import provenance_tags
from gfmcli.io.reader import (
    Probe,
    RasterSource,
    open_raster,
    probe_raster,
    read_window,
)
from gfmcli.io.values import check_values
from gfmcli.io.writer import check_writable
from gfmcli.model.bands import Bands

ProgressFn = Callable[[int], None]
Plan = tuple[Stripe, WindowPlan]  # one vertical stripe of a raster and its windows

log = logging.getLogger(__name__)


def _check_grid(src: RasterSource, fmt: str) -> None:
    """A raster without georeferencing maps onto its bare pixel grid, which only a GeoTIFF
    can hold (polygons need coordinates)."""
    if not src.georeferenced and fmt != "tif":
        raise InputError(
            f"{src.path}: the raster has no georeferencing, so polygons would have no "
            "coordinates; write a GeoTIFF (-o NAME.tif), which keeps the input's pixel grid"
        )


def _open_checked(
    path: str, contract: ModelContract, options: MapOptions, *, scan: bool = True
) -> tuple[RasterSource, BandMapping, tuple[str, ...]]:
    """Open ``path``, map its bands and probe it once; returns the warnings to report.

    ``scan=False`` (dry runs) never reads the full resolution: a raster whose sample holds no
    valid pixel gets a warning instead of the all-nodata error a run would give after its scan.
    """
    src = open_raster(path)
    try:
        mapping = resolve_bands(
            src,
            contract,
            sensor=options.sensor,
            bands=list(options.bands) if options.bands else None,
            scale=options.scale,
            offset=options.offset,
            gsd=options.gsd,
        )
        probe = probe_raster(src, mapping, scan=scan)
        if probe.all_nodata:
            raise InputError(
                f"{path}: every pixel is nodata (checked at full resolution); nothing to map. "
                "Check the nodata value or the file"
            )
        mapping = check_values(src, mapping, probe, check_order=options.order_check)
    except BaseException:
        src.close()
        raise
    return src, mapping, _warnings(src, mapping, probe)


@contextmanager
def _opened(
    path: str,
    fmt: str,
    contract: ModelContract,
    options: ResolvedOptions,
    kind: str,
    *,
    scan: bool = True,
) -> Iterator[tuple[RasterSource, BandMapping, tuple[str, ...], ResolvedOptions, list[Plan]]]:
    """``path`` open and checked, with the options at the window of its GSD and its plans.

    The one sequence that a run (:func:`map_file`) and a dry run (:func:`open_plan`) share, so
    the window, overlap and plans a dry run reports are the ones a run uses. The raster closes
    when the block ends.
    """
    src, mapping, warnings = _open_checked(path, contract, options, scan=scan)
    with src:
        at_gsd = options.at_gsd(mapping.gsd_m)  # the window for this raster's GSD
        check_overlap(path, at_gsd, mapping.gsd_m)
        _check_grid(src, fmt)
        yield src, mapping, warnings, at_gsd, _plans(src, contract, at_gsd, kind)


def _plans(
    src: RasterSource, contract: ModelContract, options: ResolvedOptions, kind: str
) -> list[Plan]:
    """The window plans of a raster: on the patch grid for embeddings (one stripe: that grid is
    a patch size smaller per side), per vertical stripe on the pixel grid for maps."""
    patch = contract.patch_size
    if kind == "embed":
        if options.window % patch or options.overlap % patch:
            raise InputError(
                f"window {options.window} and overlap {options.overlap} must be multiples of the "
                f"patch size {patch} for embeddings (one output pixel per patch)"
            )
        width = math.ceil(src.width / patch)
        plan = plan_windows(
            math.ceil(src.height / patch),
            width,
            options.window // patch,
            options.overlap // patch,
        )
        return [(Stripe(0, width, 0, width), plan)]
    plan = plan_windows(src.height, src.width, options.window, options.overlap, multiple_of=patch)
    return plan_stripes(plan)


def _stripes(count: int) -> str:
    """The pixel grid's description: ``pixel, 1 stripe`` or ``pixel, 3 stripes``."""
    return f"pixel, {count} stripe{'' if count == 1 else 's'}"


def _window_count(plans: list[tuple[Stripe, WindowPlan]]) -> int:
    """The windows a run reads (and reports through ``on_windows``): every stripe's plan."""
    return sum(len(plan) for _, plan in plans)


def plan_file(
    path: str,
    output: Path,
    fmt: str,
    contract: ModelContract,
    options: ResolvedOptions,
    kind: str = "predict",
) -> FilePlan:
    """Open and check one input against the contract and plan its windows, without the model."""
    with open_plan(path, output, fmt, contract, options, kind) as (plan, _, _):
        return plan


@contextmanager
def open_plan(
    path: str,
    output: Path,
    fmt: str,
    contract: ModelContract,
    options: ResolvedOptions,
    kind: str = "predict",
) -> Iterator[tuple[FilePlan, RasterSource, BandMapping]]:
    """:func:`plan_file`'s plan with the raster still open and its checked band mapping, so
    ``gfm info`` reports the bands a run would use from the one opening that planned it."""
    check_outputs(kind, task_mode(kind, contract, path), fmt, options, output)
    with _opened(path, fmt, contract, options, kind, scan=False) as (
        src,
        mapping,
        warnings,
        options,
        plans,
    ):
        plan = max((plan for _, plan in plans), key=lambda plan: plan.width)  # widest stripe
        windows = _window_count(plans)
        yield (
            FilePlan(
                input=path,
                output=output,
                fmt=fmt,
                height=src.height,
                width=src.width,
                bands=tuple(mapping.names),
                gsd_m=mapping.gsd_m,
                windows=windows,
                grid="patch" if kind == "embed" else _stripes(len(plans)),
                peak_memory_bytes=estimate_peak_memory(
                    contract, plan, len(mapping.bands), options, kind, windows
                ),
                window=options.window,
                overlap=options.overlap,
                batch_size=options.batch_size,
                warnings=warnings,
            ),
            src,
            mapping,
        )


def map_file(
    path: str,
    output: Path,
    fmt: str,
    pool: DevicePool,
    contract: ModelContract,
    options: ResolvedOptions,
    *,
    kind: str = "predict",
    command_line: Sequence[str] = (),
    on_windows: ProgressFn | None = None,
    on_plan: Callable[[int], None] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    source: str | None = None,
) -> FileResult:
    """Map (or embed) one raster into ``output``; returns what was done.

    ``extra_tags`` are more provenance tags (a STAC item's links), added last. ``source`` is
    the input as the user named it when ``path`` is only GDAL's (a STAC item's in-memory VRT,
    named anew by every run): the output's ``GFM_SETTINGS`` record it, so a rerun resumes.

    Raises GfmError subclasses for bad inputs or outputs; on any exception no output file is
    left behind. ``on_plan(total_windows)`` and ``on_windows(n)`` report progress.
    """
    started = time.perf_counter()
    mode = task_mode(kind, contract, path)
    check_outputs(kind, mode, fmt, options, output)
    check_writable(output)
    with _opened(path, fmt, contract, options, kind) as (src, mapping, warnings, options, plans):
        windows = _window_count(plans)
        relation = "cross-sensor" if mapping.cross_sensor else "the model's bands"
        # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
        log.info(
            "%s: read as %s (%s: %s), GSD %.3g m; %d window(s) of %d px, overlap %d, batches of %d",
            path, mapping.sensor or "bands by wavelength", relation, ",".join(mapping.names),
            mapping.gsd_m, windows, options.window, options.overlap, options.batch_size,
        )  # fmt: skip
        for detail in mapping.details:
            log.info("%s", detail)
        if on_plan is not None:
            on_plan(windows)
        model = pool.model
        channels = model.embed_dim if kind == "embed" else _output_channels(contract, model)
        tags = provenance_tags(
            contract,
            command_line,
            {
                "GFM_INPUT": path,
                "GFM_BANDS": ",".join(mapping.names),
                "GFM_GSD_M": f"{mapping.gsd_m:.6g}",
                "GFM_WINDOW": str(options.window),
                "GFM_OVERLAP": str(options.overlap),
                "GFM_BLEND": "raised-cosine",
                SETTINGS_TAG: output_settings(
                    contract,
                    options,
                    kind,
                    source or path,
                    mapping.gsd_m,
                    mapping.sensor,
                    fmt=fmt,
                    scaled_as=(
                        tuple(b.scale for b in mapping.bands),
                        tuple(b.offset for b in mapping.bands),
                    ),
                ),
                **(extra_tags or {}),
            },
        )
        bands = Bands.of(mapping.wavelengths, mapping.modalities, mapping.gsd_m)
        sink: Sink | None = None
        try:
            sink = make_sink(kind, mode, output, fmt, src, channels, contract, options, tags)
            vectors = kind == "embed" and fmt in ("gpkg", "parquet")
            run_mode = "cls" if vectors and options.pool == "cls" else mode
            cell = contract.patch_size if kind == "embed" else 1
            empty = 0
            for stripe, plan in plans:
                assembler: Assembler = (
                    VectorAssembler() if vectors else MosaicAssembler(channels, plan, sink, stripe)
                )
                empty += _run(
                    src,
                    mapping,
                    plan,
                    pool,
                    bands,
                    run_mode,
                    assembler,
                    sink,
                    options.batch_size,
                    cell=cell,
                    col_off=stripe.col_off,
                    on_windows=on_windows,
                )
            outputs = sink.finalize()
        except BaseException:
            abort_quietly(sink)
            raise
    return FileResult(
        input=path,
        outputs=tuple(outputs),
        status="written",
        windows=windows,
        empty_windows=empty,
        pixels=src.height * src.width,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )


def _warnings(src: RasterSource, mapping: BandMapping, probe: Probe) -> tuple[str, ...]:
    """Everything odd but usable about an input: band mapping notes and value checks."""
    found = list(mapping.warnings)
    if probe.empty and not probe.scanned:
        found.append(
            f"{src.path}: no valid pixel in a sample of the raster; a run scans it at full "
            "resolution and stops if every pixel is nodata"
        )
    return tuple(dict.fromkeys(found))


def _output_channels(contract: ModelContract, model: Any) -> int:
    head = model.config.get("head") or {}
    count = int(head.get("num_outputs", contract.num_classes))
    if contract.task == "segmentation" and count != contract.num_classes:
        raise ModelError(
            f"model {contract.model_name!r}: the head has {count} outputs but the contract lists "
            f"{contract.num_classes} classes; the checkpoint is inconsistent, retrain or re-export"
        )
    return count


def _run(
    src: RasterSource,
    mapping: BandMapping,
    plan: WindowPlan,
    pool: DevicePool,
    bands: Bands,
    mode: str,
    assembler: Assembler,
    sink: Sink,
    batch_size: int,
    *,
    cell: int,
    col_off: int,
    on_windows: ProgressFn | None,
) -> int:
    """Stream ``plan`` (whose column 0 is raster column ``col_off``) through reader, devices,
    assembler and writer; returns the number of empty windows."""

    def read(window: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        row, col, height, width = window
        return read_window(src, (row, col + col_off, height, width), mapping)

    batches = background(iter_batches(plan, read, batch_size, cell=cell), maxsize=PREFETCH)
    writes: deque[Future[Any]] = deque()
    empty = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gfm-writer") as writer:
        try:
            for batch, output in pool.map_ordered(batches, batch_data, bands, mode):
                empty += sum(batch.empty)
                for payload in assembler.take(batch, output):
                    writes.append(writer.submit(sink.write, payload))
                while len(writes) > WRITE_QUEUE or (writes and writes[0].done()):
                    writes.popleft().result()
                if on_windows is not None:
                    on_windows(len(batch.tiles))
            for payload in assembler.finish():
                writes.append(writer.submit(sink.write, payload))
            while writes:
                writes.popleft().result()
        finally:
            batches.close()
            for future in writes:
                future.cancel()
    return empty
