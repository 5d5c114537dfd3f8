"""Wide rasters are mapped in vertical stripes so the blend accumulator never spans the width."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from gfmcli.cli.main import cli
from gfmcli.engine import assemble, inference, tiling
from gfmcli.engine.tiling import plan_stripes, plan_windows

BANDS = ("B02", "B03", "B04", "B08")


@pytest.mark.parametrize(
    ("width", "window", "stripe", "overlap"),
    [
        (10, 4, 4, 1),
        (4096, 512, 1024, 64),
        (5000, 512, 1024, 0),
        (5000, 64, 1024, 48),
        (9000, 512, 4096, 64),
    ],
)
def test_stripes_own_every_column_once_with_every_window_that_touches_it(
    width, window, stripe, overlap
):
    plan = plan_windows(7, width, window, overlap)
    stripes = plan_stripes(plan, stripe)
    assert len(stripes) > 1
    owned = np.zeros(width, int)
    for s, part in stripes:
        owned[s.own_start : s.own_stop] += 1
        assert s.own_start % stripe == 0 and part.width == s.width <= width - s.col_off
        # the raster plan's windows, sides judged as in the raster plan
        for tile in part.tiles:
            (whole,) = [
                w
                for w in plan.tiles
                if (w.row_off, w.col_off) == (tile.row_off, tile.col_off + s.col_off)
            ]
            assert part.edges(tile) == plan.edges(whole)
        inside = {part.col_offsets[c] + s.col_off for c in range(part.n_cols)}
        touching = {
            off for off in plan.col_offsets if off < s.own_stop and off + plan.window > s.own_start
        }
        assert inside == touching
    assert (owned == 1).all()


def test_narrow_rasters_and_single_window_columns_are_one_stripe():
    plan = plan_windows(64, 4096 + 128, 512, 64)
    assert plan_stripes(plan, 4096) == [(tiling.Stripe(0, 4224, 0, 4224), plan)]
    # just past the threshold, the first stripe's windows already span the raster
    past = plan_windows(64, 4225, 512, 64)
    assert plan_stripes(past, 4096) == [(tiling.Stripe(0, 4225, 0, 4225), past)]
    wide_window = plan_windows(64, 600, 640, 0)
    assert plan_stripes(wide_window, 100) == [(tiling.Stripe(0, 600, 0, 600), wide_window)]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_factory, tmp_path_factory):
    return tiny_checkpoint_factory(tmp_path_factory.mktemp("m") / "tiny.pt")


@pytest.mark.parametrize("fmt", ["tif", "gpkg"])
def test_striped_map_matches_the_unstriped_map(checkpoint, make_raster, tmp_path, monkeypatch, fmt):
    rng = np.random.default_rng(3)
    # A smooth field with a few regions, so class regions cross stripe seams (DN above 1000:
    # positive reflectance under the contract's -0.1 offset, which the value checks demand).
    yy, xx = np.mgrid[0:60, 0:150]
    base = 2500 + 800 * np.sin(xx / 17.0)[None] * np.cos(yy / 11.0)[None]
    data = (base + rng.normal(0, 30, (4, 60, 150))).astype("uint16")
    data[:, :8, :20] = 0
    src = make_raster(tmp_path, "wide.tif", data=data, nodata=0, descriptions=BANDS)
    args = ["-q", "predict", "-m", str(checkpoint), str(src), "--window", "32", "--overlap", "8"]
    # A "model" whose output depends on the whole window (each pixel's bands against the
    # window's mean and its place in the window), as a ViT's does: stripes read the raster
    # plan's windows, so striped and unstriped maps must still be equal.
    weights = torch.tensor(np.random.default_rng(0).normal(size=(3, 4)), dtype=torch.float32)

    def contextual(model, batch, bands, mode):
        centred = batch - batch.mean(dim=(2, 3), keepdim=True)
        ramp = torch.linspace(-2.0, 2.0, batch.shape[-1])[None, None, None, :]
        logits = (
            torch.einsum("kc,bchw->bkhw", weights, centred)
            + ramp * torch.tensor([1.0, 0.0, -1.0])[None, :, None, None]
        )
        return torch.softmax(logits, dim=1)

    monkeypatch.setattr(inference, "_forward", contextual)

    assert CliRunner().invoke(cli, [*args, "-o", str(tmp_path / f"whole.{fmt}")]).exit_code == 0
    widths = []
    original = assemble.StripMosaic

    def spy(channels, plan, **kwargs):
        widths.append(plan.width)
        return original(channels, plan, **kwargs)

    monkeypatch.setattr(tiling, "STRIPE_WIDTH", 48)
    monkeypatch.setattr(assemble, "StripMosaic", spy)
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / f"striped.{fmt}")])
    assert result.exit_code == 0, result.output
    assert max(widths) <= 48 + 2 * 32 and len(widths) == 4  # 150 px in stripes of 48 owned

    if fmt == "tif":
        with (
            rasterio.open(tmp_path / "whole.tif") as a,
            rasterio.open(tmp_path / "striped.tif") as b,
        ):
            whole, striped = a.read(1), b.read(1)
        assert np.array_equal(whole == 255, striped == 255)
        assert (whole[:8, :20] == 255).all()
        assert len(np.unique(whole)) > 2  # class regions cross the seams
        assert np.array_equal(whole, striped)
    else:
        import geopandas as gpd

        whole = gpd.read_file(tmp_path / "whole.gpkg")
        striped = gpd.read_file(tmp_path / "striped.gpkg")
        assert len(striped) == len(whole), "regions crossing stripe seams are dissolved"
        assert striped["area_m2"].sum() == pytest.approx(whole["area_m2"].sum())
        assert not list(tmp_path.glob(".*partial*"))


def test_runs_of_empty_windows_do_not_pile_up_in_one_batch():
    from gfmcli.engine.batching import iter_batches
    from gfmcli.engine.tiling import plan_windows

    plan = plan_windows(64 * 40, 64, 64, 0)

    def read(window):
        row = window[0]
        valid = np.full((64, 64), row >= 64 * 38)  # only the last two windows hold data
        return np.zeros((1, 64, 64), np.float32), valid

    batches = list(iter_batches(plan, read, batch_size=2))
    assert max(len(b.tiles) for b in batches) <= 4 * 2 + 8
    assert sum(len(b.tiles) for b in batches) == 40
    assert all(v is None for b in batches for v, e in zip(b.valid, b.empty, strict=True) if e)
    assert batches[-1].data.shape == (2, 1, 64, 64)
