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


def sidecar_paths(raster: str | Path, kind: str) -> list[Path]:
    """The sidecars gfm writes beside a ``class`` map (``.aux.xml`` and ``.qml``) or a
    ``probabilities`` file (``.qml``); other outputs have none."""
    if kind == "class":
        return [aux_path(raster), style_path(raster)]
    if kind == "probabilities":
        return [style_path(raster)]
    return []
