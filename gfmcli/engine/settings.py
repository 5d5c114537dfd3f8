"""What made an output, so that resume skips only what a rerun would write again.

A rerun skips every complete output (resume). Without a record of how an output was made, a
rerun with another model, ``--sensor`` or ``--window`` would skip the old maps and report
success, and the user would go on with maps of settings they no longer asked for. Every output
gfm writes therefore carries ``GFM_SETTINGS`` (a GeoTIFF tag, a GeoPackage's dataset metadata,
a GeoParquet key-value entry): its input (and what identifies a local input file's
content: :func:`input_file`), the model's contract hash and the options that
change what it holds. Resume compares them with the rerun's and refuses, naming
what changed, where they differ (``gfmcli.engine.jobs``).

Batch size, precision, devices and creation options are left out: they change how fast or how
compactly an output is written, not what it says.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import datetime, timezone
from typing import Any

from gfmcli.contract import ModelContract, contract_hash
from gfmcli.engine.options import ResolvedOptions
from gfmcli.errors import SensorError
from gfmcli.spectral.sensor import sensor_or_none

#: The tag (metadata key) that holds :func:`output_settings`.
SETTINGS_TAG = "GFM_SETTINGS"

#: The options whose values change what an output holds. ``--probabilities`` adds a file and
#: leaves the class map as it is; ``--dtype`` shapes only embedding rasters (vectors are
#: float32), ``--pool`` only embedding vectors (GeoPackage, GeoParquet).
PIXEL_OPTIONS = ("sensor", "bands", "scale", "offset", "gsd", "window", "overlap")
EMBED_RASTER_OPTIONS = ("embedding_precision",)
EMBED_VECTOR_OPTIONS = ("pool",)
VECTOR_FORMATS = ("gpkg", "parquet")


def output_settings(
    contract: ModelContract,
    options: ResolvedOptions,
    kind: str,
    source: str,
    gsd_m: float,
    read_as: str,
    *,
    fmt: str = "tif",
    scaled_as: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> dict[str, Any]:
    """The settings an output of ``source`` records, as JSON values (tuples become lists).

    ``options`` are this raster's (:meth:`ResolvedOptions.at_gsd` of its ``gsd_m``), so a run
    told ``--window 64`` records what a run that let the model choose 64 px does. ``read_as``
    is the sensor the bands were read as: a rerun that names the sensor a first run found on
    its own asks for the same map. A sensor and ``--bands`` are recorded by their registered
    names, so an alias or another case asks for the same map too. ``scaled_as`` is the
    (scales, offsets) the bands were read with, one per model band: a rerun that names the
    scaling a first run found on its own (``--scale 1`` for a float reflectance file) asks for
    the same map too.
    """
    names = PIXEL_OPTIONS + _embed_options(kind, fmt)
    settings: dict[str, Any] = {"command": kind, "model": contract_hash(contract)}
    settings.update({name: getattr(options, name) for name in names})
    settings.update(sensor=_sensor_name(options.sensor), input=input_id(source))
    settings.update(input_file=input_file(source))
    settings.update(bands=_band_names(options.bands, read_as))
    settings.update(gsd_m=gsd_m, read_as=read_as)
    if scaled_as is not None:
        settings.update(scaled_as={"scale": scaled_as[0], "offset": scaled_as[1]})
    return json.loads(json.dumps(settings))


def _embed_options(kind: str, fmt: str) -> tuple[str, ...]:
    if kind != "embed":
        return ()
    return EMBED_VECTOR_OPTIONS if fmt in VECTOR_FORMATS else EMBED_RASTER_OPTIONS


def input_id(source: str) -> str:
    """An input as the same file is named whatever the working folder or links: a local
    file's real path (also for ``items.json#ID``, one item of a local collection), anything
    else (GDAL paths, URLs) as given."""
    if os.path.exists(source):
        return os.path.realpath(source)
    path, mark, item = source.rpartition("#")
    if mark and os.path.exists(path):
        return os.path.realpath(path) + mark + item
    return source


#: Input files up to this size are identified by their content, larger ones by size and
#: modification time: a VRT or STAC item rebuilt with the same content is the same input.
CONTENT_ID_MAX_BYTES = 1 << 20


def input_file(source: str) -> dict[str, Any] | None:
    """What identifies a local input file's content: a file replaced at the same path (a new
    scene of the same name, a mosaic.vrt built from other scenes) no longer matches the map
    made from the old one. Small files (VRTs, STAC items) by their SHA-256, so rebuilding one
    as it was is no change; rasters by size and modification time, as make and rsync judge
    files. None for GDAL paths and URLs, which gfm cannot stat. A VRT is judged by its own
    text, not by the rasters it names."""
    try:
        info = os.stat(source)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size <= CONTENT_ID_MAX_BYTES:
            with open(source, "rb") as file:
                digest = hashlib.sha256(file.read()).hexdigest()
            return {"bytes": info.st_size, "sha256": digest}
    except (OSError, ValueError):
        return None
    return {"bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def _band_names(bands: tuple[str, ...] | None, read_as: str) -> list[str] | None:
    """``--bands`` by the names the sensor the file was read as registers (``b8a`` and an alias
    name the same band as ``B8A``), so that spelling a band another way asks for the same map;
    as typed where that sensor does not know them."""
    spec = sensor_or_none(read_as) if bands else None
    if bands is None or spec is None:
        return None if bands is None else list(bands)
    try:
        return [spec.band(name).name for name in bands]
    except SensorError:
        return list(bands)


def _sensor_name(sensor: str | None) -> str | None:
    spec = sensor_or_none(sensor) if sensor else None
    return spec.name if spec is not None else sensor


def changed_settings(
    recorded: str | None,
    contract: ModelContract,
    options: ResolvedOptions,
    kind: str,
    source: str,
    *,
    fmt: str = "tif",
) -> str:
    """What a rerun of ``source`` with ``options`` would do differently from the run that made
    an output whose ``GFM_SETTINGS`` tag is ``recorded``, for a message; empty when nothing.

    The rerun is judged at the output's own GSD, which is known without opening its input.
    Outputs that record nothing (made by an older gfm) are skipped as they always were; an
    unreadable record counts as different.
    """
    if recorded is None:
        return ""
    try:
        before = json.loads(recorded)
        gsd_m, read_as = before["gsd_m"], before["read_as"]
        now = output_settings(
            contract, options.at_gsd(gsd_m), kind, source, gsd_m, read_as, fmt=fmt
        )
    except (json.JSONDecodeError, KeyError, TypeError):
        return f"an unreadable {SETTINGS_TAG} tag"
    if now["sensor"] == read_as:
        now["sensor"] = before.get("sensor")
    if _names_the_scaling_found(now["scale"], now["offset"], before.get("scaled_as")):
        now.update(scale=before.get("scale"), offset=before.get("offset"))

    def was(name: str) -> str:
        if name == "sensor" and before.get("sensor") is None:
            return f"unset (read as {read_as})"
        return _shown(before.get(name))

    changes = [
        f"{name} {was(name)}, this run {_shown(now.get(name))}"
        for name in sorted((set(before) | set(now)) - {"input_file", "scaled_as"})
        if before.get(name) != now.get(name)
    ]
    # Records made before gfm noted the input file say nothing about it: not a change.
    if "input_file" in before and before["input_file"] != now["input_file"]:
        changes.append(
            f"the input file changed since: it was {_file_shown(before['input_file'])}, "
            f"it is {_file_shown(now['input_file'])}"
        )
    return "; ".join(changes)


def _names_the_scaling_found(scale: Any, offset: Any, scaled_as: Any) -> bool:
    """True when a rerun's ``--scale``/``--offset`` (lists, None where not given) read every
    band as the first run did anyway (``scaled_as`` as recorded; older records have none).

    By the scaling rules (:mod:`gfmcli.scaling`) ``--scale`` alone means offset 0 and
    ``--offset`` alone keeps the scale found. Only one value for every band is judged: a list
    per file band would need the file's band order, which the record does not hold.
    """
    if (scale is None and offset is None) or not isinstance(scaled_as, dict):
        return False
    found_scales, found_offsets = scaled_as.get("scale"), scaled_as.get("offset")
    if not (isinstance(found_scales, list) and isinstance(found_offsets, list) and found_scales):
        return False
    wanted_offset = 0.0 if offset is None else _one_value(offset)
    if wanted_offset is None or any(value != wanted_offset for value in found_offsets):
        return False
    if scale is None:
        return True
    wanted_scale = _one_value(scale)
    return wanted_scale is not None and all(value == wanted_scale for value in found_scales)


def _one_value(given: Any) -> float | None:
    """The value of a ``--scale``/``--offset`` list that gives one value for every band."""
    if isinstance(given, list) and given and len(set(given)) == 1:
        return float(given[0])
    return None


def _file_shown(record: Any) -> str:
    if not isinstance(record, dict) or "bytes" not in record:
        return "unknown" if record is None else "unreadable"
    if "sha256" in record:
        return f"{record['bytes']:,} bytes of SHA-256 {str(record['sha256'])[:12]}"
    try:
        when = datetime.fromtimestamp(record["mtime_ns"] / 1e9, tz=timezone.utc)
    except (KeyError, TypeError, ValueError, OverflowError):
        return "unreadable"
    return f"{record['bytes']:,} bytes modified {when:%Y-%m-%d %H:%M:%S} UTC"


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(_shown(item) for item in value)
    return str(value)
