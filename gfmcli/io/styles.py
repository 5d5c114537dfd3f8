"""QGIS layer styles (``.qml``) written beside gfm's rasters, so QGIS shows them right on open.

QGIS looks for ``<name>.qml`` beside a raster ``<name>.tif`` and applies it as the layer's
default style. A class map gets a *paletted* renderer (each class id with its name as the label
and its contract colour, nodata 255 transparent); a probabilities file gets a *single-band
pseudocolour* renderer over band 1 with a graduated ramp from 0 to 1 (QGIS applies the band scale
0.01, so it sees probabilities, not percent). The colour table and the ``.aux.xml`` category
names stay in the GeoTIFF for GDAL and other readers; the style only adds what QGIS needs to
label the legend without the user's help.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from gfmcli.contract import ClassInfo

QGIS_VERSION = "3.28.0"
# A perceptually even ramp (viridis stops) for probabilities 0..1.
_RAMP = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")


def style_path(raster: str | Path) -> Path:
    """Where QGIS looks for a raster's default style: ``map.tif`` -> ``map.qml``."""
    raster = Path(raster)
    return raster.with_suffix(".qml")


def _hex(color: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in color[:3]))


def _document(renderer: ET.Element) -> str:
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    pipe.append(renderer)
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(
        root, encoding="unicode"
    )


def class_map_style(classes: Sequence[ClassInfo], nodata: int) -> str:
    """A paletted renderer: one entry per class (value, colour, label = class name)."""
    renderer = ET.Element(
        "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1", nodataColor=""
    )
    transparency = ET.SubElement(renderer, "rasterTransparency")
    single = ET.SubElement(transparency, "singleValuePixelList")
    ET.SubElement(
        single, "pixelListEntry", min=str(nodata), max=str(nodata), percentTransparent="100"
    )
    palette = ET.SubElement(renderer, "colorPalette")
    for c in classes:
        ET.SubElement(
            palette, "paletteEntry", value=str(c.id), color=_hex(c.color), alpha="255", label=c.name
        )
    return _document(renderer)


def probability_style(classes: Sequence[ClassInfo]) -> str:
    """A pseudocolour renderer over band 1 (the first class's probability), ramp 0..1."""
    first = classes[0].name if classes else "class 0"
    renderer = ET.Element(
        "rasterrenderer",
        type="singlebandpseudocolor",
        band="1",
        opacity="1",
        alphaBand="-1",
        nodataColor="",
        classificationMin="0",
        classificationMax="1",
    )
    ET.SubElement(renderer, "rasterTransparency")
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader")
    shader.set("colorRampType", "INTERPOLATED")
    shader.set("classificationMode", "1")
    shader.set("clip", "0")
    shader.set("minimumValue", "0")
    shader.set("maximumValue", "1")
    for i, color in enumerate(_RAMP):
        value = i / (len(_RAMP) - 1)
        label = f"{value:.2f}" + (f" (probability of {first})" if i == len(_RAMP) - 1 else "")
        ET.SubElement(shader, "item", value=f"{value:g}", color=color, alpha="255", label=label)
    return _document(renderer)
