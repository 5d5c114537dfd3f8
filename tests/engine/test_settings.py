"""Resume skips only what a rerun would write again (gfmcli.engine.settings)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from gfmcli.engine import settings
from gfmcli.engine.options import MapOptions, for_model
from gfmcli.engine.settings import changed_settings, output_settings
from gfmcli.model.checkpoint import load_checkpoint

SOURCE = "scene.tif"  # as given: no such file here


@pytest.fixture(scope="module")
def stepped(tiny_checkpoint_factory, tmp_path_factory):
    """The tiny model's contract with a 32 px window and 64 px from 25 m."""
    path = tmp_path_factory.mktemp("settings") / "stepped.pt"
    tiny_checkpoint_factory(path, window=32, window_by_gsd=((25.0, 64),))
    return load_checkpoint(path)[1]


def recorded(contract, options: MapOptions, gsd_m: float, read_as: str = "sentinel2-l2a") -> str:
    """The GFM_SETTINGS tag a run with ``options`` writes for a raster of ``gsd_m``."""
    resolved = for_model(options, contract).at_gsd(gsd_m)
    return json.dumps(output_settings(contract, resolved, "predict", SOURCE, gsd_m, read_as))


def test_the_same_run_changes_nothing_and_the_window_is_judged_at_the_outputs_gsd(stepped):
    for gsd_m, window in ((10.0, 32), (30.0, 64)):
        tag = recorded(stepped, MapOptions(), gsd_m)
        assert json.loads(tag)["window"] == window
        options = for_model(MapOptions(), stepped)
        assert changed_settings(tag, stepped, options, "predict", SOURCE) == ""
    # a 30 m map made in the 64 px step is what an explicit --window 64 --overlap 16 makes
    explicit = for_model(MapOptions(window=64, overlap=16), stepped)
    at_30 = recorded(stepped, MapOptions(), 30.0)
    assert changed_settings(at_30, stepped, explicit, "predict", SOURCE) == ""
    at_10 = recorded(stepped, MapOptions(), 10.0)
    assert "window 32, this run 64" in changed_settings(at_10, stepped, explicit, "predict", SOURCE)


def test_naming_the_sensor_a_run_read_the_file_as_asks_for_the_same_map(stepped):
    tag = recorded(stepped, MapOptions(), 10.0, read_as="sentinel2-l2a")
    same = for_model(MapOptions(sensor="sentinel2-l2a"), stepped)
    other = for_model(MapOptions(sensor="landsat8"), stepped)
    assert changed_settings(tag, stepped, same, "predict", SOURCE) == ""
    assert changed_settings(tag, stepped, other, "predict", SOURCE) == (
        "sensor unset (read as sentinel2-l2a), this run landsat8"
    )
    # the other way round: a map made with --sensor and a rerun that leaves it out
    named = recorded(stepped, MapOptions(sensor="landsat8"), 10.0, read_as="landsat8")
    assert "sensor landsat8, this run unset" in changed_settings(
        named, stepped, for_model(MapOptions(), stepped), "predict", SOURCE
    )


def test_another_model_scaling_or_command_is_named(stepped):
    tag = recorded(stepped, MapOptions(), 10.0)
    options = for_model(MapOptions(), stepped)
    other_model = dataclasses.replace(stepped, provenance={"trained_on": "something else"})
    assert changed_settings(tag, other_model, options, "predict", SOURCE).startswith("model ")
    scaled = for_model(MapOptions(scale=(0.0001,)), stepped)
    assert (
        changed_settings(tag, stepped, scaled, "predict", SOURCE) == "scale unset, this run 0.0001"
    )
    assert changed_settings(tag, stepped, options, "embed", SOURCE).startswith("command predict")


def test_naming_the_scaling_a_run_found_asks_for_the_same_map(stepped):
    resolved = for_model(MapOptions(), stepped).at_gsd(10.0)
    found = ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))  # a float reflectance file: scale 1 found
    made = output_settings(
        stepped, resolved, "predict", SOURCE, 10.0, "sentinel2-l2a", scaled_as=found
    )
    tag = json.dumps(made)
    assert made["scale"] is None and made["scaled_as"] == {"scale": [1, 1, 1], "offset": [0, 0, 0]}

    def rerun(**given):
        return changed_settings(
            tag, stepped, for_model(MapOptions(**given), stepped), "predict", SOURCE
        )

    assert rerun(scale=(1.0,)) == "" and rerun(scale=(1.0,), offset=(0.0,)) == ""
    assert rerun(scale=(1e-4,)) == "scale unset, this run 0.0001"
    assert rerun(offset=(-0.1,)) == "offset unset, this run -0.1"
    # --scale alone means offset 0: it matches a file read with an offset only if named
    l2a = ((1e-4, 1e-4, 1e-4), (-0.1, -0.1, -0.1))
    tag = json.dumps(
        output_settings(stepped, resolved, "predict", SOURCE, 10.0, "sentinel2-l2a", scaled_as=l2a)
    )
    assert rerun(scale=(1e-4,)) == "scale unset, this run 0.0001"
    assert rerun(scale=(1e-4,), offset=(-0.1,)) == "" and rerun(offset=(-0.1,)) == ""
    # one value must be what every band was read with
    mixed = ((2e-5, 2e-5, 3e-5), (0.0, 0.0, 0.0))
    tag = json.dumps(
        output_settings(
            stepped, resolved, "predict", SOURCE, 10.0, "sentinel2-l2a", scaled_as=mixed
        )
    )
    assert rerun(scale=(2e-5,)) == "scale unset, this run 2e-05"
    assert rerun(scale=(2e-5, 2e-5, 3e-5)) != ""  # a list per file band is not judged
    # a record without the scaling read (an older gfm) cannot tell: still a change
    older = json.dumps({k: v for k, v in made.items() if k != "scaled_as"})
    options = for_model(MapOptions(scale=(1.0,)), stepped)
    assert (
        changed_settings(older, stepped, options, "predict", SOURCE) == "scale unset, this run 1.0"
    )


def test_outputs_of_an_older_gfm_are_skipped_and_a_broken_record_is_a_change(stepped):
    options = for_model(MapOptions(), stepped)
    assert changed_settings(None, stepped, options, "predict", SOURCE) == ""
    for broken in ("not json", "[1, 2]", '{"window": 32}'):
        assert "unreadable GFM_SETTINGS" in changed_settings(
            broken, stepped, options, "predict", SOURCE
        )


def test_an_alias_or_probabilities_ask_for_the_same_map_and_another_input_does_not(
    stepped, tmp_path
):
    tag = recorded(stepped, MapOptions(), 10.0)
    alias = for_model(MapOptions(sensor="s2-l2a"), stepped)
    assert changed_settings(tag, stepped, alias, "predict", SOURCE) == ""
    with_probabilities = for_model(MapOptions(probabilities=True), stepped)
    assert changed_settings(tag, stepped, with_probabilities, "predict", SOURCE) == ""
    options = for_model(MapOptions(), stepped)
    assert changed_settings(tag, stepped, options, "predict", "other.tif") == (
        "input scene.tif, this run other.tif"
    )
    # a local input is named by its real path, whatever the folder it is named from
    (tmp_path / "a.tif").write_bytes(b"")
    (tmp_path / "link.tif").symlink_to(tmp_path / "a.tif")
    made = output_settings(
        stepped, options.at_gsd(10.0), "predict", str(tmp_path / "a.tif"), 10.0, "x"
    )
    assert (
        changed_settings(json.dumps(made), stepped, options, "predict", str(tmp_path / "link.tif"))
        == ""
    )


def test_a_record_without_a_sensor_is_compared_not_a_crash(stepped):
    before = json.loads(recorded(stepped, MapOptions(), 10.0))
    del before["sensor"]
    named = for_model(MapOptions(sensor="sentinel2-l2a"), stepped)
    assert changed_settings(json.dumps(before), stepped, named, "predict", SOURCE) == ""
    other = for_model(MapOptions(sensor="landsat8"), stepped)
    assert "this run landsat8" in changed_settings(
        json.dumps(before), stepped, other, "predict", SOURCE
    )


def test_bands_spelt_another_way_ask_for_the_same_map_and_another_order_does_not(stepped):
    typed = ("B02", "B03", "B04", "B08")
    tag = recorded(stepped, MapOptions(sensor="sentinel2-l2a", bands=typed), 10.0)
    lower = for_model(
        MapOptions(sensor="sentinel2-l2a", bands=("b02", "b03", "b04", "b08")), stepped
    )
    assert changed_settings(tag, stepped, lower, "predict", SOURCE) == ""
    swapped = for_model(
        MapOptions(sensor="sentinel2-l2a", bands=("B03", "B02", "B04", "B08")), stepped
    )
    assert changed_settings(tag, stepped, swapped, "predict", SOURCE) == (
        "bands B02,B03,B04,B08, this run B03,B02,B04,B08"
    )
    # names the sensor does not know are compared as typed (the run itself refuses them)
    odd = for_model(MapOptions(sensor="sentinel2-l2a", bands=("X1", "B03", "B04", "B08")), stepped)
    assert "this run X1,B03,B04,B08" in changed_settings(tag, stepped, odd, "predict", SOURCE)


def test_a_replaced_input_file_is_a_change_and_an_older_record_without_it_is_not(
    stepped, tmp_path, monkeypatch
):
    source = tmp_path / "mosaic.vrt"
    source.write_bytes(b"first scene")
    options = for_model(MapOptions(), stepped)
    resolved = options.at_gsd(10.0)

    def tag() -> str:
        made = output_settings(stepped, resolved, "predict", str(source), 10.0, "sentinel2-l2a")
        return json.dumps(made)

    def changed(recorded: str) -> str:
        return changed_settings(recorded, stepped, options, "predict", str(source))

    small = tag()  # a small file (a VRT, a STAC item) is known by its content
    assert json.loads(small)["input_file"]["bytes"] == len(b"first scene")
    source.write_bytes(b"first scene")  # rebuilt as it was: the same input
    assert changed(small) == ""
    source.write_bytes(b"another, longer scene")
    assert changed(small).startswith("the input file changed since: it was 11 bytes of SHA-256 ")
    assert "it is 21 bytes of SHA-256 " in changed(small)
    older = {k: v for k, v in json.loads(small).items() if k != "input_file"}
    assert changed(json.dumps(older)) == ""
    monkeypatch.setattr(settings, "CONTENT_ID_MAX_BYTES", 4)  # a raster: size and mtime
    large = tag()
    assert changed(large) == ""
    os.utime(source, ns=(0, 10**18))
    assert "it is 21 bytes modified 2001-09-09 01:46:40 UTC" in changed(large)
