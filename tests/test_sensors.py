"""The sensor registry: names, aliases, band look-up and clear errors."""

import itertools

import pytest

from gfmcli.errors import SensorError
from gfmcli.sensors import get_sensor, list_sensors, parse_wavelength


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


def test_parse_wavelength():
    assert parse_wavelength("band 12 (664.6 nm)") == pytest.approx(664.6)
    assert parse_wavelength("red") is None
