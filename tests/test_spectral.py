"""The band rulebook: labels, wavelengths, sensor tells, products, bad bands (gfmcli.spectral)."""

from __future__ import annotations

import pytest

from gfmcli.errors import BandContractError
from gfmcli.sensors import get_sensor
from gfmcli.spectral.identify import identify_bands
from gfmcli.spectral.labels import (
    FileFacts,
    common_name_wavelength,
    match_label,
    parse_wavelength,
    tag_wavelength,
)
from gfmcli.spectral.sensor import tag_families

S2_L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def _facts(labels, *, tags=None, band_tags=None, dtype="uint16", gsd=10.0):
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    return FileFacts(
        path="x.tif", count=len(labels), descriptions=tuple(labels), tags=tags or {},
        band_tags=tuple(band_tags or [{}] * len(labels)), dtypes=(dtype,) * len(labels),
        gsd_m=gsd,
    )  # fmt: skip


def test_wavelengths_in_text_and_tags():
    assert parse_wavelength("band 12 (664.6 nm)") == pytest.approx(664.6)
    assert parse_wavelength("418.24 nm") == pytest.approx(418.24)
    assert parse_wavelength("0.665 um") == pytest.approx(665.0)
    assert parse_wavelength("Band 4: 0.842 micrometers") == pytest.approx(842.0)
    assert parse_wavelength("red") is None and parse_wavelength("B04") is None
    assert parse_wavelength("665") is None  # a bare number may be a band id
    assert tag_wavelength({"wavelength": "418.24", "wavelength_units": "nm"}) == 418.24
    assert tag_wavelength({"wavelength": "0.44", "wavelength_units": "Micrometers"}) == 440.0
    assert tag_wavelength({"WAVELENGTH": "2.2"}) == pytest.approx(2200.0)  # < 100: micrometres
    assert tag_wavelength({"center_wavelength": "865"}) == 865.0
    assert tag_wavelength({"fwhm": "7"}) is None
    assert common_name_wavelength("swir16") == 1650.0 and common_name_wavelength("B04") is None


def test_s2_names_across_products_and_spellings():
    l2a = get_sensor("sentinel2-l2a")
    # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
    for label, name in (("B4", "B04"), ("b8a", "B8A"), ("B08A", "B8A"), ("nir08", "B8A"),
                        ("rededge1", "B05"), ("swir22", "B12"), ("coastal", "B01")):  # fmt: skip
        assert match_label(label, l2a).name == name
    assert match_label("418.24 nm", l2a) == pytest.approx(418.24)  # a wavelength is itself


def test_l1c_stack_is_recognised_with_b10_and_b8a_ninth():
    result = identify_bands(_facts(S2_L1C), default_sensor="sentinel2-l2a")
    assert result.sensor.name == "sentinel2-l1c"  # B10 exists only in L1C
    assert [b.name for b in result.bands] == S2_L1C and result.bands[8].index == 9


def test_s2_level_from_tags_and_model_default():
    l1c = _facts(["B02", "B03", "B04", "B08"], tags={"PRODUCT_TYPE": "S2MSI1C"})
    assert identify_bands(l1c, default_sensor="sentinel2-l2a").sensor.name == "sentinel2-l1c"
    plain = _facts(["B02", "B03", "B04", "B08"])
    assert identify_bands(plain, default_sensor="sentinel2-l2a-pre2022").sensor.name == (
        "sentinel2-l2a-pre2022"
    )


def test_landsat_band_numbers_need_a_decisive_tell():
    labels = ["B1", "B2", "B3", "B4", "B5", "B7"]
    with pytest.raises(BandContractError, match=r"--sensor landsat8 / --sensor landsat7"):
        identify_bands(_facts(labels, gsd=30.0), default_sensor="sentinel2-l2a")
    with pytest.raises(BandContractError, match="cannot tell which sensor"):
        identify_bands(_facts(labels, gsd=None), default_sensor="sentinel2-l2a")
    tagged = _facts(labels, tags={"SENSOR": "Landsat 7 ETM+"}, dtype="uint8", gsd=30.0)
    result = identify_bands(tagged, default_sensor="sentinel2-l2a")
    assert result.sensor.name == "landsat7-l1" and result.bands[4].wavelength_nm == 1648.0
    # the tags name Landsat 7, but only the data type says Level-1 DN: still a warning
    assert any(
        "read as landsat7-l1 (its tags name Landsat 7 ETM+, its uint8 data type the product)" in n
        for n in result.notes
    )
    # a level tag names the product: the tags say it all, a detail for -v
    c1 = _facts(labels, tags={"SENSOR": "Landsat 8 OLI", "PRODUCT": "Collection 1 Level-2 SR"},
                dtype="uint16", gsd=30.0)  # fmt: skip
    named = identify_bands(c1, default_sensor="sentinel2-l2a")
    assert named.sensor.name == "landsat8-c1"  # the tag, not the uint16 data type (C2 L2)
    assert any("read as landsat8-c1 (its tags name it)" in n for n in named.details)
    assert not any("read as" in n for n in named.notes)
    for product, sensor in (("L1TP", "landsat7-l1"), ("Level-2 Science Product", "landsat7"),
                            ("top-of-atmosphere reflectance", "landsat7-toa")):  # fmt: skip
        tags = {"SENSOR": "Landsat 7 ETM+", "PROCESSING_LEVEL": product}
        dtype = {"landsat7-l1": "uint8", "landsat7": "uint16"}.get(sensor, "float32")
        found = identify_bands(_facts(labels, tags=tags, dtype=dtype, gsd=30.0))
        assert found.sensor.name == sensor, product
    # a tag the data type contradicts is not believed: the data type decides, with a warning
    for product, dtype, sensor in (("Level-2", "int16", "landsat7-c1"),
                                   ("L1TP", "float32", "landsat7-toa")):  # fmt: skip
        tags = {"SENSOR": "Landsat 7 ETM+", "PROCESSING_LEVEL": product}
        found = identify_bands(_facts(labels, tags=tags, dtype=dtype, gsd=30.0))
        assert found.sensor.name == sensor, (product, dtype)
    contradicted = _facts(labels, tags={"SENSOR": "Landsat 7 ETM+", "LEVEL": "L1TP"},
                          dtype="float32", gsd=30.0)  # fmt: skip
    assert any("its float32 data type the product" in n for n in identify_bands(contradicted).notes)
    # tags that name the sensor and a file that names its product (B10, a level tag): a detail
    # for -v, not a warning on every ordinary file
    l1c = _facts(["B02", "B03", "B04", "B08"], tags={"SENSOR": "Sentinel-2A MSI",
                                                      "PRODUCT_TYPE": "S2MSI1C"})  # fmt: skip
    told = identify_bands(l1c, default_sensor="sentinel2-l2a")
    assert any("read as sentinel2-l1c (its tags name it)" in n for n in told.details)
    assert not any("read as" in n for n in told.notes)
    at_10m = identify_bands(_facts(labels, gsd=10.0), default_sensor="sentinel2-l2a")
    assert at_10m.sensor.family == "sentinel2" and at_10m.bands[4].name == "B05"
    assert any("pixels are 10 m" in n for n in at_10m.notes)
    spacecraft = _facts(labels[:4], tags={"SPACECRAFT_ID": "LANDSAT_8"}, gsd=30.0)
    assert identify_bands(spacecraft).sensor.name == "landsat8"
    with pytest.raises(BandContractError, match="tags say Landsat 5 TM but"):
        identify_bands(_facts(["B8A", "B04", "B03"], tags={"SENSOR": "Landsat 5 TM"}))


def test_landsat_product_follows_the_data_type():
    labels = ["blue", "green", "red", "nir", "swir16", "swir22"]
    tags = {"SENSOR": "Landsat 5 TM"}
    products = {
        dtype: identify_bands(_facts(labels, tags=tags, dtype=dtype)).sensor.name
        for dtype in ("uint16", "int16", "uint8", "float32")
    }
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    assert products == {"uint16": "landsat5", "int16": "landsat5-c1", "uint8": "landsat5-l1",
                        "float32": "landsat5-toa"}  # fmt: skip


def test_tag_families():
    assert tag_families({"SENSOR": "Sentinel-2A MSI"}) == {"sentinel2"}
    assert tag_families({"SENSOR": "Landsat 8 OLI/TIRS"}) == {"landsat8"}
    assert tag_families({"SCENE_ID": "LC80130312015295LGN00"}) == {"landsat8"}
    assert tag_families({"SENSOR": "Landsat 7 ETM+"}) == {"landsat7"}
    assert tag_families({"SPACECRAFT": "LANDSAT_9"}) == {"landsat9"}
    assert tag_families({"SENSOR": "EnMAP HSI"}) == {"enmap"}
    assert tag_families({"DESCRIPTION": "Sentinel-2"}) == set()  # not a platform key


def test_spectrometer_wavelengths_stay_themselves_and_bad_bands_are_skipped():
    waves = [418.24 + 5.6 * i for i in range(30)]
    labels = [f"{w:.2f} nm" for w in waves]
    band_tags = [{"bbl": "0" if i == 3 else "1"} for i in range(30)]
    result = identify_bands(_facts(labels, band_tags=band_tags), default_sensor="sentinel2-l2a")
    assert result.sensor is None  # several bands near one S2 band: no snapping, no sensor
    assert [b.wavelength_nm for b in result.bands] == pytest.approx(waves[:3] + waves[4:])
    assert any("band(s) 4 are flagged bad" in n for n in result.notes)
    listed = _facts(labels, tags={"BAD_BANDS": "1,2", "SENSOR": "EnMAP HSI"})
    enmap = identify_bands(listed, default_sensor="sentinel2-l2a")
    assert enmap.sensor.name == "enmap" and enmap.bands[0].index == 3
    untitled = _facts(
        [""] * 3,
        band_tags=[{"wavelength": "0.49"}, {"wavelength": "0.56"}, {"wavelength": "0.665"}],
    )
    snapped = identify_bands(untitled, default_sensor="sentinel2-l2a")
    assert [b.name for b in snapped.bands] == ["B02", "B03", "B04"]  # one to one: S2 bands


def test_common_names_read_against_the_models_sensor():
    result = identify_bands(_facts(["blue", "green", "red", "nir"]), default_sensor="sentinel2-l2a")
    assert result.sensor.name == "sentinel2-l2a"
    assert [b.name for b in result.bands] == ["B02", "B03", "B04", "B08"]
