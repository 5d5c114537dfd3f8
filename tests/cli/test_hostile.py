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

from gfmcli.io.paths import host_key

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
