"""The ``gfm`` command line: the only click code of gfm. ``main`` (``cli/main.py``) is the group;
each subcommand is one module here that parses options, calls one library function, reports.

``gfmcli.cli:main`` is the console-script entry point (pyproject.toml), unchanged from before
the package had its layout, so existing installs and their ``gfm`` scripts keep working.
"""

from gfmcli.cli.main import main

__all__ = ["main"]
