"""The sidecar files beside gfm's rasters: the PAM ``.aux.xml`` with class names and the QGIS
``.qml`` style. A map's sidecars are staged and renamed right after it (io/writer.py); resume
redoes a gfm map whose sidecars are missing (``gfmcli.io.products.missing_sidecars``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from gfmcli.io.styles import style_path


def aux_path(raster: str | Path) -> Path:
    """GDAL's PAM sidecar of a raster: ``map.tif`` -> ``map.tif.aux.xml``."""
    raster = Path(raster)
    return raster.with_name(raster.name + ".aux.xml")


def aux_xml(names: Sequence[str]) -> str:
    """GDAL's PAM sidecar with the category names (gdalinfo "Categories", QGIS legends).

    Staged by the writer and renamed to ``<map>.tif.aux.xml`` right after the map itself.
    """
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    categories = ET.SubElement(band, "CategoryNames")
    for name in names:
        ET.SubElement(categories, "Category").text = name
    return ET.tostring(root, encoding="unicode")


def _category_names(text: str) -> list[str] | None:
    """Band 1's category names in a PAM document; None when it is not one."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    band = root.find("PAMRasterBand[@band='1']") if root.tag == "PAMDataset" else None
    categories = band.find("CategoryNames") if band is not None else None
    if categories is None:
        return None
    return [item.text or "" for item in categories.findall("Category")]


def holds_what_gfm_writes(sidecar: Path, text: str) -> bool:
    """True when ``sidecar`` holds what gfm writes there (``text``), so replacing it loses
    nothing: a ``.qml`` byte for byte (a style the user saved from QGIS differs), a ``.aux.xml``
    by its category names alone, because GDAL and QGIS add statistics and histograms to the
    PAM file of a map they open."""
    try:
        found = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if sidecar.name.endswith(".aux.xml"):
        names = _category_names(found)
        return names is not None and names == _category_names(text)
    return found == text


def sidecar_paths(raster: str | Path, kind: str) -> list[Path]:
    """The sidecars gfm writes beside a ``class`` map (``.aux.xml`` and ``.qml``) or a
    ``probabilities`` file (``.qml``); other outputs have none."""
    if kind == "class":
        return [aux_path(raster), style_path(raster)]
    if kind == "probabilities":
        return [style_path(raster)]
    return []
