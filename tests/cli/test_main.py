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
