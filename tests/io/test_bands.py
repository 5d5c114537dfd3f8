"""The band contract: identity from --bands / descriptions / --sensor, contract checks, scaling."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from gfmcli.contract import BandInfo, ModelContract
from gfmcli.errors import BandContractError, InputError, SensorError
from gfmcli.io.bands import MIN_MODEL_BANDS, resolve_bands
from gfmcli.io.reader import open_raster, read_window
from gfmcli.sensors import get_sensor

S2 = get_sensor("sentinel2-l2a")
# fmt: skip below: a table, one entry per line (ruff format would add 5 lines)
S2_STATS = {"B02": (0.14, 0.085), "B03": (0.13, 0.088), "B04": (0.137, 0.114),
            "B08": (0.23, 0.125), "B11": (0.22, 0.134)}  # fmt: skip


def _indexes(mapping):
    """The 1-based file band read for each model band, in model order."""
    return [b.index for b in mapping.bands]


def _contract(names=("B02", "B03", "B04", "B08"), sensor="sentinel2-l2a", gsd=10.0, radar=()):
    bands = [
        BandInfo(n, S2.band(n).wavelength_nm, "optical", *S2_STATS[n], 1e-4, -0.1) for n in names
    ]
    bands += [BandInfo(n, w, "radar", m, s) for n, w, m, s in radar]
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    return ModelContract(
        model_name="tiny", model_config={}, task="segmentation", sensor=sensor,
        bands=tuple(bands), gsd=gsd, patch_size=8,
    )  # fmt: skip


def test_descriptions_select_and_reorder_model_bands(tmp_path, make_raster):
    path = make_raster(tmp_path, count=5, descriptions=["nir", "B11", "red", "B03", "blue"])
    with open_raster(path) as src:
        mapping = resolve_bands(src, _contract())
        assert mapping.names == ["B02", "B03", "B04", "B08"]
        assert _indexes(mapping) == [5, 4, 3, 1]
        assert not mapping.cross_sensor and mapping.sensor == "sentinel2-l2a"
        b04 = mapping.bands[2]
        assert (b04.mean, b04.std, b04.scale, b04.offset) == (0.137, 0.114, 1e-4, -0.1)
        assert b04.nodata == 0  # the sensor's, as the file declares none
        data = src.dataset.read().astype(np.float64)
        out, _ = read_window(src, (0, 0, src.height, src.width), mapping)
    expected = (data[0] * 1e-4 - 0.1 - 0.23) / 0.125  # model band 4 = file band 1 (nir)
    np.testing.assert_allclose(out[3], expected, rtol=1e-5, atol=1e-5)


def test_missing_model_bands_map_with_the_bands_present(tmp_path, make_raster):
    path = make_raster(tmp_path, count=3, descriptions=["B04", "B02", "B03"])
    with open_raster(path) as src:
        mapping = resolve_bands(src, _contract())
    assert mapping.names == ["B02", "B03", "B04"] and _indexes(mapping) == [2, 3, 1]
    assert mapping.missing == ("B08",) and not mapping.cross_sensor
    assert [(b.mean, b.std) for b in mapping.bands] == [S2_STATS[n] for n in mapping.names]
    assert any("lacks model band(s) B08; mapping with the 3 band(s)" in w for w in mapping.warnings)
    two = make_raster(tmp_path, "two.tif", count=2, descriptions=["B02", "B03"])
    with (
        open_raster(two) as src,
        pytest.raises(
            BandContractError,
            match=rf"has 2 band\(s\) .* at least {MIN_MODEL_BANDS} are needed .*; stack the "
            r"scene's other bands into the same file \(gdalbuildvrt -separate\)",
        ),
    ):
        resolve_bands(src, _contract())


def test_a_mask_beside_the_scenes_is_named_as_one_to_leave_out(tmp_path, make_raster):
    mask = make_raster(
        tmp_path, "cloudmask.tif", count=1, dtype="uint8", descriptions=["cloud mask (1 = cloud)"]
    )
    with (
        open_raster(mask) as src,
        pytest.raises(
            BandContractError,
            match=r"cloudmask.tif: its one band is described as 'cloud mask \(1 = cloud\)'.*"
            r"if it is a mask or label raster, leave it out of the inputs",
        ),
    ):
        resolve_bands(src, _contract())


def test_no_descriptions_needs_sensor_or_bands(tmp_path, make_raster):
    path = make_raster(tmp_path, count=4)
    with open_raster(path) as src:
        with pytest.raises(BandContractError, match=r"cannot tell which bands .* --sensor NAME"):
            resolve_bands(src, _contract())
        mapping = resolve_bands(src, _contract(), bands=["B04", "B03", "B02", "B08"])
        assert _indexes(mapping) == [3, 2, 1, 4]
        with pytest.raises(BandContractError, match="has 4 bands but --bands lists 3"):
            resolve_bands(src, _contract(), bands=["B02", "B03", "B04"])
        with pytest.raises(BandContractError, match="has 4 bands but sensor sentinel2-l2a has 12"):
            resolve_bands(src, _contract(), sensor="sentinel2-l2a")
        with pytest.raises(SensorError, match="unknown sensor 'sentinel7'"):
            resolve_bands(src, _contract(), sensor="sentinel7")
        with pytest.raises(SensorError, match="has no band 'B13'"):
            resolve_bands(src, _contract(), bands=["B02", "B03", "B04", "B13"])


def test_sensor_alone_means_standard_order(tmp_path, make_raster):
    path = make_raster(tmp_path, count=12)
    with open_raster(path) as src:
        mapping = resolve_bands(src, _contract(), sensor="s2-l2a")
    assert _indexes(mapping) == [2, 3, 4, 8]


def test_bands_contradicting_descriptions_is_refused(tmp_path, make_raster):
    path = make_raster(tmp_path, count=4, descriptions=["B02", "B03", "B04", "B08"])
    with open_raster(path) as src:
        with pytest.raises(BandContractError, match=r"band 1 is described as 'B02'.*says B03"):
            resolve_bands(src, _contract(), bands=["B03", "B02", "B04", "B08"])
        mapping = resolve_bands(src, _contract(), bands=["B02", "B03", "B04", "B08"])
        assert _indexes(mapping) == [1, 2, 3, 4]


def test_unknown_description_names_it_and_suggests_sensor(tmp_path, make_raster):
    path = make_raster(tmp_path, count=3, descriptions=["SR_B2", "SR_B3", "SR_B4"])
    expected = r"'SR_B2', which is not a band of sensor sentinel2-l2a.*--sensor .*landsat8"
    with open_raster(path) as src, pytest.raises(BandContractError, match=expected):
        resolve_bands(src, _contract(), sensor="sentinel2-l2a")
    with (
        open_raster(path) as src,
        pytest.raises(
            BandContractError, match=r"bands of Landsat 8/9 OLI, Landsat 7 ETM\+, Landsat 5 TM"
        ),
    ):
        resolve_bands(src, _contract())  # SR_B2 is blue on OLI, green on TM/ETM+
    oli = make_raster(
        tmp_path, "oli.tif", count=4, descriptions=["SR_B2", "SR_B3", "SR_B4", "SR_B6"]
    )
    with open_raster(oli) as src:  # SR_B6 (SWIR 1) exists only on OLI
        mapping = resolve_bands(src, _contract())
    assert mapping.sensor == "landsat8" and mapping.cross_sensor
    assert any("read as landsat8 (its band names)" in w for w in mapping.warnings)
    odd = make_raster(tmp_path, "odd.tif", count=3, descriptions=["B02", "B03", "foo"])
    with open_raster(odd) as src, pytest.raises(BandContractError, match="'foo', which is not"):
        resolve_bands(src, _contract())


def test_cross_sensor_uses_own_wavelengths_and_nearest_stats(tmp_path, make_raster):
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    path = make_raster(
        tmp_path, count=3, height=20, width=20, descriptions=["SR_B2", "SR_B4", "SR_B5"],
        transform=Affine(30.0, 0, 500000.0, 0, -30.0, 5000000.0),
    )  # fmt: skip
    contract = _contract(("B02", "B03", "B04", "B08", "B11"))
    with open_raster(path) as src:
        mapping = resolve_bands(src, contract, sensor="landsat8")
    assert mapping.cross_sensor and mapping.sensor == "landsat8"
    assert mapping.wavelengths == [482.0, 654.6, 864.6]
    assert [(b.mean, b.std) for b in mapping.bands] == [
        S2_STATS["B02"],
        S2_STATS["B04"],
        S2_STATS["B08"],
    ]
    assert {(b.scale, b.offset) for b in mapping.bands} == {(2.75e-5, -0.2)}
    far = _contract(("B02", "B11"))
    with open_raster(path) as src:
        mapping = resolve_bands(src, far, sensor="landsat8")
    nir = mapping.bands[2]  # 864.6 nm between B02 (492.4) and B11 (1613.7): interpolated
    t = (864.6 - 492.4) / (1613.7 - 492.4)
    assert nir.mean == pytest.approx(0.14 + t * (0.22 - 0.14))
    assert any("interpolated" in w and "SR_B5" in w for w in mapping.warnings)


def test_radar_only_maps_to_radar(tmp_path, make_raster):
    path = make_raster(tmp_path, count=2, dtype="float32", descriptions=["VV", "VH"])
    with open_raster(path) as src:
        with pytest.raises(BandContractError, match="is radar but model tiny has no radar"):
            resolve_bands(src, _contract(), sensor="sentinel1")
        radar = (("VV", 5500.0, -12.6, 5.3), ("VH", 5700.0, -20.3, 5.9))
        mapping = resolve_bands(src, _contract(radar=radar), sensor="sentinel1")
    assert [(b.modality, b.mean) for b in mapping.bands] == [("radar", -12.6), ("radar", -20.3)]


def test_wavelength_descriptions_and_file_scaling(tmp_path, make_raster):
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    path = make_raster(
        tmp_path, count=4, dtype="float32", descriptions=["492 nm", "560nm", "665 nm", "833 nm"],
        scales=[1.0] * 4, offsets=[0.0] * 4,
    )  # fmt: skip
    with open_raster(path) as src:
        mapping = resolve_bands(src, _contract())
        assert mapping.names == ["B02", "B03", "B04", "B08"] and not mapping.cross_sensor
        assert mapping.bands[0].scale == 1e-4  # 1/0 in the file means "not set"
        overridden = resolve_bands(src, _contract(), scale=1.0, offset=0.0)
        assert {(b.scale, b.offset) for b in overridden.bands} == {(1.0, 0.0)}
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    tagged = make_raster(
        tmp_path, "tagged.tif", count=4, descriptions=["B02", "B03", "B04", "B08"],
        scales=[2e-4] * 4, offsets=[-0.5] * 4, nodata=65535,
    )  # fmt: skip
    with open_raster(tagged) as src:
        mapping = resolve_bands(src, _contract())
    assert {(b.scale, b.offset, b.nodata) for b in mapping.bands} == {(2e-4, -0.5, 65535)}


def test_gsd_far_from_contract_warns(tmp_path, make_raster):
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    path = make_raster(tmp_path, count=4, descriptions=["B02", "B03", "B04", "B08"],
                       transform=Affine(60.0, 0, 500000.0, 0, -60.0, 5000000.0))  # fmt: skip
    with open_raster(path) as src:
        assert resolve_bands(src, _contract(gsd=20.0)).warnings == ()
        (warning,) = resolve_bands(src, _contract(gsd=10.0)).warnings
    assert "trained at 10 m" in warning and mapping_gsd(warning) > 4


def mapping_gsd(warning: str) -> float:
    return float(warning.split("(")[1].split("x")[0])


def test_sibling_product_selects_model_bands_with_its_own_offset(tmp_path, make_raster):
    path = make_raster(tmp_path, count=12)
    with open_raster(path) as src:
        mapping = resolve_bands(src, _contract(), sensor="sentinel2-l2a-pre2022")
    assert not mapping.cross_sensor and mapping.sensor == "sentinel2-l2a-pre2022"
    assert _indexes(mapping) == [2, 3, 4, 8]
    assert {(b.scale, b.offset) for b in mapping.bands} == {(1e-4, 0.0)}
    assert mapping.bands[0].mean == S2_STATS["B02"][0]


L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def test_l1c_stack_maps_with_l2a_weights_dropping_b10(tmp_path, make_raster):
    path = make_raster(
        tmp_path,
        count=13,
        descriptions=L1C,
        tags={"QUANTIFICATION_VALUE": "10000", "RADIO_ADD_OFFSET": "0"},
    )
    contract = _contract(("B02", "B03", "B04", "B08", "B11"))
    with open_raster(path) as src:
        mapping = resolve_bands(src, contract)
    assert mapping.sensor == "sentinel2-l1c" and not mapping.cross_sensor
    assert mapping.names == ["B02", "B03", "B04", "B08", "B11"]
    assert _indexes(mapping) == [2, 3, 4, 8, 12]  # B8A ninth, B10 eleventh
    assert {(b.scale, b.offset, b.scale_source) for b in mapping.bands} == {
        (1e-4, 0.0, "the file's tags")
    }
    # bands an ordinary L1C file has and the model does without: details, not warnings
    assert any("B10 (1373.5 nm)" in w and "not used" in w for w in mapping.details)
    assert any("B01, B05" in w and "not used" in w for w in mapping.details)
    assert not any("not used" in w for w in mapping.warnings)


def test_esa_offset_tags_and_explicit_file_scaling(tmp_path, make_raster):
    l2a = make_raster(
        tmp_path,
        "l2a.tif",
        count=4,
        descriptions=["B02", "B03", "B04", "B08"],
        tags={"BOA_QUANTIFICATION_VALUE": "10000", "BOA_ADD_OFFSET": "-1000"},
    )
    with open_raster(l2a) as src:
        mapping = resolve_bands(src, _contract(sensor="sentinel2-l2a-pre2022"))
    assert {(b.scale, b.offset) for b in mapping.bands} == {(1e-4, -0.1)}
    # GDAL never writes scale 1 / offset 0; other writers may: the GDAL_METADATA item counts.
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    path = make_raster(
        tmp_path, "unit.tif", count=4, dtype="float32", descriptions=["B02", "B03", "B04", "B08"],
        scales=[2.0] * 4, offsets=[5.0] * 4,
    )  # fmt: skip
    blob = path.read_bytes()
    blob = blob.replace(b'role="scale">2<', b'role="scale">1<')
    path.write_bytes(blob.replace(b'role="offset">5<', b'role="offset">0<'))
    with open_raster(path) as src:
        assert src.scales == (1.0,) * 4  # what GDAL reports: indistinguishable from "not set"
        mapping = resolve_bands(src, _contract())
    assert {(b.scale, b.offset, b.scale_source) for b in mapping.bands} == {
        (1.0, 0.0, "the file's scale/offset")
    }


def test_scale_and_offset_per_band_or_for_all(tmp_path, make_raster):
    path = make_raster(tmp_path, count=4, descriptions=["B02", "B03", "B04", "B08"])
    with open_raster(path) as src:
        one = resolve_bands(src, _contract(), scale=(2e-4,))
        assert {(b.scale, b.offset) for b in one.bands} == {(2e-4, 0.0)}  # --scale alone: offset 0
        each = resolve_bands(src, _contract(), scale=(1e-4, 2e-4, 3e-4, 4e-4), offset=(-0.2,))
        assert [(b.scale, b.offset) for b in each.bands] == [
            (1e-4, -0.2),
            (2e-4, -0.2),
            (3e-4, -0.2),
            (4e-4, -0.2),
        ]
        kept = resolve_bands(src, _contract(), offset=(0.0,))  # --offset alone keeps the scale
        assert {(b.scale, b.offset) for b in kept.bands} == {(1e-4, 0.0)}
        with pytest.raises(InputError, match="has 4 bands but --scale lists 2 values"):
            resolve_bands(src, _contract(), scale=(1.0, 1.0))


# The test writes a file without georeferencing on purpose; rasterio warns when it does.
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_file_without_georeferencing_takes_gsd_from_the_option_or_the_sensor(tmp_path, make_raster):
    path = make_raster(
        tmp_path,
        count=4,
        crs=None,
        transform=Affine.identity(),
        descriptions=["B02", "B03", "B04", "B08"],
    )
    with open_raster(path) as src:
        assert resolve_bands(src, _contract(), gsd=30.0).gsd_m == 30.0
        nominal = resolve_bands(src, _contract())
    assert nominal.gsd_m == 10.0
    assert any(
        "no georeferencing; assuming sentinel2's nominal 10 m" in w for w in nominal.warnings
    )
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    waves = make_raster(
        tmp_path, "waves.tif", count=3, crs=None, transform=Affine.identity(),
        descriptions=["500 nm", "505 nm", "510 nm"],
    )  # fmt: skip
    with open_raster(waves) as src, pytest.raises(BandContractError, match="pass --gsd METRES"):
        resolve_bands(src, _contract())


def test_thermal_and_absorption_bands_are_not_used(tmp_path, make_raster):
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    path = make_raster(
        tmp_path, count=5, dtype="float32", descriptions=["B2", "B4", "B5", "B9", "B10"],
        tags={"SENSOR": "Landsat 8 OLI/TIRS"}, transform=Affine(30.0, 0, 5e5, 0, -30.0, 5e6),
    )  # fmt: skip
    with open_raster(path) as src:
        mapping = resolve_bands(src, _contract(("B02", "B03", "B04", "B08", "B11")))
    assert mapping.sensor == "landsat8-toa" and mapping.names == ["B2", "B4", "B5"]
    assert any("B10 (thermal) not used" in w for w in mapping.details)
    assert any("B9 (1373 nm) lie in a water-absorption window" in w for w in mapping.details)
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    thermal = make_raster(
        tmp_path, "bt.tif", count=2, dtype="float32", descriptions=["B10", "B11"],
        tags={"SENSOR": "Landsat 8 OLI/TIRS"},
    )  # fmt: skip
    with (
        open_raster(thermal) as src,
        pytest.raises(
            BandContractError, match=r"band 1 \(B10\) is thermal but model tiny has no thermal band"
        ),
    ):
        resolve_bands(src, _contract())
