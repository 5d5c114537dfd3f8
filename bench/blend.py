"""Benchmark: Numba blend kernels vs their NumPy references, against the machine's copy bandwidth.

Simulates what StripMosaic does for a strip of windows: accumulate every window of a window row
into a ``K x window x width`` buffer, then normalise the ``stride`` finished rows. Both
implementations run single-threaded on identical data after a warm-up (Numba compile time
excluded). "Effective MB/s" counts the bytes each step must read and write at least once, so it
can be compared with a plain NumPy copy measured in the same run.

Usage: ``python bench/blend.py [--classes 8 --window 256 --overlap 32 --width 2048 --rows 30]``
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from gfmcli.engine import blend
from gfmcli.engine.tiling import plan_windows


def copy_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Best-of-N MB/s of ``np.copyto`` on a large array, counting read + write bytes."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best / 1e6


def run_strip(accumulate, normalize, preds, weight, valid, plan, k: int) -> tuple[float, float]:
    """Seconds spent in accumulate and in normalize over all window rows of ``plan``."""
    window, width, stride = plan.window, plan.width, plan.stride
    acc = np.zeros((k, window, width), np.float32)
    wsum = np.zeros((window, width), np.float32)
    out = np.empty((k, stride, width), np.float32)
    t_acc = t_norm = 0.0
    for _ in range(plan.n_rows):
        start = time.perf_counter()
        for c, col_off in enumerate(plan.col_offsets):
            accumulate(acc, wsum, preds[c], weight, valid, 0, col_off)
        mid = time.perf_counter()
        normalize(acc[:, :stride], wsum[:stride], out, np.float32(np.nan))
        t_acc += mid - start
        t_norm += time.perf_counter() - mid
        acc[:, :-stride] = acc[:, stride:]  # the mosaic's shift, outside the timed region
        acc[:, -stride:] = 0
        wsum[:-stride] = wsum[stride:]
        wsum[-stride:] = 0
    return t_acc, t_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--rows", type=int, default=30, help="window rows in the strip")
    args = parser.parse_args()

    k, window = args.classes, args.window
    stride = window - args.overlap
    height = window + stride * (args.rows - 1)
    plan = plan_windows(height, args.width, window, args.overlap)
    rng = np.random.default_rng(0)
    preds = [rng.random((k, window, window), dtype=np.float32) for _ in plan.col_offsets]
    weight = blend.window_weights(window, window, args.overlap)
    valid = rng.random((window, window)) > 0.05

    # Warm-up: compile (or load from cache) and touch memory for both implementations.
    small = plan_windows(window, args.width, window, args.overlap)
    for impl in (
        (blend.accumulate, blend.normalize),
        (blend.accumulate_numpy, blend.normalize_numpy),
    ):
        run_strip(*impl, preds, weight, valid, small, k)

    bandwidth = copy_bandwidth()
    n_windows = len(plan)
    # Minimum traffic: accumulate reads pred, weight, valid and reads+writes acc and wsum;
    # normalize reads acc and wsum and writes out.
    acc_bytes = n_windows * window * window * (4 * k * 3 + 4 + 1 + 8)
    norm_bytes = plan.n_rows * stride * args.width * (4 * k * 2 + 4)
    results = {}
    for name, impl in (
        ("numba", (blend.accumulate, blend.normalize)),
        ("numpy", (blend.accumulate_numpy, blend.normalize_numpy)),
    ):
        results[name] = run_strip(*impl, preds, weight, valid, plan, k)

    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
    print(
        f"K={k} window={window} overlap={args.overlap} width={args.width} "
        f"windows={n_windows} ({plan.n_rows} rows x {plan.n_cols})"
    )
    print(f"numpy copy bandwidth (read+write): {bandwidth:,.0f} MB/s")
    print(
        "| impl | accumulate ms/window | normalize ms/window | total ms/window | MB/s | % copy bw |"
    )
    print("|---|---|---|---|---|---|")
    for name, (t_acc, t_norm) in results.items():
        total = t_acc + t_norm
        mbs = (acc_bytes + norm_bytes) / total / 1e6
        print(
            f"| {name} | {1e3 * t_acc / n_windows:.2f} | {1e3 * t_norm / n_windows:.2f} | "
            f"{1e3 * total / n_windows:.2f} | {mbs:,.0f} | {100 * mbs / bandwidth:.0f}% |"
        )
    ratio = sum(results["numpy"]) / sum(results["numba"])
    print(f"numpy / numba time ratio: {ratio:.2f}x")


if __name__ == "__main__":
    main()
