"""What a mapping run refuses before it reads a pixel: a model that makes no map, an output
the model or format cannot make, window and overlap values the model cannot take. Shared by
``api.mapping`` (once per run) and ``engine.runner`` (per raster, for callers without it)."""

from __future__ import annotations

from pathlib import Path

from gfmcli.contract import ModelContract
from gfmcli.engine.options import PREDICT_TASKS, MapOptions, ResolvedOptions
from gfmcli.errors import ModelError, OutputError, UsageError


def task_mode(kind: str, contract: ModelContract, path: str) -> str:
    if kind == "embed":
        return "embeddings"
    if contract.task not in PREDICT_TASKS:
        raise ModelError(
            f"{path}: model {contract.model_name!r} is a {contract.task} checkpoint and makes no "
            "map; pass a segmentation or regression model with --model (or use gfm embed)"
        )
    return "probabilities" if contract.task == "segmentation" else "values"


def check_outputs(kind: str, mode: str, fmt: str, options: MapOptions, output: str | Path) -> None:
    """Refuse an output the model or format cannot make: the ``-o`` format (OutputError, exit
    5) or an option it cannot honour (UsageError, exit 2). The same for every input:
    ``api.mapping`` checks it once before any input is opened; ``map_file`` and ``open_plan``
    check again for callers that come without it (``gfm info``, the engine used alone)."""
    if fmt == "parquet" and kind != "embed":
        raise OutputError(
            f"{output}: GeoParquet holds embedding vectors (gfm embed); maps are .tif or .gpkg"
        )
    if mode == "values" and fmt != "tif":
        raise OutputError(f"{output}: a regression model writes values as GeoTIFF; use -o NAME.tif")
    if options.probabilities and (mode != "probabilities" or fmt != "tif"):
        raise UsageError(f"{output}: --probabilities needs a segmentation model and a .tif output")


def check_run_options(options: ResolvedOptions, contract: ModelContract, kind: str) -> None:
    """UsageError (exit 2) for ``--window``/``--overlap`` values the model cannot take, once
    before any input is opened (not once per input of a ``--keep-going`` batch). An overlap
    that only some rasters' windows can take is checked per raster (:func:`check_overlap`)."""
    patch = contract.patch_size
    if options.window % patch:
        lower = max(patch, options.window // patch * patch)
        raise UsageError(
            f"--window {options.window} must be a multiple of the model's patch size {patch}; "
            f"use e.g. {lower} or {lower + patch}"
        )
    if options.overlap >= options.largest_window:
        raise UsageError(
            f"--overlap {options.overlap} must be smaller than the window, "
            f"{options.largest_window} px (--window; without it, the model's own)"
        )
    if kind == "embed" and options.overlap % patch:
        raise UsageError(
            f"--overlap {options.overlap} must be a multiple of the patch size {patch} for "
            "embeddings (one output pixel per patch)"
        )


def check_overlap(path: str, options: ResolvedOptions, gsd_m: float) -> None:
    """UsageError when ``--overlap`` does not fit the window of this raster's GSD (a model
    with ``window_by_gsd`` maps coarser rasters in larger windows, so it may fit others)."""
    if options.overlap >= options.window:
        raise UsageError(
            f"{path}: --overlap {options.overlap} must be smaller than {options.window} px, "
            f"the window the model maps this raster's GSD ({gsd_m:.3g} m) in; give a smaller "
            "--overlap or a --window"
        )
