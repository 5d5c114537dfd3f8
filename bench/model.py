"""Benchmark: LESS attention vs full spatial-spectral attention, same config (not a test).

    python bench/model.py [--models less_vit_tiny,less_vit_small] [--budget 60] [--reps 5]
                          [--threads 1]

For every model, band count C in {4, 13, 64, 202} and window 128x128 / 256x256 it runs the LESS
encoder and its full-attention twin (``attention="full"``) with batch 1 under
``torch.inference_mode`` and prints the median forward time, the peak memory of one forward and
the full/LESS ratios.

Method:
- Each case runs in its own child process, so one case's allocations never pollute another's.
- Memory on CPU: the child resets the kernel's peak-RSS counter (write "5" to
  /proc/self/clear_refs), reads VmRSS, runs the *first* forward, then reads VmHWM; the reported
  peak is VmHWM - VmRSS, i.e. the most resident memory the forward needed above the model and
  input (a slight over-estimate: it includes one-time lazy allocations). The first forward is
  used because glibc may keep freed memory mapped, which would hide later peaks. On CUDA:
  ``torch.cuda.max_memory_allocated`` minus the allocation before the forward.
- Time: median of ``--reps`` further forwards (1 when a forward is estimated above 10 s).
- Threads: ``--threads`` (default 1) torch threads per child. On a shared machine two OpenMP
  threads competing with other jobs for two cores stall at every barrier and make timings
  erratic (seconds for a 50 ms forward); one thread gives stable single-core numbers and
  comparable ratios.
- Before running, a case is estimated from its matmul FLOPs and the measured matmul rate of
  this machine, and from the size of the attention-score matrix (h x T^2 floats, T tokens) a
  non-fused attention would need; cases above ``--budget`` seconds or ``--max-gb`` are skipped
  and printed with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

BANDS = (4, 13, 64, 202)
SIZES = (128, 256)


def _matmul_gflops() -> float:
    """Sustained fp32 matmul rate of this machine (GFLOP/s), to turn FLOPs into seconds."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    return 10 * 2 * 1024**3 / (time.perf_counter() - start) / 1e9


def estimate(name: str, attention: str, bands: int, size: int) -> tuple[float, float]:
    """(forward GFLOP, GB of one layer's attention scores if not fused) for one case."""
    from gfmcli.model.registry import get_config

    cfg = get_config(name)
    d, heads, r = cfg.embed_dim, cfg.num_heads, cfg.rank
    rows, cols = bands + 1, (size // cfg.patch_size) ** 2 + 1
    tokens = rows * cols
    mlp = 2 * cfg.mlp_ratio * d * d
    if attention == "full":
        macs = tokens * (4 * d * d + mlp) + 2 * tokens * tokens * d
        scores = heads * tokens * tokens
    else:
        dc, ds = cfg.channel_dim, cfg.spatial_dim
        pool = tokens * (d * (dc + ds) + 2 * (dc * dc + ds * ds))
        branches = r * 2 * (cols * cols * ds + rows * rows * dc) + cols * ds * (2 * r + 1) * ds
        macs = pool + branches + tokens * (r * dc * d + mlp)
        scores = r * heads * (cols * cols + rows * rows)
    return 2 * macs * cfg.depth / 1e9, scores * 4 / 1e9


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_case(name: str, attention: str, bands: int, size: int, reps: int, threads: int) -> dict:
    """Child-process body: build, measure the first forward's peak memory, then time ``reps``."""
    from gfmcli.model.registry import create_model

    torch.set_num_threads(threads)  # this child process only

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = create_model(name, attention=attention).eval().to(device)
    x = torch.randn(1, bands, size, size, device=device)
    wl = torch.linspace(400.0, 2500.0, bands).tolist()
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            model(x, wavelengths=wl, gsd=10.0)
            torch.cuda.synchronize()
            peak_mb = (torch.cuda.max_memory_allocated() - before) / 2**20
        else:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            before = _rss_kb("VmRSS")
            model(x, wavelengths=wl, gsd=10.0)
            peak_mb = (_rss_kb("VmHWM") - before) / 1024
        times = []
        for _ in range(reps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x, wavelengths=wl, gsd=10.0)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_mb": peak_mb, "device": device.type}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="less_vit_tiny")
    parser.add_argument("--budget", type=float, default=60.0, help="max estimated s per forward")
    parser.add_argument("--max-gb", type=float, default=8.0, help="max attention-score memory")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case")
    parser.add_argument("--case", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        name, attention, bands, size, reps, threads = args.case
        result = run_case(name, attention, int(bands), int(size), int(reps), int(threads))
        print(json.dumps(result))
        return

    torch.set_num_threads(args.threads)
    rate = _matmul_gflops()
    print(f"torch {torch.__version__}, {args.threads} threads, matmul {rate:.0f} GFLOP/s")
    print(f"load average at start: {os.getloadavg()}")
    print(
        "| model | C | window | LESS s | LESS peak MB | full s | full peak MB | time full/LESS "
        "| mem full/LESS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        for size in SIZES:
            for bands in BANDS:
                row = {}
                for attention in ("less", "full"):
                    gflop, score_gb = estimate(name, attention, bands, size)
                    est_s = gflop / rate
                    if est_s > args.budget or score_gb > args.max_gb:
                        row[attention] = f"skipped (est. {est_s:.0f} s, scores {score_gb:.1f} GB)"
                        continue
                    reps = args.reps if est_s < 10 else 1
                    cmd = [sys.executable, __file__, "--case", name, attention, str(bands)]
                    child = subprocess.run(
                        [*cmd, str(size), str(reps), str(args.threads)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    row[attention] = json.loads(child.stdout.strip().splitlines()[-1])
                print(_format_row(name, bands, size, row), flush=True)


def _format_row(name: str, bands: int, size: int, row: dict) -> str:
    """One markdown table row; a skipped case shows its reason in place of the numbers."""
    cells = []
    for attention in ("less", "full"):
        res = row[attention]
        if isinstance(res, str):
            cells += [res, "-"]
        else:
            cells += [f"{res['seconds']:.3f}", f"{res['peak_mb']:.0f}"]
    less, full = row["less"], row["full"]
    if isinstance(less, dict) and isinstance(full, dict):
        time_x = full["seconds"] / less["seconds"]
        mem_x = full["peak_mb"] / max(less["peak_mb"], 1.0)
        cells += [f"{time_x:.1f}", f"{mem_x:.1f}"]
    else:
        cells += ["-", "-"]
    return f"| {name} | {bands} | {size}x{size} | " + " | ".join(cells) + " |"


if __name__ == "__main__":
    main()
