"""What a ``predict``/``embed`` run is told and what it reports: options, plans, results.

``MapOptions`` owns the run's defaults (the CLI's option defaults are read from here). The
window, overlap and batch size left unset are chosen for the model by :func:`for_model`: a model
maps best in windows the size of the chips it was trained on (a ViT that only ever saw 4 x 4
patch grids is another model on a 32 x 32 grid: on the seventh session's candidates 64-pixel
windows kept 0.77 of a simulated town's built-up where 512-pixel ones kept 0.10), so a contract
that names its ``window`` gets it, else 512 pixels, which keep the per-window overhead low on
a 2-core CPU (``bench/pipeline.py``, docs/benchmarks.md). The overlap is a quarter of the window
up to 64 pixels, enough to hide seams under the cosine ramp. Small windows are batched by as many as
two 512-pixel windows hold, at most 32: 64-pixel windows in batches of 2 ran 1.8x slower than
512-pixel ones, in batches of 32 as fast (the overlap aside: 16 pixels of it on a 64-pixel window
compute each pixel 1.78 times, 64 on a 512-pixel window 1.31 times).

A contract may also name larger windows for coarser rasters (``window_by_gsd``): the raster's
GSD is known only once it is open, so those choices ride along in
``ResolvedOptions.coarse`` and the engine applies them per file (:meth:`ResolvedOptions.at_gsd`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from gfmcli.contract import ModelContract

DEFAULT_MODEL = "landcover-tiny"
DEFAULT_WINDOW = 512
DEFAULT_OVERLAP = 64
DEFAULT_BATCH_SIZE = 2
#: The most windows :func:`for_model` batches into one model call on its own.
MAX_DEFAULT_BATCH = 32
#: Batches the reader thread may run ahead of the devices.
PREFETCH = 2
#: Finished row blocks that may queue for the writer thread.
WRITE_QUEUE = 4
#: The model tasks ``gfm predict`` maps (a classification head has no map).
PREDICT_TASKS = ("segmentation", "regression")


@dataclass(frozen=True)
class MapOptions:
    """How to cut, run and write one raster; the CLI builds it from its options.

    ``window``, ``overlap`` and ``batch_size`` left as None are chosen for the model
    (:func:`for_model`) once it is loaded.
    """

    window: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    precision: str = "auto"
    sensor: str | None = None
    bands: tuple[str, ...] | None = None
    scale: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None
    gsd: float | None = None
    order_check: bool = True
    probabilities: bool = False
    embedding_precision: str = "float32"
    pool: str = "mean"
    creation_options: Mapping[str, str] = field(default_factory=dict)


class WindowStep(NamedTuple):
    """The window, overlap and batch size chosen for rasters of ``from_gsd_m`` and coarser."""

    from_gsd_m: float
    window: int
    overlap: int
    batch_size: int


@dataclass(frozen=True)
class ResolvedOptions(MapOptions):
    """``MapOptions`` with the window, overlap and batch size chosen: what the engine runs.

    ``coarse`` holds the choices for the contract's ``window_by_gsd`` steps when the run gave
    no window: the GSD of a raster is known only once it is open, so :meth:`at_gsd` applies
    them file by file.
    """

    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    batch_size: int = DEFAULT_BATCH_SIZE
    coarse: tuple[WindowStep, ...] = ()

    @property
    def largest_window(self) -> int:
        """The largest window any raster of the run can map in (steps ascend)."""
        return self.coarse[-1].window if self.coarse else self.window

    def at_gsd(self, gsd_m: float) -> ResolvedOptions:
        """These options for a raster of ``gsd_m`` metres per pixel. The steps are dropped, so
        the result describes one raster's run and applying it again changes nothing."""
        chosen = [step for step in self.coarse if gsd_m >= step.from_gsd_m]
        if not chosen:
            return dataclasses.replace(self, coarse=())
        step = chosen[-1]
        return dataclasses.replace(
            self, window=step.window, overlap=step.overlap, batch_size=step.batch_size, coarse=()
        )


def for_model(
    options: MapOptions, contract: ModelContract, kind: str = "predict"
) -> ResolvedOptions:
    """``options`` with what was left unset chosen for ``contract``'s model (see the module
    docstring); values that were given are kept as they are, so this can be applied twice.
    For ``kind`` ``embed`` the overlap is whole patches (embeddings are blended on the patch
    grid), so a window that is not a multiple of four patches still gets a valid one. Without
    a given window, the contract's ``window_by_gsd`` steps are resolved the same way into
    ``coarse`` (:meth:`ResolvedOptions.at_gsd`)."""
    if isinstance(options, ResolvedOptions):
        return options

    def choose(window: int) -> tuple[int, int, int]:
        overlap = min(DEFAULT_OVERLAP, window // 4)
        if kind == "embed":
            overlap -= overlap % contract.patch_size
        overlap = options.overlap if options.overlap is not None else overlap
        batch = options.batch_size or min(
            MAX_DEFAULT_BATCH,
            max(DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE * DEFAULT_WINDOW**2 // window**2),
        )
        return window, overlap, batch

    window, overlap, batch = choose(options.window or contract.window or DEFAULT_WINDOW)
    coarse = (
        ()
        if options.window
        else tuple(WindowStep(gsd, *choose(size)) for gsd, size in contract.window_by_gsd)
    )
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(MapOptions)}
    return ResolvedOptions(
        **{**fields, "window": window, "overlap": overlap, "batch_size": batch, "coarse": coarse}
    )


@dataclass(frozen=True)
class FilePlan:
    """What a run will do with one input (also what ``--dry-run`` prints)."""

    input: str
    output: Path
    fmt: str
    height: int
    width: int
    bands: tuple[str, ...]
    gsd_m: float
    windows: int
    grid: str
    peak_memory_bytes: int
    window: int
    overlap: int
    batch_size: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileResult:
    """What happened to one input: ``status`` is ``written``, ``skipped`` or ``failed``.

    ``outputs`` are the files it has (none when it failed); ``target`` is the main output it was
    to get, also when it failed, so a failure's report can say which map is missing.
    """

    input: str
    outputs: tuple[Path, ...]
    status: str
    message: str = ""
    windows: int = 0
    empty_windows: int = 0
    pixels: int = 0
    seconds: float = 0.0
    exit_code: int = 0
    warnings: tuple[str, ...] = ()
    target: Path | None = None
