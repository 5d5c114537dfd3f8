"""What a ``predict``/``embed`` run is told and what it reports: options, plans, results.

``MapOptions`` owns the run's defaults (the CLI's option defaults are read from here). The
window/overlap/batch defaults were chosen from ``bench/pipeline.py`` on a 2-core CPU with the
shipped tiny model (see docs/benchmarks.md): 512-pixel windows keep the per-window overhead
low, and a 64-pixel overlap (four patches) hides window seams under the cosine ramp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "landcover-tiny"
DEFAULT_WINDOW = 512
DEFAULT_OVERLAP = 64
DEFAULT_BATCH_SIZE = 2
#: Batches the reader thread may run ahead of the devices.
PREFETCH = 2
#: Finished row blocks that may queue for the writer thread.
WRITE_QUEUE = 4
#: The model tasks ``gfm predict`` maps (a classification head has no map).
PREDICT_TASKS = ("segmentation", "regression")


@dataclass(frozen=True)
class MapOptions:
    """How to cut, run and write one raster; the CLI builds it from its options."""

    window: int = DEFAULT_WINDOW
    overlap: int = DEFAULT_OVERLAP
    batch_size: int = DEFAULT_BATCH_SIZE
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
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileResult:
    """What happened to one input: ``status`` is ``written``, ``skipped`` or ``failed``."""

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
