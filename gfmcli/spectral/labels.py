"""Rule 1 of the band rulebook (:mod:`gfmcli.spectral`): what a label or a band tag names.

A label is a sensor band name or alias, a wavelength written with its unit, or a STAC ``eo``
common name; :class:`FileFacts` is what a file says about its bands (no pixels).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gfmcli.sensors import BandSpec, SensorSpec

# STAC eo common names (eo extension v1.1) -> wavelength range in nm.
COMMON_NAMES: dict[str, tuple[float, float]] = {
    "coastal": (400.0, 450.0),
    "blue": (450.0, 530.0),
    "green": (510.0, 600.0),
    "yellow": (585.0, 625.0),
    "red": (620.0, 690.0),
    "pan": (500.0, 700.0),
    "rededge": (690.0, 790.0),
    "nir": (750.0, 1000.0),
    "nir08": (750.0, 900.0),
    "nir09": (850.0, 1050.0),
    "cirrus": (1350.0, 1400.0),
    "swir16": (1550.0, 1750.0),
    "swir22": (2080.0, 2350.0),
    "lwir": (10500.0, 12500.0),
    "lwir11": (10500.0, 11500.0),
    "lwir12": (11500.0, 12500.0),
}
# fmt: skip below: a table, one entry per line (ruff format would add 8 lines)
_UNIT_FACTORS = {"nm": 1.0, "nanometers": 1.0, "nanometres": 1.0, "um": 1000.0, "µm": 1000.0,
                 "micrometers": 1000.0, "micrometres": 1000.0, "microns": 1000.0,
                 "micron": 1000.0}  # fmt: skip
_WAVELENGTH_PATTERN = re.compile(
    r"(\d+(?:\.\d+)?)\s*(nm|nanomet(?:er|re)s|um|µm|micromet(?:er|re)s|microns?)(?![a-z])",
    re.IGNORECASE,
)


def parse_wavelength(text: str | None) -> float | None:
    """The wavelength in nm written in ``text`` with its unit (``"418.24 nm"``, ``"0.665 um"``,
    ``"band 4 (665nm)"``), else None. A bare number is not a wavelength (it may be a band id)."""
    match = _WAVELENGTH_PATTERN.search(text or "")
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_FACTORS[match.group(2).lower()]


def tag_wavelength(tags: Mapping[str, str]) -> float | None:
    """A band's centre wavelength in nm from its tags (``wavelength`` with ``wavelength_units``,
    ENVI/EnMAP style, or ``center_wavelength``/``central_wavelength``), else None. Without a
    unit, values below 100 are micrometres (no band of any optical sensor is under 100 nm)."""
    lowered = {k.lower(): v for k, v in tags.items()}
    for key in ("wavelength", "center_wavelength", "central_wavelength", "wavelength_nm"):
        if key not in lowered:
            continue
        try:
            value = float(str(lowered[key]).strip())
        except ValueError:
            return parse_wavelength(str(lowered[key]))
        unit = str(lowered.get("wavelength_units", lowered.get("units", ""))).strip().lower()
        if key == "wavelength_nm":
            unit = "nm"
        if unit in _UNIT_FACTORS:
            return value * _UNIT_FACTORS[unit]
        return value * 1000.0 if value < 100 else value
    return None


def common_name_wavelength(label: str) -> float | None:
    """The middle of a STAC eo common name's range (``swir16`` -> 1650 nm), else None."""
    span = COMMON_NAMES.get(label.strip().lower())
    return None if span is None else (span[0] + span[1]) / 2


@dataclass(frozen=True)
class FileFacts:
    """What a file says about its bands, read once from the open dataset (no pixels).

    ``descriptions`` hold "" where a band has none; ``gsd_m`` is None when the file has no
    georeferencing and none was given.
    """

    path: str
    count: int
    descriptions: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    band_tags: tuple[Mapping[str, str], ...] = ()
    dtypes: tuple[str, ...] = ()
    gsd_m: float | None = None

    @classmethod
    def of(cls, path: str, dataset, gsd_m: float | None) -> FileFacts:
        """The facts of an open rasterio dataset."""
        return cls(
            path=str(path),
            count=dataset.count,
            descriptions=tuple(d or "" for d in dataset.descriptions),
            tags=dict(dataset.tags()),
            band_tags=tuple(dict(dataset.tags(i + 1)) for i in range(dataset.count)),
            dtypes=tuple(dataset.dtypes),
            gsd_m=gsd_m,
        )

    def label(self, index: int) -> str:
        """What names 1-based band ``index``: its description, else its tag wavelength, else ""."""
        text = self.descriptions[index - 1]
        if text:
            return text
        tags = self.band_tags[index - 1] if self.band_tags else {}
        wavelength = tag_wavelength(tags)
        return f"{wavelength:g} nm" if wavelength is not None else ""


def match_label(label: str, spec: SensorSpec | None) -> BandSpec | float | None:
    """A label's band of ``spec`` by name or alias, else its wavelength (written with a unit or a
    common name), else None. Wavelengths are not snapped to ``spec``'s bands here."""
    if spec is not None:
        for band in spec.bands:
            if band.matches(label):
                return band
    wavelength = parse_wavelength(label)
    if wavelength is None:
        wavelength = common_name_wavelength(label)
    return wavelength
