"""What made an output, so that resume skips only what a rerun would write again.

A rerun skips every complete output (resume). Without a record of how an output was made, a
rerun with another model, ``--sensor`` or ``--window`` would skip the old maps and report
success, and the user would go on with maps of settings they no longer asked for. Every GeoTIFF
gfm writes therefore carries ``GFM_SETTINGS``: the model's contract hash and the options that
change its pixels. Resume compares them with the rerun's and refuses, naming what changed,
where they differ (``gfmcli.engine.jobs``).

Batch size, precision, devices and creation options are left out: they change how fast or how
compactly an output is written, not what it says.
"""

from __future__ import annotations

import json
from typing import Any

from gfmcli.contract import ModelContract, contract_hash
from gfmcli.engine.options import ResolvedOptions

#: The GeoTIFF tag that holds :func:`output_settings`.
SETTINGS_TAG = "GFM_SETTINGS"

#: The options whose values change an output's pixels.
PIXEL_OPTIONS = (
    "sensor",
    "bands",
    "scale",
    "offset",
    "gsd",
    "window",
    "overlap",
    "probabilities",
    "embedding_precision",
    "pool",
)


def output_settings(
    contract: ModelContract, options: ResolvedOptions, kind: str, gsd_m: float, read_as: str
) -> dict[str, Any]:
    """The settings an output records, as JSON values (tuples become lists).

    ``options`` are this raster's (:meth:`ResolvedOptions.at_gsd` of its ``gsd_m``), so a run
    told ``--window 64`` records what a run that let the model choose 64 px does. ``read_as``
    is the sensor the bands were read as: a rerun that names the sensor a first run found on
    its own asks for the same map.
    """
    settings: dict[str, Any] = {"command": kind, "model": contract_hash(contract)}
    settings.update({name: getattr(options, name) for name in PIXEL_OPTIONS})
    settings.update(gsd_m=gsd_m, read_as=read_as)
    return json.loads(json.dumps(settings))


def changed_settings(
    recorded: str | None, contract: ModelContract, options: ResolvedOptions, kind: str
) -> str:
    """What a rerun with ``options`` would do differently from the run that made an output
    whose ``GFM_SETTINGS`` tag is ``recorded``, for a message; empty when nothing.

    The rerun is judged at the output's own GSD, which is known without opening its input.
    Outputs that record nothing (made by an older gfm) are skipped as they always were; an
    unreadable record counts as different.
    """
    if recorded is None:
        return ""
    try:
        before = json.loads(recorded)
        now = output_settings(
            contract, options.at_gsd(before["gsd_m"]), kind, before["gsd_m"], before["read_as"]
        )
    except (json.JSONDecodeError, KeyError, TypeError):
        return f"an unreadable {SETTINGS_TAG} tag"
    if now["sensor"] == before["read_as"]:
        now["sensor"] = before["sensor"]
    changes = [
        f"{name} {_shown(before.get(name))}, this run {_shown(now.get(name))}"
        if name != "sensor" or before["sensor"] is not None
        else f"sensor unset (read as {before['read_as']}), this run {_shown(now['sensor'])}"
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
