"""GPU checks for gfm inference (not a test): agreement across devices and precisions,
throughput, and a full Sentinel-2 tile end to end. ``bench/gpu.sh`` runs it on one GPU.

Usage::

    bash bench/gpu.sh                        # on a machine with a GPU: every part, < 8 minutes
    python bench/gpu.py --cpu-only --quick   # what the tests run: CPU rows only, tiny inputs

Parts (each prints markdown rows ``| part | case | value |``; CUDA rows say ``skipped: ...``
when no CUDA device is visible, or with ``--cpu-only``):

* ``agree``: the shipped example scene (``examples/data/s2-l2a-example.tif``) mapped with the
  default weights on the CPU at fp32 (the reference), on the CPU at bf16, and on ``cuda:0`` at
  fp32, bf16 and fp16: share of valid pixels whose class equals the reference's (and, on the
  GPU, the GPU fp32 map's).
* ``speed``: windows/s and Mpx/s of the model alone (random normalised input, batches through
  ``DevicePool`` at ``--precision auto``, after one warm-up batch) for the default weights at
  their own band count and for ``less_vit_base`` (random weights, segmentation head) at C=13
  (Sentinel-2 L1C wavelengths), windows of 512 and 1024 px.
* ``tile``: a 10980 x 10980 12-band uint16 Sentinel-2 L2A-like raster (a smooth field, DEFLATE
  tiles of 512, written once) mapped by a whole ``gfm predict`` process with the default
  weights: wall time start to exit, and how busy the GPU was (``nvidia-smi`` utilisation
  sampled every 0.5 s, mean over the run) when ``nvidia-smi`` is on PATH.

Nothing is downloaded or installed; everything runs from this checkout.
"""

from __future__ import annotations

import argparse
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

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights" / "landcover-tiny.pt"
SCENE = REPO / "examples" / "data" / "s2-l2a-example.tif"


def row(part: str, case: str, value: str) -> None:
    print(f"| {part} | {case} | {value} |", flush=True)


def cuda_reason(cpu_only: bool) -> str | None:
    """Why the CUDA rows are skipped, or None when ``cuda:0`` can be used."""
    if cpu_only:
        return "skipped: --cpu-only"
    if not torch.cuda.is_available():
        return "skipped: no CUDA device visible to torch"
    return None


def _map(model, contract, device: str, precision: str, out: Path, window: int) -> np.ndarray:
    from gfmcli import MapOptions, map_rasters

    options = MapOptions(window=window, overlap=window // 8, batch_size=2, precision=precision)
    summary = map_rasters(
        [SCENE], out, options, model=(model, contract), device=device, overwrite=True
    )
    assert summary.written == 1, summary
    with rasterio.open(out) as dst:
        return dst.read(1)


def _agreement(a: np.ndarray, b: np.ndarray) -> str:
    valid = (a != 255) | (b != 255)
    return f"{100 * float((a == b)[valid].mean()):.3f} % of {int(valid.sum())} px"


def part_agree(work: Path, args: argparse.Namespace) -> None:
    from gfmcli.model.checkpoint import load_checkpoint

    model, contract = load_checkpoint(args.checkpoint)
    window = 128 if args.quick else 512
    ref = _map(model, contract, "cpu", "fp32", work / "cpu-fp32.tif", window)
    bf16 = _map(model, contract, "cpu", "bf16", work / "cpu-bf16.tif", window)
    row("agree", "CPU bf16 vs CPU fp32", _agreement(ref, bf16))
    reason = cuda_reason(args.cpu_only)
    gpu32 = None
    for precision in ("fp32", "bf16", "fp16"):
        case = f"cuda:0 {precision} vs CPU fp32"
        if reason:
            row("agree", case, reason)
            continue
        out = _map(model, contract, "cuda:0", precision, work / f"gpu-{precision}.tif", window)
        text = _agreement(ref, out)
        if gpu32 is None:
            gpu32 = out
        else:
            text += f"; vs cuda:0 fp32 {_agreement(gpu32, out)}"
        row("agree", case, text)


def _throughput(
    model, bands: int, wavelengths, device: str, window: int, batch: int, batches: int
) -> str:
    from gfmcli.engine.inference import DevicePool
    from gfmcli.model.bands import Bands

    inputs = Bands.of(wavelengths, ["optical"] * bands, 10.0)
    data = np.random.default_rng(0).standard_normal((batch, bands, window, window))
    data = data.astype(np.float32)
    with DevicePool(model, [torch.device(device)], "auto") as pool:
        for _ in pool.map_ordered([data], lambda b: b, inputs, "probabilities"):
            pass  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in pool.map_ordered([data] * batches, lambda b: b, inputs, "probabilities"):
            pass
        seconds = time.perf_counter() - started
        precision = pool.precisions[0]
    windows = batch * batches
    mpx = windows * window * window / seconds / 1e6
    return f"{windows / seconds:.2f} windows/s, {mpx:.3g} Mpx/s ({precision}, batch {batch})"


def part_speed(work: Path, args: argparse.Namespace) -> None:
    from gfmcli.model.checkpoint import load_checkpoint
    from gfmcli.model.tasks import build_model, model_config_for
    from gfmcli.sensors import get_sensor

    default, contract = load_checkpoint(args.checkpoint)
    config = model_config_for(args.base_model, "segmentation", num_outputs=contract.num_classes)
    torch.manual_seed(0)
    base = build_model(config)
    models = [
        (args.checkpoint.name, default, [b.wavelength_nm for b in contract.bands]),
        (f"{args.base_model} C=13", base, list(get_sensor("sentinel2-l1c").wavelengths)),
    ]
    windows = (32,) if args.quick else (512, 1024)
    reason = cuda_reason(args.cpu_only)
    for name, model, wavelengths in models:
        for window in windows:
            case = f"{name}, window {window}"
            if args.quick:
                text = _throughput(model, len(wavelengths), wavelengths, "cpu", window, 1, 1)
                row("speed", f"{case}, CPU", text)
            if reason:
                row("speed", f"{case}, cuda:0", reason)
                continue
            batch = max(1, 8 * 512**2 // window**2)
            text = _throughput(model, len(wavelengths), wavelengths, "cuda:0", window, batch, 8)
            row("speed", f"{case}, cuda:0", text)


def make_tile(path: Path, size: int) -> Path:
    """A smooth 12-band uint16 S2 L2A-like field, DEFLATE tiles, written 512 rows at a time."""
    from gfmcli.sensors import get_sensor

    names = [b.name for b in get_sensor("sentinel2-l2a").bands]
    # fmt: skip below: arguments grouped by meaning (ruff format would add 11 lines)
    profile = dict(
        driver="GTiff", count=len(names), height=size, width=size, dtype="uint16",
        crs="EPSG:32633", transform=Affine(10, 0, 600000, 0, -10, 5300000), nodata=0,
        tiled=True, blockxsize=512, blockysize=512, compress="deflate", zlevel=1,
        bigtiff="if_safer", num_threads="all_cpus",
    )  # fmt: skip
    cols = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for i, name in enumerate(names):
            dst.set_band_description(i + 1, name)
        for top in range(0, size, 512):
            rows = np.arange(top, min(top + 512, size), dtype=np.float32)[:, None]
            block = np.stack(
                [
                    2000 + 900 * np.sin(rows / (83 + 11 * b)) * np.cos(cols / (59 + 5 * b))
                    for b in range(len(names))
                ]
            ).astype("uint16")
            dst.write(block, window=Window(0, top, size, block.shape[1]))
    return path


class GpuBusy:
    """Mean ``nvidia-smi`` utilisation of GPU 0 while the block runs (None without nvidia-smi)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(0.5):
            out = subprocess.run(query, capture_output=True, text=True, check=False).stdout
            if out.strip():
                self.samples.append(float(out.splitlines()[0]))

    def __enter__(self) -> GpuBusy:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def part_tile(work: Path, args: argparse.Namespace) -> None:
    size = 256 if args.quick else 10980
    reason = cuda_reason(args.cpu_only)
    case = f"{size}x{size} x 12 bands, whole gfm predict"
    if reason and not args.quick:
        row("tile", f"{case}, cuda:0", reason)
        return
    started = time.perf_counter()
    raster = make_tile(work / "tile.tif", size)
    written = time.perf_counter() - started
    device = "cpu" if reason else "cuda:0"
    cmd = [
        sys.executable,
        "-m",
        "gfmcli.cli",
        "-q",
        "predict",
        "-m",
        str(args.checkpoint),
    ]
    cmd += [str(raster), "-o", str(work / "tile-map.tif"), "--device", device]
    with GpuBusy() as busy:
        started = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
    gpu = "" if busy.mean is None else f", GPU busy {busy.mean:.0f} % (nvidia-smi mean)"
    text = f"{seconds:.1f} s wall{gpu} (input written in {written:.0f} s, not counted)"
    row("tile", f"{case}, {device}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", nargs="+", default=["agree", "speed", "tile"], choices=["agree", "speed", "tile"]
    )
    parser.add_argument("--checkpoint", type=Path, default=WEIGHTS)
    parser.add_argument("--base-model", default="less_vit_base")
    parser.add_argument("--cpu-only", action="store_true", help="skip every CUDA row")
    parser.add_argument(
        "--quick", action="store_true", help="tiny inputs and CPU rows (what the tests run)"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CUDA devices: {torch.cuda.device_count()}", flush=True)
    if torch.cuda.is_available():
        print(f"GPU 0: {torch.cuda.get_device_name(0)}", flush=True)
    print("| part | case | value |")
    print("|---|---|---|")
    work = Path(tempfile.mkdtemp(prefix="gfm-gpu-"))
    try:
        parts = {"agree": part_agree, "speed": part_speed, "tile": part_tile}
        for name in args.parts:
            parts[name](work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
