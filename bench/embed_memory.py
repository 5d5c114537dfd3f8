"""Benchmark: peak RSS of ``gfm embed`` writing GeoParquet vectors vs the per-patch COG.

Writes a ``--size`` x ``--size`` 12-band uint16 Sentinel-2-like scene (seeded random DNs, band
descriptions B01..B12), then runs ``gfm embed SCENE -o OUT`` as a real subprocess with the
default weights, once per output (``.emb.tif``, ``.parquet``), with the same window and
overlap, and reports each process's peak resident memory (``os.wait4`` rusage, the kernel's
high-water mark) and wall time. The GeoParquet path buffers at most one row group of vectors
and never holds the blend mosaic, so it should need no more memory than the COG path.

Usage: ``python bench/embed_memory.py [--size 2048] [--work DIR]``
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def make_scene(path: Path, size: int) -> Path:
    """A tiled 12-band uint16 scene in UTM 33N, written block by block."""
    # fmt: skip below: a table, kept in rows (ruff format would add 9 lines)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": len(BANDS), "dtype": "uint16",
        "crs": "EPSG:32633", "transform": Affine(10, 0, 400000, 0, -10, 5500000), "nodata": 0,
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
    }  # fmt: skip
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(BANDS):
            dst.set_band_description(i + 1, name)
        for row in range(0, size, 512):
            rows = min(512, size - row)
            block = rng.integers(500, 4000, (len(BANDS), rows, size), dtype=np.uint16)
            dst.write(block, window=rasterio.windows.Window(0, row, size, rows))
    return path


def run_embed(scene: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one ``gfm embed`` process."""
    cmd = [sys.executable, "-m", "gfmcli.cli", "-q", "embed", str(scene), "-o", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="gfm-bench-embed-"))
    work.mkdir(parents=True, exist_ok=True)
    scene = make_scene(work / "scene.tif", args.size)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    print(f"{machine}; {args.size}^2 x {len(BANDS)} bands uint16, default weights, window 512")
    print("| output | peak RSS | time | file size |")
    print("|---|---|---|---|")
    for name in ("scene.emb.tif", "scene.parquet"):
        out = work / name
        out.unlink(missing_ok=True)
        rss, seconds = run_embed(scene, out)
        size = out.stat().st_size / 2**20
        print(f"| `{name}` | {rss:.0f} MiB | {seconds:.0f} s | {size:.1f} MiB |")


if __name__ == "__main__":
    main()
