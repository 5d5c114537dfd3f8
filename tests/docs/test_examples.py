"""The shell examples in examples/ run as documented (shortened where they train)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    """The environment with this interpreter's scripts (gfm) first on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def _gfm() -> str:
    found = shutil.which("gfm", path=str(BIN)) or shutil.which("gfm")
    if found is None:  # pragma: no cover - the package is installed for the tests
        pytest.skip("the gfm console script is not installed")
    return found


def test_train_demo_runs_end_to_end_shortened(tmp_path):
    demo = tmp_path / "demo"
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "train-demo.sh")],
        env=_env(DEMO_DIR=str(demo), DEMO_SCENES="3", DEMO_STEPS="2", DEMO_EPOCHS="1", GFM=_gfm()),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((demo / "runs" / "finetune" / "test_metrics.json").read_text())
    assert metrics["split"] == "test" and 0.0 <= metrics["overall_accuracy"] <= 1.0
    with rasterio.open(demo / "maps" / "holdout.tif") as src:
        assert src.dtypes[0] == "uint8" and src.colormap(1)
    assert (demo / "runs" / "pretrain" / "config.toml").exists()


def test_train_demo_never_empties_a_folder_it_did_not_make(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.txt").write_text("important")
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "train-demo.sh")],
        env=_env(DEMO_DIR=str(work), GFM=_gfm()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 5 and "holds files this demo did not make" in proc.stderr
    assert [p.name for p in work.iterdir()] == ["thesis.txt"]


def test_cron_script_is_idempotent_and_locked(tiny_checkpoint_factory, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "maps"
    inbox.mkdir()
    model = tiny_checkpoint_factory(tmp_path / "tiny.pt")
    script = str(EXAMPLES / "cron-regional-mapping.sh")
    # cron's own environment: PATH=/usr/bin:/bin, gfm named by GFM= as the crontab line does
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh"}
    env.update(GFM=_gfm(), GFM_MODEL=str(model))
    missing = subprocess.run(
        ["bash", script, str(inbox), str(out)],
        env={**env, "GFM": "gfm"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 127 and "set GFM=/path/to/venv/bin/gfm" in missing.stderr

    proc = subprocess.run(["bash", script, str(inbox), str(out)], env=env, timeout=300)
    assert proc.returncode == 0, "an empty inbox is not a failure"

    shutil.copy(EXAMPLES / "data" / "s2-l2a-example.tif", inbox / "scene.tif")
    (inbox / "broken.tif").write_text("not a raster")
    proc = subprocess.run(["bash", script, str(inbox), str(out)], env=env, timeout=600)
    assert proc.returncode == 1, "a failed scene makes the run fail (cron mails it)"
    assert (out / "scene.tif").exists() and not (out / "broken.tif").exists()
    logs = list((out / "logs").glob("*.log"))
    assert len(logs) == 1 and "broken.tif" in logs[0].read_text()

    (inbox / "broken.tif").unlink()
    first = (out / "scene.tif").stat().st_mtime_ns
    proc = subprocess.run(["bash", script, str(inbox), str(out)], env=env, timeout=300)
    assert proc.returncode == 0
    assert (out / "scene.tif").stat().st_mtime_ns == first, "done scenes are not redone"

    lockfile = out / ".gfm-cron.lock"
    holder = subprocess.Popen(["flock", str(lockfile), "sleep", "60"])
    try:
        for _ in range(200):  # wait until the holder has the lock
            if subprocess.run(["flock", "-n", str(lockfile), "true"]).returncode != 0:
                break
            time.sleep(0.05)
        proc = subprocess.run(["bash", script, str(inbox), str(out)], env=env, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0
    assert "another run holds" in logs[0].read_text()


def test_readme_quick_start_maps_the_example_scene_with_the_default_weights(tmp_path):
    """The README's first command (after installing): `gfm predict examples/data/... -o map.tif`."""
    readme = (ROOT / "README.md").read_text()
    assert "gfm predict examples/data/s2-l2a-example.tif -o map.tif" in readme
    proc = subprocess.run(
        [_gfm(), "predict", "examples/data/s2-l2a-example.tif", "-o", str(tmp_path / "map.tif")],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with rasterio.open(tmp_path / "map.tif") as got:
        classes = got.read(1)
        assert "water" in (tmp_path / "map.tif.aux.xml").read_text()
    with rasterio.open(EXAMPLES / "data" / "labels" / "s2-l2a-example_labels.tif") as truth:
        labels = truth.read(1)
    assert (classes == labels).mean() > 0.9, "the default weights map the example scene"


def test_one_liners_run(tmp_path):
    (tmp_path / "examples").symlink_to(EXAMPLES)
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "one-liners.sh")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    maps = tmp_path / "maps"
    for name in (
        "s2-l2a-example.tif",
        "example.gpkg",
        "example-probs.tif",
        "example-probs.probs.tif",
        "example.emb.tif",
    ):
        assert (maps / name).exists(), name


@pytest.mark.skipif(shutil.which("gdalbuildvrt") is None, reason="GDAL command-line tools absent")
def test_gdal_pipeline_runs(tmp_path):  # pragma: no cover - needs gdal-bin
    def pipeline() -> subprocess.CompletedProcess:
        command = ["bash", str(EXAMPLES / "gdal-pipeline.sh")]
        command += [str(EXAMPLES / "data" / "s2-l2a-example.tif"), str(tmp_path / "out")]
        return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)

    proc = pipeline()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "water.geojson").exists()
    # a rerun rebuilds mosaic.vrt as it was: the same input, so both maps are skipped
    again = pipeline()
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("(skipped") == 2, again.stderr[-3000:]
