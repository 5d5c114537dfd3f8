"""The atmosphere, cloud and snow rules: magnitudes as real TOA products show them."""

import numpy as np
import pytest

from gfmcli.simulate.atmosphere import (
    Atmosphere,
    add_clouds,
    add_snow,
    cloud_field,
    rayleigh_optical_depth,
    to_toa,
)

S2_NM = [443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190]


def _forest(shape=(64, 64)) -> np.ndarray:
    spectrum = np.array(
        [0.02, 0.025, 0.05, 0.025, 0.08, 0.25, 0.3, 0.32, 0.33, 0.33, 0.2, 0.15, 0.07],
        dtype=np.float32,
    )
    return np.broadcast_to(spectrum[:, None, None], (13, *shape)).copy()


def test_rayleigh_depth_matches_tabulated_values():
    tau = rayleigh_optical_depth([450, 550, 850])
    assert tau[0] == pytest.approx(0.223, rel=0.03)
    assert tau[1] == pytest.approx(0.097, rel=0.03)
    assert tau[2] == pytest.approx(0.0164, rel=0.05)


def test_toa_lifts_blue_far_more_than_nir_and_hides_the_ground_at_1375nm():
    surface = _forest()
    atmosphere = Atmosphere(0.15, 1.3, 0.5, 45.0)
    toa = to_toa(surface, S2_NM, atmosphere)
    lift = (toa - surface).mean(axis=(1, 2))
    assert 0.04 < lift[1] < 0.1  # blue: path radiance dominates
    assert abs(lift[7]) < 0.02  # NIR: path and transmittance nearly cancel
    assert lift[1] > 4 * abs(lift[7])
    assert toa[9].mean() < 0.6 * surface[9].mean()  # water-vapour band absorbs
    assert toa[10].mean() < 0.01  # cirrus band: no ground
    assert toa.dtype == np.float32


def test_haze_varies_over_the_scene_but_never_below_clear_sky():
    surface = _forest((96, 96))
    atmosphere = Atmosphere(0.1, 1.3, 0.5, 45.0)
    clear = to_toa(surface, S2_NM, atmosphere)
    hazy = to_toa(surface, S2_NM, atmosphere, rng=np.random.default_rng(0), haze_cell=32)
    blue = hazy[1] - clear[1]
    assert blue.min() >= -1e-6
    assert blue.max() > 0.01


def test_clouds_and_shadows_are_labelled_where_they_are():
    rng = np.random.default_rng(3)
    surface = _forest((128, 128))
    labels = np.full((128, 128), 1, np.uint8)
    field = cloud_field((128, 128), rng, gsd_m=30.0, cover=0.3, sun_elevation_deg=40.0)
    out, lab = add_clouds(surface, S2_NM, field, rng, labels=labels)
    cloud, shadow = lab == 6, lab == 7
    assert 0.15 < cloud.mean() < 0.45
    assert shadow.any()
    assert out[1][cloud].mean() > 0.4  # bright in the blue
    assert out[7][shadow].mean() < 0.5 * surface[7].mean()  # dark in the NIR
    assert (lab[~cloud & ~shadow] == 1).all()


def test_snow_is_bright_in_the_visible_and_dark_in_the_swir():
    rng = np.random.default_rng(1)
    surface = _forest((96, 96))
    labels = np.ones((96, 96), np.uint8)
    out, lab = add_snow(surface, S2_NM, rng, cover=0.4, gsd_m=10.0, labels=labels)
    snow = lab == 8
    assert 0.2 < snow.mean() < 0.6
    assert out[2][snow].mean() > 0.8
    assert out[11][snow].mean() < 0.2


def test_water_can_be_kept_free_of_snow():
    rng = np.random.default_rng(1)
    surface = _forest((64, 64))
    water = np.zeros((64, 64), bool)
    water[:, :32] = True
    _, lab = add_snow(
        surface,
        S2_NM,
        rng,
        cover=0.9,
        gsd_m=10.0,
        labels=np.zeros((64, 64), np.uint8),
        forbid=water,
    )
    assert not (lab[water] == 8).any()


def test_a_lower_cloud_threshold_labels_thin_edges_as_cloud_but_leaves_shadows_alone():
    surface = _forest((128, 128))
    labels = np.full((128, 128), 1, np.uint8)
    field = cloud_field(
        (128, 128), np.random.default_rng(3), gsd_m=30.0, cover=0.3, sun_elevation_deg=40.0
    )
    _, thick = add_clouds(surface, S2_NM, field, np.random.default_rng(4), labels=labels)
    _, thin = add_clouds(
        surface,
        S2_NM,
        field,
        np.random.default_rng(4),
        labels=labels,
        label_threshold=0.1,
        shadow_threshold=0.4,
    )
    edge = (field.opacity > 0.1) & (field.opacity <= 0.4)
    assert edge.any()
    assert (thin[edge] == 6).all() and not (thick[edge] == 6).any()
    assert not (thick == 6)[thin != 6].any()  # every thick cloud stays cloud
    shadow = (field.shadow > 0.4) & (field.opacity <= 0.1)
    faint = (field.shadow > 0.1) & (field.shadow <= 0.4) & (field.opacity <= 0.1)
    assert faint.any()  # shadows a 0.1 shadow threshold would label
    assert shadow.any() and (thin[shadow] == 7).all()
    assert not (thin[(field.shadow <= 0.4) & (field.opacity <= 0.1)] == 7).any()


def test_a_veil_is_the_same_cloud_at_a_lower_peak_opacity():
    def field(peak):
        rng = np.random.default_rng(8)
        return cloud_field((64, 64), rng, gsd_m=30.0, cover=0.4, peak_opacity=peak)

    drawn, veil = field(None), field(0.3)
    assert 0.85 <= drawn.opacity.max() <= 1.0
    assert veil.opacity.max() == pytest.approx(0.3)
    scale = drawn.opacity.max() / 0.3
    np.testing.assert_allclose(veil.opacity * scale, drawn.opacity, atol=1e-6)
    np.testing.assert_allclose(veil.shadow * scale, drawn.shadow, atol=1e-6)
