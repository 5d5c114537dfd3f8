"""Wide rasters are mapped in vertical stripes so the blend accumulator never spans the width."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from gfmcli.cli.main import cli
from gfmcli.engine import assemble, inference, runner, tiling
from gfmcli.engine.tiling import plan_stripes

BANDS = ("B02", "B03", "B04", "B08")


@pytest.mark.parametrize(
    ("width", "stripe", "overlap"), [(10, 4, 1), (4096, 1024, 64), (5000, 1024, 0), (7, 4, 3)]
)
def test_stripes_own_every_column_once_and_read_a_halo(width, stripe, overlap):
    stripes = plan_stripes(width, overlap, stripe)
    owned = np.zeros(width, int)
    for s in stripes:
        owned[s.own_start : s.own_stop] += 1
        assert s.col_off == max(0, s.own_start - overlap)
        assert s.col_off + s.width == min(width, s.own_stop + overlap)
    assert (owned == 1).all()


def test_narrow_rasters_are_one_stripe():
    assert plan_stripes(4096 + 128, 64, 4096) == [tiling.Stripe(0, 4224, 0, 4224)]


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
    # A pointwise "model" (softmax of a fixed linear map of each pixel's bands): its output does
    # not depend on where a window starts, so striped and unstriped maps must be equal.
    weights = torch.tensor(np.random.default_rng(0).normal(size=(3, 4)), dtype=torch.float32)

    def pointwise(model, batch, bands, mode):
        return torch.softmax(torch.einsum("kc,bchw->bkhw", weights, batch), dim=1)

    monkeypatch.setattr(inference, "_forward", pointwise)

    assert CliRunner().invoke(cli, [*args, "-o", str(tmp_path / f"whole.{fmt}")]).exit_code == 0
    widths = []
    original = assemble.StripMosaic

    def spy(channels, plan, **kwargs):
        widths.append(plan.width)
        return original(channels, plan, **kwargs)

    monkeypatch.setattr(tiling, "STRIPE_WIDTH", 48)
    monkeypatch.setattr(assemble, "StripMosaic", spy)
    monkeypatch.setattr(
        runner,
        "plan_stripes",
        lambda w, o, s=48: (
            plan_stripes.__wrapped__(w, o, 48)
            if hasattr(plan_stripes, "__wrapped__")
            else plan_stripes(w, o, 48)
        ),
    )
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / f"striped.{fmt}")])
    assert result.exit_code == 0, result.output
    assert max(widths) <= 48 + 2 * 8 and len(widths) == 4  # 150 px in stripes of 48 owned

    if fmt == "tif":
        with (
            rasterio.open(tmp_path / "whole.tif") as a,
            rasterio.open(tmp_path / "striped.tif") as b,
        ):
            whole, striped = a.read(1), b.read(1)
        assert np.array_equal(whole == 255, striped == 255)
        assert (whole[:8, :20] == 255).all()
        # Window positions differ near stripe seams, so a few pixels may flip class.
        assert (whole == striped).mean() > 0.97
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
