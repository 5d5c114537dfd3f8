"""The sensor registry: names, aliases, band look-up and clear errors."""

import itertools

import pytest

from gfmcli.errors import SensorError
from gfmcli.sensors import get_sensor, list_sensors


def test_registry_has_required_sensors():
    names = list_sensors()
    for required in ("sentinel2-l1c", "sentinel2-l2a", "landsat8", "landsat9", "sentinel1"):
        assert required in names


def test_sentinel2_tables():
    l1c = get_sensor("Sentinel2_L1C")
    assert len(l1c.bands) == 13
    assert l1c.band("b8a").wavelength_nm == pytest.approx(864.7)
    l2a = get_sensor("sentinel2-l2a")
    assert "B10" not in l2a.band_names and len(l2a.bands) == 12
    assert l2a.band("red").name == "B04"


def test_select_rejects_unknown_and_duplicate_bands():
    s2 = get_sensor("sentinel2-l2a")
    assert [b.name for b in s2.select(["B4", "B3", "B2"])] == ["B04", "B03", "B02"]
    with pytest.raises(SensorError, match="has no band"):
        s2.select(["B10"])
    with pytest.raises(SensorError, match="more than once"):
        s2.select(["B04", "red"])


def test_unknown_sensor_lists_choices():
    with pytest.raises(SensorError, match=r"known sensors: .*landsat8"):
        get_sensor("sentinel3")


def test_radar_and_hyperspectral():
    s1 = get_sensor("sentinel1")
    assert [b.modality for b in s1.bands] == ["radar", "radar"]
    enmap = get_sensor("enmap")
    assert 200 <= len(enmap.bands) <= 230
    wl = enmap.wavelengths
    assert all(a < b for a, b in itertools.pairwise(wl))


def test_landsat_products_and_level1_calibration():
    for number in ("5", "7", "8", "9"):
        for suffix in ("", "-c1", "-toa"):
            assert f"landsat{number}{suffix}" in list_sensors()
    tm = get_sensor("landsat5")
    assert [b.name for b in tm.bands] == ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"]
    assert tm.band("B5").wavelength_nm == 1650.0 and tm.band("nir").name == "SR_B4"
    toa = get_sensor("landsat7-toa")  # TOA reflectance is not SR: plain band numbers
    assert [b.name for b in toa.bands] == ["B1", "B2", "B3", "B4", "B5", "B7"]
    assert toa.band("SR_B4").name == "B4" and toa.band("nir").name == "B4"
    assert (tm.scale, tm.offset) == (2.75e-5, -0.2)
    assert (get_sensor("landsat8-c1").scale, get_sensor("landsat8-c1").nodata) == (1e-4, -9999)
    etm_l1 = get_sensor("landsat7-l1")
    red = etm_l1.band("B3")  # ETM+ high gain: LMIN -5.0, LMAX 152.9, ESUN 1533, sun 45 degrees
    gain = (152.9 + 5.0) / 254
    assert etm_l1.band_scaling(red)[0] == pytest.approx(gain * 3.14159265 / (1533 * 0.7071))
    assert etm_l1.band_scaling(etm_l1.band("B4")) != etm_l1.band_scaling(red)  # per band
    toa = get_sensor("landsat8-toa")
    assert toa.band("B9").wavelength_nm == 1373.0 and toa.band("B10").modality == "thermal"
    assert (toa.scale, toa.offset) == (1.0, 0.0)
