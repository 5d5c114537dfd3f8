"""The CLI group itself: version, help, and the mapping of gfm errors to exit codes."""

import subprocess
import sys

from click.testing import CliRunner

from gfmcli import __version__
from gfmcli.cli import cli


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
