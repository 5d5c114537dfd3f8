"""The ``gfm`` command line: a click group whose commands parse, call one library function, report.

Errors: every ``GfmError`` becomes one line on stderr (``gfm: error: ...``) and its exit code
(see ``gfmcli.errors``); ``--debug`` shows the traceback instead. Library imports (torch, numba,
rasterio) happen inside the commands so that ``gfm --help`` stays instant.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys

import click

from gfmcli._version import __version__
from gfmcli.errors import EXIT_INTERRUPTED, GfmError

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

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GfmError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"gfm: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("gfm: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=GfmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="gfm")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or log output; errors only.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """gfm: map large rasters with the LESS ViT geospatial foundation model.

    Streams GeoTIFFs of any size in overlapping windows through one network that takes any
    sensor, any band count and any resolution, and writes Cloud-Optimized GeoTIFFs or
    GeoPackages.
    """
    level = logging.WARNING - 10 * verbose if not quiet else logging.ERROR
    logging.basicConfig(level=max(level, logging.DEBUG), format="gfm: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj.update(verbose=verbose, quiet=quiet, debug=debug)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a job scheduler, torchrun stopping its workers) ends a run like Ctrl-C: the
    staged temporaries are removed and no half-written output is left."""
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="gfm", obj={"argv": sys.argv[1:]})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
