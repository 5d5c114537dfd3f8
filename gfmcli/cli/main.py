"""The ``gfm`` command line: a click group whose commands parse, call one library function, report.

Errors: every ``GfmError`` becomes one line on stderr (``gfm: error: ...``) and its exit code
(see ``gfmcli.errors``), and so do click's usage errors (exit 2; a usage error's line ends by
naming the command's ``--help``); any other exception becomes one line that points at
``--debug`` (exit 1); ``--debug`` prints the traceback first and keeps the exit code. Library
imports (torch, numba, rasterio) happen inside the commands so that ``gfm --help`` stays instant.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import os
import signal
import sys
import traceback

import click

from gfmcli._version import __version__
from gfmcli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    GfmError,
    UsageError,
    unexpected_error,
)

log = logging.getLogger("gfmcli")


# Subcommands, imported only when used: name -> "module:attribute". One module per command
# (gfmcli/cli/<name>.py), registered here once it works end to end.
COMMANDS: dict[str, str] = {
    "predict": "gfmcli.cli.predict:predict",
    "embed": "gfmcli.cli.embed:embed",
    "sensors": "gfmcli.cli.sensors:sensors",
    "models": "gfmcli.cli.models:models",
    "info": "gfmcli.cli.info:info",
    "simulate": "gfmcli.cli.simulate:simulate",
    "tile": "gfmcli.cli.tile:tile",
    "pretrain": "gfmcli.cli.pretrain:pretrain",
    "finetune": "gfmcli.cli.finetune:finetune",
    "evaluate": "gfmcli.cli.evaluate:evaluate",
}


class GfmGroup(click.Group):
    """A click group with lazily imported subcommands that turns gfm errors into one readable
    line and a documented exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attribute = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, cmd_name)

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _HELP_INSTEAD:
            raise  # plain `gfm`: click prints the help
        except click.ClickException as exc:  # an unknown option of gfm itself
            _echo_click_error(exc, info_name or "gfm")
            raise click.exceptions.Exit(exc.exit_code) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except _HELP_INSTEAD:
            raise
        except click.ClickException as exc:  # a command's unknown option, bad value, ...
            _echo_click_error(exc, _command_path(ctx))
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise  # ctx.exit codes
        except GfmError as exc:
            self._report(ctx, exc, exc)
        except KeyboardInterrupt:
            click.echo("gfm: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of stdout went away (`gfm info x | head`): not an error of gfm's, and
            # nothing more can be told to it. Point stdout at /dev/null so that the interpreter's
            # flush at exit does not fail again, and exit as a SIGPIPE'd tool would.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except Exception as exc:  # the last resort: one line, never a bare traceback
            self._report(ctx, unexpected_error(exc), exc)

    @staticmethod
    def _report(ctx: click.Context, error: GfmError, original: BaseException) -> None:
        """Print ``error`` as one line (``--debug``: the traceback of ``original`` first) and
        exit with its code; ``--debug`` never changes the exit code."""
        if ctx.obj and ctx.obj.get("debug"):
            traceback.print_exception(original, file=sys.stderr)
        hint = _help_hint(_command_path(ctx)) if isinstance(error, UsageError) else ""
        click.echo(f"gfm: error: {error}{hint}", err=True)
        ctx.exit(error.exit_code)


# click >= 8.2 raises this for a group called without arguments; its show() prints the help.
_HELP_INSTEAD = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _command_path(ctx: click.Context) -> str:
    """``gfm predict`` while a subcommand runs (the group's context), else ``gfm``."""
    return " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))


def _help_hint(command_path: str) -> str:
    return f" (see '{command_path} --help')"


# Options of gfm itself, which a subcommand does not take: given after the command, the error
# says where they go (`gfm predict X -v` -> `gfm -v predict X`; -q is both gfm's and a command's).
_GROUP_OPTIONS = ("-v", "--verbose", "--debug")  # click reports -vv as -v


def _echo_click_error(exc: click.ClickException, command_path: str) -> None:
    """click's own errors (unknown option, bad value, missing argument: usage errors, exit 2)
    as gfm's one ``gfm: error:`` line, not click's usage block."""
    hint = ""
    message = exc.format_message().rstrip(".")
    if isinstance(exc, click.UsageError):
        path = exc.ctx.command_path if exc.ctx is not None else command_path
        hint = _help_hint(path)
        if isinstance(exc, click.NoSuchOption) and exc.option_name in _GROUP_OPTIONS:
            command = path.split(" ", 1)[1] if " " in path else "COMMAND"
            message += f"; it is an option of gfm itself: gfm {exc.option_name} {command} ..."
    click.echo(f"gfm: error: {message}{hint}", err=True)


@click.group(cls=GfmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="gfm")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="-v: gfm's info messages; -vv: gfm's debug messages; -vvv: the libraries' too.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or log output; errors only.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """gfm: map large rasters with the LESS ViT geospatial foundation model.

    Streams GeoTIFFs of any size in overlapping windows through one network that takes any
    sensor, any band count and any resolution, and writes Cloud-Optimized GeoTIFFs or
    GeoPackages.
    """
    configure_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj.update(verbose=verbose, quiet=quiet, debug=debug)


class _LevelFormatter(logging.Formatter):
    """``gfm: warning: ...`` and ``gfm: error: ...`` as the commands print their own, so that
    ``grep 'gfm: warning'`` in a cron log finds a logged warning too; info plain."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.ERROR:
            level = "error: "
        else:
            level = "warning: " if record.levelno >= logging.WARNING else ""
        return f"gfm: {level}{super().format(record)}"


def configure_logging(verbose: int, quiet: bool) -> None:
    """``-q``: errors only; default: warnings; ``-v``: gfm's info; ``-vv``: gfm's debug;
    ``-vvv``: every library's debug too (rasterio's is thousands of lines per file)."""
    third_party = logging.DEBUG if verbose >= 3 else logging.WARNING
    handler = logging.StreamHandler()
    handler.setFormatter(_LevelFormatter())
    logging.basicConfig(level=logging.ERROR if quiet else third_party, handlers=[handler])
    own = (
        logging.ERROR
        if quiet
        else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    )
    logging.getLogger("gfmcli").setLevel(own)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a job scheduler, torchrun stopping its workers) ends a run like Ctrl-C: the
    staged temporaries are removed and no half-written output is left."""
    raise KeyboardInterrupt


# glibc mallopt(3) parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
_KEEP_FREED_BYTES = 256 * 2**20


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep and reuse freed blocks instead of handing them back to the OS.

    A mapping run allocates and frees the same large tensors and arrays (10-110 MB) for every
    batch. By default glibc serves blocks above its mmap threshold (at most 32 MiB) and any
    block a worker thread's 64 MiB arena cannot hold with a fresh ``mmap`` and unmaps it on
    ``free``, so every batch faults its pages in again: 1.5 M page faults and 4.6 s of system
    time in a 2048^2 12-band ``gfm predict`` (2 cores), against 0.2 M and 0.9 s with one arena
    and 256 MiB thresholds, at the same peak RSS (docs/benchmarks.md). Returns whether the
    options were set (False without glibc: macOS, musl; nothing changes there).
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    options = (
        (_M_ARENA_MAX, 1),
        (_M_MMAP_THRESHOLD, _KEEP_FREED_BYTES),
        (_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES),
    )
    return all(mallopt(option, value) == 1 for option, value in options)


def main() -> None:
    """Console-script entry point.

    Before the command runs, freed memory is kept for reuse (:func:`keep_freed_memory`). On the
    way out every live object is frozen (``gc.freeze``): the interpreter's final
    garbage collections then skip the hundreds of thousands of objects torch, numba and GDAL's
    bindings leave behind, which took about 0.7 s of CPU at every exit (measured with
    ``python -c "import gfmcli.engine.runner"``: 2.4 s user, 1.8 s with the freeze). Nothing is
    skipped: files and datasets are closed by the commands themselves, atexit handlers run.
    """
    signal.signal(signal.SIGTERM, _terminate)
    keep_freed_memory()
    try:
        cli(prog_name="gfm", obj={"argv": sys.argv[1:]})
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
