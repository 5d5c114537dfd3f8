"""Where a band's ``scale``/``offset`` come from (``physical = DN * scale + offset``).

One rule for ``predict``, ``embed`` and ``tile``, highest priority first (docs/formats.md):

1. ``--scale``/``--offset``: one value for every band or a comma list, one per file band in file
   order. ``--scale`` alone means offset 0; ``--offset`` alone keeps the scale found below.
2. The file's own GDAL band scale/offset: any value other than GDAL's default 1/0, and an
   explicit 1/0 where the file writes one (a GeoTIFF's GDAL_METADATA item, a VRT's or an
   ``.aux.xml``'s ``<Scale>``/``<Offset>``). GDAL itself never writes 1/0, so for most files
   "1/0" means "not set".
3. Tags that agencies write: Sentinel-2's ``BOA_QUANTIFICATION_VALUE``/``BOA_ADD_OFFSET`` (L2A)
   and ``QUANTIFICATION_VALUE``/``RADIO_ADD_OFFSET`` (L1C), ``reflectance = (DN + ADD_OFFSET) /
   QUANTIFICATION_VALUE``; netCDF-style band tags ``scale_factor``/``add_offset``.
4. The model's contract (the file is the model's own product), else the sensor's entry in
   ``gfm sensors`` (per band for Landsat Level-1 DN), else reflectance x 10000 for integer data
   and 1/0 for floats.

The units check (:func:`gfmcli.io.values.check_values`) then verifies the result on a sample.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

from gfmcli.errors import InputError

CLI = "--scale/--offset"
FILE = "the file's scale/offset"
TAGS = "the file's tags"
MODEL = "the model's contract"
SENSOR = "the sensor's entry"
SENSOR_GIVEN = "--sensor"
DEFAULT = "the default"
# Sources the user or the file stated: a contradiction with the data is an error, not a guess.
EXPLICIT_SOURCES = (CLI, FILE, TAGS, SENSOR_GIVEN)

_GDAL_METADATA_TAG = 42112
_TAG_PAIRS = (
    ("BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET"),
    ("QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET"),
)


def per_band(values: tuple[float, ...] | None, count: int, option: str, path: str) -> list:
    """One value per file band from a single value or a list as long as the file's bands."""
    if values is None:
        return [None] * count
    if len(values) == 1:
        return [values[0]] * count
    if len(values) != count:
        raise InputError(
            f"{path} has {count} bands but {option} lists {len(values)} values; give one value "
            "for all bands or one per file band, in file order"
        )
    return list(values)


def _tiff_gdal_metadata(path: Path) -> str | None:
    """The GDAL_METADATA XML of a GeoTIFF's first image, read from the TIFF directory."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or len(head) < 16:
                return None
            version = struct.unpack(order + "H", head[2:4])[0]
            if version == 42:
                f.seek(struct.unpack(order + "I", head[4:8])[0])
                count, size, fmt, at = struct.unpack(order + "H", f.read(2))[0], 12, "HHII", 8
            elif version == 43:
                f.seek(struct.unpack(order + "Q", head[8:16])[0])
                count, size, fmt, at = struct.unpack(order + "Q", f.read(8))[0], 20, "HHQQ", 12
            else:
                return None
            if count > 4096:
                return None
            table = f.read(count * size)
            for i in range(count):
                entry = table[i * size : (i + 1) * size]
                tag, _, length, value = struct.unpack(order + fmt, entry)
                if tag != _GDAL_METADATA_TAG:
                    continue
                if length <= size - at:
                    raw = entry[at : at + length]
                else:
                    f.seek(value)
                    raw = f.read(min(length, 1 << 22))
                return raw.rstrip(b"\0").decode("utf-8", "replace")
    except (OSError, struct.error):
        return None
    return None


def _xml_items(text: str | None, count: int, out: list[list]) -> None:
    """GDAL_METADATA ``<Item role="scale|offset" sample="i">`` values into ``out``."""
    try:
        root = ET.fromstring(text) if text else None
    except ET.ParseError:
        return
    for item in [] if root is None else root.iter("Item"):
        role, sample = item.get("role"), item.get("sample")
        if role in ("scale", "offset") and sample and sample.isdigit() and int(sample) < count:
            try:
                out[int(sample)][0 if role == "scale" else 1] = float(item.text or "")
            except ValueError:
                continue


def _band_xml(path: Path, element: str, count: int, out: list[list]) -> None:
    """``<Scale>``/``<Offset>`` of each ``<element band="n">`` in a VRT or ``.aux.xml``."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return
    for band in root.iter(element):
        number = band.get("band", "")
        if not number.isdigit() or not 1 <= int(number) <= count:
            continue
        for slot, name in ((0, "Scale"), (1, "Offset")):
            node = band.find(name)
            if node is not None:
                try:
                    out[int(number) - 1][slot] = float(node.text or "")
                except ValueError:
                    continue


def explicit_file_scaling(
    path: str, scales: Sequence[float], offsets: Sequence[float]
) -> list[tuple[float | None, float | None]]:
    """Rule 2 per band: ``(scale, offset)`` the file states, None where it states nothing."""
    count = len(scales)
    found: list[list] = [[None, None] for _ in range(count)]
    local = Path(path)
    # a local file (io.paths.is_gdal_path's rule; this module sits below io)
    if not path.startswith("/vsi") and "://" not in path and local.is_file():
        if local.suffix.lower() in (".tif", ".tiff"):
            _xml_items(_tiff_gdal_metadata(local), count, found)
        elif local.suffix.lower() == ".vrt":
            _band_xml(local, "VRTRasterBand", count, found)
        aux = local.with_name(local.name + ".aux.xml")
        if aux.is_file():
            _band_xml(aux, "PAMRasterBand", count, found)
    for i, (scale, offset) in enumerate(zip(scales, offsets, strict=True)):
        if scale != 1.0 and found[i][0] is None:
            found[i][0] = float(scale)
        if offset != 0.0 and found[i][1] is None:
            found[i][1] = float(offset)
    return [(s, o) for s, o in found]


def tag_scaling(
    tags: Mapping[str, str], band_tags: Mapping[str, str]
) -> tuple[float, float] | None:
    """Rule 3: ``(scale, offset)`` from ESA's quantification tags or ``scale_factor`` band tags
    (band tags win over dataset tags), else None."""
    for source in (band_tags, tags):
        lowered = {k.upper(): v for k, v in source.items()}
        for value_key, offset_key in _TAG_PAIRS:
            if value_key in lowered:
                try:
                    quantification = float(lowered[value_key])
                    add = float(lowered.get(offset_key, 0) or 0)
                except ValueError:
                    continue
                if quantification > 0:
                    return 1.0 / quantification, add / quantification
        if "SCALE_FACTOR" in lowered or "ADD_OFFSET" in lowered:
            try:
                return float(lowered.get("SCALE_FACTOR", 1)), float(lowered.get("ADD_OFFSET", 0))
            except ValueError:
                continue
    return None
