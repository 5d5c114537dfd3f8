"""The CLI group itself: version, help of every command, and the mapping of gfm errors to exit
codes."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from gfmcli import __version__
from gfmcli.cli.main import COMMANDS, cli


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "LESS ViT" in result.output


def test_console_script_runs_as_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "gfmcli.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(runner, command):
    """``gfm COMMAND --help`` works for every registered command (importing it lazily) and
    its text names the command, so no command can be registered half-wired."""
    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {command}" in result.output or f"Usage: gfm {command}" in result.output
    assert "-h, --help" in result.output


def test_help_does_not_import_the_library():
    """``gfm --help`` and ``import gfmcli`` stay instant: no torch, rasterio or numba, and the
    public API names load only when used."""
    code = (
        "import sys, gfmcli; from gfmcli.cli.main import cli; "
        "heavy = [m for m in ('torch', 'rasterio', 'numba') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "assert callable(gfmcli.map_rasters) and 'torch' in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _option(command: str, flag: str):
    import click

    found = cli.get_command(click.Context(cli), command)
    return next(p for p in found.params if flag in p.opts)


@pytest.mark.parametrize("flag", ["--sensor", "--bands"])
def test_the_input_band_options_are_one_definition(flag):
    """tile, predict, embed and info name an input's sensor and bands with the same option
    (cli/options.py), so they parse and explain them alike."""
    first, *others = (_option(c, flag) for c in ("predict", "embed", "info", "tile"))
    for other in others:
        assert (other.help, type(other.type), other.default) == (
            first.help,
            type(first.type),
            first.default,
        )


def test_tile_takes_bands_like_predict(runner, tmp_path):
    assert _option("tile", "--bands").type.convert(" B02, B03 ,B04", None, None) == (
        "B02",
        "B03",
        "B04",
    )
    result = runner.invoke(cli, ["tile", "x.tif", "-o", str(tmp_path / "c"), "--bands", " , "])
    assert result.exit_code == 2 and "give at least one band name" in result.output


@pytest.mark.parametrize(
    ("command", "flag", "low", "high", "default"),
    [
        ("predict", "--window", 1, 8192, None),  # None: chosen for the model (for_model)
        ("predict", "--overlap", 0, None, None),
        ("tile", "--size", 1, None, 128),
        ("tile", "--stride", 1, None, None),
        ("tile", "--buffer", 0, None, 0),
        ("tile", "--seed", 0, 2**32 - 1, 0),
    ],
)
def test_count_options_keep_their_ranges_and_defaults(command, flag, low, high, default):
    option = _option(command, flag)
    assert (option.type.min, option.type.max, option.default) == (low, high, default)
    assert bool(option.show_default) == (default is not None)


@pytest.mark.parametrize(
    ("args", "fragment", "command"),
    [
        (["predict", "a.tif", "-o", "b.tif", "--window", "0"], "'--window': 0 is not", "predict"),
        (["embed", "a.tif", "-o", "b.tif", "--bogus"], "No such option '--bogus'", "embed"),
        (["predict"], "Missing argument 'INPUT...'", "predict"),
        (["tile", "a.tif", "-o", "c", "--size", "0"], "'--size': 0 is not", "tile"),
        (["tile", "a.tif", "-o", "c", "--split", "1,2"], "--split '1,2': expected", "tile"),
        (
            ["predict", "a.tif", "-o", "b.tif", "--name-template", "{x}"],
            "--name-template",
            "predict",
        ),
        (
            ["predict", "a.tif", "-o", "b.tif", "-v"],
            "No such option '-v'; it is an option of gfm itself: gfm -v predict ...",
            "predict",
        ),
        (["--bogus"], "No such option '--bogus'", ""),
        (["bogus"], "No such command 'bogus'", ""),
    ],
)
def test_usage_errors_are_one_gfm_error_line_with_exit_2(args, fragment, command):
    """Whether click (option parsing) or gfm (a value it checks) finds it, a usage error is one
    ``gfm: error:`` line naming the command's --help (docs/cli.md), and exit code 2."""
    result = CliRunner().invoke(cli, args, prog_name="gfm")
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    help_of = " ".join(filter(None, ("gfm", command)))
    assert line.startswith("gfm: error: ") and line.endswith(f" (see '{help_of} --help')")
    assert fragment in line


def test_gfm_alone_still_prints_its_help():
    result = CliRunner().invoke(cli, [], prog_name="gfm")
    assert "Usage: gfm [OPTIONS] COMMAND" in result.output and "gfm: error" not in result.output


def test_a_closed_stdout_pipe_ends_gfm_quietly_with_the_sigpipe_code():
    # `gfm sensors | head -1`: the reader is gone before gfm writes (the pipe is closed at once),
    # so the first write fails; gfm must not call that an unexpected error.
    proc = subprocess.Popen(
        [sys.executable, "-m", "gfmcli.cli", "sensors"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 141, stderr
    assert "error" not in stderr, stderr
