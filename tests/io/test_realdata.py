"""The band rules and value checks on the real files of ../shared/realdata (skipped without it).

Every real image in its true band order must resolve and pass the value checks with the flags
its ``gfm predict`` command uses (the table in bench/realdata_checks.py); the two files refused
by design must stay refused; a reversed stack of a vegetated scene must be refused.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio

from gfmcli.errors import BandContractError, InputError
from gfmcli.io.bands import resolve_bands
from gfmcli.io.reader import open_raster, probe_raster
from gfmcli.io.values import check_values
from gfmcli.model.checkpoint import load_model

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
pytestmark = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"real data not found at {REALDATA} (optional, read-only set)"
)
NOT_IMAGES = re.compile(
    r"(_mask\.tif|cloudmask_\d|/labels/|lulc\.tif|classmap|landcover_map|labelled_|landclass)"
)
FLAGS = {
    "satsense_s2/section_2_sentinel.tif": {"sensor": "sentinel2-l2a-pre2022"},
    "satsense_s2/section_2_sentinel_l1c.tif": {"sensor": "sentinel2-l1c-pre2022"},
    "spyndex/s2_4band_10m.tif": {"sensor": "sentinel2-l2a-pre2022", "gsd": 10.0},
    "ukis_csmask/sentinel2.tif": {"sensor": "sentinel2-l1c-pre2022", "gsd": 30.0},
    "ukis_csmask/landsat7.tif": {"gsd": 30.0},
    "ukis_csmask/landsat5.tif": {"gsd": 30.0},
    "xarray_spatial_s2/s2_6band_10m.tif": {"sensor": "sentinel2-l2a-pre2022"},
}
REFUSED = {
    "rio_cloudmask_l8/LC80130312015295LGN00_bt.tif": "is thermal but model",
    "xarray_spatial_s2/s2_swir_20m.tif": "at least 3 are needed",
}


def _images() -> list[str]:
    if not REALDATA.is_dir():
        return []
    return sorted(
        p.relative_to(REALDATA).as_posix()
        for p in REALDATA.rglob("*.tif")
        if not NOT_IMAGES.search(p.as_posix())
    )


@pytest.fixture(scope="module")
def contract():
    return load_model("landcover-tiny")[1]


def _check(path: Path, contract, **flags):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open_raster(path) as src:
            mapping = resolve_bands(src, contract, **flags)
            return check_values(src, mapping, probe_raster(src, mapping))


@pytest.mark.parametrize("name", _images())
def test_real_file_in_true_order_maps(name, contract):
    if name in REFUSED:
        with pytest.raises(BandContractError, match=REFUSED[name]):
            _check(REALDATA / name, contract)
        return
    checked = _check(REALDATA / name, contract, **FLAGS.get(name, {}))
    assert len(checked.bands) >= 3
    assert not any("band order looks wrong" in w for w in checked.warnings)


def test_the_real_images_are_all_there():
    assert len(_images()) == 42


def test_reversed_real_stack_is_refused(tmp_path, contract):
    source = REALDATA / "scikit_eo_l8" / "LC08_232066_20190727_sr.tif"
    with rasterio.open(source) as src:
        profile, data = src.profile, src.read()
        descriptions, tags = src.descriptions, src.tags()
    reversed_copy = tmp_path / "reversed.tif"
    with rasterio.open(reversed_copy, "w", **profile) as dst:
        dst.write(data[::-1])
        for i, text in enumerate(descriptions):
            dst.set_band_description(i + 1, text)
        dst.update_tags(**tags)
    with pytest.raises(InputError, match=r"band order looks wrong.*reversed order"):
        _check(reversed_copy, contract)
    with rasterio.open(source) as src:
        assert np.array_equal(src.read(), data)  # the real file is untouched


def _bigearthnet_patches() -> list[str]:
    if not REALDATA.is_dir():
        return []
    return sorted(p.name for p in (REALDATA / "bigearthnet_s2").iterdir() if p.is_dir())


@pytest.mark.parametrize("patch", _bigearthnet_patches())
def test_sentinel2_patch_stacked_as_landsat8_passes_the_order_check(tmp_path, contract, patch):
    """Users stack Sentinel-2 bands as Landsat 8 (B01 B02 B03 B04 B8A B11 B12 as SR_B1..SR_B7);
    a small, uniform vegetated patch in that true order must map, not be refused as shuffled
    (a patch with little vegetation contrast may still get a warning)."""
    with rasterio.open(REALDATA / "bigearthnet_s2" / patch / f"{patch}.tif") as src:
        profile = src.profile
        names = ("B01", "B02", "B03", "B04", "B8A", "B11", "B12")
        data = src.read([src.descriptions.index(n) + 1 for n in names]).astype(np.float64)
    dn = np.round((data * 1e-4 + 0.2) / 2.75e-5).astype(np.uint16)
    stack = tmp_path / "l8.tif"
    profile.update(count=7)
    with rasterio.open(stack, "w", **profile) as dst:
        dst.write(dn)
        dst.descriptions = tuple(f"SR_B{i}" for i in range(1, 8))
    checked = _check(stack, contract, sensor="landsat8")  # raises InputError when refused
    assert len(checked.bands) == 7


def test_open_water_crops_are_not_refused_as_shuffled(tmp_path, contract):
    """Over open water the band-to-band correlations are noise: the order check may warn but
    must not refuse a true-order file (Long Island Landsat 8 TOA, ocean-only 32 x 32 crops)."""
    source = REALDATA / "rio_cloudmask_l8" / "LC80130312015295LGN00_toa.tif"
    with rasterio.open(source) as src:
        profile, data, descriptions = src.profile, src.read(), src.descriptions
    profile.update(width=32, height=32, blockxsize=16, blockysize=16, tiled=True)
    crops = 0
    for y in range(0, data.shape[1] - 32, 32):
        for x in range(0, data.shape[2] - 32, 32):
            crop = data[:, y : y + 32, x : x + 32]
            if (crop == 0).any() or np.median(crop[4]) > 0.05 or crops == 60:
                continue  # fill, not open water, or enough crops
            path = tmp_path / f"ocean_{y}_{x}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(crop)
                dst.descriptions = descriptions
            _check(path, contract, sensor="landsat8-toa")  # raises InputError when refused
            crops += 1
    assert crops > 50


@pytest.mark.parametrize("name", ["satsense_s2/section_2_sentinel.tif", "spyndex/s2_4band_10m.tif"])
def test_archive_sentinel2_without_the_offset_reads_as_if_its_sensor_were_named(name, contract):
    # Files from before 2022 carry no +1000 DN; named or not, they are read the same way
    # (before, without --sensor they were refused, one by one in a newcomer's folder).
    told = _check(REALDATA / name, contract, **FLAGS[name])
    found = _check(REALDATA / name, contract)
    assert [(b.name, b.scale, b.offset) for b in found.bands] == [
        (b.name, b.scale, b.offset) for b in told.bands
    ]
    assert any("read with offset 0" in w for w in found.warnings)
    assert found.sensor == told.sensor  # so a rerun naming that sensor is the same run
