"""CPU bf16 autocast against fp32 with the shipped default weights on the shipped example scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from gfmcli import MapOptions, map_rasters
from gfmcli.model.checkpoint import load_checkpoint
from gfmcli.runtime.devices import inference_precision

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "weights" / "landcover-tiny.pt"
SCENE = ROOT / "examples" / "data" / "s2-l2a-example.tif"


@pytest.mark.skipif(not WEIGHTS.exists(), reason="the default weights are not in this checkout")
def test_cpu_bf16_class_maps_agree_with_fp32(tmp_path):
    model, contract = load_checkpoint(WEIGHTS)
    assert inference_precision(torch.device("cpu"), "bf16") == "bf16"  # asked for, it runs
    maps = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.tif"
        options = MapOptions(window=256, overlap=32, batch_size=2, precision=precision)
        summary = map_rasters([SCENE], out, options, model=(model, contract), device="cpu")
        assert summary.written == 1
        with rasterio.open(out) as dst:
            maps[precision] = dst.read(1)
    valid = maps["fp32"] != 255
    assert valid.mean() > 0.5 and np.array_equal(valid, maps["bf16"] != 255)
    classes = np.unique(maps["fp32"][valid])
    assert len(classes) >= 2, "a map of one class would agree trivially"
    agreement = float((maps["fp32"] == maps["bf16"])[valid].mean())
    assert agreement >= 0.995, f"bf16 agrees with fp32 on {agreement:.2%} of pixels"
