"""Every band of a file identified (:mod:`gfmcli.spectral`'s rules 1-4 applied in turn).

``identify_bands`` is the one call ``predict``/``embed``, ``tile`` and STAC reading make; rule 4
(bands flagged bad) and the snapping of bare wavelengths to a sensor's bands live here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gfmcli.errors import BandContractError
from gfmcli.sensors import OPTICAL, BandSpec, SensorSpec, get_sensor, list_sensors
from gfmcli.spectral.labels import FileFacts, match_label
from gfmcli.spectral.sensor import FAMILY_DEFAULT, infer_sensor

WAVELENGTH_MATCH_NM = 5.0


@dataclass(frozen=True)
class FileBand:
    """A file band whose identity is known: a sensor band (``band``), or a bare wavelength."""

    index: int
    name: str
    wavelength_nm: float
    modality: str
    band: BandSpec | None = None


@dataclass(frozen=True)
class Identified:
    """The file's sensor (None: bare wavelengths, no sensor), its identified bands in file order,
    notes for the user (which sensor was guessed from what, which bands are not used) and
    details (the sensor its tags name: worth a line under ``-v``, not a warning)."""

    sensor: SensorSpec | None
    bands: tuple[FileBand, ...]
    notes: tuple[str, ...] = ()
    inferred: bool = False
    details: tuple[str, ...] = ()


def _snap(found: list[FileBand], spec: SensorSpec | None) -> list[FileBand]:
    """Wavelength-only bands become ``spec``'s bands when each is within WAVELENGTH_MATCH_NM of a
    different one; otherwise (a spectrometer read against a multispectral table) all stay bare."""
    if spec is None:
        return found
    snapped, taken = [], set()
    for band in found:
        if band.band is not None:
            snapped.append(band)
            taken.add(band.band.name)
            continue
        nearest = min(spec.bands, key=lambda b: abs(b.wavelength_nm - band.wavelength_nm))
        if abs(nearest.wavelength_nm - band.wavelength_nm) > WAVELENGTH_MATCH_NM:
            snapped.append(band)
            continue
        if nearest.name in taken:
            return found
        taken.add(nearest.name)
        snapped.append(
            FileBand(band.index, nearest.name, nearest.wavelength_nm, nearest.modality, nearest)
        )
    return snapped


def bad_bands(facts: FileFacts) -> set[int]:
    """Rule 4: 1-based bands flagged bad (band tag ``bbl=0``, dataset tag ``BAD_BANDS=1,2,…``)."""
    bad = set()
    for i, tags in enumerate(facts.band_tags):
        if str({k.lower(): v for k, v in tags.items()}.get("bbl", "1")).strip() == "0":
            bad.add(i + 1)
    listed = {k.lower(): v for k, v in facts.tags.items()}.get("bad_bands", "")
    for part in re.split(r"[,\s;]+", str(listed)):
        if part.isdigit() and 1 <= int(part) <= facts.count:
            bad.add(int(part))
    return bad


def _from_band_list(facts: FileFacts, spec: SensorSpec | None, names: list[str]) -> list[FileBand]:
    if spec is None:
        raise BandContractError(
            f"{facts.path}: --bands names need a sensor to look them up; pass --sensor NAME"
        )
    if len(names) != facts.count:
        raise BandContractError(
            f"{facts.path} has {facts.count} bands but --bands lists {len(names)}; "
            "name every band of the file, in file order"
        )
    chosen = spec.select(names)
    for i, band in enumerate(chosen):
        label = facts.descriptions[i]
        described = match_label(label, spec) if label else None
        if isinstance(described, BandSpec) and described.name != band.name:
            raise BandContractError(
                f"{facts.path}: band {i + 1} is described as {label!r} ({described.name}) "
                f"but --bands says {band.name}; fix --bands or the file's band descriptions"
            )
    return [FileBand(i + 1, b.name, b.wavelength_nm, b.modality, b) for i, b in enumerate(chosen)]


def _from_labels(
    facts: FileFacts, spec: SensorSpec | None, labels: list[str], skip: set[int]
) -> list[FileBand]:
    found = []
    for index, text in enumerate(labels, start=1):
        if not text or index in skip:
            continue
        identity = match_label(text, spec)
        if isinstance(identity, BandSpec):
            found.append(
                FileBand(index, identity.name, identity.wavelength_nm, identity.modality, identity)
            )
        elif identity is not None:
            found.append(FileBand(index, text, identity, OPTICAL))
        else:
            others = [
                n
                for n in list_sensors()
                if all(isinstance(match_label(x, get_sensor(n)), BandSpec) for x in labels if x)
            ]
            plain = [n for n in others if n == FAMILY_DEFAULT.get(get_sensor(n).family)]
            shown = (plain or others)[:4]
            hint = f"pass --sensor {' / '.join(shown)}" if shown else "pass --sensor NAME"
            sensor = f"sensor {spec.name}" if spec else "any known sensor"
            if facts.count == 1 and not shown:
                # a mask or label raster beside the scenes (a folder given as the input)
                raise BandContractError(
                    f"{facts.path}: its one band is described as {text!r}, not as a band of "
                    f"{sensor}; if it is a mask or label raster, leave it out of the inputs "
                    "(name the images, or a glob that matches only them), and if it is one "
                    "band of a scene, stack the scene's bands into one file (gdalbuildvrt "
                    "-separate)"
                )
            raise BandContractError(
                f"{facts.path}: band {index} is described as {text!r}, which is not a band of "
                f"{sensor} and names no wavelength; {hint}, or --bands B02,B03,..."
            )
    found = _snap(found, spec)
    names = [b.name for b in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BandContractError(
            f"{facts.path}: several bands are described as {', '.join(repeated)}; "
            "fix the band descriptions or pass --bands"
        )
    return found


def identify_bands(
    facts: FileFacts,
    *,
    sensor: str | None = None,
    bands: Sequence[str] | None = None,
    default_sensor: str | None = None,
) -> Identified:
    """Every identified band of a file (rules in the module docstring).

    ``sensor`` is the user's ``--sensor`` (then nothing is inferred), ``bands`` the user's
    ``--bands`` (file order), ``default_sensor`` the model's sensor, which sensor-neutral labels
    are read against. Raises BandContractError (or SensorError for unknown names) with the fix.
    """
    labels = [facts.label(i + 1) for i in range(facts.count)]
    notes: list[str] = []
    details: list[str] = []
    inferred = False
    why = ""
    if sensor:
        spec: SensorSpec | None = get_sensor(sensor)
    elif bands:
        spec = get_sensor(default_sensor) if default_sensor else None
    elif any(labels):
        spec, why, tagged = infer_sensor(facts, labels, default_sensor)
        inferred = spec is not None
        if why:
            (details if tagged else notes).append(f"{facts.path}: {why}; pass --sensor to override")
    else:
        spec = None
    if bands:
        found = _from_band_list(facts, spec, list(bands))
    elif any(labels):
        skip = bad_bands(facts)
        found = _from_labels(facts, spec, labels, skip)
        if inferred and not why and all(b.band is None for b in found):
            spec, inferred = None, False  # neutral labels that the model's sensor does not fit
        if skip:
            notes.append(
                f"{facts.path}: band(s) {ranges_text(sorted(skip))} are flagged bad and not used"
            )
        unnamed = [i + 1 for i, x in enumerate(labels) if not x and i + 1 not in skip]
        if unnamed:
            notes.append(f"{facts.path}: band(s) {unnamed} have no description and are not used")
    elif sensor and spec is not None:
        if facts.count != len(spec.bands):
            raise BandContractError(
                f"{facts.path} has {facts.count} bands but sensor {spec.name} has "
                f"{len(spec.bands)} ({', '.join(spec.band_names)}); pass --bands naming the "
                "file's bands in order"
            )
        found = [
            FileBand(i + 1, b.name, b.wavelength_nm, b.modality, b)
            for i, b in enumerate(spec.bands)
        ]
    else:
        raise BandContractError(
            f"cannot tell which bands {facts.path} holds: its bands have no descriptions; "
            "pass --sensor NAME (its bands in standard order) or --bands B02,B03,..."
        )
    if not found:
        raise BandContractError(f"{facts.path}: no band could be identified; pass --bands")
    return Identified(spec, tuple(found), tuple(notes), inferred, tuple(details))


def ranges_text(numbers: list[int], sep: str = ", ") -> str:
    """``[130, 131, 132, 140]`` -> ``"130-132, 140"`` (sorted numbers; ``sep`` between runs)."""
    parts: list[str] = []
    for n in numbers:
        if parts and parts[-1].split("-")[-1] == str(n - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return sep.join(parts)
