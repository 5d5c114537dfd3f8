"""Shared fixtures: a factory for tiny, fully described GeoTIFFs written into ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

MakeRaster = Callable[..., Path]


def _write_raster(
    tmp_path: Path,
    name: str = "input.tif",
    *,
    data: np.ndarray | None = None,
    count: int = 4,
    height: int = 37,
    width: int = 53,
    dtype: str = "uint16",
    crs: str | CRS | None = "EPSG:32632",
    transform: Affine | None = None,
    nodata: float | None = None,
    descriptions: Sequence[str | None] | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    blocksize: int | None = None,
    mask: np.ndarray | None = None,
    tags: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Write a GeoTIFF and return its path.

    Without ``data`` the pixels are seeded random values that fit the dtype (DN-like 1000..4000
    for 16-bit types, reflectance-like 0.01..0.5 for floats). ``crs=None`` writes a file without
    a CRS; ``transform`` defaults to 10 m pixels at (500000, 5000000). ``mask`` (bool, H x W,
    True = valid) is stored as an internal per-dataset mask band. ``blocksize`` makes the file
    tiled with square blocks of that size (a multiple of 16), else it is striped.
    """
    if data is None:
        rng = np.random.default_rng(seed)
        if np.dtype(dtype).kind == "f":
            data = rng.uniform(0.01, 0.5, (count, height, width))
        elif np.dtype(dtype).itemsize == 1:
            data = rng.integers(1, 250, (count, height, width))
        else:
            data = rng.integers(1000, 4000, (count, height, width))
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[np.newaxis]
    count, height, width = data.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": count,
        "height": height,
        "width": width,
        "dtype": dtype,
        "transform": transform or Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0),
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype))
        for i, text in enumerate(descriptions or ()):
            if text is not None:
                dst.set_band_description(i + 1, text)
        if scales is not None:
            dst.scales = tuple(scales)
        if offsets is not None:
            dst.offsets = tuple(offsets)
        if mask is not None:
            dst.write_mask(np.where(mask, 255, 0).astype("uint8"))
        if tags:
            dst.update_tags(**tags)
    return path


@pytest.fixture
def make_raster(tmp_path: Path) -> MakeRaster:
    """``make_raster(tmp_path, name=..., data=..., dtype=..., crs=..., ...) -> Path``.

    The first argument is the folder, so a test can write into subfolders of ``tmp_path``; see
    ``_write_raster`` for every keyword.
    """
    return _write_raster


# A tiny Sentinel-2 segmentation model (one encoder block of width 24) and a scene it takes, for
# tests of the commands around mapping (--json, info, styles, GeoParquet, STAC).
TINY_BANDS = ("B02", "B03", "B04", "B08")


def _tiny_model(path: Path, task: str = "segmentation") -> Path:
    import torch

    from gfmcli.contract import BandInfo, ClassInfo, ModelContract
    from gfmcli.model.checkpoint import save_checkpoint
    from gfmcli.model.tasks import build_model, model_config_for
    from gfmcli.sensors import get_sensor

    classes = (
        ClassInfo(0, "water", (0, 0, 255)),
        ClassInfo(1, "trees", (0, 128, 0)),
        ClassInfo(2, "other", (200, 200, 0)),
    )
    torch.manual_seed(0)
    config = model_config_for(
        "less_vit_tiny",
        task,
        num_outputs=len(classes) if task == "segmentation" else None,
        encoder_overrides={"embed_dim": 24, "depth": 1, "num_heads": 3},
    )
    s2 = get_sensor("sentinel2-l2a")
    bands = tuple(
        BandInfo(b.name, b.wavelength_nm, "optical", 0.1, 0.05, s2.scale, s2.offset)
        for b in s2.select(TINY_BANDS)
    )
    contract = ModelContract(
        "less_vit_tiny",
        config,
        task,
        "sentinel2-l2a",
        bands,
        10.0,
        16,
        classes if task == "segmentation" else (),
        {"trained_on": "nothing (a test model)"},
    )
    save_checkpoint(path, build_model(config), contract)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny segmentation checkpoint (classes water, trees, other; bands B02,B03,B04,B08)."""
    return _tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny.pt")


@pytest.fixture
def s2_scene(tmp_path: Path) -> Callable[..., Path]:
    """``s2_scene(name, height=70, width=90, **make_raster kwargs)``: a four-band uint16 scene
    with band descriptions B02,B03,B04,B08, nodata 0 and a nodata corner."""

    def make(name: str = "scene.tif", height: int = 70, width: int = 90, **kwargs) -> Path:
        rng = np.random.default_rng(len(name))
        data = rng.integers(1000, 4000, (4, height, width)).astype("uint16")
        data[:, :10, :12] = 0
        kwargs.setdefault("descriptions", TINY_BANDS)
        return _write_raster(tmp_path, name, data=data, nodata=0, **kwargs)

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model) -> Path:
    """The tiny segmentation checkpoint under the name tests/test_hostile.py uses."""
    return tiny_model
