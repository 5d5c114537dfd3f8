"""Smooth random fields for the simulator: value noise and its fractal sum.

Land cover thresholds them into forests, meadows and blobs and uses them to warp cell grids;
the renderer uses them for illumination and haze. Separable smoothstep interpolation of a coarse
Gaussian lattice keeps them cheap (a few passes over the output, float32 throughout) and free of
the diamond artefacts of bilinear interpolation.
"""

from __future__ import annotations

import numpy as np


def value_noise(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field (unit-variance lattice, smoothstep interpolation) of feature size
    ``cell`` pixels; separable, so it costs a few passes over the output."""
    cell = max(cell, 1.0)
    h, w = shape
    grid = rng.standard_normal((int(h / cell) + 3, int(w / cell) + 3)).astype(np.float32)

    def axis(n: int) -> tuple[np.ndarray, np.ndarray]:
        pos = (np.arange(n, dtype=np.float32) + 0.5) / np.float32(cell) + np.float32(rng.random())
        i0 = pos.astype(np.intp)
        t = pos - i0.astype(np.float32)
        return i0, t * t * (3.0 - 2.0 * t)

    i0, ty = axis(h)
    j0, tx = axis(w)
    rows = grid[:, j0] * (1.0 - tx) + grid[:, j0 + 1] * tx
    out = rows[i0]
    out *= (1.0 - ty)[:, None]
    below = rows[i0 + 1]
    below *= ty[:, None]
    out += below
    return out


def fractal_noise(
    shape: tuple[int, int], cell: float, rng: np.random.Generator, octaves: int = 3
) -> np.ndarray:
    """Fractal noise: octaves of value noise, each half the size and amplitude."""
    total = value_noise(shape, cell, rng)
    for k in range(1, octaves):
        octave = value_noise(shape, cell / 2**k, rng)
        octave *= np.float32(0.5**k)
        total += octave
    return total
