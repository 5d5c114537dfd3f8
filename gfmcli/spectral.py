"""Which band is which: the one rulebook for band names, wavelengths and sensor tells.

``predict``/``embed`` (:mod:`gfmcli.io.bands`), ``tile`` (:mod:`gfmcli.train.bands`) and STAC
readers all decide a file band's identity here, so a band means the same thing everywhere.
Nothing here reads pixels; :class:`FileFacts` is what a file says about itself (descriptions,
tags, band tags, data types, pixel size). The rules, also in docs/formats.md:

1. **A label** (band description, ``--bands`` name, STAC ``eo:bands`` name) is, first match wins:
   a band name or alias of the sensor (``B04``, ``B8A``, ``SR_B4``, ``red``, ``nir08``,
   ``rededge1``); a wavelength written with its unit (``"418.24 nm"``, ``"0.665 um"``,
   ``"band 4 (665nm)"``), which *is* that wavelength; a STAC ``eo`` common name without a sensor
   (``swir16`` -> the middle of its range). Band tags ``wavelength`` (+ ``wavelength_units``,
   nm when absent or > 100, um below) or ``center_wavelength`` say the same as a description.
2. **The sensor**, when ``--sensor`` does not name it, from all the file's tells:
   * tags naming a platform/instrument (``SENSOR``, ``SPACECRAFT_NAME``, ``PLATFORM``…:
     "Sentinel-2A MSI", "LANDSAT_8", "Landsat 7 ETM+", "EnMAP HSI");
   * the band labels (``B8A``, zero-padded ``B01``… and ``B12`` only exist on Sentinel-2;
     ``SR_B6`` only on OLI; bare ``B1``…``B7`` fit Sentinel-2 *and* every Landsat);
   * the pixel size (at most 25 m: not Landsat; at least 25 m: not Sentinel-2's 10 m stack),
     used only when tags do not decide.
   Exactly one family left: that one. Labels that fit several (bare band numbers) without a
   decisive tell: an error listing the ``--sensor`` choices. Sensor-neutral labels (common names,
   wavelengths) without tells: the model's own sensor when its bands fit one to one, else no
   sensor (bare wavelengths).
3. **The product within a family**: Sentinel-2 ``B10`` or a level tag ``L1C`` -> L1C, ``L2A`` ->
   L2A, else the model's product; Landsat by data type, the way USGS ships them: ``uint16`` ->
   Collection 2 Level-2, ``int16`` -> Collection 1 SR x 10000, ``uint8`` -> Level-1 DN, float ->
   already reflectance.
4. **Bands not used**: band tag ``bbl=0`` or a dataset tag ``BAD_BANDS`` listing it (bad bands of
   imaging spectrometers); they are reported, not mapped.

Where several file bands carry wavelengths close to one sensor band (a spectrometer read against
Sentinel-2's table), the wavelengths stand for themselves: a wavelength is matched to a sensor
band (within ``WAVELENGTH_MATCH_NM``) only when every band finds a different one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gfmcli.errors import BandContractError, SensorError
from gfmcli.sensors import OPTICAL, BandSpec, SensorSpec, get_sensor, list_sensors

WAVELENGTH_MATCH_NM = 5.0
# Pixel size that separates a Sentinel-2 stack (10/20 m) from a Landsat one (30 m).
S2_LANDSAT_GSD_SPLIT_M = 25.0

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

_UNIT_FACTORS = {"nm": 1.0, "nanometers": 1.0, "nanometres": 1.0, "um": 1000.0, "µm": 1000.0,
                 "micrometers": 1000.0, "micrometres": 1000.0, "microns": 1000.0,
                 "micron": 1000.0}  # fmt: skip
_WAVELENGTH_PATTERN = re.compile(
    r"(\d+(?:\.\d+)?)\s*(nm|nanomet(?:er|re)s|um|µm|micromet(?:er|re)s|microns?)(?![a-z])",
    re.IGNORECASE,
)
_S2_ONLY_LABEL = re.compile(r"^b(0[1-9]|8a|08a)$", re.IGNORECASE)

# Dataset tag keys that name a platform or an instrument, and what their values say.
_PLATFORM_KEYS = re.compile(
    r"sensor|spacecraft|platform|mission|instrument|satellite|scene_id|product_id|product_uri",
    re.IGNORECASE,
)
_FAMILY_PATTERNS = {
    "sentinel2": re.compile(r"sentinel[\s_-]*2|\bS2[AB]?(_MSI|\b)|\bMSI\b", re.IGNORECASE),
    "landsat9": re.compile(r"landsat[\s_-]*0?9\b|\bLC0?9", re.IGNORECASE),
    "landsat8": re.compile(r"landsat[\s_-]*0?8\b|\bLC0?8|\bOLI\b(?![-_]?2)", re.IGNORECASE),
    "landsat7": re.compile(r"landsat[\s_-]*0?7\b|\bLE0?7|\bETM", re.IGNORECASE),
    "landsat5": re.compile(r"landsat[\s_-]*0?5\b|\bLT0?5|\bTM\b", re.IGNORECASE),
    "enmap": re.compile(r"enmap", re.IGNORECASE),
    "sentinel1": re.compile(r"sentinel[\s_-]*1|\bS1[AB]?\b", re.IGNORECASE),
}
_LEVEL_KEYS = re.compile(r"^(product|product_type|processing_level|level)$", re.IGNORECASE)
_S2_LEVELS = {"l1c": re.compile(r"L1C|MSI1C|level[\s_-]*1C", re.IGNORECASE),
              "l2a": re.compile(r"L2A|MSI2A|level[\s_-]*2A", re.IGNORECASE)}  # fmt: skip
# Families that band labels alone may point to (vnir4 and the like are only named by --sensor).
_INFERRED_FAMILIES = ("sentinel2", "landsat8", "landsat7", "landsat5", "enmap", "sentinel1")
_FAMILY_DEFAULT = {
    "sentinel2": "sentinel2-l2a",
    "landsat9": "landsat9",
    "landsat8": "landsat8",
    "landsat7": "landsat7",
    "landsat5": "landsat5",
    "enmap": "enmap",
    "sentinel1": "sentinel1",
}
_FAMILY_TITLE = {
    "sentinel2": "Sentinel-2",
    "landsat8": "Landsat 8/9 OLI",
    "landsat9": "Landsat 9 OLI-2",
    "landsat7": "Landsat 7 ETM+",
    "landsat5": "Landsat 5 TM",
    "enmap": "EnMAP",
    "sentinel1": "Sentinel-1",
}
# Landsat products by data type (how USGS ships each level).
_LANDSAT_BY_DTYPE = {"uint16": "", "int16": "-c1", "uint8": "-l1", "float": "-toa"}


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
    """The file's sensor (None: bare wavelengths, no sensor), its identified bands in file order
    and notes for the user (which sensor was inferred from what, which bands are not used)."""

    sensor: SensorSpec | None
    bands: tuple[FileBand, ...]
    notes: tuple[str, ...] = ()
    inferred: bool = False


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
        snapped.append(FileBand(band.index, nearest.name, nearest.wavelength_nm,
                                nearest.modality, nearest))  # fmt: skip
    return snapped


def tag_families(tags: Mapping[str, str]) -> set[str]:
    """Sensor families named by the platform/instrument tags (``SENSOR: Landsat 7 ETM+``)."""
    found = set()
    for key, value in tags.items():
        if not _PLATFORM_KEYS.search(key):
            continue
        for family, pattern in _FAMILY_PATTERNS.items():
            if pattern.search(str(value)):
                found.add(family)
    if "landsat9" in found:
        found.discard("landsat8")
    return found


def _fits(family: str, label: str) -> bool:
    """Whether ``label`` can name a band of some product of ``family`` (zero-padded ``B01`` and
    ``B8A`` count as Sentinel-2 only; wavelengths and common names fit every family)."""
    if family != "sentinel2" and _S2_ONLY_LABEL.match(label.strip()):
        return False
    if _neutral(label):
        return True
    products = [get_sensor(n) for n in list_sensors() if get_sensor(n).family == family]
    return any(isinstance(match_label(label, spec), BandSpec) for spec in products)


def _neutral(label: str) -> bool:
    return parse_wavelength(label) is not None or common_name_wavelength(label) is not None


def _product(family: str, facts: FileFacts, labels: Sequence[str], default: str | None) -> str:
    """Rule 3: the product of ``family`` this file is."""
    if family == "sentinel2":
        if any(get_sensor("sentinel2-l1c").band("B10").matches(x) for x in labels if x):
            return "sentinel2-l1c"
        for key, value in facts.tags.items():
            if _LEVEL_KEYS.match(key):
                for level, pattern in _S2_LEVELS.items():
                    if pattern.search(str(value)):
                        return f"sentinel2-{level}"
        if default and get_sensor(default).family == "sentinel2":
            return get_sensor(default).name
        return "sentinel2-l2a"
    if family.startswith("landsat"):
        dtype = facts.dtypes[0] if facts.dtypes else "uint16"
        kind = "float" if dtype.startswith("float") else dtype
        return f"{_FAMILY_DEFAULT[family]}{_LANDSAT_BY_DTYPE.get(kind, '')}"
    return _FAMILY_DEFAULT[family]


def _choices(families: Sequence[str]) -> str:
    return " / ".join(f"--sensor {_FAMILY_DEFAULT[f]}" for f in families)


def infer_sensor(
    facts: FileFacts, labels: Sequence[str], default: str | None
) -> tuple[SensorSpec | None, str]:
    """Rule 2 and 3: the file's sensor from its tells, and a note saying why; raises
    BandContractError when the tells leave several sensors whose band names differ."""
    used = [x for x in labels if x]
    tagged = tag_families(facts.tags)
    families = [f for f in _INFERRED_FAMILIES if all(_fits(f, x) for x in used)]
    why = ""
    if len(tagged) == 1:
        (family,) = tagged
        if all(_fits(family, x) for x in used):
            why = "its tags name it"
            families = [family]
        else:
            raise BandContractError(
                f"{facts.path}: its tags say {_FAMILY_TITLE[family]} but its band descriptions "
                f"({', '.join(used[:4])}…) are not {_FAMILY_TITLE[family]} band names; pass "
                "--sensor NAME (see `gfm sensors`) or --bands"
            )
    if not families:  # some label fits no sensor: read against the model's, which names it
        return (sensor_or_none(default) if default else None), ""
    if len(families) > 1 and facts.gsd_m is not None:
        landsat_like = facts.gsd_m >= S2_LANDSAT_GSD_SPLIT_M
        by_gsd = [f for f in families if (f == "sentinel2") != landsat_like or f == "enmap"]
        if by_gsd and len(by_gsd) < len(families):
            families, why = by_gsd, f"its pixels are {facts.gsd_m:.3g} m"
    if len(families) > 1:
        default_family = get_sensor(default).family if default else ""
        if all(_neutral(x) for x in used):
            if default_family in families:
                return get_sensor(_product(default_family, facts, used, default)), ""
            return None, ""
        if "enmap" in families:
            families = [f for f in families if f != "enmap"]
        if len(families) > 1:
            titles = ", ".join(_FAMILY_TITLE[f] for f in families)
            raise BandContractError(
                f"{facts.path}: cannot tell which sensor it is: its band descriptions "
                f"({', '.join(used[:6])}) name bands of {titles}, where the same name is a "
                f"different band (B5: 705 nm on Sentinel-2, 865 nm on OLI, 1650 nm on TM/ETM+); "
                f"pass {_choices(families)}"
            )
    (family,) = families
    if not why:
        why = "its band names"
    product = _product(family, facts, used, default)
    return get_sensor(product), f"read as {product} ({why})"


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
            found.append(FileBand(index, identity.name, identity.wavelength_nm,
                                  identity.modality, identity))  # fmt: skip
        elif identity is not None:
            found.append(FileBand(index, text, identity, OPTICAL))
        else:
            others = [
                n
                for n in list_sensors()
                if all(isinstance(match_label(x, get_sensor(n)), BandSpec) for x in labels if x)
            ]
            plain = [n for n in others if n == _FAMILY_DEFAULT.get(get_sensor(n).family)]
            shown = (plain or others)[:4]
            hint = f"pass --sensor {' / '.join(shown)}" if shown else "pass --sensor NAME"
            sensor = f"sensor {spec.name}" if spec else "any known sensor"
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
    inferred = False
    why = ""
    if sensor:
        spec: SensorSpec | None = get_sensor(sensor)
    elif bands:
        spec = get_sensor(default_sensor) if default_sensor else None
    elif any(labels):
        spec, why = infer_sensor(facts, labels, default_sensor)
        inferred = spec is not None
        if why:
            notes.append(f"{facts.path}: {why}; pass --sensor to override")
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
                f"{facts.path}: band(s) {_ranges(sorted(skip))} are flagged bad and not used"
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
        found = [FileBand(i + 1, b.name, b.wavelength_nm, b.modality, b)
                 for i, b in enumerate(spec.bands)]  # fmt: skip
    else:
        raise BandContractError(
            f"cannot tell which bands {facts.path} holds: its bands have no descriptions; "
            "pass --sensor NAME (its bands in standard order) or --bands B02,B03,..."
        )
    if not found:
        raise BandContractError(f"{facts.path}: no band could be identified; pass --bands")
    return Identified(spec, tuple(found), tuple(notes), inferred)


def _ranges(numbers: list[int]) -> str:
    """``[130, 131, 132, 140]`` -> ``"130-132, 140"``."""
    parts: list[str] = []
    for n in numbers:
        if parts and parts[-1].split("-")[-1] == str(n - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return ", ".join(parts)


def sensor_or_none(name: str) -> SensorSpec | None:
    """The registered sensor ``name``, or None (a contract may name a custom band set)."""
    try:
        return get_sensor(name)
    except SensorError:
        return None
