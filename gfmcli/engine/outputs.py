"""The files one mapping job writes: its outputs and the sidecars beside them (what a resumed
run checks before it skips a job)."""

from __future__ import annotations

from pathlib import Path

from gfmcli.engine.options import MapOptions
from gfmcli.io.products import missing_sidecars, probabilities_path


def output_paths(output: Path, fmt: str, options: MapOptions, kind: str) -> tuple[Path, ...]:
    """Every file a job writes: the main output, plus ``.probs.tif`` with --probabilities."""
    if kind == "predict" and fmt == "tif" and options.probabilities:
        return (output, probabilities_path(output))
    return (output,)


def sidecar_kinds(
    output: Path, fmt: str, options: MapOptions, kind: str, task: str
) -> dict[Path, str]:
    """The job's rasters that get sidecars, with their kind (``io.sidecars.sidecar_paths``):
    a segmentation class map (``.aux.xml``, ``.qml``) and its probabilities (``.qml``)."""
    if kind != "predict" or fmt != "tif" or task != "segmentation":
        return {}
    kinds = {output: "class"}
    if options.probabilities:
        kinds[probabilities_path(output)] = "probabilities"
    return kinds


def missing_outputs_sidecars(
    output: Path, fmt: str, options: MapOptions, kind: str, task: str
) -> list[Path]:
    """Sidecars (``.aux.xml``, ``.qml``) missing beside a job's existing gfm rasters; a job
    with any is incomplete (killed between the renames) and is redone."""
    rasters = sidecar_kinds(output, fmt, options, kind, task)
    return [path for raster, what in rasters.items() for path in missing_sidecars(raster, what)]
