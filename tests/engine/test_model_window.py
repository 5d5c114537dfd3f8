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
