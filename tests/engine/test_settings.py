"""Resume skips only what a rerun would write again (gfmcli.engine.settings)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gfmcli.engine.options import MapOptions, for_model
from gfmcli.engine.settings import changed_settings, output_settings
from gfmcli.model.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def stepped(tiny_checkpoint_factory, tmp_path_factory):
    """The tiny model's contract with a 32 px window and 64 px from 25 m."""
    path = tmp_path_factory.mktemp("settings") / "stepped.pt"
    tiny_checkpoint_factory(path, window=32, window_by_gsd=((25.0, 64),))
    return load_checkpoint(path)[1]


def recorded(contract, options: MapOptions, gsd_m: float, read_as: str = "sentinel2-l2a") -> str:
    """The GFM_SETTINGS tag a run with ``options`` writes for a raster of ``gsd_m``."""
    resolved = for_model(options, contract).at_gsd(gsd_m)
    return json.dumps(output_settings(contract, resolved, "predict", gsd_m, read_as))


def test_the_same_run_changes_nothing_and_the_window_is_judged_at_the_outputs_gsd(stepped):
    for gsd_m, window in ((10.0, 32), (30.0, 64)):
        tag = recorded(stepped, MapOptions(), gsd_m)
        assert json.loads(tag)["window"] == window
        assert changed_settings(tag, stepped, for_model(MapOptions(), stepped), "predict") == ""
    # a 30 m map made in the 64 px step is what an explicit --window 64 --overlap 16 makes
    explicit = for_model(MapOptions(window=64, overlap=16), stepped)
    assert (
        changed_settings(recorded(stepped, MapOptions(), 30.0), stepped, explicit, "predict") == ""
    )
    assert "window 32, this run 64" in changed_settings(
        recorded(stepped, MapOptions(), 10.0), stepped, explicit, "predict"
    )


def test_naming_the_sensor_a_run_read_the_file_as_asks_for_the_same_map(stepped):
    tag = recorded(stepped, MapOptions(), 10.0, read_as="sentinel2-l2a")
    same = for_model(MapOptions(sensor="sentinel2-l2a"), stepped)
    other = for_model(MapOptions(sensor="landsat8"), stepped)
    assert changed_settings(tag, stepped, same, "predict") == ""
    assert changed_settings(tag, stepped, other, "predict") == (
        "sensor unset (read as sentinel2-l2a), this run landsat8"
    )
    # the other way round: a map made with --sensor and a rerun that leaves it out
    named = recorded(stepped, MapOptions(sensor="landsat8"), 10.0, read_as="landsat8")
    assert "sensor landsat8, this run unset" in changed_settings(
        named, stepped, for_model(MapOptions(), stepped), "predict"
    )


def test_another_model_scaling_or_command_is_named(stepped):
    tag = recorded(stepped, MapOptions(), 10.0)
    options = for_model(MapOptions(), stepped)
    other_model = dataclasses.replace(stepped, provenance={"trained_on": "something else"})
    assert changed_settings(tag, other_model, options, "predict").startswith("model ")
    scaled = for_model(MapOptions(scale=(0.0001,)), stepped)
    assert changed_settings(tag, stepped, scaled, "predict") == "scale unset, this run 0.0001"
    assert changed_settings(tag, stepped, options, "embed").startswith("command predict")


def test_outputs_of_an_older_gfm_are_skipped_and_a_broken_record_is_a_change(stepped):
    options = for_model(MapOptions(), stepped)
    assert changed_settings(None, stepped, options, "predict") == ""
    for broken in ("not json", "[1, 2]", '{"window": 32}'):
        assert "unreadable GFM_SETTINGS" in changed_settings(broken, stepped, options, "predict")
