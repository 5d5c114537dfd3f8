"""Hostile and faulty situations, run as a user would: ``gfm`` in a subprocess on real files.

Every case asserts what docs/cli.md promises: one ``gfm: error:`` line per failing input, the
documented exit code, no traceback, no partial output, every input byte-identical afterwards,
and under ``--keep-going`` every other input mapped. Several cases share one subprocess where
that keeps the run short (each start imports torch).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner

from gfmcli.atomic import host_key
from gfmcli.cli.main import cli

WINDOW = ("--window", "32", "--overlap", "8")


def gfm(*args: object, cwd: Path | None = None, stdin: str | None = None):
    """Run ``gfm ARGS`` as a separate process, as a shell would."""
    return subprocess.run(
        [sys.executable, "-m", "gfmcli.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        timeout=600,
    )


def invoke(*args: object):
    """``gfm ARGS`` in this process (click's runner), for cases that share a code path with a
    subprocess case; the result has ``returncode``, ``stdout`` and ``stderr`` like a process."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def snapshot(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders`` (hidden ones included)."""
    digests = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def errors_of(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("gfm: error:")]


def assert_fails(proc, code: int, *fragments: str, errors: int = 1) -> None:
    """Exit ``code``, ``errors`` one-line errors containing every fragment, no traceback."""
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = errors_of(proc)
    assert len(lines) == errors, proc.stderr
    for fragment in fragments:
        assert any(fragment in line for line in lines), (fragment, proc.stderr)


def assert_usage_error(proc, fragment: str) -> None:
    """Exit 2, no traceback, and stderr one ``gfm: error:`` line with ``fragment`` (whether
    click or gfm found the error)."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gfm: error:"), proc.stderr
    assert fragment in lines[0], proc.stderr


def leftovers(folder: Path) -> list[str]:
    """Writer temporaries, locks and staging folders left under ``folder``."""
    marks = (".partial-", ".lock", ".old-")
    return sorted(str(p) for p in folder.rglob("*") if any(m in p.name for m in marks))


@pytest.fixture
def scene(make_raster):
    """``scene(folder, name, seed=0, size=40)``: a small four-band Sentinel-2 L2A scene whose
    band descriptions name its bands."""

    def make(folder: Path, name: str, seed: int = 0, size: int = 40) -> Path:
        bands = ("B02", "B03", "B04", "B08")
        return make_raster(folder, name, descriptions=bands, height=size, width=size, seed=seed)

    return make


def is_class_map(path: Path) -> bool:
    with rasterio.open(path) as ds:
        return ds.count == 1 and ds.dtypes[0] == "uint8" and "GFM_MODEL" in ds.tags()


# --- data loss -------------------------------------------------------------------------------


def test_tile_overwrite_never_deletes_inputs_or_foreign_folders(make_raster, tmp_path):
    data = tmp_path / "data"
    src = make_raster(data, "scene.tif", height=40, width=40)
    labels = make_raster(data, "labels.tif", count=1, height=40, width=40, dtype="uint8")
    (data / "notes.txt").write_text("field notes")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("keep")
    before = snapshot(tmp_path)
    args = ("--sensor", "vnir4", "--size", "32", "--overwrite")
    assert_fails(gfm("tile", src, "--labels", labels, "-o", data, *args), 5, "holds the input")
    assert_fails(gfm("tile", "scene.tif", "-o", ".", *args, cwd=data), 5, "holds the input")
    assert_fails(gfm("tile", src, "-o", mine, *args), 5, "not a chip folder made by gfm")
    assert snapshot(tmp_path) == before
    assert leftovers(tmp_path) == []


def test_no_output_replaces_an_input_or_a_file_an_input_reads(scene, tmp_path, tiny_checkpoint):
    data, other = tmp_path / "data", tmp_path / "other"
    scene(data, "x.probs.tif")  # a probabilities file given as input
    source = scene(data, "scene.tif", seed=1)
    with rasterio.open(source) as ds:
        vrt = rasterio.vrt._boundless_vrt_doc(ds)
    (data / "scene.vrt").write_text(vrt if isinstance(vrt, str) else vrt.decode())
    b = scene(other, "b.tif", seed=2)
    before = snapshot(data, other)
    model = ("-m", tiny_checkpoint, *WINDOW)
    proc = gfm("predict", data / "x.probs.tif", "-o", data / "x.tif", "--probabilities", *model)
    assert_fails(proc, 5, "x.probs.tif: writing it would replace its input")
    assert not (data / "x.tif").exists()
    for flag in ((), ("--overwrite",)):  # resume must not take scene.tif for a finished map
        proc = gfm("predict", data / "scene.vrt", b, "-o", data, "--keep-going", *model, *flag)
        assert_fails(proc, 1, "scene.tif: writing it would replace its input (which reads")
        assert is_class_map(data / "b.tif")
        assert proc.stdout.splitlines() == [str(data / "b.tif")]
    after = snapshot(data, other)
    assert {k: after[k] for k in before} == before
    assert leftovers(tmp_path) == []


def test_a_live_lock_or_foreign_temporary_is_left_alone(scene, tmp_path, tiny_checkpoint):
    out = tmp_path / "maps"
    out.mkdir()
    a, b = scene(tmp_path, "a.tif"), scene(tmp_path, "b.tif", seed=1)
    # a run on this host that is alive (the test itself) writes a.tif; one on another host
    # (or container) left a fresh temporary of b.tif that this host cannot judge by its pid
    lock = out / ".a.tif.lock"
    lock.write_text(f"{os.getpid()} {host_key()} testhost\n")
    foreign = out / ".b.partial-4242-0badc0de.staged.tif"
    foreign.write_bytes(b"another host's live temporary")
    proc = gfm("predict", a, b, "-o", out, "--keep-going", "-m", tiny_checkpoint, *WINDOW)
    assert_fails(proc, 1, "another gfm run (pid", "is writing this output")
    assert not (out / "a.tif").exists() and is_class_map(out / "b.tif")
    assert lock.exists() and foreign.read_bytes() == b"another host's live temporary"


# --- resume: only complete gfm outputs count as finished -------------------------------------


def test_resume_redoes_incomplete_outputs_and_never_replaces_foreign_files(
    tmp_path, tiny_checkpoint, scene
):
    a, b, c = (scene(tmp_path, f"{n}.tif", seed=i) for i, n in enumerate("abc"))
    out = tmp_path / "maps"
    model = ("-m", tiny_checkpoint, *WINDOW)
    assert gfm("-q", "predict", b, "-o", out, *model).returncode == 0
    (out / "b.tif.aux.xml").unlink()  # as if killed between the map's and its sidecar's rename
    (out / "a.tif").write_bytes(b"")  # a 0-byte file at the output path
    (out / "c.tif").write_bytes(c.read_bytes())  # someone's own raster at the output path
    foreign = snapshot(out)[str(out / "c.tif")]
    proc = gfm("predict", a, b, c, "-o", out, "--keep-going", *model)
    assert_fails(proc, 1, "c.tif: exists but carries no gfm provenance tag", "--overwrite")
    assert is_class_map(out / "a.tif") and is_class_map(out / "b.tif")
    assert (out / "b.tif.aux.xml").is_file()
    assert snapshot(out)[str(out / "c.tif")] == foreign
    assert proc.stdout.splitlines() == [str(out / "a.tif"), str(out / "b.tif")]
    assert leftovers(out) == []


def test_a_users_style_or_pam_file_where_a_new_map_would_put_its_sidecars_is_kept(
    tmp_path, tiny_checkpoint, scene
):
    a = scene(tmp_path, "a.tif")
    out = tmp_path / "side"
    out.mkdir()
    style, pam = out / "a.qml", out / "a.tif.aux.xml"
    for sidecar in (style, pam):
        sidecar.write_text("<mine/>")
        proc = gfm("predict", a, "-o", out, "-m", tiny_checkpoint, *WINDOW)
        assert_fails(proc, 5, f"{sidecar}: exists beside no map, so gfm did not make it")
        assert sidecar.read_text() == "<mine/>" and not (out / "a.tif").exists()
        sidecar.unlink()
    style.write_text("<mine/>")
    redo = gfm("-q", "predict", a, "-o", out, "-m", tiny_checkpoint, "--overwrite", *WINDOW)
    assert redo.returncode == 0, redo.stderr
    assert "<mine/>" not in style.read_text() and is_class_map(out / "a.tif")


def test_a_map_deleted_to_redo_it_is_redone_beside_its_own_sidecars(
    tmp_path, tiny_checkpoint, scene
):
    a = scene(tmp_path, "a.tif")
    out = tmp_path / "maps"
    args = ("-q", "predict", a, "-o", out, "-m", tiny_checkpoint, *WINDOW)
    assert gfm(*args).returncode == 0
    style, pam = out / "a.qml", out / "a.tif.aux.xml"
    written = style.read_text()
    # QGIS opened the map and kept its statistics in the PAM file; then the user deleted the map
    stats = "<Metadata><MDI key='STATISTICS_MEAN'>2</MDI></Metadata></PAMRasterBand>"
    pam.write_text(pam.read_text().replace("</PAMRasterBand>", stats))
    (out / "a.tif").unlink()
    redo = gfm(*args)
    assert redo.returncode == 0, redo.stderr  # before: "exists beside no map" (exit 5)
    assert is_class_map(out / "a.tif") and style.read_text() == written
    (out / "a.tif").unlink()
    style.write_text(written.replace("<qgis", "<qgis user-saved='1'", 1))  # the user's own style
    kept = gfm(*args)
    assert_fails(kept, 5, f"{style}: exists beside no map")
    assert "user-saved" in style.read_text()


def test_a_rerun_with_other_settings_never_passes_off_or_replaces_the_old_maps(
    tmp_path, tiny_checkpoint, scene
):
    a, b = scene(tmp_path, "a.tif"), scene(tmp_path, "b.tif", seed=1)
    out = tmp_path / "maps"
    model = ("-m", tiny_checkpoint, *WINDOW)
    assert gfm("-q", "predict", a, "-o", out, *model).returncode == 0
    made = snapshot(out)
    # the same run, and one that names the sensor the first read the file as: resume skips it
    same = gfm("predict", a, "-o", out, *model, "--sensor", "sentinel2-l2a")
    assert same.returncode == 0 and "skipped" in same.stderr, same.stderr
    wider = ("-m", tiny_checkpoint, "--window", "48")
    alone = gfm("predict", a, "-o", out, *wider)
    assert_fails(alone, 5, "a.tif: exists, made by gfm with other settings", "--overwrite")
    proc = gfm("predict", a, b, "-o", out, "--keep-going", *wider)
    assert_fails(proc, 1, "a.tif: exists, made by gfm with other", "window 32, this run 48")
    assert snapshot(out)[str(out / "a.tif")] == made[str(out / "a.tif")]
    assert proc.stdout.splitlines() == [str(out / "b.tif")]
    redo = gfm("-q", "predict", a, "-o", out, "--overwrite", *wider)
    assert redo.returncode == 0, redo.stderr
    with rasterio.open(out / "a.tif") as ds:
        assert ds.tags()["GFM_WINDOW"] == "48"


def test_a_rerun_after_the_input_was_replaced_never_passes_off_the_old_map(
    tmp_path, tiny_checkpoint, scene
):
    a = scene(tmp_path, "a.tif")
    out = tmp_path / "maps"
    model = ("-m", tiny_checkpoint, *WINDOW)
    assert gfm("-q", "predict", a, "-o", out, *model).returncode == 0
    made = snapshot(out)
    again = gfm("predict", a, "-o", out, *model)
    assert again.returncode == 0 and "skipped" in again.stderr, again.stderr
    # another scene copied over a.tif, as a pipeline rebuilding its mosaic.vrt does
    (tmp_path / "new").mkdir()
    other = scene(tmp_path / "new", "a.tif", seed=3, size=80)
    a.write_bytes(other.read_bytes())
    proc = gfm("predict", a, "-o", out, *model)
    assert_fails(proc, 5, "a.tif: exists, made by gfm with other settings", "--overwrite")
    assert "the input file changed since: it was " in proc.stderr
    assert snapshot(out) == made
    redo = gfm("-q", "predict", a, "-o", out, "--overwrite", *model)
    assert redo.returncode == 0, redo.stderr
    with rasterio.open(out / "a.tif") as ds:
        assert ds.height == 80
    assert gfm("predict", a, "-o", out, *model).returncode == 0  # and resumes again


def test_every_output_path_is_printed_when_final_skipped_ones_too(tmp_path, tiny_checkpoint, scene):
    a, b = scene(tmp_path, "a.tif"), scene(tmp_path, "b.tif", seed=1)
    out = tmp_path / "maps"
    model = ("-m", tiny_checkpoint, *WINDOW)
    first = gfm("predict", a, b, "-o", out, "--probabilities", *model)
    assert first.returncode == 0, first.stderr
    again = gfm("predict", a, b, "-o", out, "--probabilities", *model)
    expected = [str(out / f"{n}{ext}") for n in "ab" for ext in (".tif", ".probs.tif")]
    assert first.stdout.splitlines() == expected and again.stdout.splitlines() == expected
    # stderr is a pipe here: one plain line per input, no progress-bar escape codes
    assert "\r" not in first.stderr and "\x1b" not in first.stderr
    assert sum(line.startswith("gfm: [") for line in again.stderr.splitlines()) == 2


# --- values refused where they enter: exit 2 (usage), 3 (input), 4 (model), 7 (TOML) ---------


def test_bad_option_values_are_usage_errors_before_any_work(tmp_path, tiny_checkpoint, scene):
    a = scene(tmp_path, "a.tif")
    out = tmp_path / "maps"
    model = ("-m", tiny_checkpoint)
    cases = [
        (("--co", "COMPRESS=NOPE", *WINDOW), "COMPRESS=NOPE: GDAL's COG driver refuses it"),
        (("--co", "BLOCKSIZE=7", *WINDOW), "BLOCKSIZE=7: the tile size must be a multiple"),
        (
            ("--co", "BLOCKSIZE=64", *WINDOW),
            "BLOCKSIZE=64: the tile size must be a multiple of 16 from 128",
        ),
        (("--window", "30"), "--window 30 must be a multiple of the model's patch size 16"),
        (
            ("--window", "32", "--overlap", "32"),
            "--overlap 32 must be smaller than the window, 32 px",
        ),
    ]
    assert_usage_error(gfm("predict", a, "-o", out, *model, *cases[0][0]), cases[0][1])
    for extra, message in cases[1:]:  # the same path in-process (a subprocess costs seconds)
        assert_usage_error(invoke("predict", a, "-o", out, *model, *extra), message)
    proc = gfm("predict", a, "-o", out, *model, "--window", "65536")
    assert_usage_error(proc, "65536 is not in the range")
    tile_cases = (
        (("--block-size", "0"), "--block-size"),
        (("--split", "nan,0.5,0.5"), "--split 'nan,0.5,0.5'"),
        (("--min-valid", "2"), "--min-valid"),
    )
    for extra, fragment in tile_cases:
        proc = invoke("tile", a, "-o", tmp_path / "chips", "--sensor", "vnir4", *extra)
        assert_usage_error(proc, fragment)
    assert not out.exists() and not (tmp_path / "chips").exists()


def _write_complex(folder: Path) -> Path:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "complex.tif"
    profile = dict(driver="GTiff", width=40, height=40, count=1, dtype="complex64")
    profile.update(crs="EPSG:32632", transform=rasterio.Affine(10, 0, 5e5, 0, -10, 5e6))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write((np.ones((1, 40, 40)) * (1 + 2j)).astype("complex64"))
    return path


def test_complex_rasters_and_zero_pixel_sizes_are_input_errors(
    tmp_path, tiny_checkpoint, scene, make_raster
):
    data = tmp_path / "data"
    complex_ = _write_complex(data)
    # fmt: skip below: arguments grouped by meaning (ruff format would add 4 lines)
    flat = make_raster(
        data, "flat.tif", descriptions=("B02", "B03", "B04", "B08"), height=40, width=40,
        transform=rasterio.Affine(0, 0, 5e5, 0, 0, 5e6),
    )  # fmt: skip
    good = scene(data, "good.tif")
    before = snapshot(data)
    for path, message in ((complex_, "complex64 holds complex numbers"), (flat, "zero or")):
        proc = gfm("tile", path, "-o", tmp_path / "chips", "--sensor", "vnir4", "--size", "32")
        assert_fails(proc, 3, f"{path.name}: ", message)
    # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
    proc = gfm(
        "predict", flat, good, "-o", tmp_path / "maps", "--keep-going",
        "-m", tiny_checkpoint, *WINDOW,
    )  # fmt: skip
    assert_fails(proc, 1, "flat.tif: the geotransform has a zero or undefined pixel size")
    assert is_class_map(tmp_path / "maps" / "good.tif")
    assert snapshot(data) == before and not (tmp_path / "chips").exists()


PRETRAIN_TOML = """
[data]
chips = ["chips"]

[output]
dir = "run"
"""


def test_out_of_range_toml_values_are_config_errors_and_leave_no_run_folder(tmp_path):
    config = tmp_path / "pretrain.toml"
    config.write_text(PRETRAIN_TOML + "\n[optim]\nlr = nan\n")
    proc = gfm("pretrain", "-c", config)
    assert_fails(proc, 7, "pretrain.toml:", "optim.lr = nan must be a finite number")
    proc = gfm("--debug", "pretrain", "-c", config)  # --debug adds the traceback, keeps the code
    assert proc.returncode == 7 and "Traceback" in proc.stderr and errors_of(proc)
    assert not (tmp_path / "run").exists()


def test_an_unexpected_error_is_one_line_and_the_batch_goes_on(tmp_path, tiny_checkpoint, scene):
    a, b, c = (scene(tmp_path, f"{n}.tif", seed=i) for i, n in enumerate("abc"))
    out = tmp_path / "maps"
    # An error gfm does not foresee (a bug): map_file raises ZeroDivisionError for b.tif.
    code = (
        "import sys, gfmcli.engine.jobs as jobs\n"
        "real = jobs.map_file\n"
        "def boom(path, *args, **kwargs):\n"
        "    if path.endswith('b.tif'):\n"
        "        raise ZeroDivisionError('float division by zero')\n"
        "    return real(path, *args, **kwargs)\n"
        "jobs.map_file = boom\n"
        "from gfmcli.cli import main\n"
        "sys.argv = ['gfm', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = ["-m", tiny_checkpoint, *WINDOW]

    def run(*extra):
        argv = [*extra, "predict", a, b, c, "-o", out, *args]
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True
        )

    proc = run()
    assert_fails(proc, 1, "unexpected error (ZeroDivisionError: float division by zero)")
    assert "rerun with --debug" in proc.stderr
    assert proc.stdout.splitlines() == [str(out / "a.tif")]  # finished before the failure
    args.append("--keep-going")
    proc = run()
    assert_fails(proc, 1, "b.tif: unexpected error (ZeroDivisionError")
    assert proc.stdout.splitlines() == [str(out / "a.tif"), str(out / "c.tif")]
    assert is_class_map(out / "c.tif") and not (out / "b.tif").exists()
    assert leftovers(out) == []


def test_glob_characters_in_names_leak_no_temporaries_and_stale_ones_go(
    tmp_path, tiny_checkpoint, scene
):
    a = scene(tmp_path, "a.tif")
    out = tmp_path / "maps" / "map[1].tif"
    # fmt: skip below: arguments grouped by meaning (ruff format would add 6 lines)
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)  # fmt: skip
    killed = out.with_name(f".map[1].partial-{gone}-{host_key()}.staged.tif")  # kill -9
    killed.parent.mkdir()
    killed.write_bytes(b"half a map")
    model = ("-m", tiny_checkpoint, *WINDOW)
    for extra in ((), ("--overwrite", "--probabilities")):
        proc = invoke("-q", "predict", a, "-o", out, *model, *extra)
        assert proc.returncode == 0, proc.stderr
    assert is_class_map(out) and out.with_name("map[1].probs.tif").is_file()
    assert leftovers(out.parent) == []


def test_inputs_with_one_file_name_get_a_way_out(tmp_path, tiny_checkpoint, scene):
    a, b = scene(tmp_path / "x", "scene.tif"), scene(tmp_path / "y", "scene.tif", seed=1)
    out = tmp_path / "maps"
    model = ("-m", tiny_checkpoint, *WINDOW)
    proc = invoke("predict", a, b, "-o", out, *model)
    assert_fails(proc, 3, "would both write scene.tif", "--name-template '{parent}_{stem}'")
    proc = invoke("-q", "predict", a, b, "-o", out, "--name-template", "{parent}_{stem}", *model)
    assert proc.stdout.splitlines() == [str(out / "x_scene.tif"), str(out / "y_scene.tif")]


# --- what reaches stderr: -q errors only, -vv gfm's own debug, warnings that say the fix ------


def test_quiet_is_silent_and_verbose_shows_gfms_own_logs_only(tmp_path, make_raster):
    src = make_raster(tmp_path, "scene.tif", height=40, width=40)
    labels = make_raster(tmp_path, "labels.tif", count=1, height=40, width=40, dtype="uint8")
    args = ("--labels", labels, "--sensor", "vnir4", "--size", "32", "--min-labelled", "0")
    quiet = gfm("-q", "tile", src, "-o", tmp_path / "quiet", *args)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = gfm("-vv", "tile", src, "-o", tmp_path / "loud", *args)
    assert loud.returncode == 0, loud.stderr
    lines = loud.stderr.splitlines()
    assert any("wrote 4 chips" in line for line in lines), loud.stderr  # gfm's info log
    # 4 chips in one block: none for validation, and the warning says how to fix it
    assert any("warning: no validation chips" in line and "--block-size" in line for line in lines)
    assert not any("env context" in line or "CPLE_" in line for line in lines), "no GDAL debug"
    assert "\r" not in loud.stderr, "no progress bar when stderr is not a terminal"


def test_verbose_predict_says_how_each_raster_is_read_and_where_the_model_runs(
    tmp_path, tiny_checkpoint, scene
):
    a = scene(tmp_path, "a.tif")
    plain = gfm("predict", a, "-o", tmp_path / "plain", "-m", tiny_checkpoint, *WINDOW)
    assert plain.returncode == 0 and "read as" not in plain.stderr, plain.stderr
    loud = gfm("-v", "predict", a, "-o", tmp_path / "loud", "-m", tiny_checkpoint, *WINDOW)
    assert loud.returncode == 0, loud.stderr
    assert "gfm: model on cpu: " in loud.stderr
    read = next(line for line in loud.stderr.splitlines() if "read as" in line)
    assert read.startswith(f"gfm: {a}: read as ") and "B02,B03,B04,B08" in read
    assert "GSD 10 m; 4 window(s) of 32 px, overlap 8" in read


def test_an_ordinary_tagged_l1c_file_maps_without_warnings_and_says_why_under_v(
    tmp_path, tiny_checkpoint, make_raster
):
    # A newcomer's five-file batch of ordinary L1C files printed ten warnings: the sensor the
    # tags name and the bands the model does without (B10, here B01 and the red edge too).
    names = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
             "B12")  # fmt: skip
    tags = {"SENSOR": "Sentinel-2A MSI", "PRODUCT": "Level-1C", "QUANTIFICATION_VALUE": "10000"}
    l1c = make_raster(tmp_path, "l1c.tif", count=13, descriptions=names, tags=tags)
    plain = gfm("predict", l1c, "-o", tmp_path / "plain", "-m", tiny_checkpoint, *WINDOW)
    assert plain.returncode == 0, plain.stderr
    assert "warning" not in plain.stderr, plain.stderr
    loud = gfm("-v", "predict", l1c, "-o", tmp_path / "loud", "-m", tiny_checkpoint, *WINDOW)
    assert loud.returncode == 0, loud.stderr
    assert f"gfm: {l1c}: read as sentinel2-l1c (its tags name it)" in loud.stderr
    assert "B10 (1373.5 nm) lie in a water-absorption window" in loud.stderr
    assert "warning" not in loud.stderr, loud.stderr


def test_a_checkpoint_with_impossible_classes_is_one_model_error(tmp_path, tiny_checkpoint, scene):
    import json

    import torch

    payload = torch.load(tiny_checkpoint, weights_only=True)
    contract = json.loads(payload["contract"])
    contract["classes"][2]["id"] = 300
    payload["contract"] = json.dumps(contract)
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    a = scene(tmp_path, "a.tif")
    proc = gfm("predict", a, "-o", tmp_path / "maps", "-m", edited, *WINDOW)
    assert_fails(proc, 4, "edited.pt: contract classes: class id 300 is outside 0..254")
    assert not (tmp_path / "maps").exists()


# The test writes its bare input itself (rasterio warns then); gfm's run must not warn.
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_a_file_without_georeferencing_maps_without_python_warnings(tmp_path, tiny_checkpoint):
    import numpy as np

    bare = tmp_path / "bare.tif"
    data = np.random.default_rng(0).integers(1000, 4000, (4, 40, 40)).astype("uint16")
    with rasterio.open(
        bare, "w", driver="GTiff", width=40, height=40, count=4, dtype="uint16"
    ) as ds:
        ds.write(data)
        ds.descriptions = ("B02", "B03", "B04", "B08")
    out = tmp_path / "maps" / "bare.tif"
    for _ in range(2):  # written, then skipped: both look at the bare grid
        proc = gfm("predict", bare, "-o", out, "-m", tiny_checkpoint, *WINDOW, "--gsd", "10")
        assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    assert is_class_map(out)


def test_a_logged_warning_reads_as_the_commands_own_warnings(tmp_path, scene):
    a = scene(tmp_path, "a.tif", size=64)
    proc = gfm("tile", a, "-o", tmp_path / "chips", "--size", "32")
    assert proc.returncode == 0, proc.stderr
    assert "gfm: warning: " in proc.stderr and "a.tif: read as sentinel2-l2a" in proc.stderr
    assert str(tmp_path / "chips") in proc.stdout.splitlines()  # the result on stdout
