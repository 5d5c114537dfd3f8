"""Spatially coherent land-cover maps on the ground, in metres, at a fine base resolution.

A map is a raster of *object* ids (a field, a forest stand, a roof, a road segment, a lake) at
``resolution_m``; each object has a spectral kind (``gfmcli.data.spectra.KINDS``) and through it a
land-cover class. Sensors render the map at their own GSD by sampling it on a sub-grid, so one
scene gives consistent images and labels at 3, 10, 20, 30 and 60 m, with mixed pixels wherever
an object boundary crosses a pixel.

Layers, painted in this order (later ones cover earlier ones): agricultural parcels (strips of
rectangular fields at a random orientation: crops, grass or bare soil), meadows, bare patches,
forests (thresholded fractal noise cut into irregular stands), a burn scar, riparian trees, a
town (a road grid with blocks of buildings, yards, parks and plazas), rural roads, lakes (noisy
blobs) and a meandering river of varying width. Everything is vectorised numpy; the result
depends only on the arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

from gfmcli.contract import ClassInfo
from gfmcli.data.noise import fractal_noise, value_noise
from gfmcli.data.spectra import KIND_ID, KINDS
from gfmcli.errors import ConfigError

LANDCOVER_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "water", (31, 120, 180)),
    ClassInfo(1, "tree cover", (0, 100, 0)),
    ClassInfo(2, "grass/crops", (180, 220, 90)),
    ClassInfo(3, "bare soil", (180, 140, 90)),
    ClassInfo(4, "built-up", (220, 30, 30)),
    ClassInfo(5, "burned", (60, 40, 40)),
    ClassInfo(6, "cloud", (240, 240, 240)),
    ClassInfo(7, "cloud shadow", (90, 90, 120)),
    ClassInfo(8, "snow", (170, 230, 255)),
)

# The land-cover class of each spectral kind, indexed by kind id.
KIND_CLASS = np.array(
    [{"lake": 0, "river": 0, "tree": 1, "crop": 2, "grass": 2, "soil": 3, "roof": 4,
      "pavement": 4, "burned": 5}[kind] for kind in KINDS],
    dtype=np.uint8,
)  # fmt: skip


class SimulatorError(ConfigError):
    """Simulator parameters that cannot be used (sizes, resolutions, sensors)."""


@dataclass(frozen=True)
class LandCoverMap:
    """Objects on a north-up grid whose top-left corner is ``origin`` (x, y) in ``crs`` units.

    ``mix`` (0-255) blends each object's two spectra per pixel and ``texture`` (128 = 1.0) scales
    brightness per pixel: within-object variation that is the same for every sensor.
    """

    objects: np.ndarray
    object_kind: np.ndarray
    mix: np.ndarray
    texture: np.ndarray
    resolution_m: float
    origin: tuple[float, float]
    crs: str
    seed: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.objects.shape

    @property
    def height_m(self) -> float:
        return self.objects.shape[0] * self.resolution_m

    @property
    def width_m(self) -> float:
        return self.objects.shape[1] * self.resolution_m

    @property
    def object_class(self) -> np.ndarray:
        return KIND_CLASS[self.object_kind]

    @property
    def classes(self) -> np.ndarray:
        """The class raster at the base resolution (uint8, ids of ``LANDCOVER_CLASSES``)."""
        return self.object_class[self.objects]

    def transform(self, gsd: float) -> Affine:
        return Affine(gsd, 0.0, self.origin[0], 0.0, -gsd, self.origin[1])


class _Objects:
    """Growing object table: each layer reserves a block of ids with their kinds."""

    def __init__(self) -> None:
        self.kinds: list[np.ndarray] = []
        self.count = 0

    def add(self, kinds: np.ndarray) -> int:
        base = self.count
        self.kinds.append(np.asarray(kinds, dtype=np.uint8))
        self.count += len(kinds)
        return base

    def kind_array(self) -> np.ndarray:
        return np.concatenate(self.kinds)


def _quantile(field: np.ndarray, q: float) -> float:
    """Quantile of a subsample: thresholds need not be exact, and a full sort is slow."""
    step = max(1, int(np.sqrt(field.size / 65536)))
    return float(np.quantile(field[::step, ::step], q))


def _coords(shape: tuple[int, int], res: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in metres from the top-left corner (x right, y down)."""
    y = ((np.arange(shape[0], dtype=np.float32) + 0.5) * res)[:, None]
    x = ((np.arange(shape[1], dtype=np.float32) + 0.5) * res)[None, :]
    return x, y


def _cuts(lo: float, hi: float, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Boundaries from ``lo`` to beyond ``hi`` with random spacings in [low, high)."""
    n = int((hi - lo) / low) + 2
    return lo + np.cumsum(rng.uniform(low, high, n)).astype(np.float32)


def _stands(shape, res, cell_m, rng) -> tuple[np.ndarray, int]:
    """Irregular cells (a jittered grid warped by noise) of about ``cell_m``: stand/patch ids."""
    x, y = _coords(shape, res)
    warp = 0.35 * cell_m
    cols = int(shape[1] * res / cell_m) + 4
    rows = int(shape[0] * res / cell_m) + 4
    wx = (x + warp * value_noise(shape, cell_m / res, rng)) / np.float32(cell_m)
    ix = np.clip(wx.astype(np.int32) + 1, 0, cols - 1)
    del wx
    wy = (y + warp * value_noise(shape, cell_m / res, rng)) / np.float32(cell_m)
    ids = np.clip(wy.astype(np.int32) + 1, 0, rows - 1) * np.int32(cols)
    del wy
    ids += ix
    return ids, rows * cols


def _parcels(shape, res, table: _Objects, rng) -> np.ndarray:
    x, y = _coords(shape, res)
    theta = rng.uniform(0, np.pi)
    u = x * np.float32(np.cos(theta)) + y * np.float32(np.sin(theta))
    v = y * np.float32(np.cos(theta)) - x * np.float32(np.sin(theta))
    diag = float(np.hypot(*shape) * res)
    cuts_u = _cuts(-diag, diag, 80.0, 300.0, rng)
    cuts_v = _cuts(-diag, diag + 600.0, 100.0, 500.0, rng)
    strip = np.searchsorted(cuts_u, u).astype(np.int32)
    del u
    shift = rng.uniform(0, 500.0, len(cuts_u) + 1).astype(np.float32)
    v += shift[strip]
    n_fields = len(cuts_v) + 1
    kinds = rng.choice(
        [KIND_ID["crop"], KIND_ID["grass"], KIND_ID["soil"]],
        size=(len(cuts_u) + 1) * n_fields,
        p=[0.55, 0.27, 0.18],
    )
    strip *= np.int32(n_fields)
    strip += np.searchsorted(cuts_v, v).astype(np.int32)
    strip += np.int32(table.add(kinds))
    return strip


def _paint_patches(objects, shape, res, table, rng, kind, cell_m, cover, stand_m) -> np.ndarray:
    """Cover the top ``cover`` fraction of a fractal field with stands of one kind."""
    field = fractal_noise(shape, cell_m / res, rng)
    mask = field > _quantile(field, 1.0 - cover)
    ids, n = _stands(shape, res, stand_m, rng)
    base = table.add(np.full(n, KIND_ID[kind]))
    objects[mask] = base + ids[mask]
    return mask


def _blob(shape, res, centre, radius, rng) -> tuple[tuple[slice, slice], np.ndarray]:
    """A noisy round blob: its bounding window and its mask inside that window."""
    cy, cx = centre
    reach = 1.6 * radius / res
    r0, r1 = max(0, int(cy / res - reach)), min(shape[0], int(cy / res + reach) + 1)
    c0, c1 = max(0, int(cx / res - reach)), min(shape[1], int(cx / res + reach) + 1)
    window = (slice(r0, r1), slice(c0, c1))
    sub = (max(r1 - r0, 1), max(c1 - c0, 1))
    x, y = _coords(sub, res)
    dist = np.hypot(x + c0 * res - cx, y + r0 * res - cy) / radius
    mask = dist + 0.3 * fractal_noise(sub, radius / res, rng, octaves=2) < 1.0
    return window, mask[: r1 - r0, : c1 - c0]


def _town(objects, shape, res, table, rng) -> None:
    """A town: a noisy blob holding a rotated street grid; each block is built up (roofs on
    lots, set back from the street, with paved or green yards), a park or a plaza."""
    h_m, w_m = shape[0] * res, shape[1] * res
    radius = max(150.0, rng.uniform(0.12, 0.25) * min(h_m, w_m))
    centre = (rng.uniform(0.3, 0.7) * h_m, rng.uniform(0.3, 0.7) * w_m)
    window, mask = _blob(shape, res, centre, radius, rng)
    x, y = _coords(shape, res)
    x, y = x[:, window[1]] - np.float32(centre[1]), y[window[0], :] - np.float32(centre[0])
    phi = rng.uniform(0, np.pi / 2)
    p = x * np.float32(np.cos(phi)) + y * np.float32(np.sin(phi))
    q = y * np.float32(np.cos(phi)) - x * np.float32(np.sin(phi))
    reach = 2.3 * radius  # the blob's window spans 1.6 radius each way; its diagonal 2.3
    road_w = rng.uniform(8.0, 14.0)
    cuts_p = np.concatenate([[-reach - 140.0], _cuts(-reach, reach, 60.0, 140.0, rng)])
    cuts_q = np.concatenate([[-reach - 140.0], _cuts(-reach, reach, 60.0, 140.0, rng)])
    ip = np.searchsorted(cuts_p, p, side="right") - 1
    iq = np.searchsorted(cuts_q, q, side="right") - 1
    lp, lq = p - cuts_p[ip], q - cuts_q[iq]
    block = ip * len(cuts_q) + iq
    n_blocks = len(cuts_p) * len(cuts_q)
    road = (lp < road_w) | (lq < road_w)
    setback = rng.uniform(3.0, 7.0)
    lot_m = rng.uniform(12.0, 30.0)
    max_lots = 16
    in_lot = (lp - road_w - setback) / lot_m
    lot = np.minimum(in_lot.astype(np.intp), max_lots - 1)
    # Buildings stand back from the road and 2 m apart from each other.
    gap = (in_lot - np.floor(in_lot)) * lot_m > 2.0
    inner = (lp >= road_w + setback) & (lq >= road_w + setback) & gap
    # Block use: 75 % buildings (yards paved or green), 15 % parks, 10 % plazas.
    use = rng.choice(3, size=n_blocks, p=[0.75, 0.15, 0.10])
    yard = rng.choice([KIND_ID["pavement"], KIND_ID["grass"]], size=n_blocks)
    park = rng.choice([KIND_ID["grass"], KIND_ID["tree"]], size=n_blocks)
    rest = np.where(use == 0, yard, np.where(use == 1, park, KIND_ID["pavement"]))
    road_base = table.add(np.full(n_blocks, KIND_ID["pavement"]))
    rest_base = table.add(rest)
    roof_base = table.add(np.full(n_blocks * max_lots, KIND_ID["roof"]))
    ids = np.where(
        road,
        road_base + block,
        np.where(inner & (use[block] == 0), roof_base + block * max_lots + lot, rest_base + block),
    )
    objects[window][mask] = ids[mask]


def _line_band(shape, res, rng, angle, offset, amplitudes, wavelengths):
    """Across-line distance (m) to a wiggly line and the along-line coordinate, full grid.

    The line is ``t = offset + sum(a sin(2 pi s / wl + phase))`` in a frame rotated by
    ``angle``; dividing by sqrt(1 + slope^2) turns the vertical offset into a normal distance.
    Computed in place: these are the largest temporaries of the map."""
    x, y = _coords(shape, res)
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


def _rural_road(objects, shape, res, table: _Objects, rng) -> None:
    """A gently curving road 6-10 m wide across the scene, in 300 m segments."""
    h_m, w_m = shape[0] * res, shape[1] * res
    dist, along = _line_band(
        shape, res, rng, rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4) * min(h_m, w_m),
        (rng.uniform(5.0, 40.0),), (rng.uniform(800.0, 3000.0),),
    )  # fmt: skip
    on_road = dist < rng.uniform(3.0, 5.0)
    segment = ((along[on_road] + 2 * (h_m + w_m)) / 300.0).astype(np.int32)
    base = table.add(np.full(int(4 * (h_m + w_m) / 300.0) + 2, KIND_ID["pavement"]))
    objects[on_road] = base + segment


def _burn_scar(objects, forest, shape, res, table: _Objects, rng) -> None:
    """A burned blob of 80-300 m radius, where it overlaps forest."""
    radius = rng.uniform(80.0, 300.0)
    centre = (rng.uniform(0, shape[0] * res), rng.uniform(0, shape[1] * res))
    window, mask = _blob(shape, res, centre, radius, rng)
    objects[window][mask & forest[window]] = table.add(np.array([KIND_ID["burned"]]))


def _lake(objects, shape, res, table: _Objects, rng) -> None:
    """A noisy blob of water, at most 600 m in radius and smaller in small scenes."""
    h_m, w_m = shape[0] * res, shape[1] * res
    radius = rng.uniform(60.0, min(600.0, max(80.0, 0.15 * min(h_m, w_m))))
    centre = (rng.uniform(0, h_m), rng.uniform(0, w_m))
    window, mask = _blob(shape, res, centre, radius, rng)
    objects[window][mask] = table.add(np.array([KIND_ID["lake"]]))


def _river(objects, shape, res, table: _Objects, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """Paint riparian trees (70 % of scenes) now; return the river's mask, its 400 m segment
    ids and the segment count, to paint the water after the layers it crosses."""
    h_m, w_m = shape[0] * res, shape[1] * res
    angle = rng.uniform(0, np.pi)
    offset = rng.uniform(-0.25, 0.25) * min(h_m, w_m)
    amplitudes = (rng.uniform(50.0, 200.0), rng.uniform(10.0, 60.0))
    wavelengths = (rng.uniform(600.0, 2000.0), rng.uniform(150.0, 400.0))
    dist, along = _line_band(shape, res, rng, angle, offset, amplitudes, wavelengths)
    dist /= np.float32(rng.uniform(8.0, 30.0)) * (1.0 + 0.25 * np.sin(along / 700.0))
    river = dist < 1.0  # dist is now in half-widths of the river
    segment = ((along + 2 * (h_m + w_m)) / 400.0).astype(np.int32)
    del along
    n_segments = int(4 * (h_m + w_m) / 400.0) + 2
    if rng.random() < 0.7:
        riparian = dist < rng.uniform(1.5, 3.0)
        objects[riparian] = table.add(np.full(n_segments, KIND_ID["tree"])) + segment[riparian]
    return river, segment[river], n_segments


def _to_uint8(field: np.ndarray, centre: float, scale: float) -> np.ndarray:
    """``centre + scale * field`` clipped to 0..255 as uint8, in place on ``field``."""
    field *= np.float32(scale)
    field += np.float32(centre)
    np.clip(field, 0, 255, out=field)
    return field.astype(np.uint8)


def simulate_landcover(
    height_m: float,
    width_m: float,
    resolution_m: float = 5.0,
    seed: int = 0,
    crs: str = "EPSG:32633",
    origin: tuple[float, float] = (500000.0, 5400000.0),
) -> LandCoverMap:
    """A random but plausible landscape of ``height_m`` x ``width_m`` at ``resolution_m``.

    Deterministic in ``seed``. Every scene has parcels, forest, bare soil, a town and a river,
    so all five base classes appear once the scene spans more than about 1 km.
    """
    if not (height_m > 0 and width_m > 0 and resolution_m > 0):
        raise SimulatorError("scene height, width and resolution must be positive metres")
    if seed < 0:
        raise SimulatorError(f"seed must be a non-negative integer, got {seed}")
    shape = (max(1, round(height_m / resolution_m)), max(1, round(width_m / resolution_m)))
    if shape[0] * shape[1] > 120_000_000:
        raise SimulatorError(
            f"a {shape[0]}x{shape[1]} base grid is too large; use a coarser resolution_m "
            "or a smaller scene"
        )
    rng = np.random.default_rng(seed)
    res = float(resolution_m)
    table = _Objects()
    objects = _parcels(shape, res, table, rng)
    _paint_patches(objects, shape, res, table, rng, "grass", 400.0, 0.15, 250.0)
    _paint_patches(objects, shape, res, table, rng, "soil", 300.0, 0.06, 200.0)
    forest = _paint_patches(objects, shape, res, table, rng, "tree", 600.0, 0.28, 150.0)
    if rng.random() < 0.5:
        _burn_scar(objects, forest, shape, res, table, rng)
    del forest
    river, river_segment, n_segments = _river(objects, shape, res, table, rng)
    _town(objects, shape, res, table, rng)
    for _ in range(rng.integers(1, 3)):
        _rural_road(objects, shape, res, table, rng)
    for _ in range(rng.integers(1, 4)):
        _lake(objects, shape, res, table, rng)
    # Last, so the river runs through everything (bridges are below 10 m anyway).
    objects[river] = table.add(np.full(n_segments, KIND_ID["river"])) + river_segment
    mix = _to_uint8(np.tanh(fractal_noise(shape, 60.0 / res, rng, octaves=2)), 127.5, 127.5)
    texture = fractal_noise(shape, 20.0 / res, rng, octaves=2)
    texture *= np.float32(0.7)
    texture += np.float32(0.5) * rng.standard_normal(shape, dtype=np.float32)
    texture = _to_uint8(texture, 128.0, 40.0)
    # Layers reserve ids generously; keep only the objects that are visible, numbered 0..n-1.
    used = np.bincount(objects.ravel(), minlength=table.count) > 0
    renumber = (np.cumsum(used) - 1).astype(np.int32)
    return LandCoverMap(
        objects=renumber[objects],
        object_kind=table.kind_array()[used],
        mix=mix,
        texture=texture,
        resolution_m=res,
        origin=(float(origin[0]), float(origin[1])),
        crs=crs,
        seed=int(seed),
    )
