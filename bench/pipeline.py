"""Benchmark the predict pipeline (not a test): memory vs raster size, pipeline vs model-only
throughput, and COG written through gfm's staged writer vs GTiff + rio-cogeo.

Usage::

    python bench/pipeline.py                      # all three parts, default sizes
    python bench/pipeline.py --sizes 1024 4096    # RSS part on fewer sizes
    python bench/pipeline.py --parts rss          # one part

Parts:

* ``rss``: peak resident memory of a real ``gfm predict`` subprocess (``os.wait4`` rusage) on
  generated 4-band uint16 rasters of N x N pixels. The rasters are smooth fields (compressible,
  so a 16k x 16k input is small on disk) written block by block. The encoder is reduced
  (D 48, depth 1) and so is the head (width 16), so that 16k^2 finishes in minutes on 2
  cores: memory flatness is a property of the pipeline, not of the model width.
* ``throughput``: the real ``less_vit_tiny`` architecture (random weights) on a 2048^2 raster,
  window 512, overlap 64: windows/s of the full pipeline (read, normalise, model, blend, write,
  COG) vs windows/s of the model alone on the same number of same-size batches, same process.
* ``cog``: a 4096^2 uint8 class map written (a) by gfm's staged writer (ZSTD-1 staging + GDAL
  COG driver + validation) and (b) as a DEFLATE GTiff then ``rio_cogeo.cog_translate``; time
  and peak disk (largest sum of file sizes present at once, sampled every 20 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

BANDS = ("B02", "B03", "B04", "B08")


def make_checkpoint(path: Path, head: dict | None = None, **encoder) -> Path:
    from gfmcli.contract import BandInfo, ClassInfo, ModelContract
    from gfmcli.model.checkpoint import save_checkpoint
    from gfmcli.model.tasks import build_model, model_config_for
    from gfmcli.sensors import get_sensor

    torch.manual_seed(0)
    config = model_config_for(
        "less_vit_tiny", "segmentation", num_outputs=5, encoder_overrides=encoder
    )
    s2 = get_sensor("sentinel2-l2a")
    bands = tuple(
        BandInfo(b.name, b.wavelength_nm, "optical", 0.1, 0.05, s2.scale, s2.offset)
        for b in s2.select(BANDS)
    )
    classes = tuple(ClassInfo(i, f"class {i}", (40 * i, 255 - 40 * i, 100)) for i in range(5))
    contract = ModelContract(
        "less_vit_tiny", config, "segmentation", "sentinel2-l2a", bands, 10.0, 16, classes
    )
    save_checkpoint(path, build_model(config), contract)
    return path


def make_raster(path: Path, size: int) -> Path:
    """A smooth 4-band uint16 field, written in 512-row strips (never whole in memory)."""
    profile = dict(
        driver="GTiff",
        count=4,
        height=size,
        width=size,
        dtype="uint16",
        crs="EPSG:32633",
        transform=Affine(10, 0, 500000, 0, -10, 5000000),
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        predictor=2,
        bigtiff="if_safer",
    )
    cols = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(BANDS):
            dst.set_band_description(i + 1, name)
        for row in range(0, size, 512):
            rows = np.arange(row, min(row + 512, size), dtype=np.float32)[:, None]
            block = np.stack(
                [
                    1500 + 800 * np.sin(rows / (97 + 13 * b)) * np.cos(cols / (61 + 7 * b))
                    for b in range(4)
                ]
            ).astype("uint16")
            dst.write(block, window=Window(0, row, size, block.shape[1]))
    return path


def run_predict_rss(checkpoint: Path, raster: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one ``gfm predict`` child process."""
    cmd = [
        sys.executable,
        "-m",
        "gfmcli.cli",
        "-q",
        "predict",
        "-m",
        str(checkpoint),
        str(raster),
        "-o",
        str(out),
        "--overwrite",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds


def part_rss(work: Path, sizes: list[int]) -> None:
    light_head = {"width": 16, "min_width": 8, "pixel_dim": 4}
    checkpoint = make_checkpoint(
        work / "rss.pt", head=light_head, embed_dim=48, depth=1, num_heads=3
    )
    print("## Peak RSS of gfm predict vs raster size (encoder D 48, depth 1, light head)")
    print("| raster | pixels | input on disk | peak RSS | time | Mpx/s |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        raster = make_raster(work / f"in{size}.tif", size)
        rss, seconds = run_predict_rss(checkpoint, raster, work / f"out{size}.tif")
        mb = raster.stat().st_size / 2**20
        print(
            f"| {size} x {size} | {size * size / 1e6:.1f} M | {mb:.0f} MiB | {rss:.0f} MiB "
            f"| {seconds:.1f} s | {size * size / seconds / 1e6:.2f} |",
            flush=True,
        )
        raster.unlink()


def part_throughput(work: Path, size: int = 2048) -> None:
    from gfmcli.engine.inference import BandInputs, DevicePool
    from gfmcli.engine.runner import MapOptions, map_file
    from gfmcli.engine.tiling import plan_windows
    from gfmcli.model.checkpoint import load_checkpoint

    checkpoint = make_checkpoint(work / "tiny.pt")
    raster = make_raster(work / "through.tif", size)
    model, contract = load_checkpoint(checkpoint)
    options = MapOptions(window=512, overlap=64, batch_size=2)
    plan = plan_windows(size, size, 512, 64, multiple_of=16)
    with DevicePool(model, [torch.device("cpu")], "fp32") as pool:
        # Warm-up on a small raster: Numba kernels load from cache, the PFM and CPCE caches
        # fill, GDAL opens its drivers; the timed run then measures steady-state throughput.
        warm = make_raster(work / "warm.tif", 512)
        map_file(str(warm), work / "warm-map.tif", "tif", pool, contract, options)
        started = time.perf_counter()
        map_file(str(raster), work / "through-map.tif", "tif", pool, contract, options)
        pipeline = time.perf_counter() - started
        bands = BandInputs.from_bands(
            [b.wavelength_nm for b in contract.bands], ["optical"] * 4, 10.0
        )
        rng = np.random.default_rng(0)
        batches = [
            rng.standard_normal((2, 4, 512, 512)).astype(np.float32) for _ in range(len(plan) // 2)
        ]
        started = time.perf_counter()
        for _ in pool.map_ordered(batches, lambda b: b, bands, "probabilities"):
            pass
        model_only = (time.perf_counter() - started) * len(plan) / (2 * len(batches))
    print(
        f"## Pipeline vs model-only ({size}^2 px, {len(plan)} windows of 512, overlap 64, "
        "less_vit_tiny)"
    )
    print("| what | seconds | windows/s |")
    print("|---|---|---|")
    print(
        f"| full pipeline (read, model, blend, write, COG) | {pipeline:.1f} | "
        f"{len(plan) / pipeline:.2f} |"
    )
    print(f"| model only, same windows | {model_only:.1f} | {len(plan) / model_only:.2f} |")
    print(f"Pipeline keeps the model busy {100 * model_only / pipeline:.0f}% of the time.")


class DiskPeak:
    """Largest total size of the files in a folder, sampled on a thread."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.peak, self._stop = folder, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def part_cog(work: Path, size: int = 4096) -> None:
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    from gfmcli.contract import ClassInfo
    from gfmcli.io.writer import RasterGrid, class_map_writer

    classes = tuple(ClassInfo(i, f"c{i}", (30 * i, 100, 200)) for i in range(8))
    grid = RasterGrid(
        size, size, rasterio.crs.CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5000000)
    )
    yy, xx = np.mgrid[0:512, 0:size]
    noise = np.random.default_rng(0).random((512, size)) < 0.02  # 2% isolated pixels
    rows = []
    for variant in ("staged", "gtiff+cogeo"):
        folder = work / variant
        folder.mkdir()
        started = time.perf_counter()
        with DiskPeak(folder) as disk:
            if variant == "staged":
                writer = class_map_writer(folder / "map.tif", grid, classes)
                for row in range(0, size, 512):
                    block = (((yy + row) // 37 + xx // 53 + noise) % 8).astype(np.uint8)
                    writer.write((row, 0, 512, size), block)
                writer.finalize()
            else:
                profile = dict(
                    driver="GTiff",
                    count=1,
                    height=size,
                    width=size,
                    dtype="uint8",
                    crs=grid.crs,
                    transform=grid.transform,
                    nodata=255,
                    tiled=True,
                    blockxsize=512,
                    blockysize=512,
                    compress="deflate",
                )
                with rasterio.open(folder / "plain.tif", "w", **profile) as dst:
                    for row in range(0, size, 512):
                        block = (((yy + row) // 37 + xx // 53 + noise) % 8).astype(np.uint8)
                        dst.write(block, 1, window=Window(0, row, size, 512))
                cog_translate(
                    folder / "plain.tif",
                    folder / "map.tif",
                    cog_profiles.get("deflate"),
                    overview_resampling="mode",
                    quiet=True,
                    in_memory=False,
                )
                (folder / "plain.tif").unlink()
        seconds = time.perf_counter() - started
        final = (folder / "map.tif").stat().st_size
        rows.append((variant, seconds, disk.peak, final))
    print(f"## COG output ({size}^2 uint8 class map, 8 classes)")
    print("| writer | seconds | peak disk | final size |")
    print("|---|---|---|---|")
    for variant, seconds, peak, final in rows:
        print(f"| {variant} | {seconds:.2f} | {peak / 2**20:.1f} MiB | {final / 2**20:.1f} MiB |")
    print(f"time ratio gtiff+cogeo / staged: {rows[1][1] / rows[0][1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["rss", "throughput", "cog"],
        choices=["rss", "throughput", "cog"],
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 4096, 16384])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gfm-bench-"))
    try:
        if "rss" in args.parts:
            part_rss(work, args.sizes)
        if "throughput" in args.parts:
            part_throughput(work)
        if "cog" in args.parts:
            part_cog(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
