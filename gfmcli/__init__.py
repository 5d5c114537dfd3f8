"""gfm: batch mapping with the LESS ViT geospatial foundation model.

The Python API (docs/api.md)::

    from gfmcli import MapOptions, load_model, map_rasters

    summary = map_rasters(["scene.tif"], "maps/", MapOptions(window=256), model="landcover-tiny")

The names below are imported on first use, so ``import gfmcli`` (and ``gfm --help``) does not
load torch, rasterio or numba.

Layers, each importing only from those below it (``tools/check_imports.py`` checks this and
that there are no import circles)::

    cli/                                 click: parse, call one function, report, exit
    api/                                 map_rasters, embed_rasters; info (describe models, rasters)
    engine/  train/  evaluate/           mapping, training, scoring a map: siblings
    io/  model/  runtime/  simulate/     rasters and vectors, networks, devices and torchrun, scenes
    errors sensors spectral scaling contract tomlconf scores   plain rules, no torch
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gfmcli._version import __version__

if TYPE_CHECKING:
    from gfmcli.api.mapping import RunSummary, embed_rasters, map_rasters
    from gfmcli.engine.options import FileResult, MapOptions
    from gfmcli.model.checkpoint import load_model
    from gfmcli.model.registry import list_models
    from gfmcli.sensors import list_sensors

#: Public name -> the module that defines it.
_API = {
    "map_rasters": "gfmcli.api.mapping",
    "embed_rasters": "gfmcli.api.mapping",
    "RunSummary": "gfmcli.api.mapping",
    "MapOptions": "gfmcli.engine.options",
    "FileResult": "gfmcli.engine.options",
    "load_model": "gfmcli.model.checkpoint",
    "list_models": "gfmcli.model.registry",
    "list_sensors": "gfmcli.sensors",
}

__all__ = [
    "FileResult",
    "MapOptions",
    "RunSummary",
    "__version__",
    "embed_rasters",
    "list_models",
    "list_sensors",
    "load_model",
    "map_rasters",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'gfmcli' has no attribute {name!r}")
