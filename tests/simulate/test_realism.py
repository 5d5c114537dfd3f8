"""Scene simulator realism: urban texture, water, seasons, terrain, atmosphere and sensor effects.

Statistical properties on tiny scenes, each chosen so that it fails if the effect is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

pytest.importorskip("earthlib")

from gfmcli.cli.main import cli
from gfmcli.sensors import get_sensor
from gfmcli.simulate import (
    KIND_CLASS,
    SEASONS,
    SimulatorError,
    load_library,
    render,
    sample_object_spectra,
    simulate_landcover,
    simulate_scene,
    water_reflectance,
)
from gfmcli.simulate.layout import Objects
from gfmcli.simulate.optics import adjacency, psf_shift, terrain_illumination
from gfmcli.simulate.spectra import KIND_ID, KINDS
from gfmcli.simulate.urban import INDUSTRIAL, RESIDENTIAL, ZONES, paint_town

BUILT = 4
# fmt: skip below: a table, kept in rows (ruff format would add 8 lines)
CLEAN = {"noise": 0.0, "illumination": 0.0, "haze": 0.0, "terrain": False, "glint": 0.0,
         "blur": 0.0, "misregistration": 0.0, "gain_error": 0.0}  # fmt: skip
VEGETATION = [KIND_ID["tree"], KIND_ID["grass"]]


def _town(zone: int, seed: int = 0, sun=(180.0, 40.0), dry: bool = False):
    """A town of one zone on an empty 2 x 2 km grid at 5 m: (kinds, classes, town mask)."""
    shape, res = (400, 400), 5.0
    table = Objects()
    table.add(np.array([KIND_ID["soil"]]))  # object 0: the ground outside the town
    objects = np.zeros(shape, dtype=np.int32)
    zones = (tuple(1.0 if z == zone else 0.0 for z in range(len(ZONES))),) * 3
    # fmt: skip below: arguments grouped by meaning (ruff format would add 10 lines)
    paint_town(objects, shape, res, table, np.random.default_rng(seed), centre=(1000.0, 1000.0),
               radius=700.0, sun_azimuth_deg=sun[0], sun_elevation_deg=sun[1],
               built_class=BUILT, zones=zones, dry=dry)  # fmt: skip
    kinds = table.kind_array()[objects]
    return kinds, table.class_array(KIND_CLASS)[objects], objects > 0, objects


def _pixels(field: np.ndarray, k: int = 2) -> np.ndarray:
    """(rows, cols, k*k) samples of each k x k block: the base cells of a 10 m pixel."""
    h, w = field.shape[0] // k, field.shape[1] // k
    return field[: h * k, : w * k].reshape(h, k, w, k).transpose(0, 2, 1, 3).reshape(h, w, -1)


@pytest.mark.parametrize("seed", [0, 1])
def test_residential_blocks_are_half_vegetation_at_10m_and_built_up_as_blocks(seed):
    kinds, classes, town, _ = _town(RESIDENTIAL, seed)
    inside = _pixels(town).all(-1)
    vegetation = _pixels(np.isin(kinds, VEGETATION)).mean(-1)[inside]
    assert 0.3 < vegetation.mean() < 0.7
    assert (classes[town] == BUILT).all()  # lawns, garden trees and shadows are built-up
    kind_pixels = _pixels(kinds)[inside]
    mixed = (kind_pixels != kind_pixels[:, :1]).any(-1)
    assert mixed.mean() > 0.5  # most 10 m pixels mix roofs, lawns, trees, asphalt or shadow
    share = np.bincount(kinds[town], minlength=len(KINDS)) / town.sum()
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    for kind, low, high in (("roof", 0.08, 0.3), ("pavement", 0.08, 0.3), ("shadow", 0.01, 0.2),
                            ("concrete", 0.03, 0.2), ("tree", 0.05, 0.4)):  # fmt: skip
        assert low < share[KIND_ID[kind]] < high, kind


@pytest.mark.parametrize("seed", [0, 1])
def test_dry_towns_have_bare_yards_and_flat_roofs_and_stay_built_up(seed):
    green, _, green_town, _ = _town(RESIDENTIAL, seed)
    dry, classes, town, _ = _town(RESIDENTIAL, seed, dry=True)
    assert (classes[town] == BUILT).all()  # bare and dry-grass yards are built-up too
    share = np.bincount(dry[town], minlength=len(KINDS)) / town.sum()
    green_share = np.bincount(green[green_town], minlength=len(KINDS)) / green_town.sum()
    assert share[VEGETATION].sum() < 0.6 * green_share[VEGETATION].sum()
    assert share[KIND_ID["steppe"]] + share[KIND_ID["soil"]] > 0.15 > green_share[KIND_ID["soil"]]
    assert share[KIND_ID["flatroof"]] > share[KIND_ID["roof"]]  # flat concrete roofs
    assert green_share[KIND_ID["flatroof"]] == 0  # a green residential town has pitched roofs


def test_parks_of_dry_towns_stay_green():
    from gfmcli.simulate.urban import PARK

    kinds, _, town, _ = _town(PARK, dry=True)
    share = np.bincount(kinds[town], minlength=len(KINDS)) / town.sum()
    assert share[KIND_ID["steppe"]] == 0 and share[VEGETATION].sum() > 0.5


def test_industrial_halls_are_large_flat_roofs_in_paved_yards():
    kinds, _, town, objects = _town(INDUSTRIAL)
    res_kinds, _, _, res_objects = _town(RESIDENTIAL)
    halls = np.bincount(objects[kinds == KIND_ID["flatroof"]])
    houses = np.bincount(res_objects[res_kinds == KIND_ID["roof"]])
    assert np.median(halls[halls > 0]) > 10 * np.median(houses[houses > 0])
    share = np.bincount(kinds[town], minlength=len(KINDS)) / town.sum()
    vegetation = share[VEGETATION].sum()
    assert share[KIND_ID["flatroof"]] > 0.2 and vegetation < 0.25


def test_building_shadows_fall_away_from_the_sun():
    # Sun due south: shadows lie north of buildings (rows above them, y runs south).
    kinds, _, _, _ = _town(RESIDENTIAL, sun=(180.0, 30.0))
    roof = kinds == KIND_ID["roof"]
    shadow = kinds == KIND_ID["shadow"]
    # From a shadow cell, a roof lies within a few cells to the south far more often than north.
    south = np.zeros_like(shadow)
    north = np.zeros_like(shadow)
    for d in range(1, 4):
        south[:-d] |= roof[d:]
        north[d:] |= roof[:-d]
    assert shadow.sum() > 100
    assert south[shadow].mean() > 0.8 > 0.3 > north[shadow].mean()


def test_scenes_have_railways_halls_shallow_margins_and_conifers():
    found = {name: False for name in ("rail", "flatroof", "shallow", "conifer")}
    for seed in range(4):
        lc = simulate_landcover(2560.0, 2560.0, 5.0, seed=seed)
        present = set(np.unique(lc.object_kind[lc.objects]).tolist())
        for name in found:
            found[name] |= KIND_ID[name] in present
    assert all(found.values()), found


def test_streams_are_under_three_pixels_wide_and_labelled_water():
    from gfmcli.simulate.landcover import _streams

    shape, res = (512, 512), 5.0
    for seed in range(20):
        streams = _streams(shape, res, Objects(), np.random.default_rng(seed))
        if streams:
            break
    water, _ = streams[0]
    assert water.sum() > 300
    # Under 30 m wide: three 3x3 erosions (15 m off each bank) leave nothing.
    eroded = water.copy()
    for _ in range(3):
        core = eroded[1:-1, 1:-1].copy()
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                core &= eroded[1 + dr : eroded.shape[0] - 1 + dr, 1 + dc : eroded.shape[1] - 1 + dc]
        eroded[:] = False
        eroded[1:-1, 1:-1] = core
    assert not eroded.any()


def test_water_types_turbid_algal_shallow():
    library = load_library()
    wl = library.wavelengths_nm
    band = {nm: int(np.argmin(np.abs(wl - nm))) for nm in (560, 665, 705, 860)}
    lakes = sample_object_spectra(library, np.full(400, KIND_ID["lake"]), 5)[:, 0]
    red_edge = lakes[:, band[705]] / np.maximum(lakes[:, band[665]], 1e-6)
    assert red_edge.max() > 1.5  # algal blooms: a chlorophyll red-edge peak
    assert lakes[:, band[665]].max() > 4 * np.median(lakes[:, band[665]])  # turbid lakes
    deep = water_reflectance(wl, [2.0], [0.2], [2.0], [0.0])[0]
    sand = np.full((1, len(wl)), 0.3)
    shallow = water_reflectance(wl, [2.0], [0.2], [2.0], [0.0], [0.5], sand)[0]
    deeper = water_reflectance(wl, [2.0], [0.2], [2.0], [0.0], [3.0], sand)[0]
    assert shallow[band[560]] > deeper[band[560]] > deep[band[560]]  # the bottom shows
    assert shallow[band[860]] < 0.02  # NIR is still absorbed within half a metre


def test_seasons_change_vegetation_but_not_conifers():
    library = load_library()
    wl = library.wavelengths_nm
    red, nir = int(np.argmin(np.abs(wl - 665))), int(np.argmin(np.abs(wl - 860)))

    def ndvi(kind, season):
        spectra = sample_object_spectra(library, np.full(200, KIND_ID[kind]), 3, season)
        s = spectra[:, 0]
        return float(np.median((s[:, nir] - s[:, red]) / (s[:, nir] + s[:, red])))

    assert ndvi("tree", "summer") > 0.8 and ndvi("tree", "summer") - ndvi("tree", "autumn") > 0.15
    assert ndvi("tree", "winter") < 0.45
    assert ndvi("conifer", "winter") > 0.8
    assert ndvi("grass", "spring") > ndvi("grass", "winter")
    assert ndvi("stubble", "autumn") < 0.45  # harvested fields are straw over soil
    with pytest.raises(ValueError, match="season"):
        sample_object_spectra(library, np.zeros(1, dtype=int), 3, "monsoon")


def test_season_and_sun_are_drawn_from_the_seed_and_can_be_fixed():
    drawn = {simulate_landcover(400.0, 400.0, 10.0, seed=s).season for s in range(12)}
    assert len(drawn) >= 3 and drawn <= set(SEASONS)
    winter = simulate_landcover(400.0, 400.0, 10.0, seed=1, season="winter")
    summer = simulate_landcover(400.0, 400.0, 10.0, seed=1, season="summer")
    assert winter.sun_elevation_deg < 30 < 50 < summer.sun_elevation_deg
    with pytest.raises(SimulatorError, match="season"):
        simulate_landcover(400.0, 400.0, 10.0, season="monsoon")


def test_terrain_illumination_follows_slope_and_sun():
    x = np.arange(50, dtype=np.float32)[None, :] * 20.0
    facing_east = np.repeat(-0.3 * x, 50, axis=0)  # height falls to the east: faces east
    flat = terrain_illumination(np.zeros((50, 50)), 40.0, 90.0)
    toward = terrain_illumination(facing_east, 40.0, 90.0)
    away = terrain_illumination(facing_east, 40.0, 270.0)
    assert np.allclose(flat, 1.0)
    assert toward.mean() > 1.2 and away.mean() < 0.8
    lc = simulate_landcover(1280.0, 1280.0, 10.0, seed=2)
    hilly = type(lc)(**{**lc.__dict__, "relief_m": 600.0})
    options = {**CLEAN, "terrain": True}
    shaded = render(hilly, "landsat8", **options).data.astype(float)
    plain = render(hilly, "landsat8", **CLEAN).data.astype(float)
    ratio = shaded[4] / np.maximum(plain[4], 1)
    assert ratio.std() > 0.05 and 0.8 < np.median(ratio) < 1.2


def test_toa_lifts_blue_adds_adjacency_and_l2a_keeps_its_offset(tmp_path):
    lc = simulate_landcover(1280.0, 1280.0, 5.0, seed=4, season="summer")
    spec = get_sensor("sentinel2-l2a")

    def physical(rendering):
        return rendering.data.astype(float) * spec.scale + spec.offset

    surface = render(lc, spec, seed=1)
    toa = render(lc, spec, seed=1, level="toa")
    assert surface.level == "surface" and toa.level == "toa"
    blue, nir = spec.band_names.index("B02"), spec.band_names.index("B08")
    lift = (physical(toa) - physical(surface)).mean(axis=(1, 2))
    assert lift[blue] > 0.01 and lift[blue] > 2 * abs(lift[nir])
    assert render(lc, "sentinel2-l1c", seed=1).level == "toa"
    # The +1000 DN offset: a pixel of reflectance r is stored as r * 10000 + 1000.
    clean = render(lc, spec, **CLEAN)
    pre = render(lc, "sentinel2-l2a-pre2022", **CLEAN)
    assert np.abs(clean.data.astype(int) - pre.data.astype(int) - 1000).max() <= 1
    with pytest.raises(SimulatorError, match="level"):
        render(lc, spec, level="l3")
    # Adjacency pulls a dark pixel next to bright ground up, more in the blue.
    stack = np.full((2, 60, 60), 0.3, dtype=np.float32)
    stack[:, 30, 30] = 0.02
    mixed = adjacency(stack, [490.0, 860.0], 10.0, 0.1)
    assert mixed[0, 30, 30] > mixed[1, 30, 30] > 0.02


def test_sun_glint_brightens_water_in_every_band():
    lc = simulate_landcover(1280.0, 1280.0, 5.0, seed=4, season="summer")
    calm = render(lc, "sentinel2-l2a", **CLEAN)
    glinty = render(lc, "sentinel2-l2a", **{**CLEAN, "glint": 0.1})
    water = calm.labels == 0
    assert water.sum() > 50
    lift = (glinty.data.astype(float) - calm.data.astype(float))[:, water].mean(axis=1) * 1e-4
    fine = [calm.sensor.band_names.index(b) for b in ("B02", "B03", "B04", "B08")]
    assert (lift[fine] > 0.02).all() and (lift > 0.01).all()  # coarse bands mix in the shore
    assert np.abs(glinty.data[:, ~water].astype(int) - calm.data[:, ~water]).mean() < 20


def test_psf_blurs_and_misregistration_shifts_bands():
    rng = np.random.default_rng(0)
    band = rng.random((64, 64)).astype(np.float32)
    blurred = psf_shift(band, 0.5, (0.0, 0.0))
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.7 * np.abs(np.diff(band, axis=1)).mean()
    assert abs(blurred.mean() - band.mean()) < 0.01
    ramp = np.tile(np.arange(40, dtype=np.float32), (10, 1))
    shifted = psf_shift(ramp, 0.0, (0.0, 0.3))  # content moves right: values drop by 0.3
    assert np.allclose(shifted[:, 5:-5], ramp[:, 5:-5] - 0.3, atol=1e-5)
    lc = simulate_landcover(960.0, 960.0, 5.0, seed=2)
    sharp = render(lc, "sentinel2-l2a", **CLEAN)
    soft = render(lc, "sentinel2-l2a", **{**CLEAN, "blur": 0.6})
    b4 = sharp.sensor.band_names.index("B04")
    assert (
        np.abs(np.diff(soft.data[b4].astype(float))).mean()
        < np.abs(np.diff(sharp.data[b4].astype(float))).mean()
    )


def test_per_band_gain_error_scales_whole_bands():
    lc = simulate_landcover(960.0, 960.0, 5.0, seed=2)
    base = render(lc, "landsat8", **CLEAN).data.astype(float)
    gained = render(lc, "landsat8", **{**CLEAN, "gain_error": 0.05}, seed=3).data.astype(float)
    spec = get_sensor("landsat8")
    base, gained = base * spec.scale + spec.offset, gained * spec.scale + spec.offset
    ratio = np.median(gained / np.maximum(base, 1e-3), axis=(1, 2))
    assert np.ptp(ratio) > 0.03 and np.abs(ratio - 1).max() < 0.25


def test_simulate_cli_season_and_level_reach_the_files(tmp_path):
    out = tmp_path / "scene"
    # fmt: skip below: arguments grouped by meaning (ruff format would add 11 lines)
    result = CliRunner().invoke(
        cli,
        ["simulate", "-o", str(out), "--size-m", "600", "--sensor", "sentinel2-l2a",
         "--season", "winter", "--level", "toa"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with rasterio.open(out / "sentinel2-l2a.tif") as img:
        assert img.tags()["GFM_SEASON"] == "winter" and img.tags()["GFM_LEVEL"] == "toa"
    bad = CliRunner().invoke(cli, ["simulate", "-o", str(tmp_path / "b"), "--level", "l3"])
    assert bad.exit_code != 0 and not (tmp_path / "b").exists()


def test_the_documented_simulate_command_runs(tmp_path):
    # The command line of docs/simulator.md, as a real subprocess.
    command = (
        "gfm simulate -o scene --sensor sentinel2-l1c --sensor landsat8 --level toa --season autumn"
    )
    assert command in (Path(__file__).parents[2] / "docs" / "simulator.md").read_text()
    gfm = shutil.which("gfm", path=str(Path(sys.executable).parent)) or shutil.which("gfm")
    if gfm is None:  # pragma: no cover - the package is installed for the tests
        pytest.skip("the gfm console script is not installed")
    proc = subprocess.run(
        [gfm, *command.split()[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("sentinel2-l1c", "landsat8"):
        with rasterio.open(tmp_path / "scene" / f"{name}.tif") as img:
            assert img.tags()["GFM_LEVEL"] == "toa" and img.tags()["GFM_SEASON"] == "autumn"


def test_simulate_scene_rejects_unknown_season_before_writing(tmp_path):
    with pytest.raises(SimulatorError, match="season"):
        simulate_scene(tmp_path / "x", sensors=["landsat8"], size_m=300.0, season="monsoon")
    assert not (tmp_path / "x").exists()


CLOUD, SHADOW, SNOW = 6, 7, 8


def test_clouds_and_shadows_are_labelled_where_they_are_the_same_for_every_sensor():
    lc = simulate_landcover(1920.0, 1920.0, 5.0, seed=5, season="summer")
    s2 = render(lc, "sentinel2-l2a", seed=2, cloud_cover=0.3)
    clear = render(lc, "sentinel2-l2a", seed=2)
    l8 = render(lc, "landsat8", seed=2, cloud_cover=0.3)
    assert not np.isin(clear.labels, [CLOUD, SHADOW]).any()
    assert 0.15 < (s2.labels == CLOUD).mean() < 0.45
    assert (s2.labels == SHADOW).mean() > 0.02
    spec = s2.sensor
    cloudy = s2.data.astype(float) * spec.scale + spec.offset
    plain = clear.data.astype(float) * spec.scale + spec.offset
    blue, nir = spec.band_names.index("B02"), spec.band_names.index("B08")
    assert cloudy[blue][s2.labels == CLOUD].mean() > 0.3 > cloudy[blue][s2.labels < CLOUD].mean()
    in_shadow = s2.labels == SHADOW
    assert cloudy[nir][in_shadow].mean() < 0.5 * plain[nir][in_shadow].mean()
    # One acquisition, one sky: the 30 m Landsat clouds are the 10 m Sentinel-2 clouds.
    s2_cloud = (s2.labels == CLOUD).reshape(64, 3, 64, 3).mean(axis=(1, 3)) > 0.5
    assert (s2_cloud == (l8.labels == CLOUD)).mean() > 0.9
    assert not np.isin(render(lc, "sentinel1", seed=2, cloud_cover=0.3).labels, [CLOUD]).any()
    other = render(lc, "sentinel2-l2a", seed=2, cloud_cover=0.3, cloud_seed=9)
    assert ((other.labels == CLOUD) != (s2.labels == CLOUD)).mean() > 0.1
    with pytest.raises(SimulatorError, match="cloud_cover"):
        render(lc, "sentinel2-l2a", cloud_cover=1.5)


def test_toa_cirrus_and_vapour_bands_behave_as_at_the_top_of_atmosphere():
    lc = simulate_landcover(960.0, 960.0, 5.0, seed=6, season="summer")
    spec = get_sensor("sentinel2-l1c")
    toa = render(lc, spec, seed=1)
    x = toa.data.astype(float) * spec.scale + spec.offset
    b08, b09, b10 = (spec.band_names.index(b) for b in ("B08", "B09", "B10"))
    assert x[b10].mean() < 0.01  # cirrus band: the water vapour hides the ground
    assert x[b09].mean() < 0.8 * x[b08].mean()  # water-vapour band dimmed


def test_winter_scenes_can_be_snowy_and_snow_is_bright_but_dark_in_the_swir():
    for seed in range(16):
        lc = simulate_landcover(1280.0, 1280.0, 5.0, seed=seed, season="winter")
        if (lc.classes == SNOW).mean() > 0.05:
            break
    else:
        pytest.fail("no snowy winter scene in 16 seeds")
    summer = simulate_landcover(1280.0, 1280.0, 5.0, seed=seed, season="summer")
    assert not (summer.classes == SNOW).any()
    rendering = render(lc, "sentinel2-l2a", **CLEAN)
    spec = rendering.sensor
    x = rendering.data.astype(float) * spec.scale + spec.offset
    green, swir = spec.band_names.index("B03"), spec.band_names.index("B11")
    snow = rendering.labels == SNOW
    ndsi = (x[green] - x[swir]) / (x[green] + x[swir])
    assert x[green][snow].mean() > 0.5 and np.median(ndsi[snow]) > 0.6
    assert np.median(ndsi[~snow]) < 0.3


def test_simulate_cli_clouds(tmp_path):
    out = tmp_path / "cloudy"
    # fmt: skip below: a table, kept in rows (ruff format would add 11 lines)
    args = ["simulate", "-o", str(out), "--size-m", "900", "--sensor", "landsat8",
            "--cloud-cover", "0.5", "--cloud-seed", "3"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with rasterio.open(out / "landsat8_labels.tif") as lab:
        labels = lab.read(1)
        assert lab.tags()["CLASS_6"] == "cloud" and lab.tags()["CLASS_7"] == "cloud shadow"
    assert (labels == CLOUD).mean() > 0.2
    bad = CliRunner().invoke(cli, ["simulate", "-o", str(tmp_path / "b"), "--cloud-cover", "2"])
    assert bad.exit_code == 2 and "fraction" in bad.output and not (tmp_path / "b").exists()


def test_arid_biome_is_mostly_bare_ground_with_a_town_and_steppe_reads_as_bare():
    arid = simulate_landcover(3000.0, 3000.0, resolution_m=10.0, seed=4, biome="arid")
    temperate = simulate_landcover(3000.0, 3000.0, resolution_m=10.0, seed=4)
    share = np.bincount(arid.classes.ravel(), minlength=9) / arid.classes.size
    share_t = np.bincount(temperate.classes.ravel(), minlength=9) / temperate.classes.size
    assert share[3] > 0.5 and share_t[3] < 0.3  # bare soil dominates only the arid scene
    assert share[1] < 0.1 < share_t[1]  # few thickets, where temperate land has forests
    assert share[4] > 0.01  # the town is still there: bare ground is not all there is
    kinds = arid.object_kind[arid.objects]
    assert (kinds == KIND_ID["steppe"]).mean() > 0.2
    assert KIND_CLASS[KIND_ID["steppe"]] == 3
    assert arid.relief_m >= 60.0  # hills or mountains
    # steppe spectra: soil-like (NIR/red well under a meadow's), brighter in SWIR than red
    library = load_library()
    wl = library.wavelengths_nm
    spectra = sample_object_spectra(
        library, np.full(200, KIND_ID["steppe"]), seed=1, season="summer"
    )[:, 0]
    red, nir, swir = (spectra[:, np.argmin(abs(wl - w))] for w in (660, 840, 1610))
    ndvi = (nir - red) / (nir + red)
    assert np.median(ndvi) < 0.3 and np.median(swir) > np.median(red)


def test_unknown_biome_is_refused_and_the_cli_takes_arid(tmp_path):
    with pytest.raises(SimulatorError, match="biome"):
        simulate_landcover(1000.0, 1000.0, biome="tundra")
    result = CliRunner().invoke(
        cli, ["simulate", "-o", str(tmp_path), "--biome", "arid", "--size-m", "640", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "sentinel2-l2a_labels.tif") as ds:
        labels = ds.read(1)
    assert (labels == 3).mean() > 0.4
