"""``gfm tile``: grid alignment, edge padding, skips, stats, blocked splits, labels, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from rasterio.errors import NotGeoreferencedWarning

from gfmcli.cli.main import cli
from gfmcli.simulate.landcover import LANDCOVER_CLASSES
from gfmcli.train.chips import chip_starts
from gfmcli.train.split import GridChip, assign_splits

ORIGIN = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)


def run(*args: str):
    return CliRunner().invoke(cli, ["tile", *map(str, args)], catch_exceptions=False)


def meta(folder: Path) -> dict:
    return json.loads((folder / "chips.json").read_text())


def vnir(make_raster, tmp_path, name="scene.tif", height=100, width=150, seed=0, data=None):
    return make_raster(
        tmp_path, name, count=4, height=height, width=width, nodata=0, seed=seed, data=data
    )


def test_chip_starts_cover_edges_without_redundant_chips():
    assert chip_starts(100, 64, 64) == [0, 64]
    assert chip_starts(128, 64, 64) == [0, 64]
    assert chip_starts(20, 64, 64) == [0]
    assert chip_starts(100, 64, 32) == [0, 32, 64]
    assert chip_starts(96, 64, 32) == [0, 32]


def test_chips_are_aligned_padded_and_physical(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path)
    out = tmp_path / "chips"
    result = run(src, "-o", out, "--sensor", "vnir4", "--size", "64", "--min-valid", "0.5")
    assert result.exit_code == 0, result.output
    info = meta(out)
    assert len(info["chips"]) == 6  # 2 rows x 3 columns, edges padded, none dropped
    assert [b["name"] for b in info["bands"]] == ["blue", "green", "red", "nir"]
    # the ground length predict tells the model: 10 m grid steps / UTM's 0.9996 scale factor
    assert info["gsd"] == pytest.approx(10.004, abs=1e-3) and info["sensor"] == "vnir4"
    with rasterio.open(src) as ds:
        dn = ds.read().astype(np.float64)
    chip = next(c for c in info["chips"] if c["row"] == 64 and c["col"] == 128)
    with rasterio.open(out / chip["image"]) as ds:
        assert ds.transform == ORIGIN @ Affine.translation(128, 64)
        assert ds.descriptions == ("blue", "green", "red", "nir")
        data = ds.read()
    assert data.shape == (4, 64, 64)
    np.testing.assert_allclose(data[:, :36, :22], dn[:, 64:, 128:] * 1e-4, rtol=1e-6)
    assert np.isnan(data[:, 36:, :]).all() and np.isnan(data[:, :, 22:]).all()
    assert chip["valid_fraction"] == 1.0
    assert chip["coverage"] == pytest.approx(36 * 22 / 64**2, abs=1e-6)


def test_area_smaller_than_a_chip_becomes_one_padded_chip(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=20, width=30)
    out = tmp_path / "chips"
    assert run(src, "-o", out, "--sensor", "vnir4", "--size", "64").exit_code == 0
    (chip,) = meta(out)["chips"]
    assert chip["coverage"] == pytest.approx(600 / 4096, abs=1e-6)


def test_stats_are_over_valid_train_pixels_only(make_raster, tmp_path):
    data = np.random.default_rng(1).integers(1000, 4000, (4, 128, 128)).astype("uint16")
    data[:, :10, :] = 0  # nodata strip: must not enter the statistics
    src = vnir(make_raster, tmp_path, data=data)
    out = tmp_path / "chips"
    args = (src, "-o", out, "--sensor", "vnir4", "--size", "32", "--block-size", "1")
    assert run(*args).exit_code == 0
    pixels = []
    for chip in meta(out)["chips"]:
        if chip["split"] == "train":
            with rasterio.open(out / chip["image"]) as ds:
                image = ds.read().reshape(4, -1)
            pixels.append(image[:, np.isfinite(image).all(axis=0)])
    reference = np.concatenate(pixels, axis=1).astype(np.float64)
    assert reference.min() > 0  # the nodata zeros were excluded
    stats = json.loads((out / "stats.json").read_text())["bands"]
    np.testing.assert_allclose([b["mean"] for b in stats], reference.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose([b["std"] for b in stats], reference.std(axis=1), rtol=1e-9)
    assert [b["count"] for b in stats] == [reference.shape[1]] * 4


def test_skipped_chips_are_counted_and_reported(make_raster, tmp_path):
    data = np.random.default_rng(2).integers(1000, 4000, (4, 64, 128)).astype("uint16")
    data[:, :, 64:] = 0  # right half all nodata
    data[:, :40, :64] = 0  # left half 62.5 % nodata
    src = vnir(make_raster, tmp_path, data=data)
    out = tmp_path / "chips"
    result = run(src, "-o", out, "--sensor", "vnir4", "--size", "32", "--min-valid", "0.5")
    info = meta(out)
    # left half: rows 0-31 fully nodata (2 chips), rows 32-63 have 24/32 valid rows (kept)
    assert len(info["chips"]) == 2 and info["skipped"]["invalid"] == 6
    assert "skipped 6 with too few valid pixels" in result.output


def test_all_chips_skipped_is_an_input_error(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, data=np.zeros((4, 40, 40), "uint16"))
    result = run(src, "-o", tmp_path / "chips", "--sensor", "vnir4", "--size", "32")
    assert result.exit_code == 3 and "no chips written" in result.output
    assert not (tmp_path / "chips").exists()


def test_split_is_blocked_deterministic_and_seeded(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=256, width=256)
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        args = ("--sensor", "vnir4", "--size", "16", "--block-size", "4", "--seed", seed)
        assert run(src, "-o", out, *args).exit_code == 0
        outs.append(meta(out)["chips"])
    key = [(c["row"], c["col"], c["split"]) for c in outs[0]]
    assert key == [(c["row"], c["col"], c["split"]) for c in outs[1]]
    assert key != [(c["row"], c["col"], c["split"]) for c in outs[2]]
    by_block: dict[tuple[int, int], set[str]] = {}
    for c in outs[0]:
        by_block.setdefault((c["row"] // 64, c["col"] // 64), set()).add(c["split"])
    assert all(len(s) == 1 for s in by_block.values()) and len(by_block) == 16
    counts = {s: sum(1 for c in outs[0] if c["split"] == s) for s in ("train", "val", "test")}
    assert counts == {"train": 13 * 16, "val": 2 * 16, "test": 1 * 16}


def test_overlapping_chips_never_leak_across_splits():
    chips = [GridChip(0, r, c) for r in range(0, 224, 32) for c in range(0, 224, 32)]
    splits = assign_splits(
        chips, size=64, stride=32, block=2, fractions=(0.6, 0.2, 0.2), seed=0, buffer=0
    )
    assert "buffer" in splits
    for a, sa in zip(chips, splits, strict=True):
        for b, sb in zip(chips, splits, strict=True):
            overlap = abs(a.row - b.row) < 64 and abs(a.col - b.col) < 64
            if overlap and sa == "train":
                assert sb in ("train", "buffer")


def write_label_raster(tmp_path, make_raster, crs="EPSG:32632", transform=None, values=(1, 2)):
    """A 5 m label raster: class values[0] west of x = 500300, values[1] east of it."""
    transform = transform or Affine(5.0, 0.0, 500000.0, 0.0, -5.0, 5000000.0)
    xs = transform.c + transform.a * (np.arange(300) + 0.5)
    row = np.where(xs < 500300, values[0], values[1]).astype("uint8")
    data = np.broadcast_to(row, (200, 300)).copy()
    return make_raster(
        tmp_path, "labels.tif", data=data, dtype="uint8", crs=crs, transform=transform, nodata=255
    )


def label_agreement(out: Path) -> float:
    """Fraction of labelled pixels agreeing with the x = 500300 boundary."""
    hits = total = 0
    for chip in meta(out)["chips"]:
        with rasterio.open(out / chip["label"]) as ds:
            label = ds.read(1)
            cols = np.arange(label.shape[1])
            xs = ds.transform.c + ds.transform.a * (cols + 0.5)
        expected = np.broadcast_to(np.where(xs < 500300, 1, 2), label.shape)
        ok = label != 255
        hits += int((label[ok] == expected[ok]).sum())
        total += int(ok.sum())
    return hits / total


def test_label_raster_on_another_grid_is_resampled_nearest(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=64, width=64)
    labels = write_label_raster(tmp_path, make_raster)
    out = tmp_path / "chips"
    result = run(src, "--labels", labels, "-o", out, "--sensor", "vnir4", "--size", "32")
    assert result.exit_code == 0, result.output
    assert label_agreement(out) == 1.0
    assert [c["id"] for c in meta(out)["classes"]] == [1, 2]
    assert {c["class"] for c in meta(out)["chips"]} == {1, 2}


def test_label_raster_in_another_crs_is_reprojected(make_raster, tmp_path):
    from rasterio.warp import calculate_default_transform, reproject

    src = vnir(make_raster, tmp_path, height=64, width=64)
    utm = write_label_raster(tmp_path / "utm", make_raster)
    with rasterio.open(utm) as ds:
        transform, width, height = calculate_default_transform(
            ds.crs, "EPSG:4326", ds.width, ds.height, *ds.bounds, resolution=2e-5
        )
        target = np.full((height, width), 255, np.uint8)
        # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
        reproject(ds.read(1), target, src_transform=ds.transform, src_crs=ds.crs,
                  dst_transform=transform, dst_crs="EPSG:4326", dst_nodata=255)  # fmt: skip
    # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
    labels = make_raster(tmp_path, "wgs84.tif", data=target, dtype="uint8", crs="EPSG:4326",
                         transform=transform, nodata=255)  # fmt: skip
    out = tmp_path / "chips"
    result = run(src, "--labels", labels, "-o", out, "--sensor", "vnir4", "--size", "32")
    assert result.exit_code == 0, result.output
    assert label_agreement(out) > 0.98


def test_vector_labels_in_another_crs(make_raster, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    src = vnir(make_raster, tmp_path, height=64, width=64)
    frame = gpd.GeoDataFrame(
        {"landuse": ["water", "built-up"]},
        geometry=[box(500000, 4999000, 500300, 5000000), box(500300, 4999000, 501000, 5000000)],
        crs="EPSG:32632",
    ).to_crs("EPSG:4326")
    labels = tmp_path / "labels.geojson"
    frame.to_file(labels, driver="GeoJSON")
    out = tmp_path / "chips"
    args = ("--label-column", "landuse", "--classes", "landcover", "--size", "32")
    result = run(src, "--labels", labels, "-o", out, "--sensor", "vnir4", *args)
    assert result.exit_code == 0, result.output
    hits = total = 0
    for chip in meta(out)["chips"]:
        with rasterio.open(out / chip["label"]) as ds:
            label = ds.read(1)
            xs = ds.transform.c + 10.0 * (np.arange(32) + 0.5)
        expected = np.broadcast_to(np.where(xs < 500300, 0, 4), label.shape)  # water 0, built 4
        hits += int((label == expected).sum())
        total += label.size
    assert hits / total > 0.98
    assert [c["name"] for c in meta(out)["classes"]] == [c.name for c in LANDCOVER_CLASSES]


def test_unknown_label_class_is_an_input_error(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=64, width=64)
    labels = write_label_raster(tmp_path, make_raster, values=(1, 9))
    # fmt: skip below: arguments grouped by meaning (ruff format would add 11 lines)
    result = run(src, "--labels", labels, "-o", tmp_path / "c", "--sensor", "vnir4",
                 "--classes", "landcover", "--size", "32")  # fmt: skip
    assert result.exit_code == 3
    assert "class id(s) 9 are not in the class list" in result.output


def test_labels_not_overlapping_is_an_input_error(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=64, width=64)
    far = Affine(5.0, 0.0, 700000.0, 0.0, -5.0, 5000000.0)
    labels = write_label_raster(tmp_path, make_raster, transform=far)
    result = run(src, "--labels", labels, "-o", tmp_path / "c", "--sensor", "vnir4")
    assert result.exit_code == 3 and "do not overlap" in result.output


def test_existing_output_needs_overwrite(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=40, width=40)
    out = tmp_path / "chips"
    args = ("--sensor", "vnir4", "--size", "32")
    assert run(src, "-o", out, *args).exit_code == 0
    first = meta(out)
    result = run(src, "-o", out, *args, "--stride", "16")
    assert result.exit_code == 5 and meta(out) == first
    assert "chips: is a chip folder gfm tile made; pass --overwrite" in result.output
    assert run(src, "-o", out, *args, "--stride", "16", "--overwrite").exit_code == 0
    assert meta(out)["stride"] == 16 and (out / ".gfm-chips").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".chips")]


def test_overwrite_never_deletes_a_folder_gfm_did_not_make(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path / "data", height=40, width=40)
    args = ("--sensor", "vnir4", "--size", "32", "--overwrite")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    result = run(src, "-o", mine, *args)
    assert result.exit_code == 5 and "not a chip folder made by gfm" in result.output
    assert (mine / "keep.txt").read_text() == "x"
    chips = tmp_path / "chips"
    assert run(src, "-o", chips, "--sensor", "vnir4", "--size", "32").exit_code == 0
    (chips / "notes.txt").write_text("mine")  # a user file added to a chip folder stays too
    result = run(src, "-o", chips, *args)
    assert result.exit_code == 5 and "notes.txt" in result.output
    assert (chips / "notes.txt").exists() and (chips / "chips.json").exists()


@pytest.mark.parametrize("target", ["data", "."])
def test_a_folder_holding_an_input_is_never_the_chip_folder(
    make_raster, tmp_path, monkeypatch, target
):
    src = vnir(make_raster, tmp_path / "data", height=40, width=40)
    monkeypatch.chdir(tmp_path / "data" if target == "." else tmp_path)
    before = src.read_bytes()
    result = run(src, "-o", target, "--sensor", "vnir4", "--size", "32", "--overwrite")
    assert result.exit_code == 5 and "holds the input" in result.output
    assert src.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["scene.tif"]


def test_index_geopackage_has_footprints(make_raster, tmp_path):
    import geopandas as gpd

    src = vnir(make_raster, tmp_path, height=64, width=96)
    out = tmp_path / "chips"
    assert run(src, "-o", out, "--sensor", "vnir4", "--size", "32").exit_code == 0
    index = gpd.read_file(out / "index.gpkg")
    assert len(index) == 6 and index.crs.to_epsg() == 32632
    assert set(index.columns) >= {"source", "sensor", "split", "image", "valid_fraction"}
    first = index.iloc[0].geometry.bounds
    assert first == pytest.approx((500000, 5000000 - 320, 500320, 5000000))


def test_band_identity_errors(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=40, width=40)
    result = run(src, "-o", tmp_path / "a")
    assert result.exit_code == 3 and "--sensor" in result.output
    result = run(src, "-o", tmp_path / "b", "--sensor", "sentinel2-l2a")
    assert result.exit_code == 3 and "--bands" in result.output
    result = run(src, "-o", tmp_path / "c", "--sensor", "sentinel2-l2a", "--bands", "B4,B3,B2,B8")
    assert result.exit_code == 0
    assert [b["name"] for b in meta(tmp_path / "c")["bands"]] == ["B04", "B03", "B02", "B08"]


def test_rasters_with_different_band_sets_are_rejected(make_raster, tmp_path):
    a = vnir(make_raster, tmp_path, "a.tif", height=40, width=40)
    b = make_raster(tmp_path, "b.tif", count=2, height=40, width=40, dtype="float32")
    result = run(a, b, "-o", tmp_path / "c", "--sensor", "vnir4", "--size", "32")
    assert result.exit_code == 3


def test_one_label_file_per_raster(make_raster, tmp_path):
    a = vnir(make_raster, tmp_path, "a.tif", height=64, width=64)
    b = vnir(make_raster, tmp_path, "b.tif", height=64, width=64, seed=1)
    la = write_label_raster(tmp_path / "la", make_raster, values=(1, 2))
    lb = write_label_raster(tmp_path / "lb", make_raster, values=(3, 3))
    out = tmp_path / "chips"
    args = ("--sensor", "vnir4", "--size", "32")
    result = run(a, b, "--labels", la, "--labels", lb, "-o", out, *args)
    assert result.exit_code == 0, result.output
    by_source: dict[str, set[int]] = {}
    for chip in meta(out)["chips"]:
        by_source.setdefault(Path(chip["source"]).name, set()).add(chip["class"])
    assert by_source == {"a.tif": {1, 2}, "b.tif": {3}}
    assert meta(out)["class_ids_present"] == [1, 2, 3]
    result = run(a, b, "--labels", la, "--labels", lb, "--labels", la, "-o", tmp_path / "x", *args)
    assert result.exit_code == 3 and "3 label files for 2 rasters" in result.output


def test_rasters_from_a_folder_a_glob_and_stdin(make_raster, tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    vnir(make_raster, scenes, "a.tif", height=64, width=64)
    vnir(make_raster, scenes, "b.tif", height=64, width=64, seed=1)
    args = ("--sensor", "vnir4", "--size", "32")
    for name, given, stdin in [
        ("folder", [scenes], None),
        ("glob", [scenes / "*.tif"], None),
        ("stdin", ["-"], f"{scenes / 'b.tif'}\n# a comment\n{scenes / 'a.tif'}\n"),
    ]:
        out = tmp_path / name
        result = CliRunner().invoke(
            cli, ["tile", *map(str, given), "-o", str(out), *args], input=stdin
        )
        assert result.exit_code == 0, result.output
        sources = {Path(chip["source"]).name for chip in meta(out)["chips"]}
        assert sources == {"a.tif", "b.tif"}, name


def test_a_stac_item_is_refused_by_name(make_raster, tmp_path):
    item = tmp_path / "item.json"
    item.write_text('{"type": "Feature", "stac_version": "1.0.0", "assets": {}}')
    result = run(item, "-o", tmp_path / "chips", "--size", "32")
    assert result.exit_code == 3
    assert "item.json: gfm tile cuts raster files, not STAC items" in result.output
    assert not (tmp_path / "chips").exists()


def test_one_label_file_for_all_rasters(make_raster, tmp_path):
    a = vnir(make_raster, tmp_path, "a.tif", height=64, width=64)
    b = vnir(make_raster, tmp_path, "b.tif", height=64, width=64, seed=1)
    labels = write_label_raster(tmp_path / "l", make_raster, values=(1, 2))
    out = tmp_path / "chips"
    result = run(a, b, "--labels", labels, "-o", out, "--sensor", "vnir4", "--size", "32")
    assert result.exit_code == 0, result.output
    sources = {Path(chip["source"]).name for chip in meta(out)["chips"] if "label" in chip}
    assert sources == {"a.tif", "b.tif"}


@pytest.mark.parametrize(
    ("option", "value"), [("--size", "0"), ("--stride", "0"), ("--stride", "-4")]
)
def test_chip_size_and_stride_must_be_positive(make_raster, tmp_path, option, value):
    src = vnir(make_raster, tmp_path, height=40, width=40)
    result = run(src, "-o", tmp_path / "c", "--sensor", "vnir4", option, value)
    assert result.exit_code == 2 and option in result.output
    assert not (tmp_path / "c").exists()


def test_raster_without_crs_is_an_input_error_offering_a_vrt(make_raster, tmp_path):
    src = make_raster(tmp_path, "nocrs.tif", count=4, height=40, width=40, crs=None)
    result = run(src, "-o", tmp_path / "c", "--sensor", "vnir4", "--size", "32")
    assert result.exit_code == 3 and "no CRS" in result.output
    assert f"gdal_edit -a_srs EPSG:32632 {src}" in result.output  # predict's rule and fix
    bare = tmp_path / "bare.tif"  # no CRS and no geotransform at all, as many ML datasets
    profile = {"driver": "GTiff", "width": 50, "height": 40, "count": 4, "dtype": "uint16"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # writing it, rasterio warns
        with rasterio.open(bare, "w", **profile) as dst:
            dst.write(np.full((4, 40, 50), 1500, "uint16"))
    command = [sys.executable, "-m", "gfmcli.cli", "tile", str(bare), "-o", str(tmp_path / "c")]
    proc = subprocess.run(
        [*command, "--sensor", "vnir4", "--size", "32"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3, proc.stderr
    fix = f"gdal_translate -of VRT -a_srs EPSG:32632 -a_ullr 0 1200 1500 0 {bare} bare.vrt"
    assert len(proc.stderr.splitlines()) == 1 and fix in proc.stderr  # not rasterio's warning
    assert not (tmp_path / "c").exists()


def test_tile_shares_predicts_band_rules(make_raster, tmp_path):
    l1c = [
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    ]
    # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
    src = make_raster(
        tmp_path, "l1c.tif", count=13, height=40, width=40, nodata=0, descriptions=l1c,
        tags={"QUANTIFICATION_VALUE": "10000", "RADIO_ADD_OFFSET": "-1000"},
    )  # fmt: skip
    result = run(src, "-o", tmp_path / "a", "--size", "32")
    assert result.exit_code == 0, result.output
    bands = meta(tmp_path / "a")["bands"]
    assert meta(tmp_path / "a")["sensor"] == "sentinel2-l1c" and len(bands) == 13
    assert {(b["scale"], b["offset"]) for b in bands} == {(1e-4, -0.1)}  # from ESA's tags
    numbers = ["B1", "B2", "B3", "B4", "B5", "B7"]
    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
    landsat = make_raster(
        tmp_path, "tm.tif", count=6, height=40, width=40, descriptions=numbers,
        transform=Affine(30.0, 0, 500000.0, 0, -30.0, 5000000.0),
    )  # fmt: skip
    result = run(landsat, "-o", tmp_path / "b", "--size", "32")
    assert result.exit_code == 3 and "--sensor landsat7" in result.output
    result = run(landsat, "-o", tmp_path / "c", "--size", "32", "--sensor", "landsat5")
    assert result.exit_code == 0, result.output
    assert [b["wavelength_nm"] for b in meta(tmp_path / "c")["bands"]][4] == 1650.0


def test_a_failed_statistics_write_is_an_output_error(tmp_path):
    from gfmcli.errors import OutputError
    from gfmcli.train.stats import BandStatistics, write_stats

    stats = BandStatistics(("blue",))
    with pytest.raises(OutputError, match=r"stats.json: cannot write chip statistics"):
        write_stats(tmp_path / "gone" / "stats.json", stats)


def test_an_internal_mask_keeps_masked_pixels_out_of_chips_and_statistics(make_raster, tmp_path):
    valid = np.ones((64, 64), bool)
    valid[:, :32] = False  # the left half masked (values there stay ordinary DN)
    src = make_raster(tmp_path, "masked.tif", count=4, height=64, width=64, mask=valid)
    out = tmp_path / "chips"
    args = (src, "-o", out, "--sensor", "vnir4", "--size", "32", "--min-valid", "0")
    assert run(*args, "--split", "1,0,0").exit_code == 0
    chips = {(c["row"], c["col"]): c for c in meta(out)["chips"]}
    with rasterio.open(out / chips[(0, 0)]["image"]) as left:
        assert np.isnan(left.read()).all()
    with rasterio.open(out / chips[(0, 32)]["image"]) as right:
        assert np.isfinite(right.read()).all()
    stats = json.loads((out / "stats.json").read_text())["bands"]
    assert [b["count"] for b in stats] == [64 * 32] * 4


def test_a_geographic_raster_records_its_ground_pixel_size(make_raster, tmp_path):
    degrees = Affine(0.0003, 0.0, 11.0, 0.0, -0.0003, 0.01)  # about 33 m at the equator
    src = make_raster(tmp_path, "wgs84.tif", crs="EPSG:4326", transform=degrees, count=4)
    out = tmp_path / "chips"
    assert run(src, "-o", out, "--sensor", "vnir4", "--size", "32").exit_code == 0
    assert meta(out)["gsd"] == pytest.approx(0.0003 * 111_320, rel=0.01)


def test_rasters_of_different_pixel_sizes_are_refused(make_raster, tmp_path):
    a = vnir(make_raster, tmp_path, "a.tif", height=40, width=40)
    b = make_raster(
        tmp_path,
        "b.tif",
        count=4,
        height=40,
        width=40,
        nodata=0,
        transform=ORIGIN @ Affine.scale(3),
    )
    result = run(a, b, "-o", tmp_path / "c", "--sensor", "vnir4", "--size", "32")
    assert result.exit_code == 3
    assert "pixels are 30 m" in result.output and "own chip folder" in result.output
    assert not (tmp_path / "c").exists()


def test_a_labels_folder_is_refused_with_the_fix(make_raster, tmp_path):
    src = vnir(make_raster, tmp_path, height=40, width=40)
    (tmp_path / "masks").mkdir()
    result = run(src, "--labels", tmp_path / "masks", "-o", tmp_path / "c", "--sensor", "vnir4")
    assert result.exit_code == 3
    assert "is a folder; --labels takes a file: pass one --labels FILE per raster" in result.output
    assert not (tmp_path / "c").exists()


def test_a_killed_runs_staging_folder_is_removed_and_nothing_else(make_raster, tmp_path):
    from gfmcli.atomic import partial_path

    src = vnir(make_raster, tmp_path, height=40, width=40)
    out = tmp_path / "chips"
    dead = partial_path(out.resolve(), pid=2**22 + 12345)  # no such process
    (dead / "images").mkdir(parents=True)
    (dead / ".gfm-chips").write_text("gfm chip folder\n")
    users = partial_path(out.resolve(), pid=2**22 + 12346)  # the same name, not gfm's
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    assert run(src, "-o", out, "--sensor", "vnir4", "--size", "32").exit_code == 0
    assert not dead.exists() and (users / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".chips")) == [users.name]
