"""QGIS ``.qml`` styles beside class maps and probabilities, and what GDAL's tools see."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from affine import Affine

from gfmcli.contract import ClassInfo
from gfmcli.errors import OutputError
from gfmcli.io import writer as writer_module
from gfmcli.io.products import class_map_writer, probability_writer
from gfmcli.io.styles import style_path
from gfmcli.io.writer import RasterGrid

CLASSES = (ClassInfo(0, "water", (0, 0, 255)), ClassInfo(3, "bare soil", (180, 140, 90)))
GRID = RasterGrid(40, 30, rasterio.crs.CRS.from_epsg(32632), Affine(10, 0, 5e5, 0, -10, 5e6))
GDAL_TOOLS = shutil.which("gdalinfo") is not None and shutil.which("ogrinfo") is not None
NO_GDAL = "GDAL command-line tools (gdalinfo, ogrinfo) absent: apt-get install gdal-bin"


def _write_class_map(path):
    data = np.where(np.arange(40)[None, :] < 20, 0, 3).repeat(30, axis=0).astype("uint8")
    with class_map_writer(path, GRID, CLASSES) as out:
        out.write((0, 0, 30, 40), data)
        out.finalize()


def test_class_map_gets_a_paletted_qml_with_names_and_colours(tmp_path):
    path = tmp_path / "map.tif"
    _write_class_map(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif", "map.tif.aux.xml"]
    root = ET.parse(style_path(path)).getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = [
        (e.get("value"), e.get("color"), e.get("label")) for e in renderer.iter("paletteEntry")
    ]
    assert entries == [("0", "#0000ff", "water"), ("3", "#b48c5a", "bare soil")]
    transparent = renderer.find("rasterTransparency/singleValuePixelList/pixelListEntry")
    assert transparent.get("min") == "255" and transparent.get("percentTransparent") == "100"


def test_probabilities_get_a_graduated_ramp(tmp_path):
    path = tmp_path / "map.probs.tif"
    with probability_writer(path, GRID, CLASSES) as out:
        out.write((0, 0, 30, 40), np.full((2, 30, 40), 50, "uint8"))
        out.finalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.probs.qml", "map.probs.tif"]
    renderer = ET.parse(tmp_path / "map.probs.qml").getroot().find("pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor"
    shader = renderer.find("rastershader/colorrampshader")
    assert shader.get("colorRampType") == "INTERPOLATED"
    values = [float(item.get("value")) for item in shader.iter("item")]
    assert values[0] == 0.0 and values[-1] == 1.0 and values == sorted(values)


@pytest.mark.parametrize("failing", ["map.tif", "map.tif.aux.xml", "map.qml"])
def test_no_sidecar_without_its_map(tmp_path, monkeypatch, failing):
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == failing:
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(writer_module.os, "replace", replace)
    with pytest.raises(OutputError, match="Permission denied"):
        _write_class_map(tmp_path / "map.tif")
    assert list(tmp_path.iterdir()) == []


def test_resume_counts_the_style(predict_tiny, s2_scene, tmp_path):
    src = s2_scene()
    out = tmp_path / "maps"
    assert predict_tiny(str(src), "-o", str(out), "--probabilities").exit_code == 0
    for name in ("scene.qml", "scene.probs.qml", "scene.tif.aux.xml"):
        assert (out / name).is_file(), name
    (out / "scene.probs.qml").unlink()  # as if killed between the renames
    again = predict_tiny(str(src), "-o", str(out), "--probabilities")
    assert again.stdout.split() == [str(out / "scene.tif"), str(out / "scene.probs.tif")]
    assert (out / "scene.probs.qml").is_file()
    before = (out / "scene.tif").stat().st_mtime_ns
    third = predict_tiny(str(src), "-o", str(out), "--probabilities")
    assert third.stdout.split() == again.stdout.split(), "skipped outputs are listed too"
    assert (out / "scene.tif").stat().st_mtime_ns == before, "complete: skipped"


def test_a_raster_gfm_did_not_make_is_never_redone(predict_tiny, s2_scene, tmp_path):
    src = s2_scene()
    out = tmp_path / "maps"
    out.mkdir()
    theirs = out / "scene.tif"
    shutil.copy(src, theirs)  # someone's own file at the output path, without sidecars
    before = theirs.read_bytes()
    result = predict_tiny(str(src), "-o", str(out))
    assert result.exit_code == 5 and result.stdout.strip() == ""
    assert "carries no gfm provenance tag" in result.stderr and "--overwrite" in result.stderr
    assert theirs.read_bytes() == before and not (out / "scene.qml").exists()


@pytest.mark.skipif(not GDAL_TOOLS, reason=NO_GDAL)
def test_gdalinfo_sees_class_names_and_colour_table(predict_tiny, s2_scene, tmp_path):
    out = tmp_path / "map.tif"
    assert predict_tiny(str(s2_scene()), "-o", str(out)).exit_code == 0
    proc = subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    band = json.loads(proc.stdout)["bands"][0]
    assert band["categories"][:3] == ["water", "trees", "other"]
    entries = band["colorTable"]["entries"]
    assert entries[1] == [0, 128, 0, 255] and entries[255][3] == 0
    assert band["noDataValue"] == 255


@pytest.mark.skipif(not GDAL_TOOLS, reason=NO_GDAL)
def test_ogrinfo_reads_the_geopackages_without_warnings(
    gfm, tiny_model, predict_tiny, s2_scene, tmp_path
):
    src = s2_scene()
    polygons, vectors = tmp_path / "map.gpkg", tmp_path / "emb.gpkg"
    assert predict_tiny(str(src), "-o", str(polygons)).exit_code == 0
    embed = gfm("embed", "-m", tiny_model, src, "-o", vectors, "--window", "32", "--overlap", "0")
    assert embed.exit_code == 0, embed.output
    for path, layer, field in (
        (polygons, "classes", "class_name"),
        (vectors, "embeddings", "e000"),
    ):
        proc = subprocess.run(
            ["ogrinfo", "-ro", "-al", "-so", str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip() == "", f"{path.name}: {proc.stderr}"
        assert f"Layer name: {layer}" in proc.stdout and field in proc.stdout
        assert "Feature Count: 0" not in proc.stdout
