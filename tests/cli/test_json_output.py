"""``--json`` on predict, embed and tile: one JSON object per finished input on stdout."""

from __future__ import annotations

import json
import subprocess
import sys


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_predict_json_one_line_per_input_then_skipped_on_rerun(predict_tiny, s2_scene, tmp_path):
    a, b = s2_scene("a.tif"), s2_scene("b.tif", height=40, width=50)
    out = tmp_path / "maps"
    result = predict_tiny("--json", str(a), str(b), "-o", str(out))
    assert result.exit_code == 0, result.output
    records = _lines(result.stdout)
    assert [r["path"] for r in records] == [str(a), str(b)]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert records[0]["outputs"] == [str(out / "a.tif")]
    assert [r["pixels"] for r in records] == [70 * 90, 40 * 50]
    assert all(r["seconds"] > 0 and r["windows"] > 0 and r["command"] == "predict" for r in records)
    assert all(isinstance(r["warnings"], list) for r in records)

    again = predict_tiny("--json", str(a), str(b), "-o", str(out))
    assert [r["status"] for r in _lines(again.stdout)] == ["skipped", "skipped"]
    assert "exists" in _lines(again.stdout)[0]["message"]


def test_json_reports_failures_with_keep_going_and_without(predict_tiny, s2_scene, tmp_path):
    good = s2_scene("good.tif")
    broken = tmp_path / "broken.tif"
    broken.write_text("not a raster")
    out = tmp_path / "maps"
    missing = str(tmp_path / "missing.tif")
    result = predict_tiny("--json", str(broken), missing, str(good), "-o", str(out), "--keep-going")
    assert result.exit_code == 1
    by_path = {r["path"]: r for r in _lines(result.stdout)}
    assert by_path[missing]["status"] == "failed" and by_path[missing]["exit_code"] == 3
    assert (
        by_path[str(broken)]["status"] == "failed"
        and "broken.tif" in by_path[str(broken)]["message"]
    )
    assert by_path[str(good)]["status"] == "ok"

    stopped = predict_tiny("--json", str(broken), "-o", str(tmp_path / "other"))
    assert stopped.exit_code == 3
    (record,) = _lines(stopped.stdout)
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert stopped.stderr.count("gfm: error:") == 1, "the error is printed once"


def test_embed_json_and_dry_run_json(gfm, tiny_model, s2_scene, tmp_path):
    src = s2_scene()
    emb = tmp_path / "scene.emb.tif"
    args = ("embed", "-m", str(tiny_model), str(src), "-o", str(emb), "--window", "32")
    plan = gfm(*args, "--overlap", "0", "--json", "--dry-run")
    assert plan.exit_code == 0, plan.output
    (record,) = _lines(plan.stdout)
    assert record["status"] == "planned" and record["bands"] == ["B02", "B03", "B04", "B08"]
    assert record["width"] == 90 and record["peak_memory_bytes"] > 0
    assert not emb.exists()
    # a batch holds no more windows than the raster has: a huge --batch-size changes nothing
    sizes = []
    for batch in (str(record["windows"]), "100000"):
        (big,) = _lines(
            gfm(*args, "--overlap", "0", "--json", "--dry-run", "--batch-size", batch).stdout
        )
        sizes.append(big["peak_memory_bytes"])
    assert sizes[0] == sizes[1] < 2 * record["peak_memory_bytes"]

    result = gfm(*args, "--overlap", "0", "--json")
    (record,) = _lines(result.stdout)
    assert record["command"] == "embed" and record["outputs"] == [str(emb)]
    assert emb.exists()


def test_tile_json_one_line_per_raster(gfm, s2_scene, tmp_path):
    a, b = s2_scene("a.tif"), s2_scene("b.tif", height=40, width=40)
    chips = tmp_path / "chips"
    result = gfm(
        "tile",
        str(a),
        str(b),
        "-o",
        str(chips),
        "--size",
        "32",
        "--sensor",
        "sentinel2-l2a",
        "--json",
    )
    assert result.exit_code == 0, result.output
    records = _lines(result.stdout)
    assert [r["path"] for r in records] == [str(a), str(b)]
    assert all(r["status"] == "ok" and r["outputs"] == [str(chips)] for r in records)
    index = json.loads((chips / "chips.json").read_text())
    assert [r["windows"] for r in records] == [3 * 3, 2 * 2]
    for record in records:
        assert record["chips"] == sum(c["source"] == record["path"] for c in index["chips"])
        assert 0 < record["chips"] <= record["windows"]


def test_tile_json_failure_marks_every_raster(gfm, make_raster, tmp_path):
    a = make_raster(tmp_path, "a.tif", descriptions=("B02", "B03", "B04", "B08"))
    b = make_raster(tmp_path, "b.tif", count=3, descriptions=("B02", "B03", "B04"))
    result = gfm(
        "tile", str(a), str(b), "-o", str(tmp_path / "chips"), "--sensor", "sentinel2-l2a", "--json"
    )
    assert result.exit_code == 3
    records = _lines(result.stdout)
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert not (tmp_path / "chips").exists()


def test_json_lines_come_out_of_a_real_pipe(tiny_model, s2_scene, tmp_path):
    src = s2_scene()
    command = [
        sys.executable,
        "-m",
        "gfmcli.cli",
        "predict",
        "-m",
        str(tiny_model),
        str(src),
    ]
    proc = subprocess.run(
        [*command, "-o", str(tmp_path / "m.tif"), "--window", "32", "--overlap", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = _lines(proc.stdout)
    assert record["status"] == "ok" and record["outputs"] == [str(tmp_path / "m.tif")]
