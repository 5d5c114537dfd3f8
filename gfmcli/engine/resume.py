"""Resume: whether an output already there is gfm's, complete, and what this run would write.

A rerun of ``predict``/``embed`` skips every input whose outputs are complete gfm outputs made
with this run's settings. Each output is opened once (:func:`existing_output`): the same read
that finds gfm's provenance and checks the data reads also returns the ``GFM_SETTINGS``
record (``gfmcli.engine.settings``) the rerun is compared with.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from gfmcli.contract import ModelContract
from gfmcli.engine.options import ResolvedOptions
from gfmcli.engine.outputs import missing_outputs_sidecars, output_paths, sidecar_kinds
from gfmcli.engine.settings import SETTINGS_TAG, changed_settings
from gfmcli.engine.sinks import EMBEDDING_LAYER
from gfmcli.errors import OutputError
from gfmcli.io.paths import should_skip_existing
from gfmcli.io.products import sidecar_texts
from gfmcli.io.sidecars import holds_what_gfm_writes, sidecar_paths
from gfmcli.io.vector_reads import reading_vectors
from gfmcli.io.writer import GDAL_ERRORS

# What a file at an output path is (Existing.state).
MISSING, COMPLETE, REDO, FOREIGN = "missing", "complete", "redo", "foreign"


class Existing(NamedTuple):
    """What is at an output path: ``state``, ``why`` (for a message) and, for a complete gfm
    output, its ``GFM_SETTINGS`` record (None when it has none: gfm before the record)."""

    state: str
    why: str = ""
    settings: str | None = None


def is_complete(
    output: Path,
    fmt: str,
    source: str,
    options: ResolvedOptions,
    kind: str,
    overwrite: bool,
    contract: ModelContract,
) -> bool:
    """True when every output of mapping ``source`` to ``output`` is a complete gfm output
    made with these settings (resume skips it).

    Missing, empty or damaged gfm outputs and maps without a sidecar are redone. A file at an
    output path that gfm did not make (no provenance tag, or not readable at all) is never
    replaced without ``overwrite``: OutputError naming it. Nor is a complete output made with
    another model or other options (``gfmcli.engine.settings``): skipping it would pass off the
    old map as this run's, and redoing it would replace a map the user may still want.
    """
    paths = output_paths(output, fmt, options, kind)
    for path in paths:
        should_skip_existing(path, overwrite)  # a folder at an output path: OutputError
    if overwrite:
        return False
    found = [existing_output(path) for path in paths]
    for path, existing in zip(paths, found, strict=True):
        if existing.state == FOREIGN:
            raise OutputError(
                f"{path}: exists but {existing.why}, so it is not an output of gfm and gfm "
                "will not replace it; move it away, choose another -o, or pass --overwrite"
            )
    _check_sidecars(output, fmt, options, kind, contract, dict(zip(paths, found, strict=True)))
    if any(existing.state != COMPLETE for existing in found):
        return False
    for path, existing in zip(paths, found, strict=True):
        changed = changed_settings(existing.settings, contract, options, kind, source, fmt=fmt)
        if changed:
            raise OutputError(
                f"{path}: exists, made by gfm with other settings ({changed}); pass "
                "--overwrite to replace it, or choose another -o"
            )
    return not missing_outputs_sidecars(output, fmt, options, kind, contract.task)


def _check_sidecars(
    output: Path,
    fmt: str,
    options: ResolvedOptions,
    kind: str,
    contract: ModelContract,
    found: dict[Path, Existing],
) -> None:
    """A ``.qml`` or ``.aux.xml`` at a sidecar path of a map that is not there, unless it holds
    what this run would write there (the sidecars of a gfm map the user deleted to redo it),
    is not gfm's: gfm renames a map into place before its sidecars, so its own never outlive
    the map. Writing the map would replace a user's QGIS style or PAM file: OutputError naming
    it."""
    for raster, what in sidecar_kinds(output, fmt, options, kind, contract.task).items():
        if found[raster].state != MISSING:
            continue
        ours = sidecar_texts(raster, what, contract.classes)
        for sidecar in sidecar_paths(raster, what):
            if sidecar in ours and holds_what_gfm_writes(sidecar, ours[sidecar]):
                continue
            if sidecar.exists() or sidecar.is_symlink():
                raise OutputError(
                    f"{sidecar}: exists beside no map, so gfm did not make it and will not "
                    "replace it; move it away, choose another -o, or pass --overwrite"
                )


def existing_output(path: Path) -> Existing:
    """What is at an output path, for resume.

    ``complete``: a finished gfm output (GeoTIFFs carry gfm's ``GFM_VERSION`` provenance tag,
    which only files renamed into place after validation have at a final path, and their last
    block reads; GeoPackages have gfm's layer; GeoParquet files gfm's columns). ``redo``: an
    empty file, or a gfm GeoTIFF whose data no longer reads (nothing of value to keep).
    ``foreign``: anything else that exists, which gfm must not replace. ``missing``: nothing.
    """
    if not path.exists() and not path.is_symlink():
        return Existing(MISSING)
    if not path.is_file():
        return Existing(FOREIGN, "is not a regular file")
    if path.stat().st_size == 0:
        return Existing(REDO, "is empty")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _geotiff(path)
    if suffix == ".gpkg":
        return _geopackage(path)
    if suffix == ".parquet":
        return _parquet(path)
    return Existing(FOREIGN, "has an extension gfm does not write")


def _geotiff(path: Path) -> Existing:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # maps of bare inputs
            with rasterio.open(path) as dataset:
                tags = dataset.tags()
                if "GFM_VERSION" not in tags:
                    return Existing(FOREIGN, "carries no gfm provenance tag (GFM_VERSION)")
                height, width = dataset.block_shapes[0]
                row = (dataset.height - 1) // height * height
                col = (dataset.width - 1) // width * width
                try:
                    last = Window(
                        col, row, min(width, dataset.width - col), min(height, dataset.height - row)
                    )
                    dataset.read(1, window=last)
                except GDAL_ERRORS:
                    return Existing(REDO, "is a gfm output whose data no longer reads")
    except GDAL_ERRORS:
        return Existing(FOREIGN, "GDAL cannot read it")
    return Existing(COMPLETE, settings=tags.get(SETTINGS_TAG))


def _geopackage(path: Path) -> Existing:
    import pyogrio  # only here: a GeoTIFF run never loads the vector stack

    from gfmcli.io.vector import LAYER as VECTOR_LAYER

    try:
        with reading_vectors():
            layers = {str(name) for name, _ in pyogrio.list_layers(path)}
            ours = sorted(layers & {VECTOR_LAYER, EMBEDDING_LAYER})
            if not ours:
                return Existing(FOREIGN, f"has no {VECTOR_LAYER!r} or {EMBEDDING_LAYER!r} layer")
            metadata = pyogrio.read_info(path, layer=ours[0]).get("dataset_metadata") or {}
    except Exception:  # pyogrio raises its own DataSourceError and OSError alike
        return Existing(FOREIGN, "GDAL cannot read it as a GeoPackage")
    return Existing(COMPLETE, settings=metadata.get(SETTINGS_TAG))


def _parquet(path: Path) -> Existing:
    import pyarrow.parquet as pq

    try:
        # The file's key-value metadata: gfm adds ``geo`` and its tags when the file is
        # finished, so they are not in the Arrow schema pq.read_schema returns.
        footer = pq.read_metadata(path)
    except Exception:  # ArrowInvalid and OSError alike
        return Existing(FOREIGN, "cannot be read as Parquet")
    metadata = footer.metadata or {}
    if b"geo" not in metadata or "contract_hash" not in footer.schema.names:
        return Existing(FOREIGN, "has no GeoParquet metadata and gfm columns")
    settings = metadata.get(SETTINGS_TAG.encode())
    return Existing(COMPLETE, settings=settings.decode() if settings is not None else None)
