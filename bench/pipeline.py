"""Benchmark the predict pipeline (not a test): the CLI as users run it, memory vs raster size,
and COG written through gfm's staged writer vs GTiff + rio-cogeo.

Usage::

    python bench/pipeline.py --parts cli --baseline 1e0b3d6 --with-fp32   # issue #10's table
    python bench/pipeline.py --parts rss --sizes 1024 4096                # RSS part, fewer sizes
    python bench/pipeline.py                                              # every part

Parts:

* ``cli``: wall time and peak RSS of whole ``gfm predict`` processes, start to exit (imports,
  checkpoint, per-file setup and probes included), with the default options, on the 2048^2
  12-band Sentinel-2 L2A scene of ``gfm simulate --size-m 20480 --seed 3`` (or ``--scene``)
  and one checkpoint (default: the shipped weights). ``--baseline REV`` adds the same command
  run from a temporary ``git worktree`` of REV (its own gfmcli, same checkpoint and scene);
  variants alternate run by run (ABC CBA ABC) so a busy machine slows them alike, and the
  median of ``--repeats`` is reported with the class-map agreement between trees. Then, in this
  process on the same windows: model-only time (windows read beforehand, the same batches
  through the same device pool and precision) and the decode-only floor (read and normalise
  every window, no model, as the reader thread does). The model-only / whole-process ratio is
  how busy the pipeline keeps the model. A full Sentinel-2 tile (10980^2) is projected by
  pixel count.
* ``rss``: peak resident memory of a real ``gfm predict`` subprocess (``os.wait4`` rusage) on
  generated 4-band uint16 rasters of N x N pixels. The rasters are smooth fields (compressible,
  so a 16k x 16k input is small on disk) written block by block. The encoder is reduced
  (D 48, depth 1) and so is the head (width 16), so that 16k^2 finishes in minutes on 2
  cores: memory flatness is a property of the pipeline, not of the model width.
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
REPO = Path(__file__).resolve().parents[1]
FLOOR_REPEATS = 3


def make_checkpoint(path: Path, head: dict | None = None, **encoder) -> Path:
    """A random-weight (seed 0) 5-class Sentinel-2 segmentation checkpoint; ``head`` holds the
    head's size options (width, min_width, pixel_dim) and ``encoder`` the encoder overrides."""
    from gfmcli.contract import BandInfo, ClassInfo, ModelContract
    from gfmcli.model.checkpoint import save_checkpoint
    from gfmcli.model.tasks import build_model, model_config_for
    from gfmcli.sensors import get_sensor

    torch.manual_seed(0)
    config = model_config_for(
        "less_vit_tiny", "segmentation", num_outputs=5, encoder_overrides=encoder, **(head or {})
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
    """A smooth 4-band uint16 field, written in 512-row strips (never whole in memory); DN 1700
    to 3300, i.e. reflectance 0.07 to 0.23 under the Sentinel-2 L2A offset of -1000 DN."""
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
                    2500 + 800 * np.sin(rows / (97 + 13 * b)) * np.cos(cols / (61 + 7 * b))
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


def simulate_scene(work: Path, seed: int = 3, size_m: float = 20480.0) -> Path:
    """The 2048^2 12-band Sentinel-2 L2A scene of issue #10: ``gfm simulate --size-m 20480``."""
    out = work / "scene"
    cmd = [sys.executable, "-m", "gfmcli.cli", "-q", "simulate", "-o", str(out)]
    cmd += ["--size-m", str(size_m), "--seed", str(seed)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out / "sentinel2-l2a.tif"


def baseline_tree(work: Path, rev: str) -> Path:
    """A detached ``git worktree`` of ``rev`` (removed again by :func:`drop_tree`)."""
    tree = work / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return tree


def drop_tree(tree: Path) -> None:
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_cli(
    tree: Path, checkpoint: Path, raster: Path, out: Path, *extra: str
) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one whole ``gfm predict`` process, start to exit, run from
    ``tree`` (the working directory comes first on ``sys.path``, so ``tree``'s gfmcli is the one
    imported, not the installed one)."""
    cmd = [sys.executable, "-m", "gfmcli.cli", "-q", "predict", "-m", str(checkpoint)]
    cmd += [str(raster), "-o", str(out), "--overwrite", *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict from {tree} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _read_plan(raster: Path, contract, options) -> tuple[list, object, float]:
    """Every window of the run's plan read and normalised as the reader thread does it, the
    batches of ``options.batch_size`` they make, and the seconds that took (decode floor)."""
    from gfmcli.engine.runner import _plans
    from gfmcli.io.bands import resolve_bands
    from gfmcli.io.reader import open_raster, read_window

    started = time.perf_counter()
    windows = []
    with open_raster(raster) as src:
        mapping = resolve_bands(src, contract)
        options = options.at_gsd(mapping.gsd_m)  # the window of this raster's GSD, as a run
        for stripe, plan in _plans(src, contract, options, "predict"):
            for tile in plan.tiles:
                row, col, height, width = tile.row_off, tile.col_off, tile.height, tile.width
                data, _ = read_window(src, (row, col + stripe.col_off, height, width), mapping)
                windows.append(data)
    seconds = time.perf_counter() - started
    size = options.batch_size
    batches = [np.stack(windows[i : i + size]) for i in range(0, len(windows), size)]
    return batches, mapping, seconds


def model_and_decode(checkpoint: Path, raster: Path, precision: str) -> dict[str, float]:
    """Model-only seconds over the plan's windows (read beforehand; same batches, same device
    pool and precision as the CLI) and the decode-only floor, in this process: each the median
    of FLOOR_REPEATS passes (one pass varied by 20-40 % on the shared machine)."""
    from gfmcli.cli.main import keep_freed_memory
    from gfmcli.engine.inference import DevicePool
    from gfmcli.engine.options import MapOptions, for_model
    from gfmcli.model.bands import Bands
    from gfmcli.model.checkpoint import load_checkpoint

    keep_freed_memory()  # the malloc settings of a gfm process, so that the floors compare
    model, contract = load_checkpoint(checkpoint)
    options = for_model(MapOptions(), contract)  # the window gfm predict would use
    decodes = []
    for _ in range(FLOOR_REPEATS):
        batches, mapping, seconds = _read_plan(raster, contract, options)
        decodes.append(seconds)
    bands = Bands.of(mapping.wavelengths, mapping.modalities, mapping.gsd_m)
    passes = []
    with DevicePool(model, [torch.device("cpu")], precision) as pool:
        # Warm-up, one batch per replica (a CPU pool has two): oneDNN primitives, PFM and CPCE
        # caches.
        for _ in pool.map_ordered(batches[:2], lambda b: b, bands, "probabilities"):
            pass
        for _ in range(FLOOR_REPEATS):
            started = time.perf_counter()
            for _ in pool.map_ordered(batches, lambda b: b, bands, "probabilities"):
                pass
            passes.append(time.perf_counter() - started)
        resolved = pool.precisions[0]
    windows = sum(len(b) for b in batches)
    return {
        "model": float(np.median(passes)),
        "decode": float(np.median(decodes)),
        "windows": windows,
        "precision": resolved,
    }


def agreement(a: Path, b: Path) -> float:
    with rasterio.open(a) as da, rasterio.open(b) as db:
        x, y = da.read(1), db.read(1)
    valid = (x != 255) | (y != 255)
    return float((x == y)[valid].mean())


def part_cli(work: Path, args: argparse.Namespace) -> None:
    raster = Path(args.scene) if args.scene else simulate_scene(work)
    checkpoint = Path(args.checkpoint)
    with rasterio.open(raster) as src:
        shape, count = src.shape, src.count
    trees: dict[str, Path] = {"current": REPO}
    variants = [("current", "current", ())]
    if args.baseline:
        trees["baseline"] = baseline_tree(work, args.baseline)
        variants.insert(0, ("baseline", "baseline", ()))
    if args.with_fp32:
        variants.append(("current fp32", "current", ("--precision", "fp32")))
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    rss: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    outs = {name: work / f"{name.replace(' ', '-')}.tif" for name, _, _ in variants}
    try:
        for i in range(args.repeats):
            order = variants if i % 2 == 0 else variants[::-1]  # alternate: ABC CBA ABC
            for name, tree, extra in order:
                seconds, used, peak = run_cli(trees[tree], checkpoint, raster, outs[name], *extra)
                times[name].append(seconds)
                cpu[name].append(used)
                rss[name].append(peak)
                print(
                    f"  run {i + 1} {name}: {seconds:.1f} s wall, {used:.1f} s CPU, "
                    f"{peak:.0f} MiB, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        if "baseline" in trees:
            drop_tree(trees["baseline"])
    floor = model_and_decode(checkpoint, raster, "auto")
    print(
        f"## gfm predict as users run it ({shape[0]}x{shape[1]} px, {count} bands, "
        f"{floor['windows']} windows of 512, {checkpoint.name}; median of {args.repeats})"
    )
    print("| what | wall s per run | median wall s | Mpx/s | median CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    pixels = shape[0] * shape[1]
    medians = {}
    for name, _, _ in variants:
        med = float(np.median(times[name]))
        medians[name] = med
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(
            f"| whole `gfm predict` process, {name} | {runs} | {med:.1f} | "
            f"{pixels / med / 1e6:.2f} | {np.median(cpu[name]):.1f} | {max(rss[name]):.0f} |"
        )
    model_s, decode_s = floor["model"], floor["decode"]
    print(
        f"| model only ({floor['precision']}), same windows, in process, median of "
        f"{FLOOR_REPEATS} | | {model_s:.1f} | "
        f"{pixels / model_s / 1e6:.2f} | | |"
    )
    print(
        f"| decode only (read + normalise), same windows, median of {FLOOR_REPEATS} | | "
        f"{decode_s:.1f} | "
        f"{pixels / decode_s / 1e6:.2f} | | |"
    )
    current = medians["current"]
    print(f"pipeline keeps the model busy {100 * model_s / current:.0f}% of the process's time")
    if "baseline" in medians:
        print(
            f"speed-up vs {args.baseline}: {medians['baseline'] / current:.2f}x wall, "
            f"{np.median(cpu['baseline']) / np.median(cpu['current']):.2f}x CPU; class maps agree "
            f"on {100 * agreement(outs['baseline'], outs['current']):.2f}% of pixels"
        )
    if "current fp32" in medians:
        print(
            f"current fp32 vs auto ({floor['precision']}): class maps agree on "
            f"{100 * agreement(outs['current fp32'], outs['current']):.2f}% of pixels"
        )
    tile = 10980 * 10980 / pixels
    print(
        f"projected full Sentinel-2 tile (10980^2, {count} bands): {tile:.1f} x {current:.1f} s "
        f"= {tile * current / 60:.1f} min (process start-up counted {tile:.0f} times: an upper "
        "bound)"
    )


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
    from gfmcli.io.products import class_map_writer
    from gfmcli.io.writer import RasterGrid

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
        "--parts", nargs="+", default=["cli", "rss", "cog"], choices=["cli", "rss", "cog"]
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 4096, 16384])
    parser.add_argument(
        "--scene", help="cli part: input raster (default: gfm simulate --size-m 20480 --seed 3)"
    )
    parser.add_argument(
        "--checkpoint",
        default=str(REPO / "weights" / "landcover-tiny.pt"),
        help="cli part: checkpoint, the same for every tree (default: the default weights)",
    )
    parser.add_argument(
        "--baseline", help="cli part: git revision to compare with (a temporary worktree)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="cli part: runs per variant")
    parser.add_argument(
        "--with-fp32", action="store_true", help="cli part: also time --precision fp32"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gfm-bench-"))
    try:
        if "rss" in args.parts:
            part_rss(work, args.sizes)
        if "cli" in args.parts:
            part_cli(work, args)
        if "cog" in args.parts:
            part_cog(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
