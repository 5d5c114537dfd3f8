"""``gfm models`` and ``gfm info``: contracts and raster plans read from the files themselves."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import rasterio

from gfmcli.api.info import describe_checkpoint, shipped_models
from gfmcli.contract import contract_hash
from gfmcli.engine import runner, tiling
from gfmcli.engine.options import DEFAULT_MODEL
from gfmcli.io.reader import read_window
from gfmcli.model.checkpoint import default_weights_dir, list_weights, read_checkpoint


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_models_lists_every_shipped_checkpoint_from_its_contract(gfm):
    names = list_weights()
    if not names:
        pytest.skip("no shipped weights in this installation")
    result = gfm("models")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == names
    for name, line in zip(names, lines, strict=True):
        # the weights a run takes without --model are marked, the others not
        assert line.startswith(f"{name} (default) ") == (name == DEFAULT_MODEL)
        contract = read_checkpoint(default_weights_dir() / f"{name}.pt").contract
        assert contract.task in line and contract.sensor in line
        assert f"{len(contract.classes)} classes" in line
        assert all(c.name in line for c in contract.classes)
    records = _lines(gfm("models", "--json").stdout)
    assert [r["name"] for r in records] == names
    assert all(r["parameters"] > 0 and r["file_bytes"] > 0 for r in records)
    assert [r["name"] for r in records if r["default"]] == [DEFAULT_MODEL]


def test_models_follow_the_weights_folder(tiny_model, tmp_path):
    """Nothing about the shipped weights is written in the code: a new file is a new line."""
    shutil.copy(tiny_model, tmp_path / "other-model.pt")
    found = shipped_models(tmp_path)
    assert [s.name for s in found] == ["other-model"]
    assert [c.name for c in found[0].contract.classes] == ["water", "trees", "other"]


def test_info_checkpoint_shows_its_contract(tiny_model, gfm):
    result = gfm("info", str(tiny_model))
    assert result.exit_code == 0, result.output
    text = result.stdout
    for words in ("segmentation", "sentinel2-l2a", "GSD 10 m", "B02", "492.4 nm", "water"):
        assert words in text
    assert "#0000ff" in text and "trained_on: nothing (a test model)" in text

    (record,) = _lines(gfm("info", str(tiny_model), "--json").stdout)
    summary = describe_checkpoint(tiny_model)
    assert record["kind"] == "checkpoint" and record["status"] == "ok"
    assert [b["name"] for b in record["bands"]] == ["B02", "B03", "B04", "B08"]
    assert record["bands"][0]["mean"] == pytest.approx(0.1)
    assert record["classes"][1] == {"id": 1, "name": "trees", "color": [0, 128, 0]}
    assert record["parameters"] == summary.parameters > 0
    assert record["contract_hash"] == contract_hash(summary.contract)
    assert record["provenance"]["trained_on"] == "nothing (a test model)"


def test_info_raster_shows_what_a_run_would_do(tiny_model, s2_scene, tmp_path, gfm):
    src = s2_scene(scales=[1e-4] * 4, offsets=[0.0] * 4)
    before = src.read_bytes()
    args = ("info", str(src), "-m", str(tiny_model), "--window", "32", "--overlap", "8")
    (record,) = _lines(gfm(*args, "--json", "--timing").stdout)
    assert record["kind"] == "raster" and record["command"] == "predict"
    assert (record["width"], record["height"], record["crs"]) == (90, 70, "EPSG:32632")
    assert record["sensor"] == "sentinel2-l2a" and not record["cross_sensor"]
    assert [b["name"] for b in record["bands"]] == ["B02", "B03", "B04", "B08"]
    assert record["bands"][0]["scale"] == pytest.approx(1e-4), "the file's own scale wins"
    assert record["bands"][0]["offset"] == 0.0 and record["bands"][0]["nodata"] == 0.0
    assert record["gsd_m"] == pytest.approx(10.0, rel=1e-3)
    assert record["windows"] == 12  # 3 rows x 4 columns of 32 px windows with overlap 8
    assert record["peak_memory_bytes"] > 0 and record["model_seconds"] > 0
    assert src.read_bytes() == before and not list(tmp_path.glob("*.tif.aux.xml"))

    plain = gfm(*args)  # the model is timed only when asked: gfm info stays quick
    assert "12 windows" in plain.stdout and "est. model time" not in plain.stdout
    assert "est. model time" in gfm(*args, "--timing").stdout


def _gfm_process(*args):
    """``gfm ARGS`` as a separate process, so an escaping exception shows as a traceback."""
    return subprocess.run(
        [sys.executable, "-m", "gfmcli.cli", *map(str, args)], capture_output=True, text=True
    )


def test_info_on_a_map_says_how_it_was_made_and_its_class_shares(
    predict_tiny, s2_scene, tmp_path, gfm
):
    src = s2_scene()
    out = tmp_path / "map.tif"
    assert predict_tiny(src, "-o", out).exit_code == 0
    with rasterio.open(out) as ds:
        data = ds.read(1)
    valid = data[data != 255]
    (record,) = _lines(gfm("info", str(out), "--json").stdout)
    assert record["kind"] == "output" and record["status"] == "ok"
    assert " predict " in record["made_by"] and str(out) in record["made_by"]
    assert record["settings"]["window"] == 32 and record["settings"]["read_as"] == "sentinel2-l2a"
    # the map is 90 x 70, under the sample size: its shares are exact
    for c in record["classes"]:
        assert record["class_shares"][c["name"]] == pytest.approx((valid == c["id"]).mean())
    assert record["nodata_share"] == pytest.approx((data == 255).mean())
    plain = gfm("info", str(out)).stdout
    assert f"{out}: gfm {record['gfm_version']} output, 90 x 70 px" in plain
    assert "window 32 px (overlap 8)" in plain and "trees" in plain


def test_info_on_vector_outputs_reads_their_metadata_and_polygon_areas(
    predict_tiny, gfm, tiny_model, s2_scene, tmp_path
):
    import geopandas as gpd

    src = s2_scene()
    polygons, vectors = tmp_path / "map.gpkg", tmp_path / "emb.parquet"
    assert predict_tiny(src, "-o", polygons).exit_code == 0
    embed = gfm("embed", "-m", tiny_model, src, "-o", vectors, "--window", "32", "--overlap", "0")
    assert embed.exit_code == 0, embed.output
    result = gfm("info", str(polygons), str(vectors), "--json")
    assert result.exit_code == 0, result.output
    first, second = _lines(result.stdout)
    frame = gpd.read_file(polygons)
    assert first["kind"] == "output" and first["format"] == "GeoPackage"
    assert first["layer"] == "classes" and first["features"] == len(frame)
    assert first["settings"]["window"] == 32 and " predict " in first["made_by"]
    areas = frame.groupby("class_name")["area_m2"].sum() / frame["area_m2"].sum()
    assert {k: v for k, v in first["class_shares"].items() if v} == pytest.approx(areas.to_dict())
    table = gpd.read_parquet(vectors)
    assert second["format"] == "GeoParquet" and second["features"] == len(table)
    assert second["settings"]["pool"] == "mean" and second["class_shares"] == {}
    assert second["crs"] == f"EPSG:{table.crs.to_epsg()}"
    plain = gfm("info", str(polygons)).stdout
    assert f"{polygons}: gfm {first['gfm_version']} output, GeoPackage layer 'classes': " in plain
    assert "share of the mapped area" in plain


# North Carolina State Plane as old GeoTIFF keys store it: no name, no authority code
UNNAMED_NC = (
    'PROJCS["unnamed",GEOGCS["GRS 1980(IUGG, 1980)",DATUM["unknown",SPHEROID["GRS80",6378137,'
    '298.257222101],TOWGS84[0,0,0,0,0,0,0]],PRIMEM["Greenwich",0],UNIT["degree",'
    '0.0174532925199433]],PROJECTION["Lambert_Conformal_Conic_2SP"],'
    'PARAMETER["latitude_of_origin",33.75],PARAMETER["central_meridian",-79],'
    'PARAMETER["standard_parallel_1",36.1666666666667],'
    'PARAMETER["standard_parallel_2",34.3333333333333],PARAMETER["false_easting",609601.22],'
    'PARAMETER["false_northing",0],UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


def test_info_names_a_geopackage_crs_as_it_names_a_raster_crs(
    predict_tiny, gfm, s2_scene, tmp_path
):
    from rasterio.crs import CRS

    src = s2_scene(crs=CRS.from_wkt(UNNAMED_NC))
    polygons = tmp_path / "map.gpkg"
    assert predict_tiny(src, "-o", polygons).exit_code == 0
    (raster,) = _lines(gfm("info", str(src), "--json", "--no-timing").stdout)
    (vector,) = _lines(gfm("info", str(polygons), "--json").stdout)
    assert vector["crs"] == raster["crs"] == "EPSG:32119"  # not a 600-character WKT


def test_info_on_a_damaged_map_is_an_input_error_and_odd_tags_are_left_out(
    predict_tiny, s2_scene, tmp_path
):
    out = tmp_path / "map.tif"
    assert predict_tiny(s2_scene(height=300, width=300), "-o", out).exit_code == 0
    cut = tmp_path / "cut.tif"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size * 95 // 100])
    proc = _gfm_process("info", cut)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert "cut.tif: the map's data does not read" in proc.stderr
    with rasterio.open(out, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.update_tags(GFM_SETTINGS="[1, 2]", GFM_CLASSES="not json")
    proc = _gfm_process("info", out, "--json")
    assert proc.returncode == 0, proc.stderr
    (record,) = _lines(proc.stdout)
    assert record["settings"] == {} and record["classes"] == [] and record["class_shares"] == {}


def test_info_with_sensor_for_undescribed_bands_and_bad_paths(
    tiny_model, make_raster, tmp_path, gfm
):
    bare = make_raster(tmp_path, "bare.tif", count=4)
    args = ("info", "-m", str(tiny_model), "--no-timing", "--window", "32", "--overlap", "8")
    failed = gfm(*args, str(bare))
    assert failed.exit_code == 3 and "--sensor" in failed.stderr
    # what the file holds, beside the fix: its header on stdout, the error on stderr
    assert failed.stdout.splitlines() == [
        f"{bare}: 53 x 37 px, 4 band(s) uint16, EPSG:32632, GSD 10 m",
        *[f"    band {i:3d} (no description)" for i in range(1, 5)],
    ]
    (record,) = _lines(gfm(*args, str(bare), "--json").stdout)
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert record["raster"]["count"] == 4 and record["raster"]["descriptions"] == [None] * 4

    ok = gfm(*args, str(bare), "--sensor", "sentinel2-l2a", "--bands", "B02,B03,B04,B08", "--json")
    assert _lines(ok.stdout)[0]["bands"][3]["name"] == "B08"

    missing = str(tmp_path / "missing.tif")
    mixed = gfm(*args, str(tiny_model), missing, "--json")
    assert mixed.exit_code == 3
    first, second = _lines(mixed.stdout)
    assert first["kind"] == "checkpoint" and first["status"] == "ok"
    assert second["status"] == "failed" and "missing.tif" in second["message"]
    assert "raster" not in second  # nothing to describe


@pytest.mark.parametrize(
    ("command", "task", "overlap"), [("predict", "segmentation", "8"), ("embed", "pretrain", "16")]
)
def test_info_dry_run_and_run_count_the_windows_a_run_reads(
    tiny_checkpoint_factory, s2_scene, tmp_path, monkeypatch, command, task, overlap, gfm
):
    """``gfm info``, ``--dry-run`` and the run plan once (engine.runner.open_plan), so their
    window counts are the windows the run reads, stripes (narrowed here to 40 columns) included;
    gfm info describes a pretrained encoder's embeddings."""
    monkeypatch.setattr(tiling, "STRIPE_WIDTH", 40)
    src = str(s2_scene())
    model = tiny_checkpoint_factory(tmp_path / f"{task}.pt", task)
    options = ("-m", str(model), "--window", "32", "--overlap", overlap)
    (described,) = _lines(gfm("info", src, *options, "--no-timing", "--json").stdout)
    out = str(tmp_path / "out.tif")
    (planned,) = _lines(gfm(command, src, *options, "-o", out, "--dry-run", "--json").stdout)
    reads = []

    def counted(*args, **kwargs):
        reads.append(args[1])
        return read_window(*args, **kwargs)

    monkeypatch.setattr(runner, "read_window", counted)
    (done,) = _lines(gfm(command, src, *options, "-o", out, "--json").stdout)
    assert done["status"] == "ok"
    assert described["command"] == command
    assert described["windows"] == planned["windows"] == done["windows"] == len(reads)
    if command == "predict":
        assert described["grid"] == "pixel, 3 stripes"  # 90 columns in stripes of 40


def test_info_shows_the_scaling_the_value_checks_give_a_run(tiny_model, s2_scene, tmp_path, gfm):
    """Float reflectance under the sensor's default DN scale is read as reflectance by a run;
    gfm info reports that scale, not the default, since both come from one checked opening."""
    src = str(s2_scene(dtype="float32"))
    with rasterio.open(src, "r+") as dst:
        dst.write(dst.read() / 10000)
    args = ("info", src, "-m", str(tiny_model), "--no-timing", "--json")
    (record,) = _lines(gfm(*args, "--window", "32", "--overlap", "8").stdout)
    assert [b["scale"] for b in record["bands"]] == [1.0] * 4
    assert [b["offset"] for b in record["bands"]] == [0.0] * 4


def test_info_takes_the_scaling_and_gsd_a_run_is_told(tiny_model, s2_scene, gfm):
    """``--scale``, ``--offset`` and ``--gsd`` mean what they mean to predict: the file's
    own scaling and pixel size are overridden in the report as in a run."""
    src = str(s2_scene(scales=[1e-4] * 4, offsets=[0.0] * 4))
    args = ("info", src, "-m", str(tiny_model), "--no-timing", "--json", "--window", "32")
    (own,) = _lines(gfm(*args).stdout)
    (told,) = _lines(gfm(*args, "--scale", "2e-4", "--offset", "-0.1", "--gsd", "30").stdout)
    assert own["bands"][0]["scale"] == pytest.approx(1e-4)
    assert own["gsd_m"] == pytest.approx(10, rel=1e-2)
    assert told["bands"][0]["scale"] == pytest.approx(2e-4)
    assert told["bands"][0]["offset"] == pytest.approx(-0.1)
    assert told["gsd_m"] == pytest.approx(30)
    # the plain report writes a negative offset as a subtraction (not "+ -0.1")
    text = gfm(*args[:-3], "--window", "32", "--scale", "2e-4", "--offset", "-0.1").stdout
    assert "DN * 0.0002 - 0.1  nodata" in text and "+ -" not in text


def test_info_shows_what_a_run_says_only_under_v(tiny_model, make_raster, tmp_path, gfm):
    """The sensor a file's tags name and the bands the model does without are -v lines of a
    run, not warnings; `gfm info` is asked what gfm makes of a file, so it shows them."""
    names = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
             "B12")  # fmt: skip
    tags = {"SENSOR": "Sentinel-2A MSI", "PRODUCT": "Level-1C", "QUANTIFICATION_VALUE": "10000"}
    l1c = make_raster(tmp_path, "l1c.tif", count=13, descriptions=names, tags=tags)
    args = ("info", str(l1c), "-m", str(tiny_model), "--no-timing", "--window", "32")
    text = gfm(*args).stdout
    assert "  note: " in text and "B10 (1373.5 nm) lie in a water-absorption window" in text
    assert "read as sentinel2-l1c (its tags name it)" in text and "warning" not in text
    (record,) = _lines(gfm(*args, "--json").stdout)
    assert any("B10" in n for n in record["notes"]) and record["warnings"] == []
