"""Many inputs, one model: resume, keep-going, device pool and ranks for ``predict``/``embed``.

:func:`run_jobs` is the library entry point behind both commands. It loads the model once,
puts a replica on every device, and maps each input in turn; an input whose output already
exists is skipped (resume) unless ``overwrite``; a failing input either stops the run (the
error propagates) or, with ``keep_going``, is recorded and the next one starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import rasterio
from rasterio.errors import NotGeoreferencedWarning

from gfmcli.atomic import stale_partials
from gfmcli.contract import ModelContract
from gfmcli.engine import blend
from gfmcli.engine.inference import DevicePool
from gfmcli.engine.options import FilePlan, FileResult, MapOptions, ResolvedOptions, for_model
from gfmcli.engine.outputs import output_paths
from gfmcli.engine.resume import is_complete
from gfmcli.engine.runner import map_file, plan_file
from gfmcli.errors import GfmError, OutputError, unexpected_error
from gfmcli.io.output_lock import OutputLock
from gfmcli.io.paths import is_gdal_path
from gfmcli.io.writer import GDAL_ERRORS, check_writable, cog_validator
from gfmcli.model.tasks import GfmModel
from gfmcli.runtime.devices import resolve_devices
from gfmcli.runtime.distributed import ProcessGroup, RankInfo, device_spec_for_rank, shard

# GDAL's block cache defaults to 5% of RAM and fills up as a long run reads and writes blocks,
# which would make memory grow with the raster; 64 MiB holds a row of 512-px blocks of a
# 16k-wide 4-band input plus the staged output blocks, all a streaming run re-reads.
# In bytes: rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64, which takes bytes (a
# bare 64 gave GDAL a 64-byte cache, so every window decoded its blocks again), and refuses
# strings such as "64MB".
GDAL_CACHE_BYTES = 64 * 2**20


def gdal_env() -> rasterio.Env:
    """The GDAL settings every predict/embed run (and its dry run) reads and writes under."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)


log = logging.getLogger(__name__)


def _prepare() -> None:
    try:
        blend.warm_up()
        cog_validator()
    except Exception:  # the run's own first use raises it again, where it is reported
        log.debug("preparing the blend kernels and the COG check failed", exc_info=True)


def prepare_in_background() -> threading.Thread:
    """Start importing and setting up, on a thread, what a run needs only after its first
    windows: Numba and the blend kernels (:func:`~gfmcli.engine.blend.warm_up`, 0.6 s) and
    rio-cogeo's COG check (0.2 s), all Python that holds the GIL.

    Started before the devices and the first input's checks, which spend most of their time
    in GDAL and NumPy with the GIL released, it runs on the core they leave idle instead of
    before them or on the blend thread while the model threads run. A kernel or import used
    meanwhile waits for it (Numba's and the import system's locks); a failure is only logged
    (debug), since the run's own first use raises it again where it is handled.

    The caller joins the returned thread before it returns (:func:`run_jobs` does, in a
    ``finally``): a run can end before the thread does (an input that fails its checks, a
    conflict, under load even a whole small map), and a thread still inside an import or a
    Numba/LLVM compile while the interpreter shuts down is a known way to crash extension code
    at exit (the suspect of a segfault in issue #10). It is not a daemon either, so where no
    caller joins it the interpreter still waits for it at exit instead of cutting it off.
    """
    thread = threading.Thread(target=_prepare, name="gfm-prepare")
    thread.start()
    return thread


@dataclass(frozen=True)
class Job:
    """One input and the output it maps to (``fmt`` is ``tif``, ``gpkg`` or ``parquet``).

    ``name`` is what reports call the input when ``input`` is a path only GDAL needs to see
    (a STAC item's in-memory VRT); ``sensor`` is the input's own sensor when it is known
    without ``--sensor`` (from the item); ``tags`` are extra provenance tags of its outputs.
    """

    input: str
    output: Path
    fmt: str
    name: str | None = None
    sensor: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.input

    def options_for(self, options: ResolvedOptions) -> ResolvedOptions:
        """The run's options with this input's own sensor when ``--sensor`` was not given."""
        if self.sensor and not options.sensor and not options.bands:
            return dataclasses.replace(options, sensor=self.sensor)
        return options


class Progress(Protocol):
    """What the CLI shows while jobs run (tqdm bars); the library only calls these."""

    def file_started(self, job: Job, total_windows: int) -> None: ...
    def windows_done(self, count: int) -> None: ...
    def file_finished(self, result: FileResult) -> None: ...


class _Silent:
    def file_started(self, job: Job, total_windows: int) -> None:
        pass

    def windows_done(self, count: int) -> None:
        pass

    def file_finished(self, result: FileResult) -> None:
        pass


def plan_jobs(
    jobs: Sequence[Job],
    contract: ModelContract,
    options: MapOptions,
    *,
    kind: str,
    overwrite: bool,
) -> list[FilePlan | FileResult]:
    """``--dry-run``: check every input against the contract and plan it; no model call.

    Inputs that would be skipped come back as ``skipped`` results, bad inputs (and outputs that
    would replace an input) as ``failed``. Unset window, overlap and batch size are chosen for
    ``contract`` (:func:`~gfmcli.engine.options.for_model`).
    """
    options = for_model(options, contract, kind)
    conflicts = input_conflicts(jobs, options, kind)
    plans: list[FilePlan | FileResult] = []
    with gdal_env():
        for job in jobs:
            try:
                if job.input in conflicts:
                    raise conflicts[job.input]
                if _complete(job, options, kind, overwrite, contract):
                    plans.append(_skipped(job, options, kind))
                    continue
                plan = plan_file(
                    job.input, job.output, job.fmt, contract, job.options_for(options), kind
                )
                plans.append(dataclasses.replace(plan, input=job.label))
            except GfmError as exc:
                plans.append(_failed(job, exc))
    return plans


def run_jobs(
    jobs: Sequence[Job],
    model: GfmModel,
    contract: ModelContract,
    options: MapOptions,
    *,
    kind: str,
    device: str = "auto",
    overwrite: bool = False,
    keep_going: bool = False,
    ranks: RankInfo | None = None,
    command_line: Sequence[str] = (),
    progress: Progress | None = None,
) -> list[FileResult]:
    """Map every job (this rank's share of them under torchrun); results of all ranks in order.

    Before anything runs, every file a job would write is compared with every file the inputs
    read (:func:`input_conflicts`); a job that would replace one fails. Each job holds its
    output's :class:`~gfmcli.io.output_lock.OutputLock` while it runs, so a second run on the same
    output fails that job instead of writing it too.

    Without ``keep_going`` the first error propagates (outputs already written stay; the
    failing one leaves nothing behind). With it, failures are returned as ``failed`` results,
    an unexpected exception too (as one line that points at ``--debug``).

    It returns or raises only once the thread from :func:`prepare_in_background` has finished,
    so no import or compile is still running when a short run's process exits. Unset window,
    overlap and batch size are chosen for ``contract`` as in :func:`plan_jobs`.
    """
    options = for_model(options, contract, kind)
    ranks = ranks or RankInfo()
    progress = progress or _Silent()
    prepare = prepare_in_background()
    try:
        conflicts = input_conflicts(jobs, options, kind)
        if conflicts and not keep_going:
            raise next(iter(conflicts.values()))
        devices = resolve_devices(device_spec_for_rank(device, ranks))
        mine = shard(list(jobs), ranks)
        results: list[FileResult] = []
        with (
            gdal_env(),
            ProcessGroup(ranks) as group,
            DevicePool(model, devices, options.precision) as pool,
        ):
            for job in mine:
                try:
                    if job.input in conflicts:
                        raise conflicts[job.input]
                    result = _run_job(
                        job, pool, contract, options, kind, overwrite, command_line, progress
                    )
                except GfmError as exc:
                    if not keep_going:
                        progress.file_finished(_failed(job, exc))  # reported, then the run stops
                        raise
                    result = _failed(job, exc)
                except Exception as exc:  # the batch goes on; the CLI shows one line
                    if not keep_going:
                        raise
                    result = _failed(job, unexpected_error(exc, job.label))
                results.append(result)
                progress.file_finished(result)
            return group.gather(results)
    finally:  # even when the run fails fast: see prepare_in_background
        prepare.join()


def _run_job(
    job: Job,
    pool: DevicePool,
    contract: ModelContract,
    options: ResolvedOptions,
    kind: str,
    overwrite: bool,
    command_line: Sequence[str],
    progress: Progress,
) -> FileResult:
    check_writable(job.output)  # creates the folder the lock goes in
    with OutputLock(job.output):
        if _complete(job, options, kind, overwrite, contract):
            return _skipped(job, options, kind)
        for output in output_paths(job.output, job.fmt, options, kind):
            for stale in stale_partials(output):
                with contextlib.suppress(OSError):
                    stale.unlink()
        result = map_file(
            job.input,
            job.output,
            job.fmt,
            pool,
            contract,
            job.options_for(options),
            kind=kind,
            command_line=command_line,
            on_plan=lambda total: progress.file_started(job, total),
            on_windows=progress.windows_done,
            extra_tags=job.tags,
            source=job.label,
        )
        return dataclasses.replace(result, input=job.label)


def written_files(job: Job, options: MapOptions, kind: str) -> list[Path]:
    """Every file ``job`` writes: its outputs and the sidecars GDAL keeps beside a GeoTIFF."""
    files = []
    for path in output_paths(job.output, job.fmt, options, kind):
        files.append(path)
        if path.suffix.lower() in (".tif", ".tiff"):
            files.append(path.with_name(path.name + ".aux.xml"))
    return files


def read_files(path: str) -> list[Path]:
    """The local files GDAL reads for the dataset at ``path``: the file itself, its sidecars
    (``.aux.xml``, ``.ovr``, ``.msk``) and, for a VRT, the files it references."""
    if is_gdal_path(path):
        return []
    files = [Path(path)]
    if not Path(path).is_file():
        return files  # missing, a folder or a FIFO: open_raster reports it; never block here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # open_raster judges that
            with rasterio.open(path) as dataset:
                listed = dataset.files
    except GDAL_ERRORS:
        return files
    return files + [Path(f) for f in listed if not is_gdal_path(f)]


def input_conflicts(jobs: Sequence[Job], options: MapOptions, kind: str) -> dict[str, OutputError]:
    """An OutputError for every job that would write a file some input reads (itself, the
    source of a VRT, a probabilities file given as input), keyed by the job's input."""
    readers: dict[Path, str] = {}
    for job in jobs:
        for file in read_files(job.input):
            readers.setdefault(_resolved(file), job.input)
    conflicts: dict[str, OutputError] = {}
    for job in jobs:
        for file in written_files(job, options, kind):
            reader = readers.get(_resolved(file))
            if reader is None:
                continue
            what = "its input" if reader == job.input else f"the input {reader}"
            if Path(reader).resolve() != _resolved(file):
                what += f" (which reads {file.name})"
            conflicts[job.input] = OutputError(
                f"{file}: writing it would replace {what}; choose another -o (or rename the output)"
            )
            break
    return conflicts


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _complete(
    job: Job, options: ResolvedOptions, kind: str, overwrite: bool, contract: ModelContract
) -> bool:
    """:func:`~gfmcli.engine.resume.is_complete` for ``job``, with its own sensor."""
    mine = job.options_for(options)
    return is_complete(job.output, job.fmt, job.label, mine, kind, overwrite, contract)


def _skipped(job: Job, options: MapOptions, kind: str) -> FileResult:
    outputs = output_paths(job.output, job.fmt, options, kind)
    return FileResult(job.label, outputs, "skipped", "output exists; --overwrite to redo it")


def _failed(job: Job, exc: GfmError) -> FileResult:
    return FileResult(job.label, (), "failed", str(exc), exit_code=exc.exit_code, target=job.output)
