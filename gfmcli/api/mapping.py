"""Map a list of rasters in one call: what ``gfm predict`` and ``gfm embed`` run, for Python.

:func:`map_rasters` expands the inputs (files, folders, globs, GDAL paths, STAC items, ``-``
for paths on a given stream), names the outputs, loads the model once and maps (or, with
``dry_run``, plans) every input through :func:`gfmcli.engine.jobs.run_jobs`. It returns a
:class:`RunSummary`; the summary's :attr:`~RunSummary.exit_code` is the only place the exit
code of a batch run is decided (the CLI exits with it). Errors that stop a run (a bad input
without ``keep_going``, an unknown model) are raised as ``GfmError`` subclasses, each with
its own exit code.

Example (docs/api.md)::

    from gfmcli import MapOptions, map_rasters

    summary = map_rasters(["scene.tif"], "maps/", MapOptions(window=256, overlap=32))
    print(summary.written, summary.failed)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from gfmcli.contract import ModelContract
from gfmcli.engine.checks import check_outputs, check_run_options, task_mode
from gfmcli.engine.jobs import Job, Progress, plan_jobs, run_jobs
from gfmcli.engine.options import DEFAULT_MODEL, FilePlan, FileResult, MapOptions, for_model
from gfmcli.errors import EXIT_PARTIAL_FAILURE, InputError, UsageError
from gfmcli.io.paths import (
    DEFAULT_NAME_TEMPLATE,
    check_name_template,
    expand_inputs_lenient,
    no_empty_new_folders,
    output_folder,
    output_format,
    plan_outputs,
)
from gfmcli.io.stac import StacInput, is_stac_path, open_inputs
from gfmcli.io.writer import check_creation_options
from gfmcli.model.checkpoint import load_model
from gfmcli.runtime.distributed import rank_info

if TYPE_CHECKING:
    from gfmcli.model.tasks import GfmModel

#: What ``map_rasters`` calls: the ``gfm`` command it stands for, and its output name suffix
#: in folder mode (``scene.tif`` -> ``maps/scene.tif`` or ``embeddings/scene.emb.tif``).
KINDS = {"predict": "", "embed": ".emb"}


class RunProgress(Progress, Protocol):
    """:class:`~gfmcli.engine.jobs.Progress` plus the inputs that gave no raster."""

    def problem(self, argument: str, message: str) -> None: ...
    def run_started(self, jobs: int) -> None: ...


class _Silent:
    def problem(self, argument: str, message: str) -> None:
        pass

    def run_started(self, jobs: int) -> None:
        pass

    def file_started(self, job: Job, total_windows: int) -> None:
        pass

    def windows_done(self, count: int) -> None:
        pass

    def file_finished(self, result: FileResult) -> None:
        pass


@dataclass(frozen=True)
class RunSummary:
    """What a ``map_rasters`` call did, input by input.

    ``results`` are in input order (every rank's under torchrun); ``plans`` is filled instead
    by a dry run; ``problems`` are the ``(argument, message)`` pairs of inputs that gave no
    raster (a missing file, an empty folder) when ``keep_going`` went past them.
    ``keep_going`` is the run's: it decides a dry run's exit code.
    """

    kind: str
    results: tuple[FileResult, ...] = ()
    plans: tuple[FilePlan | FileResult, ...] = ()
    problems: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    is_main: bool = True
    keep_going: bool = False

    @property
    def written(self) -> int:
        return sum(r.status == "written" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.results)

    @property
    def failed(self) -> int:
        """Inputs that failed: argument problems, failed runs and plans that would fail."""
        runs = sum(r.status == "failed" for r in self.results)
        plans = sum(isinstance(p, FileResult) and p.status == "failed" for p in self.plans)
        return len(self.problems) + runs + plans

    @property
    def exit_code(self) -> int:
        """0 when every input was written, skipped or planned; 1 when ``keep_going`` went past
        failed inputs. A dry run plans every input, and without ``keep_going`` exits with the
        first bad input's own code (3 for an unreadable raster), as the run itself would stop
        with it. Rank 0 carries the code of a torchrun run (torchrun watches it); the other
        ranks exit 0."""
        if not self.is_main or not self.failed:
            return 0
        if not self.keep_going:
            for plan in self.plans:
                if isinstance(plan, FileResult) and plan.status == "failed" and plan.exit_code:
                    return plan.exit_code
        return EXIT_PARTIAL_FAILURE


def map_rasters(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: MapOptions | None = None,
    *,
    model: str | os.PathLike[str] | tuple[GfmModel, ModelContract] = DEFAULT_MODEL,
    kind: str = "predict",
    fmt: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
    keep_going: bool = False,
    dry_run: bool = False,
    progress: RunProgress | None = None,
    command_line: Sequence[str] = (),
    stdin: TextIO | None = None,
    name_template: str = DEFAULT_NAME_TEMPLATE,
) -> RunSummary:
    """Map every raster of ``inputs`` to ``output`` (a file for one input, else a folder).

    ``kind`` is ``predict`` (class or value maps) or ``embed`` (embeddings); ``fmt`` is
    ``tif``, ``gpkg`` or ``parquet`` (default: from the output's extension). ``model`` is a
    shipped weights name, a checkpoint path, or an already loaded ``(model, contract)`` pair
    (``load_model``'s result, so a caller maps many batches with one load). An input ``-``
    reads paths, one per line, from ``stdin``; ``name_template`` names folder-mode outputs
    (``{stem}``, ``{parent}``, ``{grandparent}``). ``command_line`` is recorded in the outputs'
    provenance tags. Complete outputs are skipped unless ``overwrite`` (a file gfm did not
    make is never replaced without it). ``--co`` creation options and the window against the
    model's patch size are checked before any input is read (UsageError); a folder the call
    created for its outputs is removed again when nothing was written into it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    started = time.perf_counter()
    options = options or MapOptions()
    check_creation_options(options.creation_options)  # before any input is read
    check_name_template(name_template)
    progress = progress or _Silent()
    with no_empty_new_folders(output_folder(os.fspath(output))):
        # fmt: skip below: arguments grouped by meaning (ruff format would add 13 lines)
        return _map(
            inputs, output, options, model, kind, fmt, device, overwrite, keep_going, dry_run,
            progress, command_line, stdin, started, name_template,
        )  # fmt: skip


def _map(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: MapOptions,
    model: str | os.PathLike[str] | tuple[GfmModel, ModelContract],
    kind: str,
    fmt: str | None,
    device: str,
    overwrite: bool,
    keep_going: bool,
    dry_run: bool,
    progress: RunProgress,
    command_line: Sequence[str],
    stdin: TextIO | None,
    started: float,
    name_template: str,
) -> RunSummary:
    """The body of :func:`map_rasters`, inside its empty-folder guard."""
    arguments = [os.fspath(i) for i in inputs]
    paths, problems = expand_inputs_lenient(arguments, stdin=stdin if "-" in arguments else None)
    items, item_problems = open_inputs(i for i in paths if is_stac_path(i))
    problems = problems + item_problems
    try:
        for argument, message in problems[: None if keep_going else 1]:
            progress.problem(argument, message)
        if problems and not keep_going:
            raise InputError(problems[0][1])
        stac = {item.path: item for item in items}
        # Rasters in the order given, then the items in the order they were named.
        gdal_paths = [i for i in paths if not is_stac_path(i)] + list(stac)
        if not gdal_paths:
            raise UsageError("no input rasters found in the given paths")
        pairs = plan_outputs(
            gdal_paths,
            os.fspath(output),
            fmt,
            suffix=KINDS[kind],
            name_template=name_template,
            extensions=(".tif", ".gpkg", ".parquet") if kind == "embed" else (".tif", ".gpkg"),
        )
        jobs = [_job(str(src), out, output_format(out), stac.get(str(src))) for src, out in pairs]
        net, contract = model if isinstance(model, tuple) else load_model(model)
        options = for_model(options, contract, kind)  # the model's windows (per GSD: at_gsd)
        check_run_options(options, contract, kind)
        for job in {job.fmt: job for job in jobs}.values():  # -o and its options, once
            check_outputs(kind, task_mode(kind, contract, job.label), job.fmt, options, job.output)
        summary = RunSummary(kind, problems=tuple(problems), keep_going=keep_going)
        if dry_run:
            plans = plan_jobs(jobs, contract, options, kind=kind, overwrite=overwrite)
            return _finished(summary, started, plans=tuple(plans))
        ranks = rank_info()
        progress.run_started(len(jobs))
        results = run_jobs(
            jobs,
            net,
            contract,
            options,
            kind=kind,
            device=device,
            overwrite=overwrite,
            keep_going=keep_going,
            ranks=ranks,
            command_line=command_line,
            progress=progress,
        )
        order = {job.label: i for i, job in enumerate(jobs)}
        results = sorted(results, key=lambda r: order.get(r.input, len(order)))
        return _finished(summary, started, results=tuple(results), is_main=ranks.is_main)
    finally:
        for item in items:
            item.close()


def embed_rasters(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    options: MapOptions | None = None,
    **kwargs: object,
) -> RunSummary:
    """:func:`map_rasters` with ``kind="embed"``: the encoder's embeddings (``gfm embed``)."""
    return map_rasters(inputs, output, options, kind="embed", **kwargs)  # type: ignore[arg-type]


def _finished(summary: RunSummary, started: float, **fields: object) -> RunSummary:
    seconds = time.perf_counter() - started
    return dataclasses.replace(summary, seconds=seconds, **fields)  # type: ignore[arg-type]


def _job(source: str, output: Path, fmt: str, item: StacInput | None) -> Job:
    """A job; a STAC item's keeps its in-memory VRT as the input GDAL opens, and is reported
    by the item's location (``location#id`` for one item of a collection)."""
    if item is None:
        return Job(source, output, fmt)
    same = Path(item.location.split("?")[0]).stem == item.item_id
    name = item.location if same else f"{item.location}#{item.item_id}"
    return Job(source, output, fmt, name=name, sensor=item.sensor, tags=item.tags)
