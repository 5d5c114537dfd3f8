"""What ``gfm predict`` and ``gfm embed`` share: inputs -> jobs -> one library call -> report.

Results go to stdout (one written output path per line, or the dry-run table; with ``--json``
one JSON object per finished input, see ``_report``), progress bars and the summary to stderr,
errors as ``gfm: error: ...`` lines. Exit code: 0 when every input
succeeded or was skipped, the error's own code when a run stops at a failure, 1 when
``--keep-going`` went past failures (docs/cli.md).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gfmcli.commands._report import Reporter, echo_json, plan_record
from gfmcli.errors import EXIT_PARTIAL_FAILURE, InputError
from gfmcli.io.stac import is_stac_path, open_inputs

# Parsed options that steer the run; every other option is a field of MapOptions.
_RUN_KEYS = (
    "inputs",
    "output",
    "model",
    "fmt",
    "device",
    "overwrite",
    "keep_going",
    "dry_run",
    "quiet",
    "json_lines",
)


@dataclass(frozen=True)
class MappingRequest:
    """The parsed options of ``predict``/``embed``."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    model: str
    fmt: str | None
    suffix: str
    device: str
    overwrite: bool
    keep_going: bool
    dry_run: bool
    quiet: bool
    json_lines: bool
    options: Any  # gfmcli.engine.runner.MapOptions (imported lazily)

    @classmethod
    def from_params(cls, kind: str, suffix: str, params: dict[str, Any]) -> MappingRequest:
        """Split click's parsed ``params`` into run settings and ``MapOptions`` fields."""
        from gfmcli.engine.runner import MapOptions

        params = dict(params)
        run = {key: params.pop(key) for key in _RUN_KEYS}
        params["creation_options"] = dict(params.get("creation_options", ()))
        return cls(kind=kind, suffix=suffix, options=MapOptions(**params), **run)


class _Bars:
    """tqdm bars on stderr: the overall file count and the current file's windows; hands each
    finished input to the reporter."""

    def __init__(
        self, total_files: int, enabled: bool, reporter: Reporter, keep_going: bool
    ) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._enabled = enabled
        self._reporter = reporter
        self._keep_going = keep_going
        self._files = tqdm(
            total=total_files,
            unit="file",
            desc="files",
            position=0,
            disable=not enabled,
            file=sys.stderr,
        )
        self._windows = None

    def file_started(self, job, total_windows: int) -> None:
        if self._windows is not None:
            self._windows.close()
        self._windows = self._tqdm(
            total=total_windows,
            unit="win",
            desc=job.output.name,
            position=1,
            leave=False,
            disable=not self._enabled,
            file=sys.stderr,
        )

    def windows_done(self, count: int) -> None:
        if self._windows is not None:
            self._windows.update(count)

    def file_finished(self, result) -> None:
        if self._windows is not None:
            self._windows.close()
            self._windows = None
        self._files.update(1)
        for warning in result.warnings:
            self._files.write(f"gfm: warning: {warning}", file=sys.stderr)
        # Without --keep-going the error stops the run and the CLI prints it once, itself.
        if result.status == "failed" and self._keep_going:
            self._files.write(f"gfm: error: {result.message}", file=sys.stderr)
        self._reporter.finished(result)

    def close(self) -> None:
        if self._windows is not None:
            self._windows.close()
        self._files.close()


def run_mapping(ctx: click.Context, request: MappingRequest) -> None:
    """Expand inputs, load the model, run (or plan) every job and report; exits via ``ctx``.

    STAC items among the inputs are opened first (their in-memory VRTs live until the end)."""
    from gfmcli.io.paths import expand_inputs_lenient

    started = time.perf_counter()
    quiet = request.quiet or bool(ctx.obj and ctx.obj.get("quiet"))
    stdin = sys.stdin if "-" in request.inputs else None
    reporter = Reporter(request.kind, json_lines=request.json_lines, quiet=quiet)
    inputs, problems = expand_inputs_lenient(list(request.inputs), stdin=stdin)
    items, item_problems = open_inputs(i for i in inputs if is_stac_path(i))
    try:
        _run_inputs(ctx, request, reporter, inputs, problems + item_problems, items, started, quiet)
    finally:
        for item in items:
            item.close()


def _run_inputs(ctx, request, reporter, inputs, problems, items, started, quiet) -> None:
    """Plan and run the jobs of the expanded ``inputs`` (STAC items as their ``items``)."""
    from gfmcli.engine.jobs import Job, plan_jobs, run_jobs
    from gfmcli.engine.ranks import rank_info
    from gfmcli.io.paths import output_format, plan_outputs
    from gfmcli.model.checkpoint import load_model

    stac = {item.path: item for item in items}
    # Rasters in the order given, then the items in the order they were named.
    gdal_paths = [i for i in inputs if not is_stac_path(i)] + list(stac)
    for argument, message in problems[: None if request.keep_going else 1]:
        reporter.problem(argument, message, InputError.exit_code)
    if problems and not request.keep_going:
        raise InputError(problems[0][1])
    for _, message in problems:
        click.echo(f"gfm: error: {message}", err=True)
    if not gdal_paths:
        raise click.UsageError("no input rasters found in the given paths")
    pairs = plan_outputs(gdal_paths, request.output, request.fmt, suffix=request.suffix)
    jobs = [_job(Job, str(src), out, output_format(out), stac.get(str(src))) for src, out in pairs]
    model, contract = load_model(request.model)
    if request.dry_run:
        plans = plan_jobs(
            jobs, contract, request.options, kind=request.kind, overwrite=request.overwrite
        )
        _print_plans(request.kind, plans, request.json_lines)
        if problems or any(getattr(plan, "status", "") == "failed" for plan in plans):
            ctx.exit(EXIT_PARTIAL_FAILURE)
        return
    ranks = rank_info()
    bars = _Bars(len(jobs), not quiet and ranks.is_main, reporter, request.keep_going)
    try:
        results = run_jobs(
            jobs,
            model,
            contract,
            request.options,
            kind=request.kind,
            device=request.device,
            overwrite=request.overwrite,
            keep_going=request.keep_going,
            ranks=ranks,
            command_line=_command_line(ctx),
            progress=bars,
        )
    finally:
        bars.close()
    order = {job.label: i for i, job in enumerate(jobs)}
    results = sorted(results, key=lambda r: order.get(r.input, len(order)))
    if not ranks.is_main:
        return  # rank 0 reports for everyone and carries the exit code (torchrun watches it)
    reporter.close(results, len(problems), time.perf_counter() - started)
    failed = len(problems) + sum(r.status == "failed" for r in results)
    if failed:
        ctx.exit(EXIT_PARTIAL_FAILURE)


def _job(job_class, source: str, output, fmt: str, item) -> Any:
    """A job; a STAC item's keeps its in-memory VRT as the input GDAL opens, and is reported
    by the item's location (``location#id`` for one item of a collection)."""
    if item is None:
        return job_class(source, output, fmt)
    same = Path(item.location.split("?")[0]).stem == item.item_id
    name = item.location if same else f"{item.location}#{item.item_id}"
    return job_class(source, output, fmt, name=name, sensor=item.sensor, tags=item.tags)


def _command_line(ctx: click.Context) -> list[str]:
    """The command as typed (console script), else rebuilt from the parsed options."""
    argv = (ctx.obj or {}).get("argv")
    if argv is not None:
        return ["gfm", *argv]
    options = [f"--{name.replace('_', '-')}={value}" for name, value in ctx.params.items()]
    return [*ctx.command_path.split(), *options]


def _print_plans(kind: str, plans: Sequence[Any], json_lines: bool) -> None:
    from gfmcli.engine.runner import FilePlan

    for plan in plans:
        if json_lines:
            echo_json(plan_record(kind, plan))
        elif isinstance(plan, FilePlan):
            click.echo(
                f"{plan.input} -> {plan.output}  {plan.width}x{plan.height} px, "
                f"{len(plan.bands)} bands ({','.join(plan.bands)}), GSD {plan.gsd_m:.3g} m, "
                f"{plan.windows} windows ({plan.grid} grid), "
                f"est. peak memory {plan.peak_memory_bytes / 2**20:.0f} MiB"
            )
            for warning in plan.warnings:
                click.echo(f"  warning: {warning}")
        elif plan.status == "skipped":
            click.echo(f"{plan.input} -> {plan.outputs[0]}  skip: {plan.message}")
        else:
            click.echo(f"{plan.input} -> (error) {plan.message}")
