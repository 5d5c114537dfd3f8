"""CPU bf16 autocast against fp32 with the shipped default weights on the shipped example scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from gfmcli.engine.inference import DevicePool
from gfmcli.engine.runner import MapOptions, map_file
from gfmcli.model.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "landcover-tiny.pt"
SCENE = ROOT / "examples" / "data" / "s2-l2a-example.tif"


@pytest.mark.skipif(not WEIGHTS.exists(), reason="the default weights are not in this checkout")
def test_cpu_bf16_class_maps_agree_with_fp32(tmp_path):
    model, contract = load_checkpoint(WEIGHTS)
    options = MapOptions(window=256, overlap=32, batch_size=2)
    maps = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.tif"
        with DevicePool(model, [torch.device("cpu")], precision) as pool:
            assert pool.precisions == [precision]
            map_file(str(SCENE), out, "tif", pool, contract, options)
        with rasterio.open(out) as dst:
            maps[precision] = dst.read(1)
    valid = maps["fp32"] != 255
    assert valid.mean() > 0.5 and np.array_equal(valid, maps["bf16"] != 255)
    classes = np.unique(maps["fp32"][valid])
    assert len(classes) >= 2, "a map of one class would agree trivially"
    agreement = float((maps["fp32"] == maps["bf16"])[valid].mean())
    assert agreement >= 0.995, f"bf16 agrees with fp32 on {agreement:.2%} of pixels"
