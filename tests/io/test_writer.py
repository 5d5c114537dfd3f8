"""Staged COG writers: validity, colour table, class names, overviews, atomicity, embeddings."""

from __future__ import annotations

import ctypes
import glob
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from gfmcli.contract import BandInfo, ClassInfo, ModelContract
from gfmcli.errors import OutputError, ValidationFailed
from gfmcli.io import cog_check
from gfmcli.io import writer as writer_module
from gfmcli.io.products import (
    class_map_writer,
    embedding_writer,
    probabilities_path,
    probability_writer,
    provenance_tags,
    quantise_probabilities,
)
from gfmcli.io.writer import RasterGrid, check_writable

CLASSES = (
    ClassInfo(0, "water", (0, 0, 255)),
    ClassInfo(1, "forest", (0, 128, 0)),
    ClassInfo(7, "urban", (200, 0, 0)),
)
GRID = RasterGrid(
    1100, 700, rasterio.crs.CRS.from_epsg(32632), Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0)
)


def _class_data() -> np.ndarray:
    """Fine stripes of 0 and 7 (averaging would invent ids 3/4) with a nodata corner."""
    rows, cols = np.mgrid[0 : GRID.height, 0 : GRID.width]
    data = np.where((rows // 1 + cols // 1) % 2 == 0, 0, 7).astype("uint8")
    data[:, 900:] = 1
    data[:50, :60] = 255
    return data


def _contract() -> ModelContract:
    # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
    return ModelContract(
        model_name="tiny", model_config={"dim": 8}, task="segmentation", sensor="sentinel2-l2a",
        bands=(BandInfo("B04", 664.6),), gsd=10.0, patch_size=8, classes=CLASSES,
    )  # fmt: skip


def _files(folder) -> list[str]:
    return sorted(os.listdir(folder))


def _gdalinfo(path) -> str | None:
    """gdalinfo's text for ``path`` through the libgdal that rasterio ships (None if absent)."""
    found = glob.glob(os.path.join(os.path.dirname(rasterio.__file__) + ".libs", "libgdal*"))
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    lib.GDALOpen.restype = ctypes.c_void_p
    lib.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.GDALInfoOptionsNew.restype = ctypes.c_void_p
    lib.GDALInfoOptionsNew.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.GDALInfo.restype = ctypes.c_void_p
    lib.GDALInfo.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.GDALClose.argtypes = [ctypes.c_void_p]
    lib.GDALInfoOptionsFree.argtypes = [ctypes.c_void_p]
    lib.VSIFree.argtypes = [ctypes.c_void_p]
    lib.GDALAllRegister()
    handle = lib.GDALOpen(str(path).encode(), 0)
    if not handle:
        return None
    options = lib.GDALInfoOptionsNew(None, None)
    text = lib.GDALInfo(handle, options)
    result = ctypes.string_at(text).decode()
    lib.VSIFree(text)
    lib.GDALInfoOptionsFree(options)
    lib.GDALClose(handle)
    return result


def test_class_map_is_a_valid_cog_with_colours_names_and_tags(tmp_path):
    path = tmp_path / "map.tif"
    data = _class_data()
    tags = provenance_tags(_contract(), ["gfm", "predict", "in put.tif", "-o", str(path)])
    with class_map_writer(path, GRID, CLASSES, tags=tags) as out:
        for row in range(0, GRID.height, 256):  # row blocks, as the blender flushes them
            block = data[row : row + 256]
            out.write((row, 0, block.shape[0], GRID.width), block)
        assert out.finalize() == path
    assert _files(tmp_path) == ["map.qml", "map.tif", "map.tif.aux.xml"]
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as src:
        assert (src.width, src.height, src.crs, src.transform) == (
            GRID.width,
            GRID.height,
            GRID.crs,
            GRID.transform,
        )
        assert src.dtypes == ("uint8",) and src.nodata == 255
        assert src.profile["tiled"] and src.block_shapes[0] == (512, 512)
        assert src.compression.name == "deflate"
        np.testing.assert_array_equal(src.read(1), data)
        cmap = src.colormap(1)
        assert cmap[0] == (0, 0, 255, 255) and cmap[7] == (200, 0, 0, 255)
        assert cmap[255][3] == 0
        assert src.overviews(1) == [2, 4]
        overview = src.read(1, out_shape=(350, 550))
        assert set(np.unique(overview)) <= {0, 1, 7, 255}  # mode, never an averaged 3 or 4
        assert src.tags(1)["CLASS_7"] == "urban"
        file_tags = src.tags()
        assert json.loads(file_tags["GFM_CLASSES"])[2] == {
            "id": 7,
            "name": "urban",
            "color": [200, 0, 0],
        }
        assert file_tags["GFM_MODEL"] == "tiny"
        assert "'in put.tif'" in file_tags["GFM_COMMAND"]
        assert json.loads(file_tags["GFM_CONTRACT"])["classes"][1]["name"] == "forest"
        assert file_tags["GFM_VERSION"] and file_tags["GFM_DATE"].startswith("20")
    categories = ET.parse(tmp_path / "map.tif.aux.xml").findall(".//Category")
    assert [c.text or "" for c in categories] == ["water", "forest", "", "", "", "", "", "urban"]
    info = _gdalinfo(path)
    if info is not None:
        assert "Categories:" in info and "7: urban" in info and "Color Table" in info


def test_exception_or_interrupt_leaves_nothing(tmp_path):
    path = tmp_path / "map.tif"
    for error in (RuntimeError("model crashed"), KeyboardInterrupt()):
        with pytest.raises(type(error)), class_map_writer(path, GRID, CLASSES) as out:
            out.write((0, 0, 10, GRID.width), np.zeros((10, GRID.width), "uint8"))
            raise error
        assert _files(tmp_path) == []


def test_invalid_cog_raises_and_leaves_nothing(tmp_path, monkeypatch):
    invalid = lambda *a, **k: (False, ["bad IFD"], [])  # noqa: E731
    monkeypatch.setattr(writer_module, "cog_validator", lambda: invalid)
    path = tmp_path / "map.tif"
    with (
        pytest.raises(ValidationFailed, match="not a valid COG: bad IFD"),
        class_map_writer(path, GRID, CLASSES) as out,
    ):
        out.write((0, 0, GRID.height, GRID.width), _class_data())
        out.finalize()
    assert _files(tmp_path) == []


def test_overwrite_replaces_and_creation_options_pass_through(tmp_path):
    path = tmp_path / "map.tif"
    path.write_bytes(b"old")
    small = RasterGrid(30, 20, GRID.crs, GRID.transform)
    with class_map_writer(path, small, CLASSES, creation_options={"compress": "lzw"}) as out:
        out.write((0, 0, 20, 30), np.ones((20, 30), "uint8"))
        out.finalize()
    with rasterio.open(path) as src:
        assert src.compression.name == "lzw" and (src.read(1) == 1).all()
    with class_map_writer(path, small, CLASSES) as out, pytest.raises(ValueError, match="outside"):
        out.write((15, 0, 10, 30), np.ones((10, 30), "uint8"))


def test_the_cog_is_compressed_on_every_core_into_the_same_bytes(tmp_path, monkeypatch):
    threads = []
    copy = writer_module.rasterio.shutil.copy

    def spy(*args, **options):
        threads.append(options.get("NUM_THREADS"))
        return copy(*args, **options)

    monkeypatch.setattr(writer_module.rasterio.shutil, "copy", spy)
    data = _class_data()
    for name, options in (("all.tif", None), ("one.tif", {"num_threads": "1"})):
        with class_map_writer(tmp_path / name, GRID, CLASSES, creation_options=options) as out:
            out.write((0, 0, GRID.height, GRID.width), data)
            out.finalize()
    assert threads == ["ALL_CPUS", "1"]  # --co NUM_THREADS still has the last word
    assert (tmp_path / "all.tif").read_bytes() == (tmp_path / "one.tif").read_bytes()


def test_bad_classes_and_unwritable_folder(tmp_path):
    with pytest.raises(OutputError, match="do not fit a uint8 map"):
        class_map_writer(tmp_path / "m.tif", GRID, (ClassInfo(255, "x"),))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write there"):
        check_writable(blocker / "sub" / "map.tif")
    check_writable(tmp_path / "new" / "map.tif")
    assert (tmp_path / "new").is_dir() and _files(tmp_path / "new") == []


def test_probabilities_uint8_percent(tmp_path):
    probs = np.stack([np.full((20, 30), p) for p in (0.2, 0.554, 0.246)])
    valid = np.ones((20, 30), bool)
    valid[0, 0] = False
    quantised = quantise_probabilities(probs, valid)
    assert quantised.dtype == np.uint8
    assert tuple(quantised[:, 1, 1]) == (20, 55, 25) and (quantised[:, 0, 0] == 255).all()
    path = probabilities_path(tmp_path / "map.tif")
    assert path.name == "map.probs.tif"
    small = RasterGrid(30, 20, GRID.crs, GRID.transform)
    with probability_writer(path, small, CLASSES) as out:
        out.write((0, 0, 20, 30), quantised)
        out.finalize()
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as src:
        assert src.count == 3 and src.nodata == 255 and src.scales == (0.01, 0.01, 0.01)
        assert src.descriptions[2] == "probability of urban (%)"
        np.testing.assert_array_equal(src.read(), quantised)


@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_embeddings_on_the_patch_grid(tmp_path, precision):
    grid = RasterGrid(53, 37, GRID.crs, GRID.transform)
    path = tmp_path / "emb.tif"
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 5, 7)).astype("float32")
    with embedding_writer(path, grid, patch_size=8, dim=6, precision=precision) as out:
        assert (out.grid.width, out.grid.height) == (7, 5)
        out.write((0, 0, 5, 7), values)
        out.finalize()
    assert cog_validate(str(path), quiet=True)[0]
    with rasterio.open(path) as src:
        assert src.transform == GRID.transform @ Affine.scale(8)
        assert src.count == 6 and src.tags()["GFM_PATCH_SIZE"] == "8"
        stored = src.read()
    if precision == "float16":  # exactly the half floats nearest the values
        np.testing.assert_array_equal(stored, values.astype("float16").astype("float32"))
    else:
        np.testing.assert_array_equal(stored, values)


def test_half_precision_embeddings_take_about_half_the_bytes(tmp_path):
    grid = RasterGrid(200, 200, GRID.crs, GRID.transform)
    values = np.random.default_rng(0).normal(size=(16, 25, 25)).astype("float32")
    sizes = {}
    for precision in ("float32", "float16"):
        path = tmp_path / f"{precision}.tif"
        with embedding_writer(path, grid, patch_size=8, dim=16, precision=precision) as out:
            out.write((0, 0, 25, 25), values)
            out.finalize()
        sizes[precision] = path.stat().st_size
    assert sizes["float16"] < 0.75 * sizes["float32"], sizes


@pytest.mark.parametrize("size", [(512, 600), (1024, 1100)])
def test_one_tile_wide_maps_are_valid_cogs(tmp_path, size):
    """rio-cogeo calls an image (or overview) exactly one 512 tile wide "not tiled"."""
    width, height = size
    grid = RasterGrid(width, height, GRID.crs, GRID.transform)
    path = tmp_path / "map.tif"
    data = (np.arange(width * height).reshape(height, width) % 3).astype("uint8")
    with class_map_writer(path, grid, CLASSES) as out:
        out.write((0, 0, height, width), data)
        out.finalize()
    with rasterio.open(path) as src:
        assert src.block_shapes[0] == (512, 512)
        np.testing.assert_array_equal(src.read(1), data)
        overviews = src.overviews(1)
    assert cog_check._tiff_ifds_tiled(path) == [True] * (1 + len(overviews))
    _, errors, _ = cog_validate(str(path), quiet=True)
    assert any("not tiled" in e for e in errors)  # the false positive this guards against
    assert cog_check.real_cog_errors(path, errors) == []


def test_embeddings_on_a_one_tile_wide_patch_grid(tmp_path):
    grid = RasterGrid(512 * 4, 600 * 4, GRID.crs, GRID.transform)
    path = tmp_path / "emb.tif"
    values = np.random.default_rng(1).normal(size=(2, 600, 512)).astype("float32")
    with embedding_writer(path, grid, patch_size=4, dim=2) as out:
        out.write((0, 0, 600, 512), values)
        out.finalize()
    with rasterio.open(path) as src:
        np.testing.assert_array_equal(src.read(), values)


# The test writes a file without georeferencing on purpose; rasterio warns when it does.
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_not_tiled_errors_stay_for_striped_files(tmp_path):
    path = tmp_path / "strips.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=512, height=600, count=1, dtype="uint8", blockysize=512
    ) as dst:
        dst.write(np.zeros((1, 600, 512), "uint8"))
    assert cog_check._tiff_ifds_tiled(path) == [False]
    error = "The file is greater than 512xH or 512xW, but is not tiled"
    assert cog_check.real_cog_errors(path, [error]) == [error]
    (tmp_path / "text.tif").write_text("not a tiff")
    assert cog_check.real_cog_errors(tmp_path / "text.tif", [error]) == [error]


def test_gdal_errors_name_the_creation_option_and_leave_nothing(tmp_path):
    path = tmp_path / "map.tif"
    small = RasterGrid(30, 20, GRID.crs, GRID.transform)
    with (
        pytest.raises(OutputError, match=r"map.tif: writing the COG failed .*BLOCKSIZE=100"),
        class_map_writer(path, small, CLASSES, creation_options={"blocksize": "100"}) as out,
    ):
        out.write((0, 0, 20, 30), np.ones((20, 30), "uint8"))
        out.finalize()
    assert _files(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_while_staging_is_an_output_error(tmp_path):
    path = tmp_path / "map.tif"
    os.symlink("/dev/full", writer_module.partial_path(path, ".staged"))
    with (
        pytest.raises(OutputError, match=r"map\.tif"),
        class_map_writer(path, GRID, CLASSES) as out,
    ):
        out.write((0, 0, GRID.height, GRID.width), _class_data())
        out.finalize()
    assert _files(tmp_path) == []


def test_failed_block_write_says_no_space(tmp_path):
    class FullDisk:
        """The staged dataset as seen when the disk fills up mid-run."""

        def __init__(self, dataset):
            self.dataset, self.closed = dataset, False

        def write(self, *args, **kwargs):
            raise rasterio.errors.RasterioIOError("Write failed: No space left on device")

        def close(self):
            self.closed = True
            self.dataset.close()

    path = tmp_path / "map.tif"
    with (
        pytest.raises(OutputError, match="no space left on"),
        class_map_writer(path, GRID, CLASSES) as out,
    ):
        out._dataset = FullDisk(out._dataset)
        out.write((0, 0, 10, GRID.width), np.zeros((10, GRID.width), "uint8"))
    assert _files(tmp_path) == []


@pytest.mark.parametrize("failing", ["map.tif", "map.tif.aux.xml"])
def test_sidecar_appears_only_with_the_map(tmp_path, monkeypatch, failing):
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == failing:
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(writer_module.os, "replace", replace)
    path = tmp_path / "map.tif"
    with (
        pytest.raises(OutputError, match="Permission denied"),
        class_map_writer(path, GRID, CLASSES) as out,
    ):
        out.write((0, 0, GRID.height, GRID.width), _class_data())
        out.finalize()
    assert _files(tmp_path) == []
