"""Shared fixtures: tiny rasters, tiny checkpoints, tiny chip folders and a CLI runner.

Test modules never import each other or this file: everything they share is a fixture here.
"""

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


@pytest.fixture(scope="session")
def make_raster() -> MakeRaster:
    """``make_raster(tmp_path, name=..., data=..., dtype=..., crs=..., ...) -> Path``.

    The first argument is the folder, so a test can write into subfolders of ``tmp_path``; see
    ``_write_raster`` for every keyword.
    """
    return _write_raster


# A tiny Sentinel-2 segmentation model (one encoder block of width 24) and a scene it takes, for
# tests of the commands around mapping (--json, info, styles, GeoParquet, STAC).
TINY_BANDS = ("B02", "B03", "B04", "B08")


def _tiny_model(
    path: Path,
    task: str = "segmentation",
    meta: dict[str, str] | None = None,
    window: int | None = None,
    window_by_gsd: tuple[tuple[float, int], ...] = (),
) -> Path:
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
        num_outputs={"segmentation": len(classes), "regression": 2}.get(task),
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
        meta or {},
        window,
        window_by_gsd,
    )
    save_checkpoint(path, build_model(config), contract)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny segmentation checkpoint (classes water, trees, other; bands B02,B03,B04,B08)."""
    meta = {"trained_on": "nothing (a test model)"}
    return _tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny.pt", meta=meta)


@pytest.fixture(scope="session")
def tiny_checkpoint_factory() -> Callable[..., Path]:
    """``tiny_checkpoint_factory(path, task="segmentation", meta=None, window=None,
    window_by_gsd=())``: write the tiny model's checkpoint (random weights from seed 0) for
    ``task`` (segmentation, regression with two outputs, classification, pretrain) to ``path``,
    with ``window`` (and ``window_by_gsd``) as its contract's mapping window, and return it."""
    return _tiny_model


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
    """The tiny segmentation checkpoint under the name tests/cli/test_hostile.py uses."""
    return tiny_model


# --- training: a tiny encoder and chip folders (gfm tile output) ---------------------------

TINY_ENCODER_TOML = """
[model]
embed_dim = 32
depth = 1
num_heads = 2
patch_size = 8
"""


@pytest.fixture(scope="session")
def tiny_encoder_toml() -> str:
    """A ``[model]`` table for a one-block encoder of width 32, for pretrain/finetune TOMLs."""
    return TINY_ENCODER_TOML


def _optical_chips(
    tmp_path: Path, name: str = "s2", labels: bool = False, size: int = 128, chip: int = 32
) -> Path:
    from gfmcli.train.chips import ChipOptions, tile
    from gfmcli.train.labels import LabelSource

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    classes = ((xx // 16 + yy // 24) % 3).astype("uint8")
    base = np.array([800.0, 1500.0, 3000.0])[classes]
    data = np.stack([base + 300 * b + rng.normal(0, 50, classes.shape) for b in range(4)])
    raster = _write_raster(tmp_path, f"{name}.tif", data=data.clip(1, 9000), nodata=0)
    label_src = None
    if labels:
        grid = Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0)
        path = _write_raster(
            tmp_path, f"{name}_labels.tif", data=classes, dtype="uint8", nodata=255, transform=grid
        )
        label_src = LabelSource(path)
    out = tmp_path / f"chips_{name}"
    opts = ChipOptions(size=chip, stride=chip, sensor="vnir4", block=1, fractions=(0.6, 0.2, 0.2))
    tile([raster], out, opts, label_src)
    return out


@pytest.fixture(scope="session")
def optical_chips() -> Callable[..., Path]:
    """``optical_chips(folder, name="s2", labels=False, size=128, chip=32)``: a 4-band VNIR
    raster of ``size`` px cut into ``chip`` px chips; with ``labels``, a 3-class label raster
    whose classes follow the red band (so a model can learn them). Returns the chip folder."""
    return _optical_chips


def _radar_chips(tmp_path: Path) -> Path:
    from gfmcli.train.chips import ChipOptions, tile

    raster = _write_raster(
        tmp_path, "s1.tif", count=2, height=96, width=96, dtype="float32", descriptions=["VV", "VH"]
    )
    out = tmp_path / "chips_s1"
    tile([raster], out, ChipOptions(size=32, stride=32, sensor="sentinel1", block=1))
    return out


@pytest.fixture(scope="session")
def radar_chips() -> Callable[[Path], Path]:
    """``radar_chips(folder)``: a two-band Sentinel-1 (VV, VH) raster cut into 32 px chips."""
    return _radar_chips


def _gfm(*args: object, input: str | None = None, quiet: bool = True):
    from click.testing import CliRunner

    from gfmcli.cli.main import cli

    argv = [*(["-q"] if quiet else []), *map(str, args)]
    return CliRunner().invoke(cli, argv, input=input, catch_exceptions=False)


@pytest.fixture(scope="session")
def gfm() -> Callable[..., Any]:
    """``gfm(*args, input=None, quiet=True)``: ``gfm -q ARGS`` in this process (click's runner;
    arguments may be paths; exceptions not caught, so a bug fails with its traceback). Returns
    click's result (``exit_code``, ``stdout``, ``stderr``, ``output``)."""
    return _gfm


@pytest.fixture(scope="session")
def predict_tiny(tiny_model) -> Callable[..., Any]:
    """``predict_tiny(*args, input=None, quiet=True)``: :func:`gfm` running ``predict`` with the
    tiny model and 32 px windows, overlap 8 (small scenes get several windows)."""

    def run(*args: object, input: str | None = None, quiet: bool = True):
        base = ("predict", "-m", tiny_model, "--window", "32", "--overlap", "8")
        return _gfm(*base, *args, input=input, quiet=quiet)

    return run


@pytest.fixture
def runner():
    """A click ``CliRunner`` for ``gfm`` commands."""
    from click.testing import CliRunner

    return CliRunner()
