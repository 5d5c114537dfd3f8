"""A model maps in windows the size of its training chips unless told otherwise.

The contract's ``window`` (the chips' size, recorded by training) picks the window, overlap
and batch size a run leaves unset (``engine.options.for_model``); given values always win.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from gfmcli.contract import ModelContract, contract_hash
from gfmcli.engine.options import MapOptions, for_model
from gfmcli.errors import InputError, ModelError
from gfmcli.model.checkpoint import load_model
from gfmcli.train.base import chip_window
from gfmcli.train.datasets import ChipFolder, open_chip_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_checkpoint_factory) -> dict[str, Path]:
    """The tiny model twice, with the same weights: without a window, and with 32 px chips."""
    folder = tmp_path_factory.mktemp("window-models")
    return {
        "plain": tiny_checkpoint_factory(folder / "plain.pt"),
        "chips32": tiny_checkpoint_factory(folder / "chips32.pt", window=32),
    }


@pytest.fixture(scope="module")
def contract(models) -> ModelContract:
    """The tiny model's contract (patch size 16, no window)."""
    return load_model(models["plain"])[1]


@pytest.mark.parametrize(
    ("window", "given", "expected"),
    [
        (None, {}, (512, 64, 2)),  # older checkpoints: the 512 px default
        (64, {}, (64, 16, 32)),  # a quarter of the window overlaps; batches capped at 32
        (128, {}, (128, 32, 32)),  # as many pixels per call as two 512 px windows
        (1024, {}, (1024, 64, 2)),  # the overlap stops at 64 px, the batch at 2
        (64, {"window": 256}, (256, 64, 8)),  # a given window wins over the contract's
        (64, {"overlap": 0, "batch_size": 3}, (64, 0, 3)),  # given values are kept, 0 too
    ],
)
def test_unset_window_overlap_and_batch_are_chosen_for_the_model(
    contract, window, given, expected
) -> None:
    resolved = for_model(MapOptions(**given), dataclasses.replace(contract, window=window))
    assert (resolved.window, resolved.overlap, resolved.batch_size) == expected
    assert for_model(resolved, contract) == resolved  # applying it again changes nothing


def test_embeddings_get_a_default_overlap_of_whole_patches(contract) -> None:
    # A 96 px window: a quarter is 24 px for maps, 16 (one patch) for embeddings, which are
    # blended on the patch grid and refuse an overlap of part of a patch.
    model = dataclasses.replace(contract, window=96)
    assert for_model(MapOptions(), model).overlap == 24
    assert for_model(MapOptions(), model, "embed").overlap == 16
    assert for_model(MapOptions(overlap=32), model, "embed").overlap == 32  # given: kept


def test_embed_runs_with_the_default_overlap_of_any_window(gfm, models, s2_scene, tmp_path):
    scene = s2_scene(height=70, width=90)
    out = tmp_path / "emb.tif"
    result = gfm("embed", scene, "-m", models["plain"], "--window", "96", "-o", out)
    assert result.exit_code == 0, result.output  # a quarter of 96 px is not whole patches
    with rasterio.open(out) as emb:
        assert emb.count == 24  # one band per feature of the tiny encoder


def test_the_window_travels_in_the_contract_and_is_checked(contract) -> None:
    with_window = dataclasses.replace(contract, window=48)
    assert ModelContract.from_json(with_window.to_json()).window == 48
    # Without one the contract is as before (same JSON, same hash as older checkpoints had).
    assert "window" not in contract.to_dict()
    assert contract_hash(contract) != contract_hash(with_window)
    for bad in (40, 0, -16):  # not a multiple of the patch size 16, or not positive
        with pytest.raises(ModelError, match=f"contract window {bad} is not a positive multiple"):
            ModelContract.from_dict({**contract.to_dict(), "window": bad})


def test_predict_and_info_use_the_contract_window(gfm, models, s2_scene, tmp_path) -> None:
    scene = s2_scene(height=70, width=90)
    own = json.loads(
        gfm("info", scene, "--model", models["chips32"], "--no-timing", "--json").stdout
    )
    assert (own["window"], own["overlap"], own["windows"]) == (32, 8, 12)  # 3 rows x 4 columns
    told = gfm(
        "info", scene, "--model", models["chips32"], "--no-timing", "--window", "64", "--json"
    )
    assert json.loads(told.stdout)["windows"] == 4  # --window wins: 2 x 2 windows of 64 px
    plain = json.loads(
        gfm("info", scene, "--model", models["plain"], "--no-timing", "--json").stdout
    )
    assert plain["window"] == 512 and plain["windows"] == 1

    # The contract's window maps exactly as the same weights told --window 32 --overlap 8.
    assert gfm("predict", scene, "-m", models["chips32"], "-o", tmp_path / "own.tif").exit_code == 0
    args = ("--window", "32", "--overlap", "8", "--batch-size", "32")
    told_run = gfm("predict", scene, "-m", models["plain"], *args, "-o", tmp_path / "told.tif")
    default_run = gfm("predict", scene, "-m", models["plain"], "-o", tmp_path / "512.tif")
    assert told_run.exit_code == default_run.exit_code == 0
    with (
        rasterio.open(tmp_path / "own.tif") as own_map,
        rasterio.open(tmp_path / "told.tif") as told_map,
        rasterio.open(tmp_path / "512.tif") as default_map,
    ):
        own_classes = own_map.read(1)
        assert np.array_equal(own_classes, told_map.read(1))
        assert not np.array_equal(own_classes, default_map.read(1))  # windows change the map


def test_info_names_the_window_a_checkpoint_maps_in(gfm, models) -> None:
    assert "maps in windows of 32 px (its training chips)" in gfm("info", models["chips32"]).stdout
    assert "maps in windows of 512 px (the default)" in gfm("info", models["plain"]).stdout
    described = json.loads(gfm("info", models["chips32"], "--json").stdout)
    assert described["window"] == 32


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [((64,), 64), ((32, 100), 96), ((8,), None), ((None,), None)],  # whole patches of 16 px
)
def test_training_records_its_largest_chips_as_the_window(sizes, expected, tmp_path) -> None:
    folders = [
        ChipFolder(tmp_path, {} if size is None else {"size": size}, None)  # type: ignore[arg-type]
        for size in sizes
    ]
    assert chip_window(folders, 16) == expected


def test_a_chip_index_with_a_bad_size_is_refused(optical_chips, tmp_path) -> None:
    folder = optical_chips(tmp_path)
    index = folder / "chips.json"
    assert open_chip_folder(folder).meta["size"] == 32
    index.write_text(json.dumps({**json.loads(index.read_text()), "size": "32"}))
    with pytest.raises(InputError, match=r"chips.json: chip size '32' is not a positive pixel"):
        open_chip_folder(folder)


# --- larger windows for coarser rasters (the contract's window_by_gsd) ---------------------


@pytest.fixture(scope="module")
def coarse_model(tmp_path_factory, tiny_checkpoint_factory) -> Path:
    """The tiny model (same weights) mapping in 32 px windows, and in 64 px from 20 m GSD."""
    folder = tmp_path_factory.mktemp("coarse-model")
    return tiny_checkpoint_factory(folder / "coarse.pt", window=32, window_by_gsd=((20.0, 64),))


def test_a_coarser_raster_gets_the_window_of_its_gsd_step(contract) -> None:
    steps = dataclasses.replace(contract, window=32, window_by_gsd=((20.0, 64), (100.0, 256)))
    resolved = for_model(MapOptions(), steps)
    assert (resolved.window, resolved.overlap, resolved.batch_size) == (32, 8, 32)
    chosen = {
        gsd: (r.window, r.overlap, r.batch_size, r.coarse)
        for gsd in (10.0, 19.9, 20.0, 30.0, 250.0)
        for r in [resolved.at_gsd(gsd)]
    }
    assert chosen == {
        10.0: (32, 8, 32, ()),
        19.9: (32, 8, 32, ()),
        20.0: (64, 16, 32, ()),  # a step starts at its GSD
        30.0: (64, 16, 32, ()),
        250.0: (256, 64, 8, ()),  # its own overlap (capped at 64) and batch
    }
    # Given values win in every step; a given window leaves no steps at all.
    kept = for_model(MapOptions(overlap=4, batch_size=3), steps).at_gsd(30.0)
    assert (kept.window, kept.overlap, kept.batch_size) == (64, 4, 3)
    assert for_model(MapOptions(window=48), steps).at_gsd(30.0).window == 48
    assert for_model(MapOptions(window=48), steps).coarse == ()


def test_window_by_gsd_travels_in_the_contract_and_is_checked(contract) -> None:
    stepped = dataclasses.replace(contract, window=32, window_by_gsd=((20.0, 64),))
    assert ModelContract.from_json(stepped.to_json()).window_by_gsd == ((20.0, 64),)
    one_window = dataclasses.replace(contract, window=32)
    assert "window_by_gsd" not in one_window.to_dict()  # older contracts keep their hash
    assert contract_hash(stepped) != contract_hash(one_window)
    base = {**one_window.to_dict()}
    bad = {
        "needs a window for the finest": {**base, "window": None, "window_by_gsd": [[20, 64]]},
        "must be positive, finite and ascending": {
            **base,
            "window_by_gsd": [[30, 64], [20, 128]],
        },
        r"window 40 \(from 20 m\) is not a positive multiple": {
            **base,
            "window_by_gsd": [[20, 40]],
        },
        "is smaller than the window before it": {**base, "window_by_gsd": [[20, 128], [30, 64]]},
        "incomplete or malformed": {**base, "window_by_gsd": [[20, 64, 1]]},
    }
    for message, data in bad.items():
        with pytest.raises(ModelError, match=message):
            ModelContract.from_dict(data)


def test_window_steps_problems_read_without_the_checkpoint_advice() -> None:
    from gfmcli.contract import window_steps_problem

    assert window_steps_problem(64, 16, ((25.0, 128),)) == ""
    assert window_steps_problem(64, 16, ((25.0, 100),)) == (
        "window 100 (from 25 m) is not a positive multiple of the patch size 16"
    )
    assert "smaller than the window before it (64)" in window_steps_problem(64, 16, ((25, 32),))
    assert "ascending" in window_steps_problem(64, 16, ((30.0, 128), (20.0, 256)))


def test_predict_maps_a_coarse_raster_in_its_steps_window(
    gfm, models, coarse_model, s2_scene, tmp_path
) -> None:
    from rasterio.transform import from_origin

    fine = s2_scene("fine.tif", height=70, width=90)
    coarse = s2_scene("coarse.tif", height=70, width=90, transform=from_origin(0, 0, 30, 30))
    runs = {
        "fine": ("predict", fine, "-m", coarse_model),
        "fine told 32": (
            "predict",
            fine,
            "-m",
            models["plain"],
            "--window",
            "32",
            "--overlap",
            "8",
        ),
        "coarse": ("predict", coarse, "-m", coarse_model),
        "coarse told 64": (
            "predict",
            coarse,
            "-m",
            models["plain"],
            "--window",
            "64",
            "--overlap",
            "16",
        ),
        "coarse told 32": ("predict", coarse, "-m", coarse_model, "--window", "32"),
    }
    maps = {}
    for name, args in runs.items():
        out = tmp_path / f"map-{name.replace(' ', '-')}.tif"
        result = gfm(*args, "-o", out)
        assert result.exit_code == 0, result.output
        with rasterio.open(out) as written:
            maps[name] = written.read(1)
            window = written.tags()["GFM_WINDOW"]
        assert window == ("64" if name in ("coarse", "coarse told 64") else "32"), name
    assert np.array_equal(maps["fine"], maps["fine told 32"])  # 10 m: the finest window
    assert np.array_equal(maps["coarse"], maps["coarse told 64"])  # 30 m: the step's window
    assert not np.array_equal(maps["coarse"], maps["coarse told 32"])  # and it is not 32 px


def test_dry_run_and_info_report_the_window_of_each_raster(
    gfm, coarse_model, s2_scene, tmp_path
) -> None:
    scene = s2_scene(height=70, width=90)
    planned = gfm(
        "predict",
        scene,
        "-m",
        coarse_model,
        "--gsd",
        "30",
        "--dry-run",
        "--json",
        "-o",
        tmp_path / "m.tif",
    )
    record = json.loads(planned.stdout.splitlines()[0])
    assert (record["window"], record["overlap"], record["windows"]) == (64, 16, 4)
    text = gfm("predict", scene, "-m", coarse_model, "--dry-run", "-o", tmp_path / "m.tif").stdout
    assert "12 windows of 32 px, overlap 8" in text  # 10 m: 3 rows x 4 columns
    described = json.loads(
        gfm("info", scene, "--model", coarse_model, "--gsd", "30", "--no-timing", "--json").stdout
    )
    assert (described["window"], described["overlap"], described["windows"]) == (64, 16, 4)
    shown = gfm("info", coarse_model).stdout
    assert "maps in windows of 32 px (its training chips), 64 px from 20 m GSD" in shown
    assert json.loads(gfm("info", coarse_model, "--json").stdout)["window_by_gsd"] == [[20.0, 64]]


def test_an_overlap_is_checked_against_the_window_of_each_raster(
    gfm, coarse_model, s2_scene, tmp_path
) -> None:
    from rasterio.transform import from_origin

    fine = s2_scene("fine.tif")
    coarse = s2_scene("coarse.tif", transform=from_origin(0, 0, 30, 30))
    # 40 px of overlap fits the 64 px windows of the 30 m raster, not the 32 px ones of 10 m.
    ok = gfm("predict", coarse, "-m", coarse_model, "--overlap", "40", "-o", tmp_path / "c.tif")
    assert ok.exit_code == 0, ok.output
    refused = gfm("predict", fine, "-m", coarse_model, "--overlap", "40", "-o", tmp_path / "f.tif")
    assert refused.exit_code == 2
    assert "--overlap 40 must be smaller than 32 px, the window the model maps this" in (
        refused.output
    )
    assert not (tmp_path / "f.tif").exists()
    # No raster could take 64 px: refused before any input is opened, by gfm info too.
    for command in (("predict", "-o", tmp_path / "n.tif"), ("info", "--no-timing")):
        never = gfm(command[0], coarse, "-m", coarse_model, "--overlap", "64", *command[1:])
        assert never.exit_code == 2 and "smaller than the window, 64 px" in never.output


def test_a_batch_of_rasters_of_two_gsds_maps_each_in_its_window(
    gfm, coarse_model, s2_scene, tmp_path
) -> None:
    from rasterio.transform import from_origin

    fine = s2_scene("fine.tif")
    coarse = s2_scene("coarse.tif", transform=from_origin(0, 0, 30, 30))
    out = tmp_path / "maps"
    assert gfm("predict", fine, coarse, "-m", coarse_model, "-o", out).exit_code == 0
    embedded = tmp_path / "emb.tif"
    assert gfm("embed", coarse, "-m", coarse_model, "-o", embedded).exit_code == 0
    tags = {}
    for path in (out / "fine.tif", out / "coarse.tif", embedded):
        with rasterio.open(path) as written:
            tags[path.name] = (written.tags()["GFM_WINDOW"], written.tags()["GFM_OVERLAP"])
    # Embeddings overlap by whole patches (16 px): a quarter of 64 px is one patch.
    assert tags == {"fine.tif": ("32", "8"), "coarse.tif": ("64", "16"), "emb.tif": ("64", "16")}
