"""Scene simulator: determinism, geometry, encodings, physics sanity, files gfm can read."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytest.importorskip("earthlib")

from gfmcli.errors import GfmError, OutputError
from gfmcli.sensors import SensorSpec, get_sensor
from gfmcli.simulate import (
    LABEL_NODATA,
    LANDCOVER_CLASSES,
    SimulatorDependencyError,
    SimulatorError,
    band_response,
    load_library,
    render,
    render_labels,
    sample_object_spectra,
    simulate_landcover,
    simulate_scene,
    water_reflectance,
)
from gfmcli.simulate.render import _TEXTURE
from gfmcli.simulate.spectra import KINDS

WATER, TREES, GRASS, BARE, BUILT = 0, 1, 2, 3, 4
# Every acquisition and sensor effect off: renders are exact functions of the land cover.
# fmt: skip below: a table, kept in rows (ruff format would add 8 lines)
CLEAN = {"noise": 0.0, "illumination": 0.0, "haze": 0.0, "terrain": False, "glint": 0.0,
         "blur": 0.0, "misregistration": 0.0, "gain_error": 0.0}  # fmt: skip


@pytest.fixture(scope="module")
def landcover():
    return simulate_landcover(1440.0, 1440.0, 5.0, seed=7)


@pytest.fixture(scope="module")
def s2(landcover):
    return render(landcover, "sentinel2-l2a", seed=1)


def _physical(rendering):
    spec = rendering.sensor
    return rendering.data.astype(np.float64) * spec.scale + spec.offset


def _class_mean(rendering, band_name, cls):
    index = rendering.sensor.band_names.index(band_name)
    values = _physical(rendering)[index][rendering.labels == cls]
    assert values.size > 0, f"class {cls} missing from the test scene"
    return values.mean()


def test_landcover_is_deterministic_and_seed_dependent():
    a = simulate_landcover(640.0, 480.0, 5.0, seed=3)
    b = simulate_landcover(640.0, 480.0, 5.0, seed=3)
    c = simulate_landcover(640.0, 480.0, 5.0, seed=4)
    assert a.shape == (128, 96)
    for field in ("objects", "object_kind", "mix", "texture"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.classes, c.classes)
    # Object ids are compact: every id is used and has a kind.
    assert np.array_equal(np.unique(a.objects), np.arange(len(a.object_kind)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_scene_has_every_required_class(seed):
    classes = simulate_landcover(1600.0, 1600.0, 10.0, seed=seed).classes
    present = set(np.unique(classes).tolist())
    assert {WATER, TREES, GRASS, BARE, BUILT} <= present
    assert present <= {c.id for c in LANDCOVER_CLASSES}


def test_landcover_rejects_bad_sizes():
    with pytest.raises(SimulatorError):
        simulate_landcover(0.0, 100.0, 5.0)
    with pytest.raises(SimulatorError, match="too large"):
        simulate_landcover(1e6, 1e6, 1.0)
    with pytest.raises(SimulatorError, match="seed"):
        simulate_landcover(100.0, 100.0, 5.0, seed=-1)


def test_render_is_deterministic_and_seed_changes_only_the_acquisition(landcover, s2):
    again = render(landcover, "sentinel2-l2a", seed=1)
    other = render(landcover, "sentinel2-l2a", seed=2)
    assert np.array_equal(s2.data, again.data)
    assert not np.array_equal(s2.data, other.data)
    assert np.array_equal(s2.labels, other.labels)


def test_s2_encoding_shape_and_range(s2):
    spec = get_sensor("sentinel2-l2a")
    assert s2.data.shape == (12, 144, 144) and s2.data.dtype == np.uint16
    assert s2.data.min() >= 1 and s2.nodata == 0
    physical = _physical(s2)
    assert physical.min() >= spec.offset and physical.max() < 1.2
    assert s2.transform.a == 10.0 and s2.transform.e == -10.0


def test_physical_sanity_of_the_s2_render(s2):
    nir = {c: _class_mean(s2, "B08", c) for c in (WATER, TREES, GRASS, BUILT)}
    red = {c: _class_mean(s2, "B04", c) for c in (WATER, TREES, GRASS, BARE)}
    swir = {c: _class_mean(s2, "B11", c) for c in (WATER, BUILT, BARE)}
    assert nir[WATER] < 0.08 < nir[TREES]
    assert nir[WATER] < nir[GRASS] and nir[WATER] < nir[BUILT]
    assert nir[TREES] > 3 * red[TREES] and nir[GRASS] > 2 * red[GRASS]  # red edge
    assert red[BARE] > red[TREES]
    assert swir[BUILT] > 3 * swir[WATER] and swir[BARE] > 3 * swir[WATER]


def test_s1_backscatter_water_dark_urban_bright(landcover):
    s1 = render(landcover, "sentinel1", seed=1)
    assert s1.data.dtype == np.float32 and s1.data.shape == (2, 144, 144)
    assert np.isfinite(s1.data).all()
    # Built-up blocks include their streets and gardens, so the margin is smaller in VH.
    for band, margin in (("VV", 8), ("VH", 6)):
        assert _class_mean(s1, band, WATER) + margin < _class_mean(s1, band, BUILT)
        assert _class_mean(s1, band, WATER) + 5 < _class_mean(s1, band, TREES)
    # VH (cross-pol) is weaker than VV everywhere on average.
    assert s1.data[1].mean() < s1.data[0].mean() - 4


def test_s1_speckle_is_unit_mean_gamma_with_sentinel1_looks(landcover):
    clean = render(landcover, "sentinel1", seed=5, noise=0.0)
    noisy = render(landcover, "sentinel1", seed=5, noise=1.0)
    ratio = 10 ** ((noisy.data - clean.data) / 10.0)
    assert abs(ratio.mean() - 1.0) < 0.02
    assert abs(ratio.var() - 1 / 4.4) < 0.02


def test_s2_coarse_bands_are_blocks_of_their_native_gsd(s2):
    names = s2.sensor.band_names

    def constant_blocks(band, size):
        image = s2.data[names.index(band)].astype(np.int64)
        blocks = image.reshape(144 // size, size, 144 // size, size)
        return (blocks.max(axis=(1, 3)) == blocks.min(axis=(1, 3))).mean()

    assert constant_blocks("B05", 2) == 1.0 and constant_blocks("B11", 2) == 1.0
    assert constant_blocks("B01", 6) == 1.0 and constant_blocks("B09", 6) == 1.0
    assert constant_blocks("B02", 2) < 0.05 and constant_blocks("B08", 2) < 0.05


def test_pixels_mix_their_cells_as_a_naive_loop_does():
    lc = simulate_landcover(80.0, 60.0, 2.0, seed=11)
    spec = get_sensor("vnir4")
    rendering = render(lc, spec, gsd=4.0, **CLEAN)
    library = load_library()
    spectra = sample_object_spectra(library, lc.object_kind, [lc.seed, 1], lc.season)
    spectra = spectra.astype(np.float64)
    values = spectra @ band_response(spec.bands, library.wavelengths_nm).T.astype(np.float64)
    amp = np.array([_TEXTURE[k] for k in KINDS])
    expected = np.zeros((4, 20, 15))
    for i in range(20):
        for j in range(15):
            for di in range(2):
                for dj in range(2):
                    r, c = 2 * i + di, 2 * j + dj
                    obj, w = lc.objects[r, c], lc.mix[r, c] / 255.0
                    t = 1 + amp[lc.object_kind[obj]] * (lc.texture[r, c] - 128.0) / 128.0
                    expected[:, i, j] += (values[obj, 0] * (1 - w) + values[obj, 1] * w) * t / 4
    got = rendering.data.astype(np.float64) * spec.scale + spec.offset
    assert np.abs(got - expected).max() <= spec.scale * 0.51 + 1e-9


def test_many_band_path_matches_the_few_band_path(landcover):
    enmap = get_sensor("enmap")
    assert len(enmap.bands) == 210
    few = SensorSpec("few", "first EnMAP bands", enmap.bands[:5], 30.0, scale=1e-4, nodata=0)
    full = render(landcover, enmap, **CLEAN)
    part = render(landcover, few, **CLEAN)
    assert full.data.shape == (210, 48, 48)
    assert np.abs(full.data[:5].astype(int) - part.data.astype(int)).max() <= 1


def test_labels_are_majority_of_the_base_cells(landcover):
    assert np.array_equal(render_labels(landcover, 5.0), landcover.classes)
    labels = render_labels(landcover, 10.0)
    blocks = landcover.classes.reshape(144, 2, 144, 2).transpose(0, 2, 1, 3).reshape(144, 144, 4)
    counts = np.stack([(blocks == c.id).sum(-1) for c in LANDCOVER_CLASSES])
    assert np.array_equal(labels, counts.argmax(0))


def test_water_model_is_physically_plausible():
    wl = np.array([450.0, 560.0, 665.0, 865.0, 1610.0])
    clear, turbid = water_reflectance(wl, [1.0, 5.0], [0.1, 0.5], [0.5, 50.0], [0.0, 0.0])
    assert clear[1] > clear[2] and clear[0] > clear[2]  # clear water is blue-green
    assert turbid[2] > 3 * clear[2]  # sediment brightens the red
    assert clear[3] < 0.002 and turbid[4] < 1e-4  # NIR/SWIR absorbed by water
    assert 0.005 < clear[1] < 0.08


def test_band_response_weights_integrate_to_one():
    wl = load_library().wavelengths_nm
    bands = get_sensor("sentinel2-l2a").bands + get_sensor("enmap").bands[:3]
    response = band_response(bands, wl)
    assert np.allclose(response.sum(axis=1), 1.0, atol=1e-5)
    ramp = wl / 1000.0  # a linear spectrum: each band reads its centre
    centres = np.array([b.wavelength_nm for b in bands]) / 1000.0
    assert np.allclose(response @ ramp, centres, atol=2e-3)
    toa = band_response(get_sensor("sentinel2-l1c").bands, wl, toa=True)
    assert toa[10].sum() < 0.1  # B10 (1375 nm) sees almost nothing through water vapour


def test_nodata_swath_edge_is_the_same_ground_for_every_sensor(landcover):
    s2 = render(landcover, "sentinel2-l2a", nodata_fraction=0.25)
    l8 = render(landcover, "landsat8", nodata_fraction=0.25)
    s1 = render(landcover, "sentinel1", nodata_fraction=0.25)
    for r in (s2, l8):
        empty = r.labels == LABEL_NODATA
        assert 0.2 < empty.mean() < 0.3
        assert (r.data[:, empty] == 0).all() and (r.data[:, ~empty] >= 1).all()
    assert np.isnan(s1.nodata) and np.isnan(s1.data[:, s1.labels == LABEL_NODATA]).all()
    # The 30 m edge is the 10 m edge seen coarser: block-wise, masks agree almost everywhere.
    s2_edge = (s2.labels == LABEL_NODATA).reshape(48, 3, 48, 3).mean(axis=(1, 3)) > 0.5
    assert (s2_edge == (l8.labels == LABEL_NODATA)).mean() > 0.97


def test_simulate_scene_writes_aligned_described_geotiffs(tmp_path):
    sensors = ["sentinel2-l1c", "landsat9", "vnir4", "enmap", "sentinel1"]
    paths = simulate_scene(tmp_path / "a", sensors=sensors, size_m=600.0, seed=3)
    again = simulate_scene(tmp_path / "b", sensors=sensors, size_m=600.0, seed=3)
    assert sorted(paths) == sorted([*sensors, *(f"{s}_labels" for s in sensors)])
    for name in sensors:
        spec = get_sensor(name)
        with rasterio.open(paths[name]) as img, rasterio.open(paths[f"{name}_labels"]) as lab:
            assert img.crs.to_epsg() == 32633 and img.crs == lab.crs
            assert img.transform == lab.transform and img.shape == lab.shape
            assert img.transform.a == spec.gsd and img.count == len(spec.bands)
            assert img.shape == (round(600 / spec.gsd),) * 2
            assert img.profile["tiled"] and img.block_shapes[0] == (256, 256)
            assert tuple(spec.band(d).name for d in img.descriptions) == spec.band_names
            assert lab.nodata == LABEL_NODATA and lab.colormap(1)[BUILT][:3] == (220, 30, 30)
            assert lab.tags()["CLASS_0"] == "water"
            with rasterio.open(again[name]) as twin:
                assert img.read().tobytes() == twin.read().tobytes()
    with rasterio.open(paths["enmap"]) as img:
        assert img.count == 210 and img.dtypes[0] == "uint16" and img.nodata == 0


def test_simulate_scene_without_descriptions_and_refusing_to_clobber(tmp_path):
    paths = simulate_scene(tmp_path, sensors=["landsat8"], size_m=300.0, with_descriptions=False)
    with rasterio.open(paths["landsat8"]) as img:
        assert img.descriptions == (None,) * 7
    with pytest.raises(OutputError, match="exists"):
        simulate_scene(tmp_path, sensors=["landsat8"], size_m=300.0)
    simulate_scene(tmp_path, sensors=["landsat8"], size_m=300.0, overwrite=True)


def test_a_full_disk_leaves_no_truncated_scene(tmp_path, monkeypatch):
    import errno

    from gfmcli.simulate import scene as scene_module

    def full(path, rendering):
        Path(path).write_bytes(b"half a label raster")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scene_module, "_write_labels", full)
    with pytest.raises(OutputError, match=r"landsat8_labels.tif: .*no space left"):
        simulate_scene(tmp_path, sensors=["landsat8"], size_m=300.0)
    assert list(tmp_path.iterdir()) == [], "nothing at a final path, no temporaries"


def test_simulate_scene_rejects_geographic_crs(tmp_path):
    with pytest.raises(SimulatorError, match="projected"):
        simulate_scene(tmp_path, sensors=["landsat8"], size_m=300.0, crs="EPSG:4326")


def test_missing_earthlib_names_the_install_command(monkeypatch):
    load_library.cache_clear()
    monkeypatch.setitem(sys.modules, "earthlib", None)
    try:
        with pytest.raises(SimulatorDependencyError, match="pip install earthlib") as info:
            load_library()
        assert isinstance(info.value, GfmError)
    finally:
        load_library.cache_clear()


def test_haze_brightens_blue_more_than_nir(landcover):
    options = {"noise": 0.0, "illumination": 0.0}
    clear = _physical(render(landcover, "sentinel2-l2a", haze=0.0, **options))
    hazy = _physical(render(landcover, "sentinel2-l2a", haze=0.05, **options))
    lift = (hazy - clear).mean(axis=(1, 2))
    blue, red, nir = (
        get_sensor("sentinel2-l2a").band_names.index(b) for b in ("B02", "B04", "B08")
    )
    assert lift[blue] > lift[red] > lift[nir] > 0


def test_spectra_pools_and_object_spectra_are_reproducible():
    library = load_library()
    assert library.wavelengths_nm[0] == 400.0 and library.wavelengths_nm[-1] == 2450.0
    assert len(library.pool("bare")) > 4000 and len(library.pool("dense_canopy")) > 1000
    assert not library.pool("bare").flags.writeable  # the per-process cache cannot be altered
    kinds = np.arange(len(KINDS)).repeat(3)
    first = sample_object_spectra(library, kinds, 9)
    assert np.array_equal(first, sample_object_spectra(library, kinds, 9))
    assert not np.array_equal(first, sample_object_spectra(library, kinds, 10))
    assert first.shape == (3 * len(KINDS), 2, 180) and first.min() >= 0.0 and first.max() <= 1.0
    roofs = kinds == KINDS.index("roof")
    assert np.array_equal(first[roofs, 0], first[roofs, 1])  # one material per roof


def test_value_noise_is_smooth_with_the_requested_feature_size():
    from gfmcli.simulate.noise import fractal_noise, value_noise

    field = value_noise((200, 300), 20.0, np.random.default_rng(0))
    assert field.shape == (200, 300) and field.dtype == np.float32
    assert 0.3 < field.std() < 1.2
    step = np.abs(np.diff(field, axis=1)).mean()
    assert step < 0.1 * field.std()  # neighbours 1/20 of a feature apart barely differ
    coarse = value_noise((200, 300), 80.0, np.random.default_rng(0))
    assert np.abs(np.diff(coarse, axis=1)).mean() < step
    again = fractal_noise((50, 60), 10.0, np.random.default_rng(3))
    assert np.array_equal(again, fractal_noise((50, 60), 10.0, np.random.default_rng(3)))
