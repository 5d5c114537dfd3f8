"""Rules 2 and 3 of the band rulebook (:mod:`gfmcli.spectral`): which sensor and product a file is.

From the file's tells: tags naming a platform, band labels that exist on one family only, the
pixel size; then the product within the family (Sentinel-2 level, Landsat by data type).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from gfmcli.errors import BandContractError, SensorError
from gfmcli.sensors import BandSpec, SensorSpec, get_sensor, list_sensors
from gfmcli.spectral.labels import FileFacts, common_name_wavelength, match_label, parse_wavelength

# Pixel size that separates a Sentinel-2 stack (10/20 m) from a Landsat one (30 m).
S2_LANDSAT_GSD_SPLIT_M = 25.0
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
_S2_LEVELS = {
    "l1c": re.compile(r"L1C|MSI1C|level[\s_-]*1C", re.IGNORECASE),
    "l2a": re.compile(r"L2A|MSI2A|level[\s_-]*2A", re.IGNORECASE),
}
# Families that band labels alone may point to (vnir4 and the like are only named by --sensor).
_INFERRED_FAMILIES = ("sentinel2", "landsat8", "landsat7", "landsat5", "enmap", "sentinel1")
FAMILY_DEFAULT = {
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
# Landsat products by the words of a level tag (``PRODUCT: Collection 1 Level-2 surface
# reflectance``), tried in this order: reflectance above the atmosphere, Collection 1 Level-2
# (int16 x 10000), any other Level-2 (Collection 2's scaling), Level-1 DN.
_COLLECTION_1 = r"(collection[\s_-]*1|\bC1\b)"
_LEVEL_2 = r"(level[\s_-]*2|\bL2(SP|SR)?\b)"
_LANDSAT_LEVELS = (
    ("-toa", re.compile(r"\bTOA\b|top[\s_-]*of[\s_-]*(the[\s_-]*)?atmosphere", re.IGNORECASE)),
    ("-c1", re.compile(f"{_COLLECTION_1}.*{_LEVEL_2}|{_LEVEL_2}.*{_COLLECTION_1}", re.IGNORECASE)),
    ("", re.compile(_LEVEL_2, re.IGNORECASE)),
    ("-l1", re.compile(r"level[\s_-]*1|\bL1(TP|GT|GS|T)?\b", re.IGNORECASE)),
)
# The data types each tagged product is shipped in (float: reflectance already converted).
_LANDSAT_LEVEL_DTYPES = {
    "-toa": {"float"},
    "-c1": {"int16", "uint16"},
    "": {"uint16", "int16"},
    "-l1": {"uint8", "uint16"},
}


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


def _product_and_how(
    family: str, facts: FileFacts, labels: Sequence[str], default: str | None
) -> tuple[str, bool]:
    """Rule 3: the product of ``family`` this file is, and whether the file itself says so (a level
    tag, Sentinel-2's B10, a family of one product) rather than its data type or the default:
    a Landsat ``uint16`` file is Collection 2 Level-2 by default, but Level-1 DN look the same."""
    if family == "sentinel2":
        if any(get_sensor("sentinel2-l1c").band("B10").matches(x) for x in labels if x):
            return "sentinel2-l1c", True
        level = _tagged_level(facts.tags, _S2_LEVELS.items())
        if level is not None:
            return f"sentinel2-{level}", True
        if default and get_sensor(default).family == "sentinel2":
            return get_sensor(default).name, False
        return "sentinel2-l2a", False
    if family.startswith("landsat"):
        dtype = facts.dtypes[0] if facts.dtypes else "uint16"
        kind = "float" if dtype.startswith("float") else dtype
        tagged = _landsat_tag_level(facts.tags, kind)
        if tagged is not None:
            return f"{FAMILY_DEFAULT[family]}{tagged}", True
        return f"{FAMILY_DEFAULT[family]}{_LANDSAT_BY_DTYPE.get(kind, '')}", False
    return FAMILY_DEFAULT[family], True


def _landsat_tag_level(tags: Mapping[str, str], kind: str) -> str | None:
    """The product suffix a Landsat level tag names, where the data type agrees with it (a
    bare Level-2 on int16 values is Collection 1, x 10000); None without a tag, or when the
    data type says otherwise (then the data type decides, with a warning)."""
    suffix = _tagged_level(tags, _LANDSAT_LEVELS)
    if suffix is None:
        return None
    if suffix == "" and kind == "int16":
        return "-c1"
    return suffix if kind in _LANDSAT_LEVEL_DTYPES[suffix] else None


def _tagged_level(
    tags: Mapping[str, str], levels: Iterable[tuple[str, re.Pattern[str]]]
) -> str | None:
    """The level a level tag names (the tags of ``_LEVEL_KEYS``: ``PRODUCT``,
    ``PROCESSING_LEVEL`` ...): for the first such tag that matches, the first of ``levels``
    (name, pattern) its value matches; None when none does."""
    levels = tuple(levels)
    for key, value in tags.items():
        if _LEVEL_KEYS.match(key):
            for level, pattern in levels:
                if pattern.search(str(value)):
                    return level
    return None


TAGS_NAME_IT = "its tags name it"


def _choices(families: Sequence[str]) -> str:
    return " / ".join(f"--sensor {FAMILY_DEFAULT[f]}" for f in families)


def infer_sensor(
    facts: FileFacts, labels: Sequence[str], default: str | None
) -> tuple[SensorSpec | None, str, bool]:
    """Rule 2 and 3: the file's sensor from its tells, a note saying why, and whether the file
    named it (its tags the sensor, the file itself the product: then the note is a detail, not
    a guess to warn about); raises BandContractError when the tells leave several sensors whose
    band names differ."""
    used = [x for x in labels if x]
    tagged = tag_families(facts.tags)
    families = [f for f in _INFERRED_FAMILIES if all(_fits(f, x) for x in used)]
    why = ""
    if len(tagged) == 1:
        (family,) = tagged
        if all(_fits(family, x) for x in used):
            why = TAGS_NAME_IT
            families = [family]
        else:
            raise BandContractError(
                f"{facts.path}: its tags say {_FAMILY_TITLE[family]} but its band descriptions "
                f"({', '.join(used[:4])}…) are not {_FAMILY_TITLE[family]} band names; pass "
                "--sensor NAME (see `gfm sensors`) or --bands"
            )
    if not families:  # some label fits no sensor: read against the model's, which names it
        return (sensor_or_none(default) if default else None), "", False
    if len(families) > 1 and facts.gsd_m is not None:
        landsat_like = facts.gsd_m >= S2_LANDSAT_GSD_SPLIT_M
        by_gsd = [f for f in families if (f == "sentinel2") != landsat_like or f == "enmap"]
        if by_gsd and len(by_gsd) < len(families):
            families, why = by_gsd, f"its pixels are {facts.gsd_m:.3g} m"
    if len(families) > 1:
        default_family = get_sensor(default).family if default else ""
        if all(_neutral(x) for x in used):
            if default_family in families:
                product, _ = _product_and_how(default_family, facts, used, default)
                return get_sensor(product), "", False
            return None, "", False
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
    product, stated = _product_and_how(family, facts, used, default)
    told = why == TAGS_NAME_IT and stated  # the tags name the sensor and the file its product
    if why == TAGS_NAME_IT and not stated:  # the product is a guess: say whence
        dtype = facts.dtypes[0] if facts.dtypes else "?"
        guess = f"its {dtype} data type" if family.startswith("landsat") else "the default level"
        why = f"its tags name {_FAMILY_TITLE[family]}, {guess} the product"
    if not why:
        why = "its band names"
    return get_sensor(product), f"read as {product} ({why})", told


def sensor_or_none(name: str) -> SensorSpec | None:
    """The registered sensor ``name``, or None (a contract may name a custom band set)."""
    try:
        return get_sensor(name)
    except SensorError:
        return None
