"""gfm predict / gfm embed end to end: outputs, resume, keep-going, bad inputs, devices, ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.env import get_gdal_config
from rio_cogeo.cogeo import cog_validate

import gfmcli.engine.jobs as jobs
from gfmcli import map_rasters
from gfmcli.engine.inference import DevicePool
from gfmcli.engine.options import MapOptions
from gfmcli.io.vector_reads import reading_vectors
from gfmcli.model.checkpoint import load_checkpoint

BANDS = ("B02", "B03", "B04", "B08")
WINDOW_32_8 = ("--window", "32", "--overlap", "8")


def test_predict_writes_a_valid_cog_with_the_contract(predict_tiny, s2_scene, tmp_path):
    src = s2_scene()
    out = tmp_path / "maps" / "map.tif"
    result = predict_tiny(str(src), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    valid, errors, _ = cog_validate(str(out), quiet=True)
    assert valid, errors
    with rasterio.open(src) as s, rasterio.open(out) as d:
        assert (d.crs, d.transform, d.shape) == (s.crs, s.transform, s.shape)
        classes = d.read(1)
        assert d.dtypes[0] == "uint8" and d.nodata == 255
        assert d.colormap(1)[1] == (0, 128, 0, 255)
        assert d.tags()["GFM_MODEL"] == "less_vit_tiny"
        assert "predict" in d.tags()["GFM_COMMAND"]
    assert (classes[:10, :12] == 255).all(), "nodata input must give nodata output"
    assert set(np.unique(classes[10:, 12:])) <= {0, 1, 2}
    assert "trees" in (out.parent / "map.tif.aux.xml").read_text()
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_map_does_not_depend_on_batch_size_or_device_count(
    tiny_model, s2_scene, tmp_path, precision
):
    src = s2_scene()
    model, contract = load_checkpoint(tiny_model)
    maps = []
    for batch_size, devices in ((1, 1), (3, 1), (2, 2)):
        out = tmp_path / f"map-{batch_size}-{devices}.tif"
        options = MapOptions(window=32, overlap=8, batch_size=batch_size, precision=precision)
        pool_devices = [torch.device("cpu")] * devices
        if devices == 1:
            map_rasters([src], out, options, model=(model, contract), device="cpu")
        else:  # two replicas on the CPU: the device pool itself, below map_rasters
            from gfmcli.engine.options import for_model
            from gfmcli.engine.runner import map_file

            with DevicePool(model, pool_devices, precision) as pool:
                map_file(str(src), out, "tif", pool, contract, for_model(options, contract))
        with rasterio.open(out) as d:
            maps.append(d.read(1))
    if precision == "fp32":
        assert np.array_equal(maps[0], maps[1])
        assert np.array_equal(maps[0], maps[2])
    else:  # bf16 kernels may round differently per batch shape (AVX512-BF16 without AMX)
        assert (maps[0] == maps[1]).mean() >= 0.995
        assert (maps[0] == maps[2]).mean() >= 0.995


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--device", "tpu"), "unknown device 'tpu'"),
        (("--device", "cpu", "--precision", "fp16"), "precision fp16 needs a CUDA device"),
    ],
)
def test_a_device_or_precision_this_machine_lacks_is_a_usage_error(
    predict_tiny, s2_scene, tmp_path, options, message
):
    result = predict_tiny(s2_scene(), "-o", tmp_path / "maps", *options)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "maps").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_runs_read_under_a_block_cache_of_megabytes(
    predict_tiny, s2_scene, tmp_path, monkeypatch, dry_run
):
    # GDAL's effective cache size, read back while a file is being mapped (or planned): an
    # integer GDAL_CACHEMAX is bytes to rasterio, so 64 would leave GDAL a 64-byte cache.
    seen: list[int] = []
    name = "plan_file" if dry_run else "map_file"
    real = getattr(jobs, name)

    def spy(*args, **kwargs):
        seen.append(int(get_gdal_config("GDAL_CACHEMAX")))
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, name, spy)
    result = predict_tiny(
        s2_scene(), "-o", tmp_path / "map.tif", *(["--dry-run"] if dry_run else [])
    )
    assert result.exit_code == 0, result.output
    assert seen == [jobs.GDAL_CACHE_BYTES]
    assert jobs.GDAL_CACHE_BYTES >= 32 * 2**20


def test_folder_mode_resume_and_overwrite(predict_tiny, s2_scene, tmp_path):
    a, b = s2_scene("a.tif"), s2_scene("b.tif")
    out = tmp_path / "maps"
    assert predict_tiny(str(a), str(b), "-o", str(out)).exit_code == 0
    first = (out / "a.tif").stat().st_mtime_ns
    result = predict_tiny(str(a.parent), "-o", str(out))
    assert result.exit_code == 0  # nothing rewritten; the finished maps are listed
    assert result.stdout.split() == [str(out / "a.tif"), str(out / "b.tif")]
    assert (out / "a.tif").stat().st_mtime_ns == first
    result = predict_tiny(str(a), "-o", str(out), "--overwrite")
    assert result.exit_code == 0 and (out / "a.tif").stat().st_mtime_ns != first


def test_input_warnings_show_unless_q(predict_tiny, make_raster, tmp_path):
    three = make_raster(tmp_path, "rgb.tif", count=3, descriptions=("B02", "B03", "B04"))
    loud = predict_tiny(three, "-o", tmp_path / "loud.tif", quiet=False)
    quiet = predict_tiny(three, "-o", tmp_path / "quiet.tif")
    assert loud.exit_code == 0 and quiet.exit_code == 0, loud.output + quiet.output
    assert "gfm: warning:" in loud.stderr and "lacks model band(s) B08" in loud.stderr
    assert quiet.stderr == ""
    assert (tmp_path / "quiet.tif").is_file()


def test_paths_from_stdin_and_probabilities(predict_tiny, s2_scene, tmp_path):
    a = s2_scene("a.tif")
    out = tmp_path / "maps"
    result = predict_tiny("-", "-o", str(out), "--probabilities", input=f"{a}\n\n")
    assert result.exit_code == 0, result.output
    with rasterio.open(out / "a.probs.tif") as d:
        probs = d.read()
    assert probs.shape[0] == 3
    inside = probs[:, 20:, 20:].astype(int)
    assert (np.abs(inside.sum(axis=0) - 100) <= 2).all(), "percent probabilities sum to 100"
    assert (probs[:, :10, :12] == 255).all()


def test_keep_going_reports_bad_inputs_and_maps_the_rest(
    gfm, predict_tiny, tiny_model, s2_scene, tmp_path
):
    good = s2_scene("good.tif")
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    out = tmp_path / "maps"
    result = predict_tiny(bad, good, "-o", out, "--keep-going", quiet=False)
    assert result.exit_code == 1
    assert (out / "good.tif").exists() and not (out / "bad.tif").exists()
    assert "bad.tif" in result.stderr and "Traceback" not in result.output
    assert f"{bad} -> {out / 'bad.tif'} (failed," in result.stderr, "names the missing map"
    result = gfm("predict", "-m", tiny_model, bad, good, "-o", tmp_path / "other")
    assert result.exit_code == 3
    assert not (tmp_path / "other" / "good.tif").exists(), "without --keep-going the run stops"


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("missing", 3, "no such file"),
        ("no_crs", 3, "CRS"),
        ("no_descriptions", 3, "--sensor"),
        ("unknown_sensor", 3, "unknown sensor"),
        ("all_nodata", 3, "nodata"),
        ("same_as_input", 5, "overwrite its input"),
        ("corrupt_model", 4, "tiny.pt"),
        ("pretrain_model", 4, "gfm embed"),
    ],
)
def test_bad_inputs_give_one_clear_line(
    gfm, tiny_checkpoint_factory, tiny_model, s2_scene, make_raster, tmp_path, case, code, words
):
    src = s2_scene()
    model = tiny_model
    output = tmp_path / "out.tif"
    extra: list[str] = []
    if case == "missing":
        src = tmp_path / "nope.tif"
    elif case == "no_crs":
        src = s2_scene("nocrs.tif", crs=None)
    elif case == "no_descriptions":
        src = s2_scene("plain.tif", descriptions=None)
    elif case == "unknown_sensor":
        extra = ["--sensor", "sentinel7"]
    elif case == "all_nodata":
        src = make_raster(
            tmp_path, "empty.tif", data=np.zeros((4, 20, 20)), nodata=0, descriptions=BANDS
        )
    elif case == "same_as_input":
        output = src
    elif case == "corrupt_model":
        model = tmp_path / "tiny.pt"
        model.write_bytes(tiny_model.read_bytes()[:500])
    elif case == "pretrain_model":
        model = tiny_checkpoint_factory(tmp_path / "pre.pt", task="pretrain")
    result = gfm("predict", "-m", model, src, "-o", output, *extra)
    assert result.exit_code == code, result.output
    message = result.stderr.strip()
    assert message.startswith("gfm: error:") and len(message.splitlines()) == 1
    assert words in message
    assert "Traceback" not in result.output
    if case != "same_as_input":
        assert not output.exists()


def test_unwritable_output_fails_before_work(gfm, tiny_model, s2_scene, tmp_path):
    if os.geteuid() == 0:
        target = Path("/proc/gfm-cannot-write/map.tif")
    else:  # pragma: no cover - depends on the user running the tests
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "map.tif"
    result = gfm("predict", "-m", tiny_model, s2_scene(), "-o", target)
    assert result.exit_code == 5, result.output
    assert "cannot write" in result.stderr


def test_interrupted_write_leaves_nothing(predict_tiny, s2_scene, tmp_path, monkeypatch):
    from gfmcli.engine import sinks

    def explode(self, payload):
        raise KeyboardInterrupt

    monkeypatch.setattr(sinks.ClassMapSink, "write", explode)
    out = tmp_path / "maps" / "map.tif"
    result = predict_tiny(s2_scene(), "-o", out)
    assert result.exit_code == 130
    assert not out.parent.exists(), "nothing written, and no empty output folder left"


def test_dry_run_plans_without_writing(predict_tiny, s2_scene, tmp_path):
    out = tmp_path / "maps"
    result = predict_tiny(str(s2_scene()), "-o", str(out), "--dry-run")
    assert result.exit_code == 0, result.output
    assert (
        "windows" in result.output and "MiB" in result.output and "B02,B03,B04,B08" in result.output
    )
    assert not list(out.glob("*.tif"))


@pytest.mark.parametrize(
    ("window", "words"), [("128", "1 window of 128 px"), ("32", " windows of 32 px")]
)
def test_dry_run_counts_windows_in_english(predict_tiny, s2_scene, tmp_path, window, words):
    result = predict_tiny(
        str(s2_scene()), "-o", str(tmp_path / "m.tif"), "--dry-run", "--window", window
    )
    assert result.exit_code == 0, result.output
    assert words in result.output and "1 windows" not in result.output
    assert "pixel, 1 stripe grid" in result.output  # one stripe: 90 columns


def test_gpkg_output_has_named_classes_and_areas(predict_tiny, s2_scene, tmp_path):
    import geopandas as gpd

    out = tmp_path / "map.gpkg"
    assert predict_tiny(str(s2_scene()), "-o", str(out)).exit_code == 0
    frame = gpd.read_file(out)
    assert set(frame.columns) >= {"class_id", "class_name", "area_m2", "geometry"}
    assert set(frame["class_name"]) <= {"water", "trees", "other"}
    # 70 x 90 pixels of 100 m2 minus the 10 x 12 nodata corner; area_m2 is geodesic, so it
    # differs from the UTM grid area by the projection's scale factor (1/0.9996^2 here).
    assert frame["area_m2"].sum() == pytest.approx((70 * 90 - 120) * 100.0 / 0.9996**2, rel=1e-4)


def test_embed_writes_patch_grid_embeddings(gfm, tiny_model, s2_scene, tmp_path):
    src = s2_scene()
    out = tmp_path / "emb.tif"
    result = gfm("embed", "-m", tiny_model, src, "-o", out, "--window", "32", "--overlap", "16")
    assert result.exit_code == 0, result.output
    with rasterio.open(src) as s, rasterio.open(out) as d:
        assert d.shape == (5, 6)  # ceil(70/16), ceil(90/16)
        assert d.count == 24 and d.dtypes[0] == "float32"
        assert d.transform.a == s.transform.a * 16 and d.crs == s.crs
        values = d.read()
    assert np.isfinite(values[:, 1:, 1:]).all()
    assert cog_validate(str(out), quiet=True)[0]


def test_embed_rejects_windows_off_the_patch_grid(gfm, tiny_model, s2_scene, tmp_path):
    result = gfm("embed", "-m", tiny_model, s2_scene(), "-o", tmp_path / "e.tif", *WINDOW_32_8)
    assert result.exit_code == 2  # a usage error, found before any input is read
    assert "--overlap 8 must be a multiple of the patch size 16" in result.stderr


def test_cli_runs_as_a_real_subprocess(tiny_model, s2_scene, tmp_path):
    out = tmp_path / "map.tif"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gfmcli.cli",
            "predict",
            "-m",
            str(tiny_model),
            str(s2_scene()),
            "-o",
            str(out),
            "--window",
            "32",
            "--overlap",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "1 written" in proc.stderr
    assert cog_validate(str(out), quiet=True)[0]


def test_torchrun_splits_inputs_over_ranks(tiny_model, s2_scene, tmp_path):
    inputs = [str(s2_scene(f"s{i}.tif")) for i in range(3)]
    out = tmp_path / "maps"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "gfmcli.cli",
            "-q",
            "predict",
            "-m",
            str(tiny_model),
            *inputs,
            "-o",
            str(out),
            "--window",
            "32",
            "--overlap",
            "8",
            "--device",
            "auto",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.tif")) == ["s0.tif", "s1.tif", "s2.tif"]
    # Rank 0 reports every output once, gathered from both ranks.
    assert sorted(proc.stdout.split()) == sorted(str(out / f"s{i}.tif") for i in range(3))


def test_embed_gpkg_vectors_are_window_means_of_the_patch_embeddings(
    gfm, tiny_model, s2_scene, tmp_path
):
    import geopandas as gpd

    src = s2_scene()
    common = ["-m", tiny_model, src, "--window", "32", "--overlap", "0"]
    assert gfm("embed", *common, "-o", tmp_path / "e.tif").exit_code == 0
    result = gfm("embed", *common, "-o", tmp_path / "e.gpkg")
    assert result.exit_code == 0, result.output
    frame = gpd.read_file(tmp_path / "e.gpkg")
    with rasterio.open(tmp_path / "e.tif") as d, rasterio.open(src) as s:
        grid = d.read()
        assert frame.crs == s.crs
        assert tuple(frame.total_bounds) == pytest.approx(tuple(s.bounds))
    columns = [c for c in frame.columns if c.startswith("e")]
    assert len(columns) == 24
    assert len(frame) == 3 * 3  # patch grid 5 x 6, windows of 2 x 2 patches, edge-flush
    # Windows of the first row overlap no other window, so the COG holds their raw embeddings.
    for row in frame[frame["row_off"] == 0].itertuples():
        r, c = row.row_off // 16, row.col_off // 16
        patch = grid[:, r : r + 2, c : c + 2].reshape(24, -1)
        expected = np.nanmean(patch, axis=1)
        got = np.array([getattr(row, name) for name in columns])
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("command", "name", "change", "what"),
    [
        ("predict", "map.gpkg", ("--window", "48"), "window 32, this run 48"),
        ("embed", "e.gpkg", ("--pool", "cls"), "pool mean, this run cls"),
        ("embed", "e.parquet", ("--window", "64"), "window 32, this run 64"),
    ],
)
def test_vector_outputs_record_their_settings_and_resume_compares_them(
    gfm, tiny_model, s2_scene, tmp_path, command, name, change, what
):
    import pyarrow.parquet as pq
    import pyogrio

    out = tmp_path / name
    common = [command, "-m", tiny_model, s2_scene(), "-o", out, "--overlap", "0"]
    assert gfm(*common, "--window", "32").exit_code == 0
    if out.suffix == ".gpkg":
        with reading_vectors():  # a plain read would leave its own .aux.xml
            metadata = pyogrio.read_info(out)["dataset_metadata"]
    else:
        metadata = {k.decode(): v.decode() for k, v in pq.read_metadata(out).metadata.items()}
    assert json.loads(metadata["GFM_SETTINGS"])["window"] == 32
    assert metadata["GFM_VERSION"] and json.loads(metadata["GFM_CONTRACT"])
    made = out.read_bytes()
    again = gfm(*common, "--window", "32", quiet=False)
    assert again.exit_code == 0 and "1 skipped" in again.stderr, again.stderr
    changed = gfm(*common, "--window", "32", *change)
    assert changed.exit_code == 5 and "made by gfm with other settings" in changed.stderr
    assert what in changed.stderr and out.read_bytes() == made
    # the reruns' checks and gfm info only read: nothing appears beside the output
    assert gfm("info", out).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(out.stem)) == [name]


def test_regression_model_writes_float_values(gfm, tiny_checkpoint_factory, tmp_path, s2_scene):
    model = tiny_checkpoint_factory(tmp_path / "reg.pt", task="regression")
    out = tmp_path / "values.tif"
    result = gfm("predict", "-m", model, s2_scene(), "-o", out, *WINDOW_32_8)
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as d:
        values = d.read()
        assert d.count == 2 and d.dtypes[0] == "float32"
    assert np.isnan(values[:, :10, :12]).all()
    assert np.isfinite(values[:, 10:, 12:]).all()


def test_rerun_with_probabilities_completes_the_job(predict_tiny, s2_scene, tmp_path):
    src, out = s2_scene(), tmp_path / "map.tif"
    assert predict_tiny(str(src), "-o", str(out)).exit_code == 0
    result = predict_tiny(str(src), "-o", str(out), "--probabilities")
    assert result.exit_code == 0 and result.output.split() == [
        str(out),
        str(tmp_path / "map.probs.tif"),
    ]
    assert (tmp_path / "map.probs.tif").exists()


def test_odd_inputs_are_reported_as_warnings(predict_tiny, make_raster, tmp_path):
    # Reflectance floats in 0..0.5 while the S2 L2A contract expects DN x 10000.
    data = np.random.default_rng(1).uniform(0.02, 0.4, (4, 40, 40)).astype("float32")
    src = make_raster(tmp_path, "refl.tif", data=data, dtype="float32", descriptions=BANDS)
    result = predict_tiny(src, "-o", tmp_path / "m.tif", quiet=False)  # warnings need no -q
    assert result.exit_code == 0, result.output
    assert "gfm: warning:" in result.stderr and "refl.tif" in result.stderr


@pytest.mark.parametrize(
    ("task", "extra", "words", "code"),
    [
        ("regression", ["-o", "values.gpkg"], "GeoTIFF", 5),
        ("segmentation", ["-o", "map.gpkg", "--probabilities"], "--probabilities", 2),
    ],
)
def test_output_options_the_model_cannot_honour_are_refused(
    gfm, tiny_checkpoint_factory, s2_scene, tmp_path, task, extra, words, code
):
    model = tiny_checkpoint_factory(tmp_path / f"{task}.pt", task=task)
    extra = [str(tmp_path / e) if e.endswith(".gpkg") else e for e in extra]
    result = gfm("predict", "-m", model, s2_scene(), *extra)
    assert result.exit_code == code, result.output
    assert words in result.stderr
    assert not list(tmp_path.glob("*.gpkg"))


def test_a_model_failure_is_one_line_and_keep_going_goes_on(
    predict_tiny, s2_scene, tmp_path, monkeypatch
):
    from gfmcli.engine import inference

    def out_of_memory(model, batch, bands, mode):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(inference, "_forward", out_of_memory)
    a, b = s2_scene("a.tif"), s2_scene("b.tif")
    result = predict_tiny(str(a), str(b), "-o", str(tmp_path / "maps"), "--keep-going")
    assert result.exit_code == 1
    assert result.stderr.count("out of memory") == 2 and "smaller --window" in result.stderr
    result = predict_tiny(str(a), "-o", str(tmp_path / "one.tif"))
    assert result.exit_code == 4 and "Traceback" not in result.output


def test_dry_run_exit_code_says_whether_inputs_would_fail(predict_tiny, s2_scene, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    good = s2_scene()
    # Every input is planned; the bad one's error goes to stderr as the run prints it, and the
    # exit code is the run's: 3 (the input error) without --keep-going, 1 with it.
    for extra, code in [((), 3), (("--keep-going",), 1)]:
        result = predict_tiny(bad, good, "-o", tmp_path / "maps", "--dry-run", *extra)
        assert result.exit_code == code
        assert "gfm: error: " in result.stderr and "bad.tif" in result.stderr
        assert "bad.tif" not in result.stdout and f"{good} -> " in result.stdout
    result = predict_tiny(bad, good, "-o", tmp_path / "maps", "--dry-run", "--json")
    assert result.exit_code == 3 and "gfm: error: " in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records] == ["failed", "planned"]
    assert records[0]["exit_code"] == 3


def test_dry_run_of_an_empty_sample_warns_and_the_run_scans(predict_tiny, make_raster, tmp_path):
    # 1200 x 1200 of nodata with one valid 3 x 3 spot in a block row the probe's sample skips:
    # the dry run reads only the sample (and warns), the run scans at full resolution, maps it.
    data = np.zeros((4, 1200, 1200), dtype="uint16")
    spot = make_raster(tmp_path, "spot.tif", data=data, nodata=0, descriptions=BANDS, blocksize=256)
    with rasterio.open(spot, "r+") as dst:
        dst.write(np.full((4, 3, 3), 2000, dtype="uint16"), window=((600, 603), (600, 603)))
    empty = make_raster(tmp_path, "empty.tif", data=data, nodata=0, descriptions=BANDS)
    out = tmp_path / "maps"
    result = predict_tiny(str(spot), str(empty), "-o", str(out), "--dry-run", quiet=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("gfm: warning: ") == 2  # on stderr: stdout holds the plans
    assert result.stderr.count("no valid pixel in a sample") == 2
    assert "warning" not in result.stdout and len(result.stdout.splitlines()) == 2
    result = predict_tiny(str(spot), str(empty), "-o", str(out), "--keep-going")
    assert result.exit_code == 1
    assert "empty.tif: every pixel is nodata" in result.stderr
    with rasterio.open(out / "spot.tif") as d:
        classes = d.read(1)
    assert (classes[600:603, 600:603] != 255).all() and (classes[:590] == 255).all()


# The test writes a file without georeferencing on purpose; rasterio warns when it does.
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_file_without_georeferencing_maps_onto_its_pixel_grid(predict_tiny, s2_scene, tmp_path):
    from affine import Affine

    src = s2_scene("bare.tif", crs=None, transform=Affine.identity())
    out = tmp_path / "bare_map.tif"
    result = predict_tiny(str(src), "-o", str(out), "--gsd", "20")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as dst:
        assert dst.crs is None and dst.transform.is_identity and dst.shape == (70, 90)
        assert dst.tags()["GFM_GSD_M"] == "20"
    refused = predict_tiny(str(src), "-o", str(tmp_path / "bare.gpkg"))
    assert refused.exit_code == 3 and "write a GeoTIFF" in refused.stderr
    assert not (tmp_path / "bare.gpkg").exists()


def test_scale_option_reads_reflectance_files(predict_tiny, make_raster, tmp_path):
    data = np.random.default_rng(2).uniform(0.02, 0.4, (4, 40, 40)).astype("float32")
    src = make_raster(tmp_path, "refl.tif", data=data, dtype="float32", descriptions=BANDS)
    result = predict_tiny(str(src), "-o", str(tmp_path / "a.tif"), "--scale", "1")
    assert result.exit_code == 0 and "warning" not in result.stderr, result.output
    wrong = predict_tiny(str(src), "-o", str(tmp_path / "b.tif"), "--scale", "1e-4")
    assert wrong.exit_code == 3 and "already reflectance" in wrong.stderr
    assert "--scale 1 --offset 0" in wrong.stderr and not (tmp_path / "b.tif").exists()
    bad = predict_tiny(str(src), "-o", str(tmp_path / "c.tif"), "--scale", "x")
    assert bad.exit_code == 2 and "not a number" in bad.output


def test_a_rerun_naming_the_scaling_found_resumes(predict_tiny, make_raster, tmp_path):
    data = np.random.default_rng(2).uniform(0.02, 0.4, (4, 40, 40)).astype("float32")
    src = make_raster(tmp_path, "refl.tif", data=data, dtype="float32", descriptions=BANDS)
    out = tmp_path / "a.tif"
    assert predict_tiny(str(src), "-o", str(out)).exit_code == 0  # float: scale 1 found
    made = out.read_bytes()
    again = predict_tiny(str(src), "-o", str(out), "--scale", "1", "--offset", "0", quiet=False)
    assert again.exit_code == 0 and "1 skipped" in again.stderr, again.stderr
    assert out.read_bytes() == made
    other = predict_tiny(str(src), "-o", str(out), "--scale", "0.5")
    assert other.exit_code == 5 and "scale unset, this run 0.5" in other.stderr


def test_a_full_disk_while_writing_embedding_vectors_is_one_output_error(
    gfm, tiny_model, s2_scene, tmp_path, monkeypatch
):
    import errno

    import geopandas as gpd

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", full)
    out = tmp_path / "e.gpkg"
    result = gfm("embed", "-m", tiny_model, s2_scene(), "-o", out)
    assert result.exit_code == 5, result.output
    assert "e.gpkg: writing embeddings failed" in result.stderr and "No space" in result.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_an_output_the_command_cannot_make_is_refused_by_its_name_before_any_input(
    predict_tiny, tmp_path
):
    missing = tmp_path / "not-read.tif"  # never opened: the -o problem comes first
    missing.write_text("not a raster")
    cases = [
        (("-o", tmp_path / "x.parquet"), 5, "x.parquet: GeoParquet holds embedding vectors"),
        (("-o", tmp_path / "p.gpkg", "--probabilities"), 2, "p.gpkg: --probabilities needs"),
        (("-o", tmp_path / "p.txt"), 5, "p.txt: unsupported output extension .txt; use .tif or "),
    ]
    for args, code, message in cases:
        result = predict_tiny(missing, *args)
        assert result.exit_code == code and message in result.stderr, result.stderr
        assert "not-read.tif" not in result.stderr


def test_an_option_the_output_format_ignores_is_a_usage_error(gfm, tiny_model, s2_scene, tmp_path):
    src = s2_scene()
    cases = [
        (("embed", "-o", tmp_path / "v.gpkg", "--dtype", "float16"), "--dtype sets the precision"),
        (("embed", "-o", tmp_path / "e.tif", "--pool", "cls"), "--pool pools window vectors"),
        (("predict", "-o", tmp_path / "m.gpkg", "--co", "COMPRESS=ZSTD"), "--co sets GeoTIFF"),
    ]
    for (command, *args), message in cases:
        result = gfm(command, "-m", tiny_model, src, *args)
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not list(tmp_path.glob("[vem].*"))
    # the defaults say nothing: a GeoPackage of vectors with the default --dtype is fine
    assert gfm("embed", "-m", tiny_model, src, "-o", tmp_path / "v.gpkg").exit_code == 0
    # an existing folder named like a GeoPackage is a folder of GeoTIFFs: --co applies there
    folder = tmp_path / "maps.gpkg"
    folder.mkdir()
    made = gfm("predict", "-m", tiny_model, src, "-o", folder, "--co", "COMPRESS=ZSTD")
    assert made.exit_code == 0, made.stderr
    (written,) = folder.glob("*.tif")
    with rasterio.open(written) as dst:
        assert dst.compression.name.lower() == "zstd"


def test_the_summary_rate_suits_the_size_of_the_rasters():
    from gfmcli.cli.report import _rate

    assert _rate(2.5e6) == "2.50 Mpx/s"  # a scene
    assert _rate(920.0) == "0.92 kpx/s"  # 18 EnMAP tiles of 32 x 32 px: not "0.00 Mpx/s"
