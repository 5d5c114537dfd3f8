"""What made an output, so that resume skips only what a rerun would write again.

A rerun skips every complete output (resume). Without a record of how an output was made, a
rerun with another model, ``--sensor`` or ``--window`` would skip the old maps and report
success, and the user would go on with maps of settings they no longer asked for. Every output
gfm writes therefore carries ``GFM_SETTINGS`` (a GeoTIFF tag, a GeoPackage's dataset metadata,
a GeoParquet key-value entry): its input, the model's contract hash and the options that
change what it holds. Resume compares them with the rerun's and refuses, naming
what changed, where they differ (``gfmcli.engine.jobs``).

Batch size, precision, devices and creation options are left out: they change how fast or how
compactly an output is written, not what it says.
"""

from __future__ import annotations

import json
import os
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
) -> dict[str, Any]:
    """The settings an output of ``source`` records, as JSON values (tuples become lists).

    ``options`` are this raster's (:meth:`ResolvedOptions.at_gsd` of its ``gsd_m``), so a run
    told ``--window 64`` records what a run that let the model choose 64 px does. ``read_as``
    is the sensor the bands were read as: a rerun that names the sensor a first run found on
    its own asks for the same map. A sensor and ``--bands`` are recorded by their registered
    names, so an alias or another case asks for the same map too.
    """
    names = PIXEL_OPTIONS + _embed_options(kind, fmt)
    settings: dict[str, Any] = {"command": kind, "model": contract_hash(contract)}
    settings.update({name: getattr(options, name) for name in names})
    settings.update(sensor=_sensor_name(options.sensor), input=input_id(source))
    settings.update(bands=_band_names(options.bands, read_as))
    settings.update(gsd_m=gsd_m, read_as=read_as)
    return json.loads(json.dumps(settings))


def _embed_options(kind: str, fmt: str) -> tuple[str, ...]:
    if kind != "embed":
        return ()
    return EMBED_VECTOR_OPTIONS if fmt in VECTOR_FORMATS else EMBED_RASTER_OPTIONS


def input_id(source: str) -> str:
    """An input as the same file is named whatever the working folder or links: a local
    file's real path, anything else (GDAL paths, URLs, STAC items) as given."""
    return os.path.realpath(source) if os.path.exists(source) else source


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

    def was(name: str) -> str:
        if name == "sensor" and before.get("sensor") is None:
            return f"unset (read as {read_as})"
        return _shown(before.get(name))

    changes = [
        f"{name} {was(name)}, this run {_shown(now.get(name))}"
        for name in sorted(set(before) | set(now))
        if before.get(name) != now.get(name)
    ]
    return "; ".join(changes)


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(_shown(item) for item in value)
    return str(value)
