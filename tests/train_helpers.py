"""Tiny chip folders and configs for the training tests (imported by test_pretrain/finetune)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine
from conftest import _write_raster

from gfmcli.train.chips import TileOptions, tile

TINY_MODEL = """
[model]
embed_dim = 32
depth = 1
num_heads = 2
patch_size = 8
"""


def optical_chips(tmp_path: Path, name: str = "s2", labels: bool = False, size: int = 128) -> Path:
    """A 4-band VNIR raster cut into 32 px chips; with ``labels``, a 3-class label raster whose
    classes follow the red band (so a model can learn them)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    classes = ((xx // 16 + yy // 24) % 3).astype("uint8")
    base = np.array([800.0, 1500.0, 3000.0])[classes]
    data = np.stack([base + 300 * b + rng.normal(0, 50, classes.shape) for b in range(4)])
    raster = _write_raster(tmp_path, f"{name}.tif", data=data.clip(1, 9000), nodata=0)
    label_src = None
    if labels:
        from gfmcli.train.labels import LabelSource

        grid = Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0)
        path = _write_raster(
            tmp_path, f"{name}_labels.tif", data=classes, dtype="uint8", nodata=255, transform=grid
        )
        label_src = LabelSource(path)
    out = tmp_path / f"chips_{name}"
    opts = TileOptions(size=32, stride=32, sensor="vnir4", block=1, fractions=(0.6, 0.2, 0.2))
    tile([raster], out, opts, label_src)
    return out


def radar_chips(tmp_path: Path) -> Path:
    raster = _write_raster(
        tmp_path, "s1.tif", count=2, height=96, width=96, dtype="float32",
        descriptions=["VV", "VH"],
    )  # fmt: skip
    out = tmp_path / "chips_s1"
    tile([raster], out, TileOptions(size=32, stride=32, sensor="sentinel1", block=1))
    return out
