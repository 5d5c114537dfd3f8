"""What ``gfm predict`` and ``gfm embed`` share: inputs -> jobs -> one library call -> report.

Results go to stdout (one written output path per line, or the dry-run table; with ``--json``
one JSON object per finished input, see ``gfmcli.cli.report``), progress bars and the summary
to stderr, errors as ``gfm: error: ...`` lines. The exit code is the library's: 0 when every input
succeeded or was skipped, the error's own code when a run stops at a failure, 1 when
``--keep-going`` went past failures (``RunSummary.exit_code``, docs/cli.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from gfmcli.cli.report import Reporter, counted, echo_json, plan_record
from gfmcli.errors import InputError

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
    "name_template",
)


@dataclass(frozen=True)
class MappingRequest:
    """The parsed options of ``predict``/``embed``."""

    kind: str
    inputs: tuple[str, ...]
    output: str
    model: str
    fmt: str | None
    device: str
    overwrite: bool
    keep_going: bool
    dry_run: bool
    quiet: bool
    json_lines: bool
    name_template: str
    options: Any  # gfmcli.engine.options.MapOptions (imported lazily)

    @classmethod
    def from_params(cls, kind: str, params: dict[str, Any]) -> MappingRequest:
        """Split click's parsed ``params`` into run settings and ``MapOptions`` fields."""
        from gfmcli.engine.options import MapOptions

        params = dict(params)
        run = {key: params.pop(key) for key in _RUN_KEYS}
        params["creation_options"] = dict(params.get("creation_options", ()))
        return cls(kind=kind, options=MapOptions(**params), **run)


class _Bars:
    """tqdm bars on stderr: the overall file count and the current file's windows; hands each
    finished input to the reporter.

    Bars only go to a terminal: when stderr is a file or a pipe (a cron log), each finished
    input gets one plain line there instead of escape codes (``lines``); ``-q`` shows neither,
    nor the inputs' warnings.
    """

    def __init__(
        self, enabled: bool, reporter: Reporter, keep_going: bool, *, warnings: bool
    ) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        terminal = sys.stderr.isatty()
        self._warnings = warnings  # every rank's inputs, unless -q (errors only)
        self._lines = enabled and not terminal
        enabled = enabled and terminal
        self._total = 0
        self._done = 0
        self._enabled = enabled
        self._reporter = reporter
        self._keep_going = keep_going
        self._files = None
        self._windows = None

    def problem(self, argument: str, message: str) -> None:
        """An argument that gave no raster: reported, and shown as an error line when the run
        goes on (otherwise the run stops and the CLI prints the error once, itself)."""
        self._reporter.problem(argument, message, InputError.exit_code)
        if self._keep_going:
            click.echo(f"gfm: error: {message}", err=True)

    def run_started(self, jobs: int) -> None:
        self._total = jobs
        self._files = self._tqdm(
            total=jobs,
            unit="file",
            desc="files",
            position=0,
            disable=not self._enabled,
            file=sys.stderr,
        )

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
        assert self._files is not None, "run_started comes first"
        self._files.update(1)
        self._done += 1
        if self._lines:
            shown = result.outputs or ((result.target,) if result.target else ())
            outputs = ", ".join(str(p) for p in shown) or "-"
            click.echo(
                f"gfm: [{self._done}/{self._total}] {result.input} -> {outputs} "
                f"({result.status}, {result.seconds:.1f} s)",
                err=True,
            )
        for warning in result.warnings if self._warnings else ():
            self._files.write(f"gfm: warning: {warning}", file=sys.stderr)
        # Without --keep-going the error stops the run and the CLI prints it once, itself.
        if result.status == "failed" and self._keep_going:
            self._files.write(f"gfm: error: {result.message}", file=sys.stderr)
        self._reporter.finished(result)

    def close(self) -> None:
        if self._windows is not None:
            self._windows.close()
        if self._files is not None:
            self._files.close()


def run_mapping(ctx: click.Context, request: MappingRequest) -> None:
    """``gfm predict``/``gfm embed``: one :func:`~gfmcli.api.mapping.map_rasters` call, its
    report, and the exit code the summary decides."""
    from gfmcli.api.mapping import map_rasters
    from gfmcli.runtime.distributed import rank_info

    _check_format_options(ctx, request)
    quiet = request.quiet or bool(ctx.obj and ctx.obj.get("quiet"))
    reporter = Reporter(request.kind, json_lines=request.json_lines, quiet=quiet)
    bars = _Bars(
        not quiet and rank_info().is_main, reporter, request.keep_going, warnings=not quiet
    )
    try:
        summary = map_rasters(
            request.inputs,
            request.output,
            request.options,
            model=request.model,
            kind=request.kind,
            fmt=request.fmt,
            device=request.device,
            overwrite=request.overwrite,
            keep_going=request.keep_going,
            dry_run=request.dry_run,
            progress=bars,
            command_line=_command_line(ctx),
            stdin=sys.stdin,
            name_template=request.name_template,
        )
    finally:
        bars.close()
    if request.dry_run:
        _print_plans(request.kind, summary.plans, request.json_lines, quiet)
    elif summary.is_main:  # rank 0 reports for everyone
        reporter.close(summary.results, len(summary.problems), summary.seconds)
    if summary.exit_code:
        ctx.exit(summary.exit_code)


def _check_format_options(ctx: click.Context, request: MappingRequest) -> None:
    """UsageError for an option given on the command line that the output format ignores:
    silently dropping it would hand the user a file other than the one asked for."""
    from gfmcli.errors import UsageError
    from gfmcli.io.paths import planned_format

    fmt = planned_format(request.output, request.fmt)

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE

    if fmt != "tif" and request.options.creation_options:
        raise UsageError(f"--co sets GeoTIFF creation options; a .{fmt} output takes none")
    if request.kind != "embed":
        return
    if fmt != "tif" and given("embedding_precision"):
        raise UsageError(
            "--dtype sets the precision of the embedding GeoTIFF; GeoPackage and GeoParquet "
            "vectors are float32"
        )
    if fmt == "tif" and given("pool"):
        raise UsageError(
            "--pool pools window vectors (.gpkg, .parquet); the embedding GeoTIFF keeps every "
            "patch's embedding"
        )


def _command_line(ctx: click.Context) -> list[str]:
    """The command as typed (console script), else rebuilt from the parsed options."""
    argv = (ctx.obj or {}).get("argv")
    if argv is not None:
        return ["gfm", *argv]
    options = [f"--{name.replace('_', '-')}={value}" for name, value in ctx.params.items()]
    return [*ctx.command_path.split(), *options]


def _print_plans(kind: str, plans: Sequence[Any], json_lines: bool, quiet: bool) -> None:
    from gfmcli.engine.options import FilePlan

    for plan in plans:
        failed = not isinstance(plan, FilePlan) and plan.status == "failed"
        if json_lines:
            echo_json(plan_record(kind, plan))
        elif isinstance(plan, FilePlan):
            click.echo(
                f"{plan.input} -> {plan.output}  {plan.width}x{plan.height} px, "
                f"{len(plan.bands)} bands ({','.join(plan.bands)}), GSD {plan.gsd_m:.3g} m, "
                f"{counted(plan.windows, 'window')} of {plan.window} px, overlap {plan.overlap} "
                f"({plan.grid} grid), "
                f"est. peak memory {plan.peak_memory_bytes / 2**20:.0f} MiB"
            )
            for warning in () if quiet else plan.warnings:  # stderr, as a run warns
                click.echo(f"gfm: warning: {warning}", err=True)
        elif not failed:
            click.echo(f"{plan.input} -> {plan.outputs[0]}  skip: {plan.message}")
        if failed:  # on stderr, as the run prints it: stdout holds the plans only
            click.echo(f"gfm: error: {plan.message}", err=True)
