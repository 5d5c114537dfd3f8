"""Geometry shared by the land-cover layers: the object table, grids, cuts, blobs and lines.

Every helper works in metres on a north-up grid (x right, y down from the top-left corner) and
returns float32 or small-integer arrays, so layers can combine them without copies.
"""

from __future__ import annotations

import numpy as np

from gfmcli.simulate.noise import fractal_noise

BY_KIND = 255  # the object takes its kind's class (``KIND_CLASS``); layers may give another


class Objects:
    """Growing object table: each layer reserves a block of ids with their kinds and classes.

    A class of ``BY_KIND`` means "the kind's class"; layers give another one where the label
    describes a larger unit than the surface (a garden lawn is built-up at the scale of its block).
    """

    def __init__(self) -> None:
        self.kinds: list[np.ndarray] = []
        self.classes: list[np.ndarray] = []
        self.count = 0

    def add(self, kinds: np.ndarray, classes: np.ndarray | int = BY_KIND) -> int:
        kinds = np.asarray(kinds, dtype=np.uint8)
        base = self.count
        self.kinds.append(kinds)
        self.classes.append(np.broadcast_to(np.asarray(classes, dtype=np.uint8), kinds.shape))
        self.count += len(kinds)
        return base

    def kind_array(self) -> np.ndarray:
        return np.concatenate(self.kinds)

    def class_array(self, kind_class: np.ndarray) -> np.ndarray:
        """Each object's class, resolving ``BY_KIND`` through ``kind_class`` (indexed by kind)."""
        kinds, classes = self.kind_array(), np.concatenate(self.classes)
        return np.where(classes == BY_KIND, kind_class[kinds], classes).astype(np.uint8)


def quantile(field: np.ndarray, q: float) -> float:
    """Quantile of a subsample: thresholds need not be exact, and a full sort is slow."""
    step = max(1, int(np.sqrt(field.size / 65536)))
    return float(np.quantile(field[::step, ::step], q))


def coords(shape: tuple[int, int], res: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in metres from the top-left corner (x right, y down)."""
    y = ((np.arange(shape[0], dtype=np.float32) + 0.5) * res)[:, None]
    x = ((np.arange(shape[1], dtype=np.float32) + 0.5) * res)[None, :]
    return x, y


def cuts(lo: float, hi: float, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Boundaries from ``lo`` to beyond ``hi`` with random spacings in [low, high)."""
    n = int((hi - lo) / low) + 2
    return lo + np.cumsum(rng.uniform(low, high, n)).astype(np.float32)


def blob(shape, res, centre, radius, rng) -> tuple[tuple[slice, slice], np.ndarray]:
    """A noisy round blob: its bounding window and its mask inside that window."""
    window, level = blob_level(shape, res, centre, radius, rng)
    return window, level < 1.0


def blob_level(shape, res, centre, radius, rng) -> tuple[tuple[slice, slice], np.ndarray]:
    """A noisy round blob's bounding window and its level inside it: < 1 inside the blob, and
    roughly the distance from the centre in radii (rings near 1 follow the shore)."""
    cy, cx = centre
    reach = 1.6 * radius / res
    r0, r1 = max(0, int(cy / res - reach)), min(shape[0], int(cy / res + reach) + 1)
    c0, c1 = max(0, int(cx / res - reach)), min(shape[1], int(cx / res + reach) + 1)
    window = (slice(r0, r1), slice(c0, c1))
    sub = (max(r1 - r0, 1), max(c1 - c0, 1))
    x, y = coords(sub, res)
    dist = np.hypot(x + c0 * res - cx, y + r0 * res - cy) / radius
    dist += 0.3 * fractal_noise(sub, radius / res, rng, octaves=2)
    return window, dist[: r1 - r0, : c1 - c0]


def line_band(shape, res, rng, angle, offset, amplitudes, wavelengths):
    """Across-line distance (m) to a wiggly line and the along-line coordinate, full grid.

    The line is ``t = offset + sum(a sin(2 pi s / wl + phase))`` in a frame rotated by
    ``angle``; dividing by sqrt(1 + slope^2) turns the vertical offset into a normal distance.
    Computed in place: these are the largest temporaries of the map."""
    x, y = coords(shape, res)
    cx, cy = shape[1] * res / 2, shape[0] * res / 2
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    s = (x - cx) * cos + (y - cy) * sin
    t = (y - cy) * cos - (x - cx) * sin
    t -= np.float32(offset)
    slope = np.zeros_like(s)
    arg = np.empty_like(s)
    wave = np.empty_like(s)
    for amp, wl in zip(amplitudes, wavelengths, strict=True):
        k = np.float32(2 * np.pi / wl)
        np.multiply(s, k, out=arg)
        arg += np.float32(rng.uniform(0, 2 * np.pi))
        np.sin(arg, out=wave)
        wave *= np.float32(amp)
        t -= wave
        np.cos(arg, out=wave)
        wave *= np.float32(amp) * k
        slope += wave
    del arg, wave
    np.abs(t, out=t)
    slope *= slope
    slope += 1.0
    np.sqrt(slope, out=slope)
    t /= slope
    return t, s
