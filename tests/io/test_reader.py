"""Opening rasters (every bad input), GSD in metres, boundless normalised reads, nodata rules."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from gfmcli.errors import InputError
from gfmcli.io.bands import BandMapping, MappedBand
from gfmcli.io.reader import (
    open_raster,
    probe_raster,
    read_window,
    sample_windows,
    scan_windows,
)
from gfmcli.io.values import NO_OFFSET, check_values
from gfmcli.scaling import CLI


# fmt: skip below: the signature kept on few lines (ruff format would add 9 lines)
def _mapping(indexes, *, scale=1e-4, offset=0.0, mean=0.2, std=0.1, nodata=None, radar=False,
             source="the default"):  # fmt: skip
    bands = tuple(
        MappedBand(i, f"b{i}", 500.0 + i, "radar" if radar else "optical", scale, offset,
                   mean + 0.01 * i, std * i, nodata, source)
        for i in indexes
    )  # fmt: skip
    return BandMapping(bands=bands, sensor="test", gsd_m=10.0, cross_sensor=False)


def _naive(data, mapping):
    out = np.stack(
        [(data[b.index - 1] * b.scale + b.offset - b.mean) / b.std for b in mapping.bands]
    )
    return out.astype(np.float32)


def test_missing_and_not_a_raster(tmp_path):
    with pytest.raises(InputError, match=r"missing\.tif: no such file"):
        open_raster(tmp_path / "missing.tif")
    fake = tmp_path / "notes.tif"
    fake.write_text("this is not a raster\n")
    with pytest.raises(InputError, match=r"notes\.tif: GDAL cannot read it as a raster"):
        open_raster(fake)


def test_truncated_geotiff(tmp_path, make_raster):
    path = make_raster(tmp_path, "full.tif", count=3, height=300, width=300, blocksize=64)
    cut = tmp_path / "cut.tif"
    blob = path.read_bytes()
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match=r"cut\.tif: .*(truncated|cannot read)"):
        open_raster(cut)


# The test writes a file without georeferencing on purpose; rasterio warns when it does.
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_zero_bands_no_crs_no_transform(tmp_path, make_raster):
    # GDAL has no zero-band GeoTIFF or VRT; a GeoPackage holding two raster tables opens as a
    # container with zero bands and two subdatasets.
    container = tmp_path / "two.gpkg"
    # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
    profile = dict(driver="GPKG", width=8, height=8, count=1, dtype="uint8", crs="EPSG:3857",
                   transform=Affine(1, 0, 0, 0, -1, 8))  # fmt: skip
    for table, append in (("a", "NO"), ("b", "YES")):
        with rasterio.open(
            container, "w", RASTER_TABLE=table, APPEND_SUBDATASET=append, **profile
        ) as dst:
            dst.write(np.ones((1, 8, 8), "uint8"))
    with pytest.raises(InputError, match=r"no bands; name one of its subdatasets, e\.g\. GPKG:"):
        open_raster(container)
    with pytest.raises(InputError, match="geotransform but no CRS; assign one"):
        open_raster(make_raster(tmp_path, "nocrs.tif", crs=None))
    with pytest.raises(InputError, match="a CRS but no geotransform"):
        open_raster(make_raster(tmp_path, "notr.tif", transform=Affine.identity()))
    with open_raster(
        make_raster(tmp_path, "bare.tif", crs=None, transform=Affine.identity())
    ) as src:
        assert not src.georeferenced and np.isnan(src.gsd_m)  # pixels only: --gsd decides


def test_source_facts(tmp_path, make_raster):
    # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
    path = make_raster(
        tmp_path, count=2, height=40, width=70, dtype="int16", nodata=-9999,
        descriptions=["B04", None], blocksize=32,
    )  # fmt: skip
    with open_raster(path) as src:
        assert (src.height, src.width, src.count) == (40, 70, 2)
        assert src.dtypes == ("int16", "int16") and src.nodata == -9999
        assert src.descriptions == ("B04", None)
        assert src.block_shape == (32, 32)
        assert src.crs.to_epsg() == 32632 and src.profile["count"] == 2
        assert src.gsd_m == pytest.approx(10.0, rel=2e-3)
        assert src.warnings == []
    assert src.dataset.closed


def test_gsd_geographic_and_other_units(tmp_path, make_raster):
    deg = Affine(0.0001, 0, 10.0, 0, -0.0001, 45.001)
    with open_raster(make_raster(tmp_path, "geo.tif", crs="EPSG:4326", transform=deg)) as src:
        assert src.gsd_x_m == pytest.approx(7.88, abs=0.02)
        assert src.gsd_y_m == pytest.approx(11.12, abs=0.02)
        assert src.gsd_m == pytest.approx((src.gsd_x_m + src.gsd_y_m) / 2)
        assert len(src.warnings) == 1 and "7.88 m x 11.1 m" in src.warnings[0]
    feet = Affine(30.0, 0, 1000000.0, 0, -30.0, 200000.0)  # NY Long Island, US survey feet
    with open_raster(make_raster(tmp_path, "ft.tif", crs="EPSG:2263", transform=feet)) as src:
        assert src.gsd_m == pytest.approx(9.144, rel=2e-3)
    merc = Affine(10.0, 0, 1113194.9, 0, -10.0, 8399737.9)  # Web Mercator near 60 degrees N
    with open_raster(make_raster(tmp_path, "merc.tif", crs="EPSG:3857", transform=merc)) as src:
        assert src.gsd_m == pytest.approx(5.0, rel=0.01)


def test_read_window_matches_naive_normalisation_and_pads_edges(tmp_path, make_raster):
    path = make_raster(tmp_path, count=4, height=37, width=53, blocksize=16)
    with open_raster(path) as src:
        data = src.dataset.read().astype(np.float64)
        mapping = _mapping([3, 1, 4])
        full = _naive(data, mapping)
        out, valid = read_window(src, (0, 0, 37, 53), mapping)
        assert out.dtype == np.float32 and valid.all()
        np.testing.assert_allclose(out, full, rtol=1e-5, atol=1e-5)
        out, valid = read_window(src, (30, -5, 16, 20), mapping)  # bottom-left corner, boundless
        assert out.shape == (3, 16, 20) and valid.shape == (16, 20)
        assert valid[:7, 5:].all() and not valid[7:].any() and not valid[:, :5].any()
        np.testing.assert_allclose(out[:, :7, 5:], full[:, 30:, :15], rtol=1e-5, atol=1e-5)
        assert (out[:, 7:] == 0).all() and (out[:, :, :5] == 0).all()
        same, _ = read_window(src, Window(col_off=-5, row_off=30, width=20, height=16), mapping)
        np.testing.assert_array_equal(same, out)
        out, valid = read_window(src, (100, 100, 8, 8), mapping)
        assert not valid.any() and not out.any()


def test_nodata_all_bands_nan_any_band(tmp_path, make_raster):
    data = np.full((2, 5, 6), 0.3, dtype="float32")
    data[:, 0, 0] = -1  # all bands nodata -> invalid
    data[0, 0, 1] = -1  # one band nodata -> a real value
    data[1, 0, 2] = np.nan  # NaN in one band -> invalid
    data[0, 0, 3] = np.inf
    path = make_raster(tmp_path, data=data, dtype="float32", nodata=-1)
    mapping = _mapping([1, 2], scale=1.0, nodata=-1.0)
    with open_raster(path) as src:
        out, valid = read_window(src, (0, 0, 5, 6), mapping)
    expected = np.ones((5, 6), bool)
    expected[0, [0, 2, 3]] = False
    np.testing.assert_array_equal(valid, expected)
    assert np.isfinite(out).all() and (out[:, ~valid] == 0).all()
    assert out[0, 0, 1] == pytest.approx((-1 - 0.21) / 0.1)


def test_internal_mask_and_alpha(tmp_path, make_raster):
    mask = np.ones((9, 11), bool)
    mask[2:4, 3:8] = False
    path = make_raster(tmp_path, "masked.tif", count=3, height=9, width=11, mask=mask)
    with open_raster(path) as src:
        _, valid = read_window(src, (0, 0, 9, 11), _mapping([1, 2]))
    np.testing.assert_array_equal(valid, mask)
    rgba = np.full((4, 6, 6), 100, dtype="uint8")
    rgba[3] = 255
    rgba[3, :, :2] = 0
    path = make_raster(tmp_path, "rgba.tif", data=rgba, dtype="uint8")
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    with open_raster(path) as src:
        _, valid = read_window(src, (0, 0, 6, 6), _mapping([1, 2, 3]))
    assert not valid[:, :2].any() and valid[:, 2:].all()


def _all_nodata(src, mapping):
    return probe_raster(src, mapping).all_nodata


def _check(src, mapping):
    return check_values(src, mapping, probe_raster(src, mapping))


def test_all_nodata_and_value_checks(tmp_path, make_raster):
    empty = make_raster(tmp_path, "empty.tif", data=np.zeros((2, 20, 30)), nodata=0)
    with open_raster(empty) as src:
        assert _all_nodata(src, _mapping([1, 2], nodata=0))
        assert _check(src, _mapping([1, 2], nodata=0)).warnings == ()
    dn = make_raster(tmp_path, "dn.tif", count=2, height=600, width=700)
    with open_raster(dn) as src:
        assert not _all_nodata(src, _mapping([1, 2]))
        assert _check(src, _mapping([1, 2])).warnings == ()
        with pytest.raises(InputError, match=r"band 1 \(b1\): values give reflectance .*--scale"):
            _check(src, _mapping([1, 2], scale=1.0))
        with pytest.raises(InputError, match=r"negative reflectance with offset -0\.5"):
            _check(src, _mapping([1, 2], offset=-0.5))  # DN 1000..4000: 0.1..0.4 - 0.5
        for read_as, fix in [("sentinel2-l1c", "l1c"), ("sentinel2-l2a", "l2a")]:
            # a Sentinel-2 file without the +1000 DN (before 2022, harmonized: most archives)
            # whose offset was only a default is read with offset 0, and the warning says how
            # to say so; before, every such file was refused (a newcomer's mixed folder)
            s2 = dataclasses.replace(_mapping([1, 2], offset=-0.5), sensor=read_as)
            checked = _check(src, s2)
            assert {(b.offset, b.scale_source) for b in checked.bands} == {(0.0, NO_OFFSET)}
            assert checked.sensor == f"sentinel2-{fix}-pre2022"  # what a rerun may name
            (warning,) = checked.warnings
            assert "read with offset 0" in warning
            assert (
                f"pass --sensor sentinel2-{fix}-pre2022 to read it so without this warning"
                in warning
            )
            # an offset the user stated is only questioned, never changed
            stated = dataclasses.replace(
                s2, bands=tuple(dataclasses.replace(b, scale_source=CLI) for b in s2.bands)
            )
            checked = _check(src, stated)
            assert {b.offset for b in checked.bands} == {-0.5}
            assert "check the offset" in checked.warnings[0]
    # just below the offset, never far below it: dark water of a file that has the +1000 DN
    # is not re-read, the default stays and the run is refused with the fix, as before
    near = make_raster(
        tmp_path, "near.tif", data=np.full((2, 20, 30), 950, np.uint16), dtype="uint16"
    )
    with open_raster(near) as src:
        s2 = dataclasses.replace(_mapping([1, 2], offset=-0.1), sensor="sentinel2-l2a")
        with pytest.raises(InputError, match=r"pass --sensor sentinel2-l2a-pre2022, or --offset 0"):
            _check(src, s2)
    refl = make_raster(tmp_path, "refl.tif", count=2, dtype="float32")
    with open_raster(refl) as src:
        checked = _check(src, _mapping([1, 2], offset=-0.1))  # a default: rescaled
        assert {(b.scale, b.offset) for b in checked.bands} == {(1.0, 0.0)}
        assert any("already in reflectance" in w for w in checked.warnings)
        with pytest.raises(InputError, match=r"already reflectance .* pass --scale 1 --offset 0"):
            _check(src, _mapping([1, 2], source="--scale/--offset"))
        assert _check(src, _mapping([1, 2], scale=1.0)).warnings == ()
    linear = make_raster(tmp_path, "lin.tif", count=1, dtype="float32")
    with open_raster(linear) as src:
        (warning,) = _check(src, _mapping([1], scale=1.0, radar=True)).warnings
        assert "linear power" in warning


def test_a_few_valid_rows_between_probe_samples_are_found(tmp_path, make_raster):
    data = np.zeros((1, 2000, 2000), dtype="uint16")
    data[0, 1100:1103, 500:520] = 1234  # 3 rows no sampled block holds
    path = make_raster(tmp_path, "sparse.tif", data=data, nodata=0, blocksize=256)
    with open_raster(path) as src:
        mapping = _mapping([1], nodata=0)
        assert probe_raster(src, mapping, scan=False).empty  # the sample misses them
        probe = probe_raster(src, mapping)
        assert probe.scanned and not probe.all_nodata
        assert (probe.values == 1234).all() and probe.values.shape[1] > 0
    data[0, 1100:1103] = 0
    empty = make_raster(tmp_path, "empty.tif", data=data, nodata=0, blocksize=256)
    with open_raster(empty) as src:
        assert _all_nodata(src, _mapping([1], nodata=0))


def _count_reads(monkeypatch) -> list[int]:
    """Pixels (per band) each read of the reader asks GDAL for, in order."""
    import gfmcli.io.reader as reader

    pixels: list[int] = []
    real = reader._read_raw

    def counting(src, indexes, window, out_shape):
        shape = out_shape or (window.height, window.width)
        pixels.append(int(shape[0] * shape[1]))
        return real(src, indexes, window, out_shape)

    monkeypatch.setattr(reader, "_read_raw", counting)
    return pixels


@pytest.mark.parametrize("blocksize", [None, 128])
def test_probe_reads_a_bounded_sparse_sample(tmp_path, make_raster, monkeypatch, blocksize):
    rng = np.random.default_rng(1)
    data = np.zeros((2, 3000, 3000), dtype="uint16")
    dots = rng.random((3000, 3000)) < 0.01  # 1 % valid pixels, scattered
    data[:, dots] = 2000
    path = make_raster(tmp_path, "dots.tif", data=data, nodata=0, blocksize=blocksize)
    pixels = _count_reads(monkeypatch)
    with open_raster(path) as src:
        windows = sample_windows(src)
        probe = probe_raster(src, _mapping([1, 2], nodata=0))
    assert not probe.scanned and probe.values.shape[1] > 0
    assert (probe.values == 2000).all()
    assert len(pixels) == len(windows) <= 64
    assert sum(pixels) <= 64 * 256 * 256 < data[0].size / 2
    rows = {w.row_off for w in windows}
    assert max(rows) > 1500 > min(rows), "the sample spreads over the raster"


def test_probe_of_a_huge_sparse_raster_is_bounded(tmp_path, monkeypatch):
    # 100000 x 100000 px, no block written: what GDAL returns is nodata everywhere. The sample
    # (what a dry run does) must cost the same as for a small raster.
    path = tmp_path / "huge.tif"
    # fmt: skip below: arguments grouped by meaning (ruff format would add 11 lines)
    profile = dict(driver="GTiff", width=100_000, height=100_000, count=3, dtype="uint16",
                   crs="EPSG:32632", transform=Affine(10, 0, 500000, 0, -10, 5000000),
                   nodata=0, tiled=True, blockxsize=512, blockysize=512, sparse_ok=True,
                   bigtiff="yes")  # fmt: skip
    with rasterio.open(path, "w", **profile):
        pass
    pixels = _count_reads(monkeypatch)
    with open_raster(path) as src:
        probe = probe_raster(src, _mapping([1, 2, 3], nodata=0), scan=False)
    assert probe.empty and not probe.scanned and not probe.all_nodata
    assert 4 <= len(pixels) <= 64 and sum(pixels) <= 64 * 256 * 256


def test_probe_reads_overviews_when_they_are_small(tmp_path, make_raster, monkeypatch):
    path = make_raster(tmp_path, "ov.tif", count=2, height=3000, width=2500, blocksize=256)
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4, 8])
    pixels = _count_reads(monkeypatch)
    with open_raster(path) as src:
        probe = probe_raster(src, _mapping([1, 2]))
    assert len(pixels) == 1 and pixels[0] <= 512 * 512
    assert probe.values.shape[1] == pixels[0]  # every pixel valid, all of them in the probe
    assert probe.values.min() >= 1000 and probe.values.max() < 4000


@pytest.mark.parametrize("blocksize", [None, 256])
def test_scan_windows_tile_the_raster_in_bounded_reads(
    tmp_path, make_raster, monkeypatch, blocksize
):
    monkeypatch.setattr("gfmcli.io.reader.SCAN_VALUES", 300_000)
    path = make_raster(
        tmp_path, "r.tif", count=3, height=700, width=5000, dtype="uint8", blocksize=blocksize
    )
    covered = np.zeros((700, 5000), dtype=int)
    with open_raster(path) as src:
        block_h = src.dataset.block_shapes[0][0]
        for w in scan_windows(src, 3):
            assert w.width * w.height * 3 <= 300_000 or w.height == 1
            assert w.row_off % min(block_h, w.height) == 0
            covered[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (covered == 1).all()
