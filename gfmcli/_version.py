"""The package version (a module of its own, so library modules can name it without
importing the public API in ``gfmcli/__init__``)."""

__version__ = "0.1.0"
